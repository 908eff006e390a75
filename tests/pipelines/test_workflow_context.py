"""``context.workflow`` in a local pipeline run: name, uid, attempt, parameters, creation time."""

import pytest

from mlflowlet import pipeline, step
from mlflowlet._ctx_workflow import WorkflowInfo, reads_workflow, take_workflow
from mlflowlet.errors import ConfigError
from mlflowlet.model import RunObject


@step(retries=2)
def flaky(context, fail_until: int = 2):
    wf = context.workflow
    context.log_results({"name": wf.name, "uid": wf.uid, "attempt": wf.attempt,
                         "params": wf.parameters, "created": wf.created, "target": wf.target,
                         "duration": wf.duration})
    if wf.attempt < fail_until:
        raise RuntimeError(f"attempt {wf.attempt} fails")


@step
def nothing(context) -> bool:
    return context.workflow is None


@step
def blind(n: int = 1) -> int:
    return n


@pipeline
def wf_pipe(rate: float = 0.5, tag: str = "t"):
    flaky()


def test_a_step_sees_its_pipeline_run(dbdir):
    run = wf_pipe.run(rate=0.25)
    results = run.steps["flaky"].status.results
    assert results["name"] == run.run.metadata.name == "wf-pipe" and results["uid"] == run.uid
    assert results["params"] == {"rate": 0.25, "tag": "t"}
    assert results["created"] == run.run.status.start_time != ""
    assert results["target"] == "local"
    assert isinstance(results["duration"], float) and results["duration"] >= 0  # seconds
    assert results["attempt"] == 2  # the first attempt failed: attempts count from 1
    assert run.run.status.steps["flaky"]["attempts"] == 2


def test_each_attempt_gets_its_own_number(dbdir):
    @pipeline
    def thrice():
        flaky(fail_until=9)

    run = thrice.run()
    uids = run.run.status.steps["flaky"]["attempt_uids"]
    db = run.steps["flaky"]._db
    attempts = [db.read_run(uid)["status"]["results"]["attempt"] for uid in uids]
    assert attempts == [1, 2, 3]


def test_each_item_of_a_map_counts_its_own_attempts(dbdir):
    @pipeline
    def mapped():
        flaky.with_options(retry_delay=0.001).map(items=[2, 1, 3], item_param="fail_until")

    run = mapped.run()
    step = run.steps["flaky"]
    assert step.state == "completed", step.status.error
    db = step._db
    final = {db.read_run(step.uid, iter=i)["spec"]["params"]["fail_until"]:
             db.read_run(step.uid, iter=i)["status"]["results"]["attempt"] for i in (1, 2, 3)}
    assert final == {2: 2, 1: 1, 3: 3}  # each item's last attempt, numbered from 1


def test_outside_a_pipeline_there_is_no_workflow(dbdir):
    assert nothing().status.results == {"return": True}


def test_only_steps_reading_workflow_are_marked():
    assert flaky.spec.uses_workflow and nothing.spec.uses_workflow
    assert not blind.spec.uses_workflow
    assert reads_workflow(lambda c: [x.workflow for x in c])  # nested code too
    assert not reads_workflow(lambda c: c.workflows)


def test_engine_params_become_the_workflow_and_leave_the_params():
    run = RunObject()
    run.spec.params = {"x": 1, "workflow__name": "wf-abc", "workflow__uid": "u-1",
                       "workflow__attempt": 0, "workflow__created": "2026-01-01T00:00:00Z",
                       "workflow__target": "argo", "workflow__param__lr": 0.1}
    take_workflow(run)
    assert run.spec.params == {"x": 1}
    info = WorkflowInfo.from_spec(run.spec.model_extra["workflow"])
    assert (info.name, info.uid, info.attempt, info.created, info.target) == (
        "wf-abc", "u-1", 1, "2026-01-01T00:00:00Z", "argo")  # {{retries}} 0 is attempt 1
    assert info.parameters == {"lr": 0.1}


def test_attempt_on_kfp_raises_naming_the_target():
    run = RunObject()
    run.spec.params = {"workflow__name": "j", "workflow__uid": "u", "workflow__target": "kfp"}
    take_workflow(run)
    info = WorkflowInfo.from_spec(run.spec.model_extra["workflow"])
    with pytest.raises(ConfigError, match="context.workflow.attempt: kfp passes no attempt"):
        _ = info.attempt
