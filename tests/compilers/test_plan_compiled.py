"""The compile plan as the compiled containers see it: each step's entrypoint arguments, its
secrets and its refusals (``mlflowlet/compilers/_plan.py``, through both compilers)."""

from __future__ import annotations

import pytest

from mlflowlet.compilers import compile
from mlflowlet.errors import CompileError
from mlflowlet.pipelines import collect, condition, item, on_exit, pipeline, step

IMAGE = "example.com/mlflowlet/steps:1.0"
TARGETS = ["argo", "kfp"]


@step
def make(x: int, tag: str = "t") -> int:
    return x


@step
def emit() -> list:
    return [1, 2]


@step
def add(a: int) -> int:
    return a + 1


@step(outputs=["data"])
def produce(context):
    context.log_artifact("data", body=b"d")


@step
def consume(data, n: int = 0) -> int:
    return n


@step
def report(state: str, failures: list) -> str:
    return state


@pipeline(image=IMAGE)
def planned(n: int = 2):
    a = make(x=1)
    with condition(a.output > 0):
        add(a=n)
    ups = add.map(emit().output, item_param="a")
    return {"first": a.output, "all": collect(ups.output)}


def _argo_args(doc) -> dict[str, list[str]]:
    """Every container template's arguments by template name, without ``--config-sha256``."""
    return {t["name"]: t["container"]["args"][:-2] for t in doc["spec"]["templates"]
            if "container" in t}


def _kfp_args(doc) -> dict[str, list[str]]:
    """Every executor's arguments, up to ``--config-sha256`` (the KFP-only tail follows it)."""
    out = {}
    for name, ex in doc["deploymentSpec"]["executors"].items():
        args = ex["container"]["args"]
        out[name] = args[:args.index("--config-sha256")]
    return out


def _results(target: str, name: str) -> str:
    if target == "argo":
        return f"/tmp/mlflowlet/results/{name}"
    return f"{{{{$.outputs.parameters['{name}'].output_file}}}}"


def test_argo_arguments_carry_literals_results_conditions_and_pipeline_outputs():
    args = _argo_args(compile(planned, "argo", tracking=False))
    assert args == {
        # a literal typed as JSON; the result read by the pipeline output (json) and by a
        # condition (Argo's `when` literal)
        "make": ["--handler", "test_plan_compiled:make", "--param", "x:json=1",
                 "--result", "return:json=/tmp/mlflowlet/results/return",
                 "--result", "return:when=/tmp/mlflowlet/results/return__if"],
        "add": ["--handler", "test_plan_compiled:add", "--param", "a:int={{inputs.parameters.a}}"],
        "emit": ["--handler", "test_plan_compiled:emit",
                 "--result", "return:items=/tmp/mlflowlet/results/return__items"],
        # the mapped step's result, collected by the pipeline output: one item per run
        "add-2": ["--handler", "test_plan_compiled:add",
                  "--param", "a:json={{inputs.parameters.a}}",
                  "--result", "return:item=/tmp/mlflowlet/results/return"],
    }


def test_kfp_arguments_write_a_condition_operand_as_its_compared_type():
    args = _kfp_args(compile(planned, "kfp", tracking=False))
    assert args["exec-make"] == [
        "--handler", "test_plan_compiled:make", "--param", "x:json=1",
        "--result", f"return:json={_results('kfp', 'return_')}",
        "--result", f"return:if-float={_results('kfp', 'return__if')}"]
    assert args["exec-add-2"][-2:] == ["--result", f"return:item={_results('kfp', 'return_')}"]
    outputs = compile(planned, "kfp", tracking=False)["components"]["comp-make"]
    assert outputs["outputDefinitions"]["parameters"] == {  # a number compared: typed float
        "return_": {"parameterType": "STRING"}, "return__if": {"parameterType": "NUMBER_DOUBLE"}}


@step
def risky(fail: bool = False) -> int:
    return 1


@pipeline(image=IMAGE)
def reported(fail: bool = True):
    risky.with_options(name="first")(fail=fail)
    risky.with_options(name="second")(fail=fail)
    risky.with_options(name="say")()
    on_exit(report)


def test_argo_exit_step_gets_the_state_and_the_failed_steps_names_sorted():
    args = _argo_args(compile(reported, "argo", tracking=False))["report"]
    names = '{"first": "first", "say": "say", "second": "second"}'  # sorted, not trace order
    assert args == ["--handler", "test_plan_compiled:report",
                    "--failures", "{{workflow.failures}}", "--failure-names", names,
                    "--state", "{{workflow.status}}"]


@step(cache=True)
def consume_cached(data, n: int = 0) -> int:
    return n


@pipeline(image=IMAGE)
def keyed():
    p = produce()
    consume(data=p.outputs["data"])
    consume_cached(data=p.outputs["data"])


@pipeline(image=IMAGE)
def keyed_by_option():
    p = produce()
    consume(data=p.outputs["data"])


