"""Dask figures of issue 6: sweep overhead per iteration, and the speed-up over the local runtime.

A 2-worker ``LocalCluster`` (processes, one thread each) on 127.0.0.1 and a fresh SQLite run DB in
a temporary directory. The caller stores every iteration (the default: workers need no DB).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from _common import fresh_dir  # benchmarks/ is on sys.path (run.py)

SWEEP = 1_000
CPU_ITERATIONS, CPU_WORK = 16, 1_500_000  # ~150 ms of pure Python per iteration
ROUNDS = 2  # best of, alternating runtimes: other processes on the machine skew single runs


def noop(x: int):
    return {"loss": x % 7}


def cpu_bound(x: int):
    total = 0
    for i in range(CPU_WORK):
        total += (i * x) % 7
    return {"loss": total % 1000}


def _two_process_ceiling() -> float:
    """Speed-up of 2 bare Python processes over 1 on the same work: what this machine allows now."""
    code = (
        "import sys\n"
        "for x in range(int(sys.argv[1])):\n"
        f"    sum((i * x) % 7 for i in range({CPU_WORK}))\n"
    )

    def wall(procs: int) -> float:
        start = time.perf_counter()
        children = [
            subprocess.Popen([sys.executable, "-c", code, str(CPU_ITERATIONS // procs)])
            for _ in range(procs)
        ]
        for child in children:
            child.wait()
        return time.perf_counter() - start

    return max(wall(1) / wall(2) for _ in range(ROUNDS))


def _fresh_dir():
    return fresh_dir("mlflowlet-bench-dask-")


def _sweep(runner, handler, n: int) -> float:
    from mlflowlet import new_task

    task = new_task(hyper_params={"x": list(range(n))}, selector="min.loss")
    start = time.perf_counter()
    run = runner.run(task, handler=handler)
    took = time.perf_counter() - start
    assert run.state == "completed" and len(run.status.iterations) == n + 1, run.error
    return took


def run() -> list[tuple[str, float, str, str]]:
    """Return the Dask figures as ``(name, value, unit, target)`` rows."""
    import distributed

    from mlflowlet import new_runner

    rows: list[tuple[str, float, str, str]] = []
    with _fresh_dir():
        start = time.perf_counter()
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        )
        rows.append(("LocalCluster start (2 worker processes)", time.perf_counter() - start,
                     "s", "< 1 s (DESIGN)"))
        try:
            dask_runner = new_runner(kind="dask", cluster=cluster)
            _sweep(dask_runner, noop, 50)  # warm: workers import mlflowlet, connections open
            took = _sweep(dask_runner, noop, SWEEP)
            rows.append((f"dask sweep overhead per iteration ({SWEEP:,} no-op iterations)",
                         took / SWEEP * 1000, "ms", "< 5 ms"))
            local_took = _sweep(new_runner(), noop, SWEEP)
            rows.append((f"local sweep per iteration ({SWEEP:,} no-op iterations, reference)",
                         local_took / SWEEP * 1000, "ms", "-"))
            local_cpu = dask_cpu = float("inf")
            for _ in range(ROUNDS):
                local_cpu = min(local_cpu, _sweep(new_runner(), cpu_bound, CPU_ITERATIONS))
                dask_cpu = min(dask_cpu, _sweep(dask_runner, cpu_bound, CPU_ITERATIONS))
            rows.append((f"CPU-bound sweep, local runtime ({CPU_ITERATIONS} iterations)",
                         local_cpu, "s", "-"))
            rows.append((f"CPU-bound sweep, dask runtime ({CPU_ITERATIONS} iterations)",
                         dask_cpu, "s", "-"))
            rows.append(("dask speed-up over local, CPU-bound (2 workers)", local_cpu / dask_cpu,
                         "x", "near the ceiling below"))
            rows.append(("ceiling: 2 bare processes over 1, same work", _two_process_ceiling(),
                         "x", f"2 on 2 idle cores ({os.cpu_count()} cores here)"))
        finally:
            cluster.close()
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
