"""Pipelines reproducing each compile-fidelity defect of issue 12 (importable by module path)."""

from __future__ import annotations

import json
import os
import sys

from mlflowlet.pipelines import collect, condition, pipeline, step

IMAGE = "example.com/mlflowlet/steps:1.0"


@step
def flip(side: str = "heads") -> str:
    return side


@step
def make(x: int = 1) -> dict:
    return {"v": x}


@step
def use(v: int) -> dict:
    return {"w": v + 1}


@pipeline(image=IMAGE)
def block_pair(side: str = "heads"):
    """Two dependent steps in one `with condition` block (KFP's condition sample)."""
    f = flip(side=side)
    with condition(f.results["return"] == "heads"):
        a = make(x=2)
        use(v=a.results["v"])


@pipeline(image=IMAGE)
def nested_blocks(side: str = "heads", x: int = 2):
    """A block inside a block whose condition reads a step of the outer block."""
    f = flip(side=side)
    with condition(f.results["return"] == "heads"):
        a = make(x=x)
        with condition(a.results["v"] > 1):
            use(v=a.results["v"])


@step
def note(text: str = "") -> dict:
    print(text)
    return {"text": text}


@step
def fail_if(fail: bool = False) -> dict:
    if fail:
        raise RuntimeError("asked to fail")
    return {"ok": True}


@pipeline(image=IMAGE)
def after_diamond(fail: bool = False):
    """A diamond built only with .after(): d after b and c; c fails on request."""
    a = note(text="a")
    b = note(text="b").after(a)
    c = fail_if(fail=fail).after(a)
    note(text="d").after(b, c)


@step
def echo(value=None) -> dict:
    return {"value": value, "type": type(value).__name__}


@step
def produce_values() -> dict:
    return {"s": "1.10", "t": "true", "n": "null", "d": {"a": 0, "b": [1, 2.5, 3.0]}, "f": 1.0}


@step
def numbers(k: int = 3) -> list:
    return [i for i in range(k)]


@step
def halve(x: int) -> float:
    return x / 2 if x % 2 else x // 2


@step
def gather(values: list) -> dict:
    return {"values": values, "types": [type(v).__name__ for v in values]}


@pipeline(image=IMAGE)
def typed_values(s: str = "1.10", d: dict = {"a": 0, "b": [1, 2.5]}, e: str = "1e3"):  # noqa: B006
    """Strings that look like literals, ints inside containers, collected ints and floats."""
    echo(value=s)
    echo(value=d)
    echo(value=e)
    p = produce_values()
    for key in ("s", "t", "n", "d", "f"):
        echo(value=p.results[key])
    h = halve.map(items=numbers(k=4).output, item_param="x")
    gather(values=collect(h.output))


@step
def glued(text: str = "no newline") -> dict:
    sys.stdout.write(text)
    return {"n": len(text)}


@pipeline(image=IMAGE)
def glued_output(text: str = "no newline"):
    """A step whose output does not end with a newline."""
    glued(text=text)


@step(outputs=["model"])
def refine(context, model=None, x: int = 0) -> dict:
    old = model.get().decode() if model is not None else ""
    context.log_artifact("model", body=(old + f"+{x}").encode(), format="txt")
    return {"x": x + 1}


@pipeline(image=IMAGE)
def same_names(x: int = 1):
    """Metaflow-style steps: input and output share a name (x, model)."""
    first = refine(x=x)
    refine(model=first.outputs["model"], x=first.results["x"])


@step(retries=2)
def flaky(times: int = 2) -> dict:
    os.makedirs("flaky-marks", exist_ok=True)  # the working directory differs per run
    count = len(os.listdir("flaky-marks")) + 1
    with open(os.path.join("flaky-marks", str(count)), "w") as fh:
        fh.write("x")
    print(f"attempt {count}")
    if count < times:
        raise RuntimeError(f"attempt {count} fails")
    return {"attempts": count}


@pipeline(image=IMAGE)
def retried(times: int = 2):
    """A step that fails until its second attempt."""
    flaky(times=times)


