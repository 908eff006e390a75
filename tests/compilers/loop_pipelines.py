"""Pipelines with maps over sub-pipelines and nested maps (#13) that the loop tests compile.

Importable by module path, as a container would import them.
"""

from __future__ import annotations

from mlflowlet.pipelines import collect, condition, item, pipeline, step

IMAGE = "example.com/mlflowlet/steps:1.0"


@step
def concat(a: str, b: str) -> str:
    print(a + b)
    return a + b


@step
def shout(text: str) -> str:
    print(text.upper())
    return text.upper()


@step
def rows() -> list:
    return [{"a": "x", "b": "y"}, {"a": "p", "b": "q"}]


@step
def suffix() -> str:
    return "!"


@step
def pair(outer: str, inner: str) -> str:
    print(f"{outer}{inner}")
    return f"{outer}{inner}"


@step
def count(values: list) -> int:
    return len(values)


@pipeline
def body(a: str, b: str):
    """Two steps per item: the second reads the first's result of the same item."""
    shout(text=concat(a=a, b=b).output)


@pipeline(image=IMAGE)
def static(greeting: str = "hello"):
    """A body mapped over literal dicts, after a step outside the loop."""
    first = shout(text=greeting)
    body.map(
        items=[{"a": "1", "b": "2"}, {"a": "10", "b": "20"}], a=item.a, b=item.b, parallel=2
    ).after(first)


@pipeline
def with_suffix(a: str, end: str):
    """A body reading a result of a step outside the loop (``end``)."""
    shout(text=concat(a=a, b=end).output)


@pipeline(image=IMAGE)
def over_result():
    """A body mapped over a step's list result, reading another step's result too."""
    end = suffix()
    with_suffix.map(items=rows().output, a=item.a, end=end.output)


@pipeline
def inner(outer: str, letters: list[str]):
    """An outer item's step, then a map nested inside it reading that step's result."""
    loud = shout(text=outer)
    pair.map(items=letters, inner=item, outer=loud.output)


@pipeline(image=IMAGE)
def nested(outers: list[str] = ["a", "b"], letters: list[str] = ["x", "y", "z"]):  # noqa: B006
    """A map inside a mapped sub-pipeline; the outer one at most 1 item at a time."""
    inner.map(items=outers, outer=item, letters=letters, parallel=1)


@pipeline(image=IMAGE)
def bounded_collected():
    """A bounded step map whose results are collected (Argo: the loop templates' outputs)."""
    s = shout.map(items=["a", "b"], text=item, parallel=1)
    count(values=collect(s.output))


@step
def picky(a: str) -> str:
    if a == "bad":
        raise ValueError("bad item")
    return a


@pipeline
def picky_body(a: str):
    """Fails for the item 'bad': that item's second step does not run."""
    shout(text=picky(a=a).output)


@pipeline(image=IMAGE)
def one_bad():
    """One item's body fails: the loop, so the pipeline, fails; the other item completes."""
    picky_body.map(items=["ok", "bad"], a=item)


@pipeline
def handled_body(a: str):
    """The item 'bad' fails its first step; a step run on that failure handles it (the leaf)."""
    shout(text=a).after(picky(a=a), on="failure")


@pipeline(image=IMAGE)
def handled():
    """A failure each item's body handles: every body succeeds, so does the workflow (Argo)."""
    handled_body.map(items=["ok", "bad"], a=item)


@pipeline
def half_handled_body(a: str):
    """As handled_body, plus a leaf run only on success: the 'bad' item's body fails there."""
    p = picky(a=a)
    shout(text=a).after(p, on="failure")
    shout.with_options(name="on_success")(text=a).after(p, on="success")


@pipeline(image=IMAGE)
def half_handled():
    """One item's body ends in a skipped leaf after its failure: the workflow fails."""
    half_handled_body.map(items=["ok", "bad"], a=item)


@step
def parity(x: int) -> str:
    return "even" if x % 2 == 0 else "odd"


@step
def half(x: int) -> int:
    print(x // 2)
    return x // 2


@step
def cap() -> int:
    return 3


@pipeline
def even_body(x: int, limit: int, mode: str):
    p = parity(x=x)
    with condition(p.output == "even"):  # each item decides on its own parity
        h = half(x=x)
        with condition(h.output < limit):  # nested: reads a result from outside the loop
            shout(text=p.output)
    with condition(mode == "loud"):  # a pipeline parameter: the same for every item
        shout(text=p.output)


@pipeline(image=IMAGE)
def conditional_body(mode: str = "loud"):
    """``with condition(...)`` inside a mapped sub-pipeline (KFP dsl.If in ParallelFor)."""
    even_body.map(items=[1, 2, 3, 4, 6], x=item, limit=cap().output, mode=mode)


@pipeline(image=IMAGE)
def condition_around_loop(go: str = "yes"):
    with condition(go == "yes"):
        body.map(items=[{"a": "x", "b": "y"}], a=item.a, b=item.b)


@pipeline(image=IMAGE)
def bounded_ordered():
    """A step ordered after a bounded step map: Argo refuses."""
    s = shout.map(items=["a", "b"], text=item, parallel=1)
    suffix().after(s)
