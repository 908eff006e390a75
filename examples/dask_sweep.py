"""A hyper-parameter sweep on Dask: every iteration is a Dask task, every iteration is recorded.

    python dask_sweep.py                      # starts a local 2-worker cluster on 127.0.0.1
    python dask_sweep.py dask://host:8786     # uses a running scheduler (`dask scheduler`)

The handler is plain Python defined in this script: mlflowlet ships it to the workers with
cloudpickle, runs each iteration there, and stores the results, metrics, logs and artifacts in the
run DB (``MLFLOWLET_DBPATH``, default: the current directory). Workers need mlflowlet installed,
not this file.
"""

from __future__ import annotations

import math
import sys

from mlflowlet import new_runner, new_task


def train(context, lr: float, layers: int, epochs: int = 30):
    """A toy CPU-bound 'training' whose loss is lowest near lr=0.01 and layers=3."""
    loss = 0.0
    for epoch in range(1, epochs + 1):
        noise = sum(math.sin(i * lr) for i in range(5_000)) / 5_000  # some real CPU work
        loss = (math.log10(lr) + 2) ** 2 + (layers - 3) ** 2 / 4 + 1 / epoch + abs(noise) / 100
        context.log_metric("loss", loss, step=epoch)
    context.logger.info(f"lr={lr} layers={layers} -> loss {loss:.4f}")
    context.log_artifact("model.txt", body=f"lr={lr} layers={layers}\n".encode())
    return {"loss": round(loss, 6), "accuracy": round(1 / (1 + loss), 6)}


def main(url: str = "dask://") -> None:
    """Run the sweep on ``url`` and print the best iteration."""
    runner = new_runner(url)
    task = new_task(
        name="dask-sweep",
        hyper_params={"lr": [0.001, 0.01, 0.1, 1.0], "layers": [1, 2, 3, 4]},
        selector="min.loss",
    )
    run = runner.run(task, handler=train)
    best = run.results["best_iteration"]
    print(f"{run.state}: {len(run.status.iterations) - 1} iterations on {runner!r}")
    print(f"best iteration {best}: loss={run.results['loss']} accuracy={run.results['accuracy']}")


if __name__ == "__main__":  # required: the local cluster starts worker processes
    main(*sys.argv[1:2])