@pytest.mark.parametrize(("pipe", "options", "consumer"), [
    (keyed, {}, "consume-cached"),  # the step's own cache=True
    (keyed_by_option, {"cache": True}, "consume"),  # the compile option, for cache=None
])
def test_argo_keys_a_cached_consumer_on_its_input_artifacts_digest(pipe, options, consumer):
    doc = compile(pipe, "argo", tracking=False, **options)
    args = _argo_args(doc)
    assert args["produce"] == ["--handler", "test_plan_compiled:produce",
                               "--output", "data=/tmp/mlflowlet/outputs/data/",
                               "--output-digest", "data=/tmp/mlflowlet/results/data__sha256"]
    template = next(t for t in doc["spec"]["templates"] if t["name"] == consumer)
    assert {"name": "data__sha256"} in template["inputs"]["parameters"]
    uncached = compile(keyed_by_option, "argo", tracking=False)  # no step caches
    assert "--output-digest" not in _argo_args(uncached)["produce"]


def test_kfp_keys_its_cache_itself_so_no_digest_is_written():
    args = _kfp_args(compile(keyed, "kfp", tracking=False))["exec-produce"]
    assert "--output-digest" not in args and args[:2] == ["--handler", "test_plan_compiled:produce"]


def test_a_step_reading_the_workflow_gets_its_arguments_after_its_own():
    import workflow_pipelines as wp

    args = _argo_args(compile(wp.info, "argo", tracking=False))["who"]
    assert args == [
        "--handler", "workflow_pipelines:who", "--param", "x:json=2",
        "--param", "workflow__param__lr:float={{inputs.parameters.workflow__param__lr}}",
        "--param", "workflow__param__tag:str={{inputs.parameters.workflow__param__tag}}",
        "--param", "workflow__name:str={{workflow.name}}",
        "--param", "workflow__uid:str={{workflow.uid}}",
        "--param", "workflow__created:str={{workflow.creationTimestamp}}",
        "--param", "workflow__attempt:int=0",
        "--param", "workflow__duration:float={{workflow.duration}}",
        "--param", "workflow__target:str=argo",
    ]
    retried = _argo_args(compile(wp.retried, "argo", tracking=False))["flaky"]
    assert "workflow__attempt:int={{retries}}" in retried  # the step's retries reach Argo
    kfp = _kfp_args(compile(wp.info, "kfp", tracking=False))["exec-who"]
    assert "workflow__target:str=kfp" in kfp and kfp[:4] == [
        "--handler", "workflow_pipelines:who", "--param", "x:json=2"]


def _pickled_pipeline():
    """Steps and an exit handler defined in a function: their handlers travel pickled."""

    @step
    def local(n: int = 1) -> int:
        return n

    @step
    def local_exit(state: str) -> str:
        return state

    @pipeline(image=IMAGE)
    def pickled():
        local(n=2)
        on_exit(local_exit)

    return pickled


def test_a_pickled_handler_follows_its_name_and_counts_towards_the_cap(monkeypatch):
    from mlflowlet import _pickled

    args = _argo_args(compile(_pickled_pipeline(), "argo", tracking=False))
    payloads = {}
    for name in ("local", "local-exit"):
        assert args[name][0] == "--handler" and args[name][2] == "--handler-pickle", args[name]
        payloads[name] = args[name][3]
        assert args[name][1].endswith(f"<locals>.{name.replace('-', '_')}")
    assert args["local"][4:] == ["--param", "n:json=2"]
    total = sum(map(len, payloads.values()))  # the exit handler's payload counts too
    monkeypatch.setattr(_pickled, "MAX_TOTAL_PAYLOAD_CHARS", total - 1)
    with pytest.raises(CompileError, match="pickled handlers total"):
        compile(_pickled_pipeline(), "argo", tracking=False)


def test_the_exit_handlers_bare_image_is_warned_about():
    from mlflowlet.errors import BareImageWarning

    @pipeline(image=IMAGE)
    def bare_exit():
        make(x=1)
        on_exit(report.with_options(image="python:3.12"))

    with pytest.warns(BareImageWarning, match="report"):
        compile(bare_exit, "argo", tracking=False)


def test_secrets_come_from_the_options_the_step_and_the_token():
    options = {"secrets": {"A": "all:a"}, "steps": {"make": {"secrets": {"B": "mine:b"}}},
               "dbpath": "http://mlflowlet.default.svc:8080", "artifact_path": "s3://runs/ml",
               "token_secret": "api:token"}
    doc = compile(planned, "argo", **options)
    env = {t["name"]: {e["name"]: e.get("valueFrom", {}).get("secretKeyRef")
                       for e in t["container"].get("env", []) if "valueFrom" in e}
           for t in doc["spec"]["templates"] if "container" in t}
    assert env["make"]["B"] == {"name": "mine", "key": "b"}
    assert "B" not in env["add"]
    for name in ("make", "add", "emit"):
        assert env[name]["A"] == {"name": "all", "key": "a"}
        assert {"name": "api", "key": "token"} in env[name].values()


