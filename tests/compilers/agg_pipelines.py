"""Maps over maps and conditions on the item (#13), compiled and checked by the tests.

Importable by module path, as a container would import them.
"""

from __future__ import annotations

from mlflowlet.pipelines import collect, condition, item, pipeline, step

IMAGE = "example.com/mlflowlet/steps:1.0"


@step
def tag(n: int, label: str) -> dict:
    """Return the number, a label that may look like a number or hold quotes, and its parity."""
    return {"n": n, "label": label, "even": n % 2 == 0}


@step
def labels(words: list) -> list:
    """Return the list it gets (a runtime list of labels)."""
    return list(words)


@step
def halve(n: int) -> int:
    """Halve ``n``."""
    return n // 2


@step
def show(value: object) -> None:
    """Print one value and its type."""
    print(f"{value!r} {type(value).__name__}")


@step
def total(values: list) -> int:
    """Sum what it gets."""
    return sum(values)


KEEP = "it's \"2\" == 2"  # quotes, a number, `==`: the when must still compare it exactly


@pipeline(image=IMAGE)
def hostile():
    """Keep the items whose label is ``KEEP`` (the others look like it, or like numbers)."""
    words = labels(words=["2", KEEP, "a == b", 'q"uote', KEEP])
    tagged = tag.map(items=words.output, item_param="label", n=2)
    with condition(item.label == KEEP):
        kept = halve.map(items=collect(tagged.results), n=item.n)
    show.map(items=collect(kept.output), item_param="value")


@pipeline(image=IMAGE)
def typed_test(words: list[str] = ["2", "x"]):  # noqa: B006
    """``item.label == 2`` (an int) is false for the string ``"2"``: nothing is halved."""
    tagged = tag.map(items=words, item_param="label", n=4)
    with condition(item.label == 2):
        kept = halve.map(items=collect(tagged.results), n=item.n)
    show.map(items=collect(kept.output), item_param="value")


@pipeline(image=IMAGE)
def none_kept(words: list[str] = ["a", "b"]):  # noqa: B006
    """Every item's condition is false: the map completes with no items, the next over []."""
    tagged = tag.map(items=words, item_param="label", n=1)
    with condition(item.even == True):  # noqa: E712 (a traced comparison, not a test)
        kept = halve.map(items=collect(tagged.results), n=item.n)
    show.map(items=collect(kept.output), item_param="value")


@pipeline(image=IMAGE)
def whole_items(words: list[str] = ["p", "q"]):  # noqa: B006
    """A map over one collected result, the item tested whole (``item == 'q'``)."""
    tagged = tag.map(items=words, item_param="label", n=3)
    with condition(item != "q"):
        show.map(items=collect(tagged.results["label"]), item_param="value")


@step
def switch() -> str:
    """Return ``"on"``."""
    return "on"


@pipeline(image=IMAGE)
def outer_and_item(want: str = "on"):
    """An outer condition on a result and an item condition, both decided per item."""
    s = switch()
    tagged = tag.map(items=[1, 2, 3], item_param="n", label="x")
    with condition(s.output == want):
        with condition(item.even == False):  # noqa: E712 (a traced comparison, not a test)
            kept = halve.map(items=collect(tagged.results), n=item.n)
    show.map(items=collect(kept.output), item_param="value")


@step
def fails() -> None:
    """Fail."""
    raise RuntimeError("boom")


@pipeline(image=IMAGE)
def after_failure():
    """An item-tested map that runs because another step failed (``on="failure"``)."""
    broken = fails()
    tagged = tag.map(items=[1, 2], item_param="n", label="x")
    with condition(item.even == True):  # noqa: E712 (a traced comparison, not a test)
        kept = halve.map(items=collect(tagged.results), n=item.n).after(broken, on="failure")
    show.map(items=collect(kept.output), item_param="value")


@step
def carry(v: object) -> dict:
    """Return ``v`` under key ``x``."""
    return {"x": v}


def compared(values: list, op: str, literal: object, pipe_name: str = "compared"):
    """A map over ``values`` keeping the items whose ``x`` compares (``op``) with ``literal``."""

    @pipeline(name=pipe_name, image=IMAGE)
    def compare():
        carried = carry.map(items=values, item_param="v")
        with condition(getattr(item.x, op)(literal)):
            show.map(items=collect(carried.results), value=item.x)

    return compare


@step
def ratio(v: float) -> float:
    """Return ``v``."""
    return v


@pipeline(image=IMAGE)
def tiny_threshold(eps: float = 1e-7):
    """A float parameter (written ``1e-07`` by JSON) in a condition."""
    r = ratio(v=0.5)
    with condition(r.output > eps):
        show(value=r.output)
