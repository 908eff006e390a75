"""The final status object (``PipelineTaskFinalStatus``) an exit step receives: local, compiled."""

import json
from types import SimpleNamespace

import exit_pipelines as xp
import pytest
from compiler_checks import argo_schema_errors, kfp_strict_errors

from mlflowlet import get_run_db, pipeline, step
from mlflowlet._final_status import ARGO_TEXT, engine_final_status, exit_inputs
from mlflowlet.compilers import compile, compile_text
from mlflowlet.compilers._validate import validate_argo, validate_kfp
from mlflowlet.compilers.check import check
from mlflowlet.errors import ParameterError, PipelineError, StepDefinitionError
from mlflowlet.pipelines import on_exit


@pytest.mark.parametrize("fail", [False, True])
def test_local_exit_step_gets_the_runs_own_final_status(fail, tmp_path):
    db = get_run_db(str(tmp_path / "db"), cached=False)
    try:
        run = xp.final_status.run(fail=fail, db=db, artifact_path=str(tmp_path / "art"))
        exit_run = run.steps["status_exit"]
        fields = exit_run.status.results["fields"]
    finally:
        db.close()
    assert run.state == ("error" if fail else "completed")
    assert exit_run.state == "completed" and exit_run.status.results["return"] == run.state
    error = run.run.status.error or None  # the pipeline run's own recorded error
    assert (error or "").startswith("step 'crash' failed: SystemExit: 3" if fail else "")
    assert fields == {
        "state": run.state,
        "pipeline_job_resource_name": run.uid,  # the local run's own uid, nothing made up
        "pipeline_task_name": "final-status",
        "error_code": None,
        "error_message": error,
        "target": "local",
    }
    assert "state" not in exit_run.spec.params  # the step has no `state` parameter


def test_kfp_final_status_becomes_a_task_final_status_input(tmp_path):
    assert kfp_strict_errors(compile_text(xp.final_status, "kfp"), tmp_path) == []
    doc = compile(xp.final_status, "kfp")
    assert validate_kfp(doc, xp.final_status.dag) == []
    task = doc["root"]["dag"]["tasks"]["status-exit"]
    assert task["inputs"]["parameters"] == {
        "status": {"taskFinalStatus": {"producerTask": "exit-handler-1"}},
        "user_input": {"componentInputParameter": "message"}}
    comp = doc["components"][task["componentRef"]["name"]]
    assert comp["inputDefinitions"]["parameters"]["status"]["parameterType"] == "TASK_FINAL_STATUS"
    args = doc["deploymentSpec"]["executors"][comp["executorLabel"]]["container"]["args"]
    assert args[args.index("--final-status") + 1] == "status={{$.inputs.parameters['status']}}"
    assert "--state" not in args


def test_argo_final_status_is_built_from_the_workflow_variables():
    doc = compile(xp.final_status, "argo")
    assert argo_schema_errors(doc) == [] and validate_argo(doc, xp.final_status.dag) == []
    tpl = next(t for t in doc["spec"]["templates"] if t["name"] == doc["spec"]["onExit"])
    args = tpl["container"]["args"]
    assert args[args.index("--final-status") + 1] == f"status={ARGO_TEXT}"
    for var in ("{{workflow.status}}", "{{workflow.name}}", "{{workflow.failures}}"):
        assert var in ARGO_TEXT


def test_engine_final_status_reads_kfp_and_argo_texts():
    kfp = engine_final_status(json.dumps({
        "state": "FAILED", "pipelineJobResourceName": "runs/abc", "pipelineTaskName":
        "exit-handler-1", "error": {"code": 9, "message": "task x failed"}}))
    assert kfp == {"state": "error", "pipeline_job_resource_name": "runs/abc",
                   "pipeline_task_name": "exit-handler-1", "error_code": 9,
                   "error_message": "task x failed", "target": "kfp"}
    assert engine_final_status('{"state": "SUCCEEDED", "error": {}}')["state"] == "completed"
    nodes = [{"displayName": "crash", "phase": "Failed", "message": "exit code 3"}]
    text = (ARGO_TEXT.replace("{{workflow.status}}", "Failed")
            .replace("{{workflow.name}}", "wf-x1")
            .replace("{{workflow.failures}}", json.dumps(json.dumps(nodes))))  # Argo >= 3.5
    assert engine_final_status(text) == {
        "state": "error", "pipeline_job_resource_name": "wf-x1", "pipeline_task_name": "wf-x1",
        "error_code": None, "error_message": "crash Failed: exit code 3", "target": "argo"}
    ok = (ARGO_TEXT.replace("{{workflow.status}}", "Succeeded")
          .replace("{{workflow.name}}", "wf").replace("{{workflow.failures}}", "null"))
    assert engine_final_status(ok)["error_message"] is None
    args = SimpleNamespace(state=None, failures=None, failure_names="{}")
    with pytest.raises(ParameterError, match=r"^--final-status status: not a final status"):
        exit_inputs(args, {"status": "SUCCEEDED"})


