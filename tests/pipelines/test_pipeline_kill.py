"""A pipeline killed with SIGKILL leaves records that say exactly what happened.

Real processes: a child Python runs a pipeline whose last step blocks; the test polls the DB
until the pipeline run's record names the finished steps, SIGKILLs the child and reads the DB.
Whatever the record names (a finished step's lineage edges, a skipped step's run) is in the DB.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from mlflowlet import get_run_db
from mlflowlet.errors import RunDBError

CHAIN = textwrap.dedent("""
    import time
    from mlflowlet import pipeline, step, DataItem

    @step(outputs=["data"])
    def a(context):
        context.log_artifact("data", body=b"rows")

    @step(outputs=["model"])
    def b(context, data: DataItem):
        context.log_artifact("model", body=data.get() + b"!")

    @step
    def c(context, model: DataItem):
        time.sleep(600)  # SIGKILL lands here

    @pipeline(name="chain")
    def chain():
        x = a()
        y = b(data=x.outputs["data"])
        c(model=y.outputs["model"])

    chain.run(max_parallel=1)
""")

SKIPPED = textwrap.dedent("""
    import time
    from mlflowlet import pipeline, step

    @step
    def long(context):
        time.sleep(600)  # SIGKILL lands here

    @step
    def fail(context) -> int:
        raise ValueError("boom")

    @step
    def after_fail(context, x: int = 0):
        pass

    @pipeline(name="branches")
    def branches():
        long()
        f = fail()
        after_fail(x=f.results["return"])

    branches.run(max_parallel=2)
""")


def _poll(predicate, what: str, timeout: float = 60.0):
    """Poll ``predicate`` until it returns something truthy (bounded; never a fixed sleep)."""
    deadline, pause = time.monotonic() + timeout, 0.01
    while True:
        found = predicate()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def _run_until(tmp_path, dbdir, script: str, name: str, ready) -> dict:
    """Run ``script`` in a child until its pipeline run's record passes ``ready``; SIGKILL it.

    Returns the pipeline run's record as it was in the DB just before the kill.
    """
    path = tmp_path / "child.py"
    path.write_text(script)
    env = {**os.environ, "MLFLOWLET_DBPATH": str(dbdir)}
    proc = subprocess.Popen(
        [sys.executable, str(path)], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL
    )
    db = get_run_db()

    def recorded():
        runs = db.list_runs(name=name, labels={"kind": "pipeline"})
        return runs[0] if runs and ready(runs[0]["status"].get("steps") or {}) else None

    try:
        return _poll(recorded, f"the pipeline record of {name!r}")
    finally:
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL


def test_killed_pipeline_keeps_the_lineage_of_the_steps_its_record_names(tmp_path, dbdir):
    def b_done(steps):
        return steps.get("b", {}).get("state") == "completed"

    record = _run_until(tmp_path, dbdir, CHAIN, "chain", b_done)
    steps, puid = record["status"]["steps"], record["metadata"]["uid"]
    edges = get_run_db().list_lineage(pipeline_uid=puid)
    assert [
        (e["producer_uid"], e["output"], e["consumer_uid"], e["consumer_param"]) for e in edges
    ] == [(steps["a"]["uid"], "data", steps["b"]["uid"], "data")]


def test_killed_pipeline_keeps_the_run_of_a_step_its_record_names_skipped(tmp_path, dbdir):
    def skipped(steps):
        return steps.get("after_fail", {}).get("state") == "skipped"

    record = _run_until(tmp_path, dbdir, SKIPPED, "branches", skipped)
    entry = record["status"]["steps"]["after_fail"]
    run = get_run_db().read_run(entry["uid"])
    assert run["status"]["state"] == "skipped"
    assert run["metadata"]["annotations"]["reason"] == "upstream step 'fail' failed"
    assert run["spec"]["pipeline_uid"] == record["metadata"]["uid"]


class _FailingOnce:
    """The run DB, whose first ``store_runs`` fails (a full disk, a DB briefly unreachable)."""

    def __init__(self, db):
        self._db, self.failed = db, False

    def __getattr__(self, name):
        return getattr(self._db, name)

    def store_runs(self, runs, lineage=()):
        if not self.failed:
            self.failed = True
            raise RunDBError("disk full")
        self._db.store_runs(runs, lineage)


def test_runs_and_edges_along_a_record_that_failed_are_written_by_the_next_write():
    from mlflowlet._ctx_recorder import Recorder
    from mlflowlet.model import RunObject, new_uid

    db = _FailingOnce(get_run_db())
    run, other = RunObject(), RunObject()
    run.metadata.uid, run.metadata.name = new_uid(), "record"
    other.metadata.uid, other.metadata.name = new_uid(), "along"
    edge = {"producer_uid": "p", "output": "data", "consumer_uid": other.metadata.uid}
    recorder = Recorder(run, db)
    recorder.along_runs.append(other.to_dict())
    recorder.along_edges.append(edge)
    with pytest.raises(RunDBError, match="disk full"):
        recorder.commit()
    assert get_run_db().list_runs(uid=run.metadata.uid) == []  # nothing named what is missing
    recorder.commit()
    assert get_run_db().read_run(other.metadata.uid)["metadata"]["name"] == "along"
    assert get_run_db().read_run(run.metadata.uid)["metadata"]["name"] == "record"
    (stored,) = get_run_db().list_lineage(run_uid=other.metadata.uid)
    assert (stored["producer_uid"], stored["output"]) == ("p", "data")
    assert recorder.along_runs == [] and recorder.along_edges == []
