"""Pipelines of the expressiveness constructs (#13) the compiler tests compile and check.

Importable by module path, as a container would import them.
"""

from __future__ import annotations

from datetime import timedelta

from mlflowlet.pipelines import collect, condition, item, on_exit, pipeline, step

IMAGE = "example.com/mlflowlet/steps:1.0"


# typed artifacts -------------------------------------------------------------------------------
@step(outputs={"model": "model", "metrics": "metrics", "report": "html", "notes": "markdown",
               "rows": "dataset", "blob": "artifact"})
def typed(context):
    for key in ("model", "metrics", "report", "notes", "rows", "blob"):
        context.log_artifact(key, body=f"{key}\n".encode())


@step(outputs=["model", "dataset"])  # named like kinds, declared as none
def untyped(context):
    context.log_artifact("model", body=b"m\n")
    context.log_artifact("dataset", body=b"d\n")


class Model:  # a return annotation naming a kind (as kfp.dsl.Model does)
    pass


class HTML:
    pass


@step(outputs=["weights", "page"])
def annotated() -> tuple[Model, HTML]:
    return b"w", "<p>hi</p>"


@pipeline(image=IMAGE)
def kinds():
    typed()
    untyped()
    annotated()


# cache staleness ------------------------------------------------------------------------------
@step(cache=timedelta(seconds=10))
def fresh(message: str) -> str:
    print(message)
    return message.upper()


@pipeline(image=IMAGE)
def stale(message: str = "hello"):
    fresh(message=message)


# pipeline outputs ------------------------------------------------------------------------------
@step(outputs={"model": "model"})
def fit(context, n: int = 2) -> dict:
    context.log_artifact("model", body=f"weights {n}\n".encode())
    return {"acc": n / 10, "tag": "1.10"}


@step
def double(num: int) -> int:
    return 2 * num


@pipeline(image=IMAGE)
def outputs(n: int = 3):
    """Outputs of every kind a compiled pipeline carries."""
    t = fit(n=n)
    d = double.map(items=[1, 2, 3], item_param="num")
    return {"acc": t.results["acc"], "tag": t.results["tag"], "model": t.outputs["model"],
            "doubles": collect(d.output)}


@pipeline(image=IMAGE)
def one_output():
    """A single return value: output ``return`` (KFP's ``Output``)."""
    return double(num=4).output


# status-conditioned steps ----------------------------------------------------------------------
@step
def risky(fail: bool = False) -> int:
    if fail:
        raise RuntimeError("risky failed")
    return 1


@step
def say(message: str) -> str:
    print(message)
    return message


@pipeline(image=IMAGE)
def handled(fail: bool = True):
    """A failure handled by an ``on='failure'`` step: the run completes (Argo's leaf rule)."""
    r = risky(fail=fail)
    say.with_options(name="rescue")(message="rescued").after(r, on="failure")
    say.with_options(name="cleanup")(message="cleaned").after(r, on="done")


@pipeline(image=IMAGE)
def unhandled(fail: bool = True):
    """The failure also skips an ``on='success'`` leaf: the run fails."""
    r = risky(fail=fail)
    say.with_options(name="ok")(message="fine").after(r, on="success")
    say.with_options(name="rescue")(message="rescued").after(r, on="failure")


# an exit step with arguments -------------------------------------------------------------------
@step
def exit_op(user_input: str, state: str, times: int = 1) -> str:
    print(f"{user_input} x{times}: {state}")
    return f"{user_input}:{state}"


@pipeline(image=IMAGE)
def exit_args(message: str = "hello", fail: bool = False):
    """``on_exit`` with a pipeline parameter and a literal besides ``state``."""
    risky(fail=fail)
    on_exit(exit_op, user_input=message, times=2)


@pipeline(image=IMAGE)
def handled_exit(fail: bool = True, message: str = "m"):
    """A handled failure, then the exit step: it sees the run ``completed``."""
    r = risky(fail=fail)
    say.with_options(name="rescue")(message="rescued").after(r, on="failure")
    on_exit(exit_op, user_input=message)


# map item sub-fields ---------------------------------------------------------------------------
@step
def concat(a: str, b: str) -> str:
    return a + b


@step
def pairs(n: int = 2) -> list:
    return [{"a": i, "b": str(10 * i)} for i in range(1, n + 1)]


@step
def describe_row(row: dict, a: int) -> str:
    return f"{a}:{sorted(row)}"


@pipeline(image=IMAGE)
def item_fields(n: int = 2):
    """``item["a"]`` / ``item.b`` of literal and result items, and the whole item beside one."""
    c = concat.map(items=[{"a": "1", "b": "2"}, {"a": "10", "b": "20"}], a=item["a"], b=item.b)
    p = pairs(n=n)
    d = describe_row.map(items=p.output, row=item, a=item.a)
    return {"concat": collect(c.output), "rows": collect(d.output)}


@step
def add_one(a: int) -> int:
    return a + 1


@pipeline(image=IMAGE)
def item_field_types():
    """Sub-fields keep their JSON types: an int stays an int, a float is not truncated."""
    add_one.map(items=[{"a": 1}, {"a": 2.5}, {"a": "3"}], a=item["a"])


@step
def report_failures(state: str, failures: list) -> str:
    print(f"{state}: {failures}")
    return ",".join(failures)


@pipeline(image=IMAGE)
def exit_failures(fail: bool = True):
    """An exit step reading the failed steps' names (Argo ``{{workflow.failures}}``)."""
    risky.with_options(name="first")(fail=fail)
    risky.with_options(name="second", retries=1)(fail=fail)
    say(message="fine")
    on_exit(report_failures)


@step
def tagged_exit(state: str, tags: list[str], cfg: dict, n: float = 0.0) -> str:
    return f"{state}|{tags}|{sorted(cfg.items())}|{n!r}"


@pipeline(image=IMAGE)
def exit_typed(tags: list[str] = ["a", "b c"], cfg: dict = {"k": 1}, n: float = 1.0):  # noqa: B006
    """Typed pipeline parameters (a list, a dict, a float) given to the exit step."""
    say(message="x")
    on_exit(tagged_exit, tags=tags, cfg=cfg, n=n)


@pipeline(image=IMAGE)
def map_rescue(fails: list[bool] = [False, True]):  # noqa: B006
    """A handler of a fan-out's failure (one failed item fails the map)."""
    m = risky.map(items=fails, item_param="fail")
    say.with_options(name="rescue")(message="rescued").after(m, on="failure")
    say.with_options(name="after_all")(message="done").after(m, on="done")


@pipeline(image=IMAGE)
def map_success(fails: list[bool] = []):  # noqa: B006
    """A step run on a fan-out's success: over no items too (the map completed)."""
    m = risky.map(items=fails, item_param="fail")
    say(message="ok").after(m, on="success")


@pipeline(image=IMAGE)
def gated_map_success(fails: list[bool] = [], gate: bool = True):  # noqa: B006
    """A fan-out in a condition, a step on its success outside: skipped by the condition only."""
    with condition(gate == True):  # noqa: E712
        m = risky.map(items=fails, item_param="fail")
    say(message="ok").after(m, on="success")
