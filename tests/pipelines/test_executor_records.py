"""The local executor's records, exactly: the pipeline run, steps that do not run, exit handlers,
empty fan-outs, failures, resume refusals, and which thread runs a step."""

import inspect
import threading

import pytest

from mlflowlet import condition, get_run_db, pipeline, step
from mlflowlet.errors import NotFoundError, PipelineError

THREADS: dict[str, str] = {}


@step
def one(context, x: int = 1) -> int:
    THREADS[context.name] = threading.current_thread().name
    return x


@step
def two(context, y: int = 2) -> int:
    THREADS[context.name] = threading.current_thread().name
    return y


@step
def broken(context):
    raise RuntimeError("first broken")


@step
def also_broken(context):
    raise ValueError("second broken")


@step(labels={"team": "ml"})
def gated_step(context) -> int:
    return 1


@step
def on_exit(context, state: str) -> str:
    return state


@pipeline(name="pair")
def pair(x: int = 1):
    one(x=x)
    two()


@pipeline(name="chain")
def chain():
    two(y=one().output)


@pipeline(name="two-failures")
def two_failures():
    broken()
    also_broken()


@pipeline(name="gated", on_exit=on_exit)
def gated(go: bool = False):
    with condition(go == True):  # noqa: E712
        gated_step()


@pipeline(name="empty-map")
def empty_map():
    one.map(items=[], item_param="x")


def test_the_pipeline_run_records_its_labels_paths_and_source(dbdir, tmp_path):
    run = pair.run(x=3, labels={"n": 3, "tag": "a"}, artifact_path=str(tmp_path / "arts"))
    stored = get_run_db().read_run(run.uid)
    assert stored["metadata"]["labels"] == {"kind": "pipeline", "pipeline": "pair", "n": "3",
                                            "tag": "a"}
    spec = stored["spec"]
    assert spec["artifact_path"] == str(tmp_path / "arts") and spec["pipeline_uid"] == run.uid
    assert spec["source"] == f"{__file__}:{inspect.getsourcelines(pair.fn)[1]}"
    assert spec["params"] == {"x": 3}


def test_a_background_pipeline_runs_in_a_named_daemon_thread(dbdir):
    handle = pair.run(wait=False)
    thread = handle._thread
    handle.wait()
    assert thread.name == "mlflowlet-pipeline-pair" and thread.daemon is True
    assert handle.state == "completed"


def test_every_failed_step_is_named_in_the_pipeline_error(dbdir):
    run = two_failures.run(max_parallel=1)
    assert run.state == "error"
    assert run.run.status.error == (
        "step 'broken' failed: RuntimeError: first broken; "
        "step 'also_broken' failed: ValueError: second broken"
    )


def test_a_skipped_step_is_recorded_with_the_pipeline_labels_and_no_error(dbdir):
    run = gated.run(go=False)
    skipped = get_run_db().read_run(run.steps["gated_step"].uid)
    assert skipped["metadata"]["labels"] == {"kind": "local", "team": "ml", "pipeline": "gated",
                                             "pipeline_uid": run.uid, "step": "gated_step"}
    assert skipped["status"]["state"] == "skipped" and not skipped["status"].get("error")
    assert skipped["spec"]["pipeline_uid"] == skipped["spec"]["parent_uid"] == run.uid
    assert skipped["status"]["start_time"] == skipped["status"]["end_time"]
    assert skipped["status"]["start_time"].startswith(run.run.status.start_time[:4])  # stamped
    assert run.run.status.steps["gated_step"]["attempts"] == 1  # counted, though it never ran
    exit_run = get_run_db().read_run(run.steps["on_exit"].uid)
    assert exit_run["metadata"]["name"] == "on_exit"
    labels = exit_run["metadata"]["labels"]
    assert (labels["pipeline"], labels["pipeline_uid"], labels["step"]) == (
        "gated", run.uid, "on_exit")
    assert exit_run["spec"]["parent_uid"] == exit_run["spec"]["pipeline_uid"] == run.uid
    assert exit_run["status"]["results"] == {"return": "completed"}


def test_an_empty_fan_out_completes_with_no_iterations(dbdir):
    run = empty_map.run()
    stored = get_run_db().read_run(run.steps["one"].uid, project=run.run.metadata.project)
    assert stored["status"]["state"] == "completed" and stored["status"]["iterations"] == []
    assert stored["metadata"]["iteration"] == 0
    assert stored["status"]["start_time"] == stored["status"]["end_time"]


def test_one_at_a_time_runs_every_step_in_the_callers_thread(dbdir):
    THREADS.clear()
    pair.run(max_parallel=1)
    here = threading.current_thread().name
    assert THREADS == {"one": here, "two": here}
    THREADS.clear()
    chain.run(max_parallel=4)  # a chain: each step is alone when it runs
    assert THREADS == {"one": here, "two": here}
    THREADS.clear()
    pair.run(max_parallel=2)  # two at once: one of them in a pool thread
    assert any(name.startswith("mlflowlet-step-") for name in THREADS.values()), THREADS


