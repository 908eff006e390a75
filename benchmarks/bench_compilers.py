"""Compiler figures of issues 5 and 12: a 200-step chain and a 200-step fan-out/fan-in, to each
target, and what ``--check`` costs per step.

Argo is timed alone (target: under 0.1 s); KFP is compared with compiling the equivalent
hand-written kfp pipeline (same container components, same shape) in the same run (target:
within 1.5x of it). Pipelines are traced before timing; each figure is the median of ROUNDS.
``--check`` runs a CHECK_STEPS-step chain on each target (each step a fresh interpreter, then
the local run and the comparison) and reports seconds per step.
"""


import os
import statistics
import tempfile
import time

from mlflowlet.pipelines import pipeline, step

STEPS = 200
ROUNDS = 5
CHECK_STEPS = 10
IMAGE = "repo/bench:1"


@step
def inc(x: int = 0) -> dict:
    return {"y": x + 1}


@step
def gather(**parts) -> dict:
    return {"total": sum(parts.values())}


@pipeline(image=IMAGE)
def chain(start: int = 0):
    """200 steps, each feeding the next."""
    node = inc(x=start)
    for _ in range(STEPS - 1):
        node = inc(x=node.results["y"])


@pipeline(image=IMAGE)
def fan(start: int = 0):
    """One source, 198 parallel steps, one sink reading all of them."""
    src = inc(x=start)
    mids = [inc(x=src.results["y"]) for _ in range(STEPS - 2)]
    gather(**{f"p{i}": m.results["y"] for i, m in enumerate(mids)})


@pipeline(image=IMAGE)
def short_chain(start: int = 0):
    """CHECK_STEPS steps, each feeding the next (for the --check figure)."""
    node = inc(x=start)
    for _ in range(CHECK_STEPS - 1):
        node = inc(x=node.results["y"])


def _check_per_step(target: str) -> float:
    from mlflowlet.compilers.check import check

    start = time.perf_counter()
    report = check(short_chain, target)
    assert report.ok, report.summary()
    return (time.perf_counter() - start) / CHECK_STEPS


def _median(fn) -> float:
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _hand_written(shape: str):
    """The same pipeline written directly in the kfp DSL."""
    from kfp import dsl

    @dsl.container_component
    def step_inc(x: int, y: dsl.OutputPath(int)):
        return dsl.ContainerSpec(image=IMAGE, command=["python", "-m", "mlflowlet.entrypoint"],
                                 args=["--handler", "bench_compilers:inc", "--param", f"x={x}",
                                       "--result", f"y={y}"])

    @dsl.container_component
    def step_gather(parts: list):
        return dsl.ContainerSpec(image=IMAGE, command=["python", "-m", "mlflowlet.entrypoint"],
                                 args=["--handler", "bench_compilers:gather",
                                       "--param", f"parts={parts}"])

    @dsl.pipeline(name=shape)
    def hand(start: int = 0):
        node = step_inc(x=start)
        if shape == "chain":
            for _ in range(STEPS - 1):
                node = step_inc(x=node.outputs["y"]).set_caching_options(False)
        else:  # a sink after every middle step (198 named inputs are not hand-writable)
            mids = [step_inc(x=node.outputs["y"]) for _ in range(STEPS - 2)]
            step_gather(parts=[0]).after(*mids)

    return hand


def _kfp_hand(shape: str) -> float:
    from kfp import compiler

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "p.yaml")
        return _median(lambda: compiler.Compiler().compile(_hand_written(shape), path))


def run() -> list[tuple[str, float, str, str]]:
    """Return the compile-time figures."""
    from mlflowlet.compilers import compile, compile_text

    rows: list[tuple[str, float, str, str]] = []
    compile_text(chain, "argo")  # imports hera and kfp once, outside the timings
    compile_text(chain, "kfp")
    for name, pipe in (("chain", chain), ("fan-out/fan-in", fan)):
        pipe.dag  # noqa: B018 - trace outside the timing
        argo = _median(lambda p=pipe: compile(p, "argo"))
        rows.append((f"compile {STEPS}-step {name} to Argo (dict)", argo, "s", "< 0.1 s"))
        text = _median(lambda p=pipe: compile_text(p, "argo"))
        rows.append(("  ... and as YAML text", text, "s", "-"))
        ours = _median(lambda p=pipe: compile_text(p, "kfp"))
        hand = _kfp_hand("chain" if name == "chain" else "fan")
        rows.append((f"compile {STEPS}-step {name} to KFP", ours, "s", "-"))
        rows.append((f"  hand-written kfp {name}, compiled by kfp", hand, "s", "~0.3 s"))
        rows.append((f"  KFP compile vs hand-written ({name})", ours / hand, "x", "<= 1.5x"))
    for target in ("argo", "kfp"):
        per_step = _check_per_step(target)
        rows.append((f"--check {target}, {CHECK_STEPS}-step chain, per step", per_step, "s", "-"))
    return rows
