"""An exit handler that fails: the pipeline run's record says so, as Argo's workflow does.

Argo marks a workflow whose main DAG succeeded but whose ``onExit`` node failed as Failed
(workflow/controller/operator.go: "if main workflow succeeded, but the exit node was
unsuccessful the workflow is now considered unsuccessful"); a local run must not record
``completed`` for the same outcome.
"""

import exit_pipelines as xp
import pytest

from mlflowlet import get_run_db, on_exit, pipeline
from mlflowlet.pipelines import step


@step
def broken_notify(state: str) -> None:
    raise RuntimeError(f"mail server down ({state})")


@pipeline
def failing_end(state: str):
    broken_notify(state=state)


@pipeline(image=xp.IMAGE, on_exit=failing_end)
def ends_badly(fail: bool = False):
    xp.shout(message="work")


@pipeline(image=xp.IMAGE)
def exit_step_fails(fail: bool = False):
    on_exit(broken_notify)
    xp.shout(message="work")


def _run(pipe, tmp_path, **params):
    db = get_run_db(str(tmp_path / "db"), cached=False)
    try:
        return pipe.run(params, db=db, artifact_path=str(tmp_path / "art"))
    finally:
        db.close()


@pytest.mark.parametrize("pipe", [ends_badly, exit_step_fails], ids=["sub_pipeline", "step"])
def test_a_failing_exit_handler_fails_a_pipeline_that_completed(pipe, tmp_path):
    run = _run(pipe, tmp_path)
    assert run.steps["shout"].state == "completed"
    assert run.steps["broken_notify"].state == "error"
    assert run.state == "error"  # Argo: Succeeded main + failed onExit -> workflow Failed
    assert "broken_notify" in run.run.status.error and "mail server down" in run.run.status.error


@pytest.mark.slow
@pytest.mark.parametrize("pipe", [ends_badly, exit_step_fails], ids=["sub_pipeline", "step"])
def test_compiled_failing_exit_handler_matches_the_local_run(pipe, tmp_path):
    from mlflowlet.compilers.check import check

    report = check(pipe, "argo", workdir=str(tmp_path))
    assert report.ok, report.summary()
    assert report.status == "Failed"  # as Argo marks it, and as the local run records it
    assert report.states["broken_notify"] == "error"