def test_a_pipeline_given_a_run_db_records_every_step_there_and_resumes_from_it(dbdir, tmp_path):
    THREADS.clear()
    other = get_run_db(str(tmp_path / "other"))
    first = pair.run(x=1, max_parallel=2, db=other)  # two at once: one in a pool thread
    assert first.state == "completed", first.error
    assert any(name.startswith("mlflowlet-step-") for name in THREADS.values()), THREADS
    project = first.run.metadata.project
    for name in ("one", "two"):
        assert other.read_run(first.steps[name].uid, project=project)["status"]["state"] == (
            "completed")
    assert get_run_db().list_runs(project=project) == []  # nothing in the default run DB
    again = pair.run(x=1, resume=first.uid, db=other)
    assert again.run.status.steps["one"]["reused_from"] == first.uid
    assert again.steps["one"].refresh().uid == first.steps["one"].uid  # read from `other`
    assert get_run_db().list_runs(project=project) == []


def test_resume_of_a_run_of_another_project_is_refused(dbdir):
    first = pair.run(x=1, project="mine")
    with pytest.raises(NotFoundError, match=f"run {first.uid} .*not found in project 'theirs'"):
        pair.run(x=1, resume=first.uid, project="theirs")


def test_resume_after_a_parameter_was_added_names_it(dbdir):
    first = pair.run(x=1)

    @pipeline(name="pair")
    def pair_with_z(x: int = 1, z: int = 3):  # the same pipeline, a parameter added since
        one(x=x)
        two(y=z)

    with pytest.raises(PipelineError) as err:
        pair_with_z.run(x=1, resume=first.uid)
    assert str(err.value) == (
        f"cannot resume run {first.uid} with different parameters: z (None -> 3); "
        "resume with the same values, or start a new run"
    )


def test_resume_refusals_name_the_run_the_pipeline_and_every_changed_parameter(dbdir):
    first = pair.run(x=1)
    with pytest.raises(PipelineError) as err:
        pair.run(x=2, resume=first.uid)
    assert str(err.value) == (
        f"cannot resume run {first.uid} with different parameters: x (1 -> 2); "
        "resume with the same values, or start a new run"
    )
    step_uid = first.steps["one"].uid
    with pytest.raises(PipelineError) as err:
        pair.run(x=1, resume=step_uid)  # a step run names its pipeline in its labels
    assert str(err.value) == f"run {step_uid} is not a run of pipeline 'pair' (it is 'pair')"
    project = first.run.metadata.project
    plain = {"metadata": {"uid": "plain", "name": "solo", "project": project}, "spec": {},
             "status": {"state": "completed"}}
    get_run_db().store_run(plain, "plain", project, 0)
    with pytest.raises(PipelineError) as err:
        pair.run(x=1, resume="plain")
    assert str(err.value) == "run plain is not a run of pipeline 'pair' (it is 'solo')"


@pytest.mark.parametrize(
    ("entry", "note"),
    [
        ({"state": "completed", "duration": 1.234}, "completed in 1.23s"),
        ({"state": "completed", "duration": None}, "completed"),
        ({"state": "skipped", "duration": 0.0, "reason": "condition x is false"},
         "skipped: condition x is false"),
        ({"state": "completed", "duration": 0, "cached_from": "0123456789abcdef"},
         "completed in 0.00s (cached from 0123456789ab)"),
        ({"state": "completed", "duration": 2, "reused_from": "fedcba9876543210",
          "cached_from": ""}, "completed in 2.00s (reused from fedcba987654)"),
        ({"state": "error", "duration": 0.5, "error": "RuntimeError: boom"},
         "error in 0.50s: RuntimeError: boom"),
    ],
)
def test_progress_notes_say_how_each_step_ended(entry, note):
    from mlflowlet.pipelines.executor import _duration, _progress_note

    assert _progress_note(entry) == note
    status = type("S", (), {"start_time": "2024-01-01T00:00:00+00:00",
                            "end_time": "2024-01-01T00:00:01.5+00:00"})()
    assert _duration(status) == 1.5
    status.end_time = None
    assert _duration(status) is None


@step
def scale(context, shard: int) -> int:
    return shard * 2


@step
def not_a_list(context) -> int:
    return 7


@pipeline(name="bad-map")
def bad_map():
    scale.map(items=not_a_list().output, item_param="shard")