@step(retries=2)
def flaky_item(x: int, times: int = 2) -> dict:
    marks = f"flaky-marks-{x}"  # per item: the local run's items share a working directory
    os.makedirs(marks, exist_ok=True)
    count = len(os.listdir(marks)) + 1
    with open(os.path.join(marks, str(count)), "w") as fh:
        fh.write("x")
    print(f"item {x} attempt {count}")
    if x == 2 and count < times:
        raise RuntimeError(f"item {x} attempt {count} fails")
    return {"x": x}  # not the count: the attempts are compared on their own


@pipeline(image=IMAGE)
def retried_items(times: int = 2):
    """A mapped step whose item 2 fails until its second attempt (the others pass at once)."""
    flaky_item.map(items=[1, 2, 3], item_param="x", times=times)


@pipeline(image=IMAGE)
def empty_fanout(k: int = 0):
    """A fan-out over an empty list, collected (Argo skips such a fan-out)."""
    h = halve.map(items=numbers(k=k).output, item_param="x")
    gather(values=collect(h.output))


@step
def json_text() -> str:
    return json.dumps([1, 2])


@pipeline(image=IMAGE)
def map_over_text():
    """A map over a result that is a JSON string, not a list: fails locally and compiled."""
    h = halve.map(items=json_text().output, item_param="x")
    gather(values=collect(h.output))


@pipeline(image=IMAGE)
def map_over_param(xs: list[int] = [1, 2, 3]):  # noqa: B006
    """A map over a typed list parameter."""
    h = halve.map(items=xs, item_param="x")
    gather(values=collect(h.output))


@step(cache=True)
def cached(x: str = "a/b:c.d=e") -> dict:
    return {"x": x}


@pipeline(image=IMAGE)
def memoized(x: str = "a/b:c.d=e"):
    """A cached step whose input holds characters Argo's cache key rule refuses."""
    cached(x=x)


@pipeline(image=IMAGE, name="p" * 46 + "-tail")
def long_named():
    """A pipeline whose name is cut to 63 characters in Kubernetes names (a '-' at the cut)."""
    note.with_options(name=("s" * 62) + "-tail")(text="x")


@step
def prefixed() -> dict:
    return {"a": 1, "ab": 2.0, "abc": "3"}


@step
def read_prefixed(a: int, ab: float, abc: str) -> dict:
    return {"sum": a + ab + float(abc)}


@pipeline(image=IMAGE)
def prefix_keys():
    """Result keys that are prefixes of each other (their paths are too)."""
    p = prefixed()
    read_prefixed(a=p.results["a"], ab=p.results["ab"], abc=p.results["abc"])


@pipeline(image=IMAGE)
def optional_param(tag: str | None = None, opts: dict = {"n": 0}):  # noqa: B006
    """An optional parameter (None travels as JSON null) and a dict."""
    echo(value=tag)
    echo(value=opts)


@step(outputs=["data"])
def make_data(rows: int = 3) -> str:
    return ",".join(str(i) for i in range(rows))


@step(cache=True)
def count_cached(data) -> dict:
    return {"n": len(data.get().decode().split(","))}


@pipeline(image=IMAGE)
def cached_consumer(rows: int = 3):
    """A cached step whose only input is an artifact (its bytes must key the cache)."""
    count_cached(data=make_data(rows=rows).outputs["data"])


@pipeline(image=IMAGE)
def conditional_map(side: str = "heads", k: int = 3):
    """A fan-out inside a block, collected outside it (Argo: skipped fan-out vs empty one)."""
    f = flip(side=side)
    with condition(f.output == "heads"):
        h = halve.map(items=numbers(k=k).output, item_param="x")
    gather(values=collect(h.output))


@step(labels={"attempt": "first"})  # a user's own label: no retries set it
def labelled_item(x: int) -> int:
    return x


@pipeline(image=IMAGE)
def labelled_items():
    """A mapped step labelled ``attempt`` by its author (not an attempt count)."""
    labelled_item.map(items=[1, 2], item_param="x")
