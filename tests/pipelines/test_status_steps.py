"""Status-conditioned steps: ``node.after(other, on="success"|"failure"|"done")`` run locally."""

import pytest

from mlflowlet import condition, pipeline, step
from mlflowlet.errors import PipelineError


@step
def risky(fail: bool = False) -> int:
    if fail:
        raise RuntimeError("risky failed")
    return 1


@step
def say(message: str) -> str:
    return message


@pipeline
def branches(fail: bool = False, gate: bool = True):
    with condition(gate == True):  # noqa: E712
        r = risky(fail=fail)
    say.with_options(name="ok")(message="ok").after(r, on="success")
    say.with_options(name="bad")(message="bad").after(r, on="failure")
    say.with_options(name="end")(message="end").after(r, on="done")


@pipeline
def handled(fail: bool = True):
    r = risky(fail=fail)
    say.with_options(name="rescue")(message="rescued").after(r, on="failure")


def _states(run):
    return {name: r.state for name, r in run.steps.items()}


@pytest.mark.parametrize(("fail", "gate", "want", "final"), [
    (False, True, {"risky": "completed", "ok": "completed", "bad": "skipped",
                   "end": "completed"}, "completed"),
    # the skipped `ok` inherits the failure (Argo's branch rule) and is a leaf: the run fails
    (True, True, {"risky": "error", "ok": "skipped", "bad": "completed", "end": "completed"},
     "error"),
    # a skipped upstream neither succeeded nor failed: only `done` runs
    (False, False, {"risky": "skipped", "ok": "skipped", "bad": "skipped", "end": "completed"},
     "completed"),
])
def test_a_step_runs_by_its_upstreams_status(dbdir, fail, gate, want, final):
    run = branches.run(fail=fail, gate=gate)
    assert _states(run) == want
    assert run.state == final
    if not fail and gate:
        assert "did not fail (completed)" in run.run.status.steps["bad"]["reason"]


def test_a_failure_handled_by_a_leaf_completes_the_run(dbdir):
    run = handled.run(fail=True)
    assert _states(run) == {"risky": "error", "rescue": "completed"}
    assert run.state == "completed"  # as Argo: the only leaf succeeded
    assert handled.run(fail=False).steps["rescue"].state == "skipped"


def test_a_failing_handler_fails_the_run(dbdir):
    @pipeline
    def broken_handler():
        r = risky(fail=True)
        risky.with_options(name="handler")(fail=True).after(r, on="failure")

    run = broken_handler.run()
    assert _states(run) == {"risky": "error", "handler": "error"}
    assert run.state == "error"


def test_bad_status_and_reading_a_failed_steps_output_are_refused(dbdir):
    @pipeline
    def bogus():
        say(message="x").after(risky(), on="failed")

    with pytest.raises(PipelineError, match=r"on='failed'\): on is one of \['success', "):
        bogus.run()

    @pipeline
    def reads():
        r = risky()
        say(message=r.output).after(r, on="failure")

    with pytest.raises(PipelineError, match=r"reads outputs of risky \(message\)"):
        reads.run()

    @pipeline
    def reads_on_success():  # reading on success is fine: the output exists
        r = risky()
        say(message="x").after(r, on="success")
        say.with_options(name="echo")(message=r.output).after(r, on="success")

    assert reads_on_success.run().steps["echo"].results["return"] == "1"


def test_one_status_per_upstream(dbdir):
    @pipeline
    def twice():
        r = risky()
        say(message="x").after(r, on="success").after(r, on="failure")

    with pytest.raises(PipelineError, match=r"already runs after risky \(on='success'\); it "
                                            r"cannot also run on='failure'"):
        twice.run()

    @pipeline
    def plain_then_status():
        r = risky()
        say(message="x").after(r).after(r, on="done")

    with pytest.raises(PipelineError, match=r"\(on=None\); it cannot also run on='done'"):
        plain_then_status.run()

    @pipeline
    def same_again():
        r = risky()
        say(message="x").after(r, on="done").after(r, on="done")

    assert same_again.run().steps["say"].state == "completed"


def test_the_graph_shows_and_describes_each_status_edge():
    assert "n0 -.->|\"on failure\"| n2" in branches.to_mermaid()
    assert '"risky" -> "end" [label="on done", style=dashed];' in branches.to_dot()
    nodes = {n["name"]: n for n in branches.describe()["nodes"]}
    assert nodes["bad"]["after_on"] == {"risky": "failure"} and nodes["risky"]["after_on"] == {}
    edges = {(e["source"], e["target"]): e["on"] for e in branches.describe()["edges"]}
    assert edges[("risky", "ok")] == "success"
