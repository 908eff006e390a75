"""A compiled run passes every value exactly as the local run did (checked by check())."""

import exact_pipelines as ep
import pytest

from mlflowlet.compilers.check import check

pytestmark = pytest.mark.slow
TARGETS = ["argo", "kfp"]


@pytest.mark.parametrize("target", TARGETS)
def test_a_float_parameter_given_an_int_default_is_that_float_locally_and_compiled(
    target, tmp_path
):
    assert ep.float_default.resolve_params({}) == {"lr": 1.0}
    assert type(ep.float_default.resolve_params({})["lr"]) is float
    report = check(ep.float_default, target, workdir=str(tmp_path))
    assert report.ok, report.summary()
    assert report.pods[0].results == {"return": "float:1.0"}


def _no_user_braces(text):
    """The compiled text holds none of the pipeline's own {{...}} values (engines substitute)."""
    return not any(tag in text for tag in ("{{workflow.uid}}", "{{workflow.name}}'", "{{=sprig"))


@pytest.mark.parametrize("target", TARGETS)
def test_braces_inside_values_reach_every_step_as_they_are(target, tmp_path):
    from mlflowlet.compilers import compile_text

    assert _no_user_braces(compile_text(ep.braced, target))
    report = check(ep.braced, target, workdir=str(tmp_path))
    assert report.ok, report.summary()
    got = {(p.node, p.iteration): p.results["return"] for p in report.pods}
    assert got[("echo", 0)] == got[("braces", 0)] == ep.BRACES  # a str result
    assert got[("echo-param", 0)] == "{{workflow.uid}}"  # a str parameter's default
    assert got[("echo-dict", 0)] == "dict:{'k': '{{workflow.name}}'}"  # a json default
    assert got[("echo-literal", 0)] == "list:['{{workflow.name}}', {'a': '{{$}}'}]"
    assert [got[("echo_any", i)] for i in (1, 2)] == ["str:'{{workflow.name}}'", "str:'{{item}}'"]
    assert got[("echo-2", 1)] == ep.BRACES and got[("echo-2", 2)] == "{{workflow.name}}"
    assert got[("joined", 0)] == ep.BRACES + "|{{workflow.name}}"  # collected from a map


@pytest.mark.parametrize("target", TARGETS)
def test_braces_in_a_run_argument_reach_the_step_as_they_are(target, tmp_path):
    report = check(ep.braced, target, workdir=str(tmp_path), params={"p": "a {{workflow.name}}"})
    assert report.ok, report.summary()
    assert next(p for p in report.pods if p.node == "echo-param").results == {
        "return": "a {{workflow.name}}"
    }


def test_the_argo_interpreter_substitutes_tags_inside_a_value_as_argo_does(tmp_path):
    from mlflowlet.compilers import compile
    from mlflowlet.compilers.check import run_compiled

    env = {"PYTHONPATH": ep.__file__.rsplit("/", 1)[0]}
    doc = compile(ep.braced, "argo")
    raw = {"p": "{{workflow.name}}", "d": "{}"}  # given as is, not as the compiler writes it
    _status, pods, states, _ = run_compiled(doc, "argo", str(tmp_path / "a"), raw, env=env)
    result = next(p for p in pods if p.node == "echo-param").results["return"]
    assert result == doc["metadata"]["generateName"] + "check"  # the workflow's name, not the text
    raw["p"] = "{{=sprig.upper('x')}}"
    _status, pods, states, _ = run_compiled(doc, "argo", str(tmp_path / "b"), raw, env=env)
    assert states["echo-param"] == "error"


def test_the_kfp_interpreter_fails_a_step_given_a_placeholder_as_the_launcher_would(tmp_path):
    from mlflowlet.compilers import compile
    from mlflowlet.compilers.check import run_compiled

    env = {"PYTHONPATH": ep.__file__.rsplit("/", 1)[0]}
    doc = compile(ep.braced, "kfp")
    _status, pods, states, _ = run_compiled(
        doc, "kfp", str(tmp_path), {"p": "{{$}}", "d": "{}"}, env=env
    )
    assert states["echo-param"] == "error"
    assert "KFP's launcher replaces" in next(p for p in pods if p.node == "echo-param").log


@pytest.mark.parametrize("target", TARGETS)
def test_an_untyped_result_compared_with_another_type_branches_as_in_python(target, tmp_path):
    report = check(ep.untyped_compared, target, workdir=str(tmp_path))
    assert report.ok, report.summary()
    ran = {name for name, state in report.states.items() if state == "completed"}
    assert ran - {"untyped_flag", "untyped_one", "logs"} == {
        "true-eq-1",
        "str1-ne-1",
        "logged-true-eq-1",
        "logged-int1-ne-str1",
    }


@pytest.mark.parametrize("target", TARGETS)
def test_a_result_too_long_for_one_argument_fails_its_producer_naming_it(target, tmp_path):
    report = check(ep.big_value, target, workdir=str(tmp_path), params={"n": 140_000})
    assert not report.ok and report.states["sized"] == "error"  # reported, not raised
    assert "result 'return' is 140002 bytes as text, over the 127 KiB" in report.pods[0].log
    assert "pass it as an artifact" in report.pods[0].log
    assert check(ep.big_value, target, workdir=str(tmp_path / "ok"), params={"n": 120_000}).ok