def test_an_exit_step_needs_state_or_a_final_status_and_never_gets_it_passed():
    from mlflowlet import PipelineTaskFinalStatus

    def neither(message: str = "") -> None:
        pass

    with pytest.raises(StepDefinitionError, match=r"annotated PipelineTaskFinalStatus"):
        pipeline(on_exit=neither)(lambda: None)

    @step
    def takes(status: PipelineTaskFinalStatus) -> None:
        pass

    @pipeline
    def passes():
        on_exit(takes, status={"state": "completed"})

    with pytest.raises(PipelineError, match=r"on_exit\(\.\.\.\) sets 'status' itself"):
        passes.validate()


@pytest.mark.slow
@pytest.mark.parametrize("target", ["argo", "kfp"])
@pytest.mark.parametrize("fail", [False, True])
def test_compiled_final_status_state_matches_the_local_run(target, fail, tmp_path):
    report = check(xp.final_status, target, params={"message": "bye", "fail": fail},
                   workdir=str(tmp_path), ignore_results={"status_exit": ["fields"]})
    assert report.ok, report.summary()
    pod = next(p for p in report.pods if p.node == "status_exit")
    status = pod.run["spec"]["params"]["status"]
    assert status["state"] == ("error" if fail else "completed") and status["target"] == target
    assert pod.results["return"] == status["state"]


# context.workflow.duration ---------------------------------------------------------------------
def test_local_workflow_duration_is_the_seconds_since_the_pipeline_started(tmp_path):
    from datetime import datetime

    db = get_run_db(str(tmp_path / "db"), cached=False)
    try:
        run = xp.timed.run(db=db, artifact_path=str(tmp_path / "art"))
    finally:
        db.close()
    step_run = run.steps["clocked"]
    took = step_run.status.results["return"]
    started = datetime.fromisoformat(run.run.status.start_time)
    bound = (datetime.fromisoformat(step_run.status.end_time) - started).total_seconds()
    assert isinstance(took, float) and 0 <= took <= bound  # seconds, from the run's start
    assert step_run.spec.model_extra["workflow"]["duration"] == took


@pytest.mark.slow
@pytest.mark.parametrize("target", ["argo", "kfp"])
def test_compiled_workflow_duration(target, tmp_path):
    report = check(xp.timed, target, workdir=str(tmp_path), ignore_results={"clocked": ["return"]})
    pod = next(p for p in report.pods if p.node == "clocked")
    if target == "kfp":  # no placeholder for it: the step fails naming the target
        assert not pod.ok and "context.workflow.duration: kfp passes no run duration" in pod.log
        return
    assert report.ok, report.summary()
    assert isinstance(pod.results["return"], float) and pod.results["return"] >= 0


@pytest.mark.parametrize("pipe", [xp.final_status, xp.with_exit_pipeline], ids=["step", "sub"])
def test_check_compares_the_final_status_state_and_only_it(pipe):
    from mlflowlet.compilers._compare import Comparison
    from mlflowlet.compilers._runs import PodRun

    name = "status_exit" if pipe is xp.final_status else "good_news"
    cmp = Comparison.__new__(Comparison)  # only the final status comparison, no runs needed
    cmp.dag, cmp.out = pipe.dag, []
    local = SimpleNamespace(spec=SimpleNamespace(params={"status": {
        "state": "error", "pipeline_job_resource_name": "u1", "target": "local"}}))
    pod = PodRun(task=name, node=name)
    pod.run = {"spec": {"params": {"status": {
        "state": "error", "pipeline_job_resource_name": "wf-1", "target": "argo"}}}}
    cmp.final_status(name, local, pod)
    assert cmp.out == []  # the engine's own fields differ by nature: not compared
    pod.run["spec"]["params"]["status"]["state"] = "completed"
    cmp.final_status(name, local, pod)
    assert cmp.out == [f"step {name!r}: final status 'status' state 'completed' != local 'error'"]