def _refusal(pipe, target: str = "argo", **options) -> str:
    with pytest.raises(CompileError) as caught:
        compile(pipe, target, tracking=False, **options)
    return str(caught.value)


@pipeline(image=IMAGE)
def named_main():
    make.with_options(name="main")(x=1)


@pipeline(image=IMAGE)
def named_exit_handler():
    make(x=1)
    make.with_options(name="Exit_Handler")(x=2)


@pipeline(image=IMAGE)
def literal_output():
    make(x=1)
    return {"k": 3}


@step(outputs=["return__if"])
def shadowing(context) -> int:
    return 1


@pipeline(image=IMAGE)
def artifact_clash():
    s = shadowing()
    with condition(s.output > 0):
        make(x=1)


@step
def two_results(context):
    context.log_result("x", [1])
    context.log_result("x__items", [2])


@pipeline(image=IMAGE)
def result_clash():
    t = two_results()
    add.map(t.results["x"], item_param="a")
    consume(data=1, n=t.results["x__items"])


@pipeline(image=IMAGE)
def fields_of_param(rows: list[str] = ["x"]):  # noqa: B006
    make.map(items=rows, x=item["a"])


@pipeline(image=IMAGE)
def over_untyped(rows: list = [1]):  # noqa: B006
    add.map(items=rows, item_param="a")


@pipeline(image=IMAGE)
def empty_map():
    add.map(items=[], item_param="a")


@step(outputs=["part"])
def shard(i: int):
    return None


@step
def merge(parts: list) -> int:
    return len(parts)


@pipeline(image=IMAGE)
def artifact_collect():
    sh = shard.map(items=[1, 2], item_param="i")
    merge(parts=collect(sh.outputs["part"]))


@pipeline(image=IMAGE)
def needs_n(n: int):
    add(a=n)


REFUSALS = [
    (named_main, "step name 'main' is reserved for the compiled workflow's own templates; "
                 "rename the step"),
    (named_exit_handler, "step name 'exit-handler' is reserved for the compiled workflow's own "
                         "templates; rename the step"),
    (literal_output, "pipeline 'literal-output': output 'k' is a literal value; {target} pipeline "
                     "outputs come from steps: return a step's output (or compute it in a step)"),
    (fields_of_param, "step 'make' reads sub-fields ['a'] of the items of pipeline parameter "
                      "'rows', whose elements a compiled pipeline carries as scalars only; "
                      "produce the list of dicts in a step, or pass a literal list"),
    (over_untyped, "step 'add' maps over a pipeline parameter of type json; declare its element "
                   "type (list[str], list[int], list[float] or list[bool]) so each item is read "
                   "back exactly, or produce the list in a step"),
    (empty_map, "step 'add' maps over an empty literal list: there is nothing to run, and KFP "
                "and Argo refuse an empty loop; drop the step or pass the items as a parameter"),
    (artifact_collect, "parameter 'parts' of step 'merge' collects artifact 'part' of mapped "
                       "step 'shard'; compiled pipelines collect results only: log a result "
                       "(e.g. the artifact's URI or a score) in the mapped step and collect that"),
]
for _name, _out in [("shadowing", "return__if"), ("two_results", "x__items")]:
    REFUSALS.append((
        artifact_clash if _name == "shadowing" else result_clash,
        f"step '{_name}': output '{_out}' is both a result's output parameter and another "
        "result or artifact; rename the result or artifact (suffixes ['__if', '__items'] are "
        "used for results read by maps and conditions, __sha256 for artifact digests)"))


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(("pipe", "message"), REFUSALS, ids=lambda v: getattr(v, "name", ""))
def test_what_a_compiled_pipeline_cannot_carry_is_refused_naming_it(pipe, message, target):
    assert _refusal(pipe, target) == message.format(target=target)


def test_a_parameter_given_when_compiling_is_converted_and_no_longer_required():
    assert _refusal(needs_n, "kfp", params={"n": "abc"}) == (
        "params: parameter 'n': cannot convert 'abc' (str) to int: Input should be a valid "
        "integer, unable to parse string as an integer")
    required = compile(needs_n, "kfp", tracking=False)["root"]["inputDefinitions"]
    assert required == {"parameters": {"n": {"parameterType": "NUMBER_INTEGER"}}}
    given = compile(needs_n, "kfp", tracking=False, params={"n": "4"})["root"]
    assert given["inputDefinitions"]["parameters"]["n"] == {
        "defaultValue": 4.0, "isOptional": True, "parameterType": "NUMBER_INTEGER"}


def test_an_image_refusal_names_the_step(monkeypatch):
    monkeypatch.delenv("MLFLOWLET_IMAGE", raising=False)

    @pipeline
    def no_image():
        make(x=1)

    @pipeline(image="Bad Image")
    def bad_image():
        make(x=1)

    assert _refusal(no_image).startswith("step 'make' has no container image: pass image=")
    assert _refusal(bad_image) == (
        "step 'make': 'Bad Image' is not a valid image reference (expected "
        "[registry/]name[:tag][@sha256:digest], lowercase name)")
