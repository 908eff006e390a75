"""Figures of issues 3 and 18: command-line start time, subprocess-runtime overhead, sweeps.

The 100-iteration ``-x`` sweep runs the seed's ``examples/training.py`` with 2 children at once,
forked from a warm worker (the default) and as fresh interpreters (``MLFLOWLET_NO_FORKSERVER=1``),
one after the other in the same run (after a warm-up sweep each, median of 2). Child
interpreters run with their bytecode cached, as an installed package has it (``_common.py``).

Each variant runs interleaved with the others, several rounds, and the median is reported, so a
busy machine slows every variant alike. Every run records into a fresh SQLite DB in a temporary
directory.

Measured limit of issue 18's ``-x`` target (< 15 ms per iteration; profiled with per-process
rusage, perf_counter stamps in the warm worker and in each child, py-spy and strace): of ~20 ms of
CPU per iteration (2 cores), the forked child takes ~14 ms (a bare fork and ``os._exit`` of the
warm worker ~2.1 ms, ~330 copy-on-write page faults; the child's set-up ~1.3 ms; the seed's
training.py ~8.7 ms: context, SQLite connection, 4 artifacts, two transactions; its end ~1.3 ms),
the worker ~1.7 ms per fork (page tables, system time), the CLI parent ~4 ms, of which ~2.3 ms
searched ``/proc`` for what each iteration left running. The worker is now its children's
subreaper and says when a child's tree ended with it; the search runs only when something was
left, and the parent's CPU per iteration fell from ~3.9 to ~1.35 ms. Fixed costs: the CLI reaches
the sweep after ~190 ms (imports, options), then waits ~150-190 ms for the worker's warm-up (its
imports): ~3.5 ms per iteration of a 100-iteration sweep. Interleaved A/B against the previous
code on the shared box (load 3-5, 6 and 8 rounds): wall median 20.6 -> 17.9 and 16.1 -> 14.1 ms
per iteration, CPU 24.2 -> 21.1 and 23.2 -> 20.4 ms.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import python_env  # benchmarks/ is on sys.path (run.py)

ROUNDS = 7
TRAINING = Path(__file__).resolve().parents[1] / "examples" / "training.py"
SWEEP = 100

TRACKED = """\
from mlflowlet import get_or_create_ctx
ctx = get_or_create_ctx("bench")
p = ctx.get_param("p", 1)
ctx.log_result("score", p * 2)
"""
PLAIN = "x = sum(range(1000))\n"


def _env(folder: str) -> dict[str, str]:
    env = python_env()
    env["MLFLOWLET_DBPATH"] = folder
    return env


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _medians(variants: dict[str, object], rounds: int = ROUNDS) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():
        fn()  # warm caches (file system, .pyc, the DB schema)
    for _ in range(rounds):
        for name, fn in variants.items():
            samples[name].append(_timed(fn))
    return {name: statistics.median(values) * 1000 for name, values in samples.items()}


def _cpu(fn) -> float:
    """Return the CPU seconds (user + system) of the child processes ``fn`` runs and waits for.

    Every process of a sweep is counted (the CLI, the warm worker, each iteration): each waits
    for its own children. Unlike wall time, this barely moves with the machine's load.
    """
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    fn()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _cli(folder: str, *args: str, extra: dict[str, str] | None = None):
    argv = [sys.executable, "-m", "mlflowlet", *args]
    env = {**_env(folder), **(extra or {})}
    return lambda: subprocess.run(argv, cwd=folder, env=env, check=True, capture_output=True)


def _python(folder: str, *args: str):
    argv = [sys.executable, *args]
    return lambda: subprocess.run(argv, cwd=folder, env=_env(folder), check=True,
                                  capture_output=True)


def _runtime(folder: str, script: str, **options):
    from mlflowlet.runtimes import new_runner

    runner = new_runner(command=os.path.join(folder, script), **options)

    def go() -> None:
        run = runner.run(watch=False)
        assert run.state == "completed", run.error

    return go


def run() -> list[tuple[str, float, str, str]]:
    """Return the figures as ``(name, value, unit, target)`` rows."""
    folder = tempfile.mkdtemp(prefix="mlflowlet-bench-cli-")
    saved = os.environ.get("MLFLOWLET_DBPATH")
    os.environ["MLFLOWLET_DBPATH"] = folder  # the runtime parent records here too
    try:
        with open(os.path.join(folder, "tracked.py"), "w") as fh:
            fh.write(TRACKED)
        with open(os.path.join(folder, "plain.py"), "w") as fh:
            fh.write(PLAIN)
        start = _medians({
            "python -c pass": _python(folder, "-c", "pass"),
            "mlflowlet --help": _cli(folder, "--help"),
            "mlflowlet version": _cli(folder, "version"),
            "mlflowlet run --help": _cli(folder, "run", "--help"),
        })
        runs = _medians({
            "plain": _python(folder, "plain.py"),
            "tracked": _python(folder, "tracked.py"),
            "runtime tracked": _runtime(folder, "tracked.py"),
            "runtime plain": _runtime(folder, "plain.py"),
            "runtime noctx": _runtime(folder, "plain.py", mode="noctx"),
        })
        shutil.copy(TRAINING, os.path.join(folder, "training.py"))
        values = "[" + ",".join(str(i) for i in range(SWEEP)) + "]"
        args = ("run", "-x", f"p1={values}", "--parallel", "2", "--selector", "max.accuracy",
                "--no-watch", "training.py")
        sweeps = _medians({
            "warm": _cli(folder, *args),
            "cold": _cli(folder, *args, extra={"MLFLOWLET_NO_FORKSERVER": "1"}),
        }, rounds=2)
        warm, cold = sweeps["warm"] / 1000, sweeps["cold"] / 1000
        warm_cpu = _cpu(_cli(folder, *args))
        cold_cpu = _cpu(_cli(folder, *args, extra={"MLFLOWLET_NO_FORKSERVER": "1"}))
    finally:
        if saved is None:
            os.environ.pop("MLFLOWLET_DBPATH", None)
        else:
            os.environ["MLFLOWLET_DBPATH"] = saved
        from mlflowlet import _process

        _process.reset()  # closes the cached run DB connections
        shutil.rmtree(folder, ignore_errors=True)
    return [
        ("python -c pass (baseline)", start["python -c pass"], "ms", "reference"),
        ("python -m mlflowlet --help", start["mlflowlet --help"], "ms", "< 300 ms"),
        ("python -m mlflowlet version", start["mlflowlet version"], "ms", "< 300 ms"),
        ("python -m mlflowlet run --help", start["mlflowlet run --help"], "ms",
         "reference (typer builds the options)"),
        ("python plain.py (bare)", runs["plain"], "ms", "reference"),
        ("python tracked.py (get_or_create_ctx)", runs["tracked"], "ms", "reference"),
        ("subprocess runtime overhead, tracked script",
         runs["runtime tracked"] - runs["tracked"], "ms", "< 150 ms over python tracked.py"),
        ("subprocess runtime overhead, plain script",
         runs["runtime plain"] - runs["plain"], "ms", "< 150 ms over bare python"),
        ("subprocess runtime overhead, noctx", runs["runtime noctx"] - runs["plain"], "ms",
         "< 150 ms over bare python"),
        (f"-x sweep of training.py, {SWEEP} iterations, 2 at once", warm, "s",
         "forked from a warm worker"),
        ("-x sweep, per iteration", warm * 1000 / SWEEP, "ms", "< 15 ms"),
        ("-x sweep, per iteration, fresh interpreters (NO_FORKSERVER=1)", cold * 1000 / SWEEP,
         "ms", "reference: today's spawn"),
        ("-x sweep: warm-worker speed-up", cold / warm, "x", "report"),
        ("-x sweep, CPU per iteration (every process)", warm_cpu * 1000 / SWEEP, "ms",
         "<= 30 ms (15 ms wall on 2 idle cores)"),
        ("-x sweep, CPU per iteration, fresh interpreters", cold_cpu * 1000 / SWEEP, "ms",
         "reference"),
    ]


if __name__ == "__main__":
    for row in run():
        print(f"{row[0]:<48} {row[1]:>10.1f} {row[2]:<3} {row[3]}")
