import pytest

from mlflowlet import DataItem, get_run_db, pipeline, step
from mlflowlet.errors import NotFoundError, PipelineError

CALLS: list[str] = []
BROKEN = {"train": True}


@step(outputs=["data"])
def prep(context, rows: int = 3):
    CALLS.append("prep")
    context.log_artifact("data", body=b"d" * rows)


@step
def side(context, rows: int = 3) -> int:
    CALLS.append("side")
    return rows


@step
def train(context, data: DataItem) -> int:
    CALLS.append("train")
    if BROKEN["train"]:
        raise RuntimeError("train is broken")
    return len(data.get())


@step
def report(context, size: int, extra: int) -> str:
    CALLS.append("report")
    return f"{size}/{extra}"


@pipeline
def flow(rows: int = 3):
    data = prep(rows=rows)
    s = side(rows=rows)
    t = train(data=data.outputs["data"])
    report(size=t.output, extra=s.output)


def _failed_run():
    BROKEN["train"] = True
    CALLS.clear()
    run = flow.run(rows=4, max_parallel=1)
    assert run.state == "error" and run.steps["report"].state == "skipped"
    return run


def test_resume_reruns_only_what_failed_or_never_ran(dbdir):
    first = _failed_run()
    BROKEN["train"] = False
    CALLS.clear()
    second = flow.run(rows=4, resume=first.uid, max_parallel=1)
    assert second.state == "completed" and second.uid != first.uid
    assert sorted(CALLS) == ["report", "train"]
    for name in ("prep", "side"):
        assert second.steps[name].uid == first.steps[name].uid
        assert second.run.status.steps[name]["reused_from"] == first.uid
    assert second.steps["report"].results["return"] == "4/4"
    assert second.run.metadata.labels["resumed_from"] == first.uid
    rows = {(r["producer_uid"], r["consumer_param"]) for r in second.lineage()}
    assert (first.steps["prep"].uid, "data") in rows  # the reused output feeds the rerun


def test_resume_with_different_params_names_them(dbdir):
    first = _failed_run()
    with pytest.raises(PipelineError, match=r"different parameters: rows \(4 -> 5\)"):
        flow.run(rows=5, resume=first.uid)


def test_resume_of_another_pipeline_or_unknown_run_is_refused(dbdir):
    @pipeline
    def other(rows: int = 4):
        side(rows=rows)

    first = _failed_run()
    with pytest.raises(PipelineError, match="not a run of pipeline 'other'"):
        other.run(resume=first.uid)
    with pytest.raises(NotFoundError):
        flow.run(rows=4, resume="0" * 32)


def test_resume_of_a_completed_run_runs_nothing(dbdir):
    BROKEN["train"] = False
    first = flow.run(rows=2)
    CALLS.clear()
    again = flow.run(rows=2, resume=first.uid)
    assert again.state == "completed" and CALLS == []
    stored = get_run_db().read_run(again.uid)
    assert all(e["reused_from"] == first.uid for e in stored["status"]["steps"].values())


def test_resume_reuses_a_step_recorded_without_a_code_hash(dbdir):
    # runs recorded before code hashes were kept: nothing says the code changed
    BROKEN["train"] = False
    first = flow.run(rows=2)
    db = get_run_db()
    for name in ("prep", "side", "train", "report"):
        db.update_run({"status.code_hash": ""}, first.steps[name].uid)
    CALLS.clear()
    again = flow.run(rows=2, resume=first.uid)
    assert again.state == "completed" and CALLS == []
    assert again.steps["prep"].uid == first.steps["prep"].uid
