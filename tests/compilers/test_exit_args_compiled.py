"""An exit step with arguments (``on_exit(step, **arguments)``) compiled and checked."""

import json

import express_pipelines as ep
import pytest
from compiler_checks import argo_schema_errors, kfp_strict_errors

from mlflowlet.compilers import compile, compile_text
from mlflowlet.compilers._validate import validate_argo, validate_kfp
from mlflowlet.compilers.check import check
from mlflowlet.errors import CompileError


def test_argo_exit_template_reads_workflow_parameters_and_status():
    doc = compile(ep.exit_args, "argo")
    assert argo_schema_errors(doc) == [] and validate_argo(doc, ep.exit_args.dag) == []
    assert doc["spec"]["onExit"] == "exit-op"
    args = next(t for t in doc["spec"]["templates"] if t["name"] == "exit-op")["container"]["args"]
    assert args[args.index("--state") + 1] == "{{workflow.status}}"
    assert "user_input:str={{workflow.parameters.message}}" in args
    assert "times:json=2" in args


def test_kfp_exit_task_gets_the_pipeline_parameter_and_the_final_status(tmp_path):
    text = compile_text(ep.exit_args, "kfp")
    assert kfp_strict_errors(text, tmp_path) == []
    doc = compile(ep.exit_args, "kfp")
    assert validate_kfp(doc, ep.exit_args.dag) == []
    task = doc["root"]["dag"]["tasks"]["exit-op"]
    assert task["inputs"]["parameters"] == {
        "state": {"taskFinalStatus": {"producerTask": "exit-handler-1"}},
        "user_input": {"componentInputParameter": "message"}}
    assert task["triggerPolicy"] == {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}


@pytest.mark.slow
@pytest.mark.parametrize("target", ["argo", "kfp"])
@pytest.mark.parametrize("fail", [False, True])
def test_compiled_exit_step_matches_the_local_run(target, fail, tmp_path):
    report = check(ep.exit_args, target, params={"message": "bye", "fail": fail},
                   workdir=str(tmp_path))
    assert report.ok, report.summary()
    assert report.states["exit_op"] == "completed"


# failures: the failed steps' names -------------------------------------------------------------
def test_argo_exit_step_reads_workflow_failures_by_task_name():
    doc = compile(ep.exit_failures, "argo")
    assert argo_schema_errors(doc) == [] and validate_argo(doc, ep.exit_failures.dag) == []
    args = next(t for t in doc["spec"]["templates"]
                if t["name"] == "report-failures")["container"]["args"]
    assert args[args.index("--failures") + 1] == "{{workflow.failures}}"
    assert json.loads(args[args.index("--failure-names") + 1]) == {
        "first": "first", "second": "second", "say": "say"}


def test_kfp_refuses_an_exit_step_taking_failures():
    with pytest.raises(CompileError, match=r"^exit step 'report_failures' .* takes 'failures': "
                                           r"KFP v2 gives an exit task one "):
        compile(ep.exit_failures, "kfp")


NAMES = json.dumps({"first": "first", "second-x": "second", "say": "say"})


@pytest.mark.parametrize(("value", "want"), [
    # Argo >= 3.5 quotes the JSON once more (strconv.Quote); the workflow's own node, a retried
    # attempt and a map item are not steps
    (json.dumps(json.dumps([
        {"displayName": "exit-failures-x7", "phase": "Failed", "message": "child failed"},
        {"displayName": "second-x(0)", "phase": "Failed", "templateName": "second-x"},
        {"displayName": "second-x", "phase": "Failed", "podName": "p"},
        {"displayName": "first", "phase": "Error", "message": "pod deleted"},
        {"displayName": "say(0:1)", "phase": "Failed"}])), ["first", "second"]),
    ('[{"displayName": "say", "phase": "Failed"}]', ["say"]),  # older Argo: unquoted
    ('"null"', []), ("null", []),  # nothing failed
])
def test_the_entrypoint_reads_argos_failures(value, want):
    from mlflowlet._wire import engine_failures

    assert engine_failures(value, NAMES) == want


def test_the_entrypoint_refuses_unreadable_failures():
    from mlflowlet._wire import engine_failures
    from mlflowlet.errors import ParameterError

    with pytest.raises(ParameterError, match=r"--failures / --failure-names: not JSON"):
        engine_failures("[{", NAMES)
    with pytest.raises(ParameterError, match=r"--failures must be a JSON list of nodes"):
        engine_failures('{"a": 1}', NAMES)


@pytest.mark.slow
@pytest.mark.parametrize(("fail", "want"), [(True, "first,second"), (False, "")])
def test_argo_exit_step_failures_match_the_local_run(fail, want, tmp_path):
    local = ep.exit_failures.run(fail=fail)
    assert local.steps["report_failures"].results["return"] == want
    report = check(ep.exit_failures, "argo", params={"fail": fail}, workdir=str(tmp_path))
    assert report.ok, report.summary()
    (exit_pod,) = [p for p in report.pods if p.node == "report_failures"]
    assert exit_pod.results["return"] == want


@pytest.mark.slow
@pytest.mark.parametrize("target", ["argo", "kfp"])
def test_typed_exit_arguments_keep_their_types(target, tmp_path):
    params = {"tags": ["x", 'é "q"'], "n": 2.0}
    want = "completed|['x', 'é \"q\"']|[('k', 1)]|2.0"
    assert ep.exit_typed.run(**params).steps["tagged_exit"].results["return"] == want
    report = check(ep.exit_typed, target, params=params, workdir=str(tmp_path))
    assert report.ok, report.summary()
    (exit_pod,) = [p for p in report.pods if p.node == "tagged_exit"]
    assert exit_pod.results["return"] == want
