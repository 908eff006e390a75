"""An exit step with arguments (``on_exit(step, **arguments)``) compiled and checked."""

import express_pipelines as ep
import pytest
from compiler_checks import argo_schema_errors, kfp_strict_errors

from mlflowlet.compilers import compile, compile_text
from mlflowlet.compilers._validate import validate_argo, validate_kfp
from mlflowlet.compilers.check import check


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