def test_a_fan_out_over_a_non_list_fails_that_step_naming_it(dbdir):
    run = bad_map.run()
    entry = run.run.status.steps["scale"]
    assert entry["state"] == "error"
    assert entry["error"].startswith("step 'scale' maps over ") and entry["error"].endswith(
        "which is a int, not a list")
    stored = get_run_db().read_run(entry["uid"])
    assert stored["status"]["state"] == "error" and stored["status"]["error"] == entry["error"]
    assert [(r["producer_uid"], r["consumer_uid"]) for r in run.lineage()] == [
        (run.steps["not_a_list"].uid, entry["uid"])]  # what it read is still lineage


def test_step_entries_of_the_pipeline_run_are_complete(dbdir):
    run = pair.run()
    entry = run.run.status.steps["one"]
    assert set(entry) == {"uid", "state", "start_time", "end_time", "duration", "error",
                          "attempts"}
    assert entry["attempts"] == 1 and entry["start_time"] <= entry["end_time"]
    log = get_run_db().get_log(run.uid).decode()
    assert "step one: running" in log and "step one: completed in " in log


def test_a_failure_of_the_executor_itself_ends_the_pipeline_run_in_error_and_is_raised(
    dbdir, monkeypatch
):
    from mlflowlet.pipelines import _scheduler

    def broken_execute(call, db):  # fault injection: the step machinery itself fails
        raise OSError("disk gone")

    monkeypatch.setattr(_scheduler, "execute", broken_execute)
    with pytest.raises(OSError, match="disk gone"):
        pair.run(max_parallel=1)
    (stored,) = get_run_db().list_runs(name="pair", labels={"kind": "pipeline"})
    assert stored["status"]["state"] == "error"
    assert stored["status"]["error"] == "OSError: disk gone"


TRIES: list[str] = []


@step(retries=1)
def once_flaky(context) -> int:
    TRIES.append(context.uid)
    if len(TRIES) == 1:
        raise RuntimeError("the first attempt fails")
    return len(TRIES)


@pipeline(name="retried-once")
def retried_once():
    once_flaky()


def test_two_attempts_record_both_attempt_uids(dbdir):
    TRIES.clear()
    entry = retried_once.run().run.status.steps["once_flaky"]
    assert entry["attempts"] == 2 and entry["attempt_uids"] == TRIES


@step(outputs=["model"])
def fit_model(context):
    context.log_artifact("model", body=b"w")


def test_an_output_a_completed_step_did_not_log_fails_the_run_naming_each(dbdir):
    @pipeline(name="partly")
    def partly():
        f = fit_model()
        return {"weights": f.outputs["model"], "a": f.results["nope"], "b": f.results["gone"]}

    run = partly.run()
    assert run.run.status.steps["fit_model"]["state"] == "completed"
    assert run.state == "error" and run.error == (
        "pipeline output 'a': step 'fit_model' logged no result 'nope' (results: []); log it "
        "with context.log_result('nope', ...); pipeline output 'b': step 'fit_model' logged no "
        "result 'gone' (results: []); log it with context.log_result('gone', ...)")
    assert [a["key"] for a in run.run.status.artifacts] == ["weights"]  # the output's name


@pipeline(name="pair-failing-first")
def pair_failing_first(x: int = 1, y: int = 2):
    broken()
    one(x=x)
    two(y=y)


def test_resume_names_every_changed_parameter_and_reuses_past_a_failed_step(dbdir):
    first = pair_failing_first.run(x=1, y=2, project="elsewhere")
    with pytest.raises(PipelineError) as err:
        pair_failing_first.run(x=3, y=4, resume=first.uid, project="elsewhere")
    assert str(err.value) == (
        f"cannot resume run {first.uid} with different parameters: x (1 -> 3), y (2 -> 4); "
        "resume with the same values, or start a new run")
    again = pair_failing_first.run(x=1, y=2, resume=first.uid, project="elsewhere")
    steps = again.run.status.steps
    assert steps["one"]["reused_from"] == steps["two"]["reused_from"] == first.uid
    assert steps["one"]["uid"] == first.steps["one"].uid and "reused_from" not in steps["broken"]


def test_a_cached_step_hits_only_in_its_own_project(dbdir):
    first = pair.run(x=5, cache=True, project="mine")
    assert pair.run(x=5, cache=True, project="mine").run.status.steps["one"]["cached_from"] == (
        first.steps["one"].uid)
    other = pair.run(x=5, cache=True, project="theirs").run.status.steps
    assert "cached_from" not in other["one"] and "cached_from" not in other["two"]


@step
def exit_with_artifact(context, state: str):
    context.log_artifact("summary", body=state.encode())


def test_the_exit_step_writes_under_the_pipelines_artifact_path(dbdir, tmp_path):
    @pipeline(name="summarised", on_exit=exit_with_artifact)
    def summarised():
        one()

    run = summarised.run(artifact_path=str(tmp_path / "arts"))
    (art,) = get_run_db().read_run(run.steps["exit_with_artifact"].uid)["status"]["artifacts"]
    assert art["uri"].startswith(str(tmp_path / "arts") + "/")
