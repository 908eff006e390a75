"""Small pipelines the compiler tests compile, validate and check (importable by module path)."""

from __future__ import annotations

from mlflowlet.pipelines import collect, condition, pipeline, step

IMAGE = "example.com/mlflowlet/steps:1.0"


@step(outputs=["data"])
def make(rows: int = 3) -> str:
    return ",".join(str(i) for i in range(rows))


@step
def count(data) -> dict:
    return {"n": len(data.get().decode().split(","))}


@step
def total(data) -> dict:
    return {"sum": sum(int(x) for x in data.get().decode().split(","))}


@step
def join(n: int, total: int, label: str = "x") -> dict:
    return {"summary": f"{label}:{n}:{total}"}


@pipeline(image=IMAGE)
def diamond(rows: int = 4, label: str = "d"):
    """A diamond: make -> (count, total) -> join."""
    m = make(rows=rows)
    c = count(data=m.outputs["data"])
    t = total(data=m.outputs["data"])
    join(n=c.results["n"], total=t.results["sum"], label=label)


@step
def items(k: int = 3) -> dict:
    return {"items": [i + 1 for i in range(k)]}


@step
def square(x: int) -> dict:
    return {"sq": x * x}


@step
def add_all(values: list) -> dict:
    return {"total": sum(int(v) for v in values)}


@pipeline(image=IMAGE)
def fanout(k: int = 3):
    """A fan-out over a result list, collected into one sum."""
    it = items(k=k)
    sq = square.map(items=it.results["items"], item_param="x")
    add_all(values=collect(sq.results["sq"]))


@step(outputs=["model"])
def train(lr: float = 0.1, depth: int = 1, context=None) -> dict:
    score = round(1.0 - abs(lr - 0.2) - 0.01 * depth, 4)
    context.log_artifact("model", body=f"lr={lr} depth={depth}", format="txt")
    return {"accuracy": score}


@step
def evaluate(model, accuracy: float) -> dict:
    return {"report": f"{model.get().decode()} acc={accuracy}"}


@pipeline(image=IMAGE)
def hyper(depth: int = 2):
    """A hyper-parameter step whose best iteration feeds the next step."""
    tr = train.with_hyper_params({"lr": [0.1, 0.2, 0.3]}, selector="max.accuracy")(depth=depth)
    evaluate(model=tr.outputs["model"], accuracy=tr.results["accuracy"])


@step(resources={"cpu": "500m", "memory": "1Gi", "gpu": 1}, retries=2, retry_delay=5,
      timeout=600, cache=True, labels={"team": "ml"})
def secret_user(name: str = "db", context=None) -> dict:
    value = context.get_secret("DB_PASSWORD") if context is not None else None
    return {"has_secret": bool(value), "name": name}


@pipeline(image=IMAGE)
def secured(name: str = "db"):
    """A step with resources, retries, caching, labels and a Kubernetes secret."""
    secret_user(name=name)


@step
def report(state: str = "") -> dict:
    return {"final": state}


@step
def deploy(accuracy: float) -> dict:
    return {"deployed": accuracy}


@pipeline(image=IMAGE, on_exit=report)
def gated(threshold: float = 0.5):
    """A condition on a result, with an exit handler."""
    tr = train(lr=0.2, depth=1)
    with condition(tr.results["accuracy"] >= threshold):
        deploy(accuracy=tr.results["accuracy"])


@pipeline(image=IMAGE)
def clashing():
    """Two steps whose names become the same Kubernetes name."""
    make.with_options(name="make_a")(rows=1)
    make.with_options(name="make.a")(rows=2)


class Opaque:
    pass


@pipeline(image=IMAGE)
def opaque_param(thing: Opaque = None):  # noqa: RUF013
    """A pipeline parameter no engine can carry."""
    make(rows=1)


@step(outputs=["part"])
def shard(i: int) -> str:
    return str(i)


@step
def merge(parts: list) -> dict:
    return {"n": len(parts)}


@pipeline(image=IMAGE)
def artifact_collect():
    """Collecting artifacts of a map, which compiled pipelines refuse."""
    sh = shard.map(items=[1, 2], item_param="i")
    merge(parts=collect(sh.outputs["part"]))


@pipeline(image=IMAGE)
def either(threshold: float = 0.5):
    """An `|` condition (Argo can, KFP cannot)."""
    tr = train(lr=0.2, depth=1)
    with condition((tr.results["accuracy"] >= threshold) | (tr.results["accuracy"] < 0.1)):
        deploy(accuracy=tr.results["accuracy"])


@step
def halve(x: int) -> float:
    return x / 2


@step
def add_floats(values: list) -> float:
    return sum(values)


@pipeline(image=IMAGE)
def returned_fanout(k: int = 3):
    """A fan-out over return values (result ``return``), collected into a bare ``list``."""
    it = items(k=k)
    half = halve.map(items=it.results["items"], item_param="x")
    add_floats(values=collect(half.results["return"]))


@step
def process_id() -> dict:
    import os

    return {"pid": os.getpid(), "cwd": os.getcwd()}


@pipeline(image=IMAGE)
def unrepeatable():
    """A step whose result differs on every run (process id, folder): no two runs agree."""
    process_id()


@step
def endless() -> dict:
    import threading

    threading.Event().wait()  # never set: only a timeout ends this step
    return {}


@pipeline(image=IMAGE)
def never_ends():
    """A step that never finishes (a container the engine must stop at its time limit)."""
    endless()


@pipeline
def imageless(rows: int = 2):
    """No image anywhere: it compiles only with an image passed to compile (or check)."""
    count(data=make(rows=rows).outputs["data"])


@step
def from_library() -> dict:
    import check_library  # found only on the PYTHONPATH of whoever runs the check

    return {"value": check_library.VALUE}


@pipeline(image=IMAGE)
def uses_library():
    """A step importing a module the caller's PYTHONPATH provides (not the step's own folder)."""
    from_library()
