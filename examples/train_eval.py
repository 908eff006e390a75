"""A tracked pipeline: data prep -> train (a small learning-rate sweep) -> evaluate.

Run it locally, in this process::

    python examples/train_eval.py            # rows=200
    python examples/train_eval.py 500        # rows=500

Every step is a child run of the pipeline run; ``prep`` logs a dataset (parquet), ``train`` runs
one iteration per learning rate and passes the most accurate model on, ``evaluate`` logs an
accuracy-by-threshold chart. Runs, artifacts and lineage land in ``./mlflowlet.db`` (or
``$MLFLOWLET_DBPATH``). The same pipeline compiles to KFP and Argo (``mlflowlet compile``).
"""

from __future__ import annotations

import math
import pickle
import random

from mlflowlet import DataItem, pipeline, step


@step(outputs={"dataset": "dataset"})
def prep(context, rows: int = 200, seed: int = 7) -> None:
    """Make a noisy one-feature binary classification set."""
    import pandas as pd

    rng = random.Random(seed)
    xs = [rng.uniform(-3.0, 3.0) for _ in range(rows)]
    labels = [int(x + rng.gauss(0.0, 0.8) > 0.3) for x in xs]
    context.log_dataset("dataset", pd.DataFrame({"x": xs, "label": labels}))
    context.log_result("positives", sum(labels))


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def _accuracy(w: float, b: float, xs: list, ys: list, threshold: float = 0.5) -> float:
    pairs = zip(xs, ys, strict=True)
    hits = sum(int((_sigmoid(w * x + b) >= threshold) == bool(y)) for x, y in pairs)
    return hits / max(1, len(xs))


@step(outputs={"model": "model"}, retries=1)
def train(context, dataset: DataItem, lr: float = 0.1, epochs: int = 60) -> None:
    """Fit a logistic regression by gradient descent."""
    df = dataset.as_df()
    xs, ys = df["x"].tolist(), df["label"].tolist()
    w = b = 0.0
    for epoch in range(epochs):
        gw = gb = loss = 0.0
        for x, y in zip(xs, ys, strict=True):
            p = _sigmoid(w * x + b)
            gw, gb = gw + (p - y) * x, gb + (p - y)
            loss -= y * math.log(p + 1e-12) + (1 - y) * math.log(1 - p + 1e-12)
        w, b = w - lr * gw / len(xs), b - lr * gb / len(xs)
        context.log_metric("loss", loss / len(xs), step=epoch)
    accuracy = _accuracy(w, b, xs, ys)
    context.log_results({"accuracy": accuracy, "loss": loss / len(xs)})
    context.log_model("model", body=pickle.dumps({"w": w, "b": b}), format="pkl",
                      metrics={"accuracy": accuracy}, parameters={"lr": lr, "epochs": epochs},
                      framework="python")


@step
def evaluate(context, model: DataItem, dataset: DataItem, threshold: float = 0.5) -> float:
    """Score the model at several thresholds; log a chart and the chosen threshold's accuracy."""
    from mlflowlet.artifacts import ChartArtifact

    weights = pickle.loads(model.get())
    df = dataset.as_df()
    xs, ys = df["x"].tolist(), df["label"].tolist()
    chart = ChartArtifact("accuracy_by_threshold", header=["threshold", "accuracy"],
                          title="Accuracy by decision threshold")
    for i in range(1, 10):
        chart.add_row([i / 10, _accuracy(weights["w"], weights["b"], xs, ys, i / 10)])
    context.log_artifact(chart)
    return _accuracy(weights["w"], weights["b"], xs, ys, threshold)


@pipeline(name="train-eval")
def train_eval(rows: int = 200, threshold: float = 0.5):
    """Prepare data, sweep the learning rate, evaluate the best model."""
    data = prep(rows=rows)
    model = train.with_hyper_params({"lr": [0.05, 0.3, 1.5]}, selector="max.accuracy")(
        dataset=data.outputs["dataset"]
    )
    evaluate(model=model.outputs["model"], dataset=data.outputs["dataset"], threshold=threshold)


def _step_name(run, uid: str) -> str:
    return next((name for name, step_run in run.steps.items() if step_run.uid == uid), uid[:8])


if __name__ == "__main__":
    import sys

    run = train_eval.run(rows=int(sys.argv[1]) if len(sys.argv) > 1 else 200)
    run.show()
    print("\nlineage (producer#iteration.output -> consumer(param)):")
    for row in run.lineage():
        source = f"{_step_name(run, row['producer_uid'])}#{row['producer_iter']}.{row['output']}"
        target = f"{_step_name(run, row['consumer_uid'])}({row['consumer_param']})"
        print(f"  {source} -> {target}  {row['artifact_uri'] or '(value)'}")
    sys.exit(0 if run.state == "completed" else 1)
