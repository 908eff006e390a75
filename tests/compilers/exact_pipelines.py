"""Pipelines whose values a compiled run could silently change (importable by module path)."""

from __future__ import annotations

from mlflowlet.pipelines import collect, condition, pipeline, step

IMAGE = "example.com/mlflowlet/steps:1.0"


@step
def kind(value) -> str:
    return f"{type(value).__name__}:{value!r}"


@pipeline(image=IMAGE)
def float_default(lr: float = 1):
    kind(value=lr)


BRACES = "Hi {{workflow.name}} {{=sprig.upper('x')}} {{$}} {{$.inputs.parameters['text']}} {"


@step
def braces() -> str:
    return BRACES


@step
def echo(text: str) -> str:
    return text


@step
def echo_any(value) -> str:
    return f"{type(value).__name__}:{value!r}"


@step
def texts() -> list:
    return [BRACES, "{{workflow.name}}"]


@step
def joined(values: list) -> str:
    return "|".join(values)


@pipeline(image=IMAGE)
def braced(p: str = "{{workflow.uid}}", d: dict = {"k": "{{workflow.name}}"}):  # noqa: B006
    echo(text=braces().output)
    echo.with_options(name="echo-param")(text=p)
    echo_any.with_options(name="echo-dict")(value=d)
    echo_any.with_options(name="echo-literal")(value=["{{workflow.name}}", {"a": "{{$}}"}])
    echo_any.map(["{{workflow.name}}", "{{item}}"], item_param="value")
    each = echo.map(texts().output, item_param="text")
    joined(values=collect(each.results["return"]))


@step
def untyped_flag():
    return True


@step
def untyped_one():
    return "1"


@step
def logs(context) -> None:
    context.log_result("ok", True)
    context.log_result("s", "1")
    context.log_result("n", 1)
    context.log_result("f", 0.5)


@step
def say(m: str) -> str:
    return m


@pipeline(image=IMAGE)
def untyped_compared():
    f, s, c = untyped_flag(), untyped_one(), logs()
    for name, cond in {
        "true-eq-1": f.output == 1,
        "str1-eq-1": s.output == 1,
        "str1-ne-1": s.output != 1,
        "logged-true-eq-1": c.results["ok"] == 1,
        "logged-str1-eq-1": c.results["s"] == 1,
        "logged-int1-eq-str1": c.results["n"] == "1",
        "logged-int1-ne-str1": c.results["n"] != "1",
        "logged-half-eq-str": c.results["f"] == "0.5",
    }.items():
        with condition(cond):
            say.with_options(name=name)(m=name)


@step
def sized(n: int = 0) -> str:
    return "x" * n


@step
def length(s: str) -> int:
    return len(s)


@pipeline(image=IMAGE)
def big_value(n: int = 10):
    length(s=sized(n=n).output)


@step
def work(x: str) -> str:
    if x == "bad":
        raise RuntimeError("bad item")
    return x


@pipeline(image=IMAGE)
def failed_map():
    work.map(["bad", "ok1", "ok2"], item_param="x", parallel=1)


@step
def mark(tag: str = "") -> str:
    return tag


@pipeline(image=IMAGE)
def braced_when(text: str = "{{workflow.name}}"):
    """Conditions comparing a result with str literals holding {{ (true and false)."""
    g = echo(text=text)
    with condition(g.output == "{{workflow.name}}"):
        mark.with_options(name="eq")(tag="eq")
    with condition(g.output != "a{{b"):
        mark.with_options(name="ne")(tag="ne")
    with condition(g.output == "a{{b}}"):
        mark.with_options(name="never")(tag="never")


@pipeline(image=IMAGE)
def braced_param_when(text: str = "plain"):
    """A str pipeline parameter compared in a condition."""
    g = echo(text="plain")
    with condition(g.output == text):
        mark(tag="eq")


@pipeline(image=IMAGE)
def braced_param_map(xs: list[str] = ["{{workflow.name}}", "a{{b}}", "{", "mlflowlet:json:1"]):  # noqa: B006
    """A map over a list[str] parameter whose items hold {{, and a step reading the list whole."""
    echo.map(xs, item_param="text")
    joined(values=xs)
