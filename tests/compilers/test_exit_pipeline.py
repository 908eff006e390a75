"""An exit handler that is a sub-pipeline: local run, Argo ``onExit`` DAG, KFP refusal, checks."""

import exit_pipelines as xp
import pytest
from compiler_checks import argo_schema_errors

from mlflowlet import condition, get_run_db, on_exit, pipeline
from mlflowlet.compilers import compile
from mlflowlet.compilers._validate import validate_argo
from mlflowlet.compilers.check import check
from mlflowlet.errors import CompileError, PipelineError, StepDefinitionError


def _run(pipe, tmp_path, **params):
    db = get_run_db(str(tmp_path / "db"), cached=False)
    try:
        run = pipe.run(params, db=db, artifact_path=str(tmp_path / "art"))
        return run, {n: s.logs() for n, s in run.steps.items()}
    finally:
        db.close()


@pytest.mark.parametrize("fail", [False, True])
def test_local_exit_sub_pipeline_runs_its_steps_by_the_final_state(fail, tmp_path):
    run, logs = _run(xp.with_exit_pipeline, tmp_path, message="ops", fail=fail)
    states = {n: e["state"] for n, e in run.run.status.steps.items()}
    assert run.state == ("error" if fail else "completed")  # the exit steps do not change it
    assert states["notify"] == "completed"
    assert logs["notify"] == f"ops: {run.state} {['crash'] if fail else []}\n"
    assert run.steps["notify"].spec.params == {
        "state": run.state, "failures": ["crash"] if fail else [], "channel": "ops"}
    if fail:
        assert states["good_news"] == "skipped" and logs["bad_news"] == "bad news bad news \n"
    else:
        assert states["bad_news"] == "skipped" and logs["good_news"] == "good news: completed\n"
        status = run.steps["good_news"].spec.params["status"]
        assert status["pipeline_job_resource_name"] == run.uid and status["target"] == "local"
        assert run.steps["good_news"].status.start_time >= run.steps["notify"].status.end_time


def test_argo_exit_sub_pipeline_is_an_onexit_dag_on_the_workflow_status():
    doc = compile(xp.with_exit_pipeline, "argo")
    assert argo_schema_errors(doc) == [] and validate_argo(doc, xp.with_exit_pipeline.dag) == []
    assert doc["spec"]["onExit"] == "exit-handler"
    tpl = next(t for t in doc["spec"]["templates"] if t["name"] == "exit-handler")
    tasks = {t["name"]: t for t in tpl["dag"]["tasks"]}
    assert tpl["dag"]["failFast"] is False
    assert tasks["notify"]["arguments"]["parameters"] == [
        {"name": "channel", "value": "{{workflow.parameters.message}}"},
        {"name": "failures", "value": "{{workflow.failures}}"},
        {"name": "state", "value": "{{workflow.status}}"}]
    assert tasks["good-news"]["when"] == "'{{workflow.status}}' == 'Succeeded'"
    assert tasks["good-news"]["depends"] == "(notify.Succeeded || notify.Skipped || notify.Omitted)"
    assert tasks["bad-news"]["when"] == "'{{workflow.status}}' != 'Succeeded'"  # error: not
    assert "exit-handler" not in [t["name"] for t in  # never a task of main
                                  next(t for t in doc["spec"]["templates"]
                                       if t["name"] == "main")["dag"]["tasks"]]


def test_kfp_refuses_an_exit_sub_pipeline():
    with pytest.raises(CompileError, match=r"^exit sub-pipeline 'on-end' \(.*\): an exit handler "
                                           r"of several steps cannot be expressed on KFP v2 .*"
                                           r"target='argo'"):
        compile(xp.with_exit_pipeline, "kfp")


def test_argo_refuses_a_state_condition_it_cannot_map():
    @pipeline
    def odd_end(state: str):
        with condition(state > "a"):
            xp.shout(message="x")

    @pipeline(image=xp.IMAGE, on_exit=odd_end)
    def main():
        xp.shout.with_options(name="first")(message="y")

    with pytest.raises(CompileError, match=r"^exit sub-pipeline condition .*: Argo tests the "
                                           r"final state only as state == / != 'completed'"):
        compile(main, "argo")


def test_exit_sub_pipeline_definition_errors():
    @pipeline
    def stateless(channel: str = "x"):
        xp.shout(message=channel)

    with pytest.raises(StepDefinitionError, match=r"exit sub-pipeline 'stateless' .* give it a "
                                                  r"parameter named 'state'"):
        pipeline(on_exit=stateless)(lambda: None)

    @pipeline
    def needs(state: str, channel: str):
        xp.notify(state=state, failures=[], channel=channel)

    with pytest.raises(StepDefinitionError, match=r"parameters \['channel'\] need defaults or "
                                                  r"on_exit\(\.\.\.\) arguments"):
        pipeline(on_exit=needs)(lambda: None)

    @pipeline
    def renamed(state: str):
        xp.notify(state="x", failures=[], channel=state)

    @pipeline
    def uses_renamed():
        xp.shout.with_options(name="first")(message="y")
        on_exit(renamed)

    with pytest.raises(PipelineError, match=r"channel=state passes the state to step 'notify'; "
                                            r"pass it to a parameter named 'state'"):
        uses_renamed.validate()

    @pipeline
    def clash(state: str):
        xp.shout(message=state)

    @pipeline
    def uses_clash():
        xp.shout(message="y")
        on_exit(clash)

    with pytest.raises(PipelineError, match=r"step 'shout' is also a step of the pipeline"):
        uses_clash.validate()

    @pipeline
    def gives_state():
        xp.shout(message="y")
        on_exit(xp.on_end, channel="c", state="completed")

    with pytest.raises(PipelineError, match=r"on_exit\(\.\.\.\) sets 'state' itself"):
        gives_state.validate()

    @pipeline
    def gives_output():
        s = xp.shout(message="y")
        on_exit(xp.on_end, channel=s.output)

    with pytest.raises(PipelineError, match=r"passes a step output to 'channel'"):
        gives_output.validate()


def _exit_with(value):
    @pipeline
    def ends(state: str, x: object = None):
        xp.notify(state=state, failures=[], channel="c")

    @pipeline(image=xp.IMAGE)
    def main():
        xp.shout.with_options(name="work")(message="y")
        on_exit(ends, x=value)

    return main


def test_exit_sub_pipeline_arguments_are_typed_as_a_steps_are():
    # a tuple is the list a compiled pipeline carries (it stayed a tuple locally only)
    arguments = _exit_with((1, 2)).dag.describe()["exit_pipeline"]["arguments"]
    assert arguments == {"x": {"kind": "value", "value": [1, 2]}}
    for value in ({1, 2}, b"hi"):  # were accepted, then failed to compile with a bare TypeError
        with pytest.raises(PipelineError, match=rf"x= of exit sub-pipeline 'ends' gets a "
                                                rf"{type(value).__name__}; its arguments are JSON"):
            _exit_with(value).validate()


@pytest.mark.slow
@pytest.mark.parametrize("fail", [False, True])
def test_compiled_exit_sub_pipeline_matches_the_local_run(fail, tmp_path):
    report = check(xp.with_exit_pipeline, "argo", params={"message": "ops", "fail": fail},
                   workdir=str(tmp_path))
    assert report.ok, report.summary()
    want = {"notify": "completed", "good_news": "skipped" if fail else "completed",
            "bad_news": "completed" if fail else "skipped"}
    assert {n: report.states[n] for n in want} == want
    assert next(p for p in report.pods if p.node == "notify").results["return"] == (
        "error" if fail else "completed")