def test_check_reports_an_argument_too_long_to_start_a_step_instead_of_raising(tmp_path):
    import sys

    from mlflowlet.compilers._runs import LocalRunner, PodRun

    runner = LocalRunner(str(tmp_path))
    pod = PodRun(task="t", node="t")
    assert not runner.attempt(pod, [sys.executable, "-c", "pass", "x" * 140_000], {})
    assert pod.returncode == 126
    assert "140000 bytes in one argument, over Linux's 128 KiB (MAX_ARG_STRLEN)" in pod.log


@pytest.mark.parametrize("target", TARGETS)
def test_check_reports_which_items_of_a_failed_map_ran(target, tmp_path):
    report = check(ep.failed_map, target, workdir=str(tmp_path))
    assert report.states["work"] == "error"
    assert [(p.iteration, p.ok) for p in report.pods] == [(1, False), (2, True), (3, True)]
    assert not report.ok  # locally the failed first item stopped the others (parallel=1)
    assert (
        "step 'work': items run (item, state) [(1, 'error'), (2, 'completed'), (3, 'completed')]"
        " != local [(1, 'error')]"
    ) in report.summary()


def test_a_condition_literal_holding_braces_decides_on_argo_as_locally(tmp_path):
    from mlflowlet.compilers import compile_text

    assert "{{workflow.name}}'" not in compile_text(ep.braced_when, "argo")  # none substituted
    report = check(ep.braced_when, "argo", workdir=str(tmp_path))
    assert report.ok, report.summary()
    assert {p.node for p in report.pods} == {"echo", "eq", "ne"}  # 'never' was skipped


def test_kfp_refuses_a_condition_literal_holding_braces():
    from mlflowlet.compilers import compile
    from mlflowlet.errors import CompileError

    with pytest.raises(CompileError, match=r"condition .*'\{\{workflow.name\}\}'.* holds"):
        compile(ep.braced_when, "kfp")


def test_the_kfp_interpreter_fails_a_condition_holding_braces_as_the_backend_would(tmp_path):
    from mlflowlet.compilers import compile
    from mlflowlet.compilers.check import run_compiled

    env = {"PYTHONPATH": ep.__file__.rsplit("/", 1)[0]}
    doc = compile(ep.braced_param_when, "kfp")
    tasks = doc["root"]["dag"]["tasks"]
    cond = next(t for t in tasks.values() if "triggerPolicy" in t)["triggerPolicy"]
    param = "inputs.parameter_values['pipelinechannel--text']"
    assert param in cond["condition"]
    cond["condition"] = cond["condition"].replace(param, "'{{workflow.name}}'")  # as kfp writes
    status, _pods, states, _ = run_compiled(doc, "kfp", str(tmp_path), {}, env=env)
    assert (status, states["mark"]) == ("Failed", "skipped")  # the condition's task failed


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("value", ["{{workflow.name}}", "a{", "mlflowlet:json:1"])
def test_a_str_parameter_in_a_condition_whose_wire_form_differs_is_refused(target, value, tmp_path):
    from mlflowlet.errors import CompileError

    with pytest.raises(CompileError, match=r"argument text=.*compared in a condition"):
        check(ep.braced_param_when, target, workdir=str(tmp_path), params={"text": value})


@pytest.mark.parametrize("target", TARGETS)
def test_a_str_parameter_default_holding_braces_compared_in_a_condition_is_refused(target):
    from mlflowlet.compilers import compile
    from mlflowlet.errors import CompileError
    from mlflowlet.pipelines import condition, pipeline

    @pipeline(image=ep.IMAGE)
    def p(text: str = "{{workflow.name}}"):
        with condition(ep.echo(text="x").output != text):
            ep.mark(tag="ne")

    with pytest.raises(CompileError, match=r"default text='\{\{workflow.name\}\}', compared in"):
        compile(p, target)


def test_a_map_over_a_str_list_parameter_holding_braces_gets_each_item_exactly_on_argo(tmp_path):
    xs = ["{{workflow.name}}", "a{{b}}", "{", "mlflowlet:json:1"]
    for params in ({}, {"xs": ["{{workflow.uid}}", "x{"]}):
        workdir = str(tmp_path / str(len(params)))
        report = check(ep.braced_param_map, "argo", workdir=workdir, params=params)
        assert report.ok, report.summary()
        want = params.get("xs", xs)
        got = {(p.node, p.iteration): p.results["return"] for p in report.pods}
        assert [got[("echo", i + 1)] for i in range(len(want))] == want
        assert got[("joined", 0)] == "|".join(want)


def test_the_argo_interpreter_substitutes_tags_inside_a_when_literal_as_argo_does(tmp_path):
    from mlflowlet.compilers import compile
    from mlflowlet.compilers.check import run_compiled

    env = {"PYTHONPATH": ep.__file__.rsplit("/", 1)[0]}
    doc = compile(ep.braced_when, "argo")
    main = next(t for t in doc["spec"]["templates"] if t["name"] == "main")
    tasks = {t["name"]: t for t in main["dag"]["tasks"]}
    assert "\\{\\{workflow.name}}" in tasks["eq"]["when"]
    for name in ("eq", "never"):  # the literals as they were written before they were escaped
        tasks[name]["when"] = tasks[name]["when"].replace("\\{", "{")
    _status, pods, states, _ = run_compiled(doc, "argo", str(tmp_path), {}, env=env)
    assert states["eq"] == "skipped"  # '{{workflow.name}}' became the workflow's name
    assert states["never"] == "error"  # {{b}} does not resolve: Argo fails the task
    assert states["ne"] == "completed"
