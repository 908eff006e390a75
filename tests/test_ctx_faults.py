"""A recorder whose run DB fails: said once on stderr (never in the run's log), nothing lost."""

from __future__ import annotations

import time

from mlflowlet.context import Context
from mlflowlet.db import get_run_db
from mlflowlet.errors import RunDBError
from mlflowlet.model import RunObject


class _Failing:
    """The real run DB, whose commits fail while ``failing`` (a full disk, say)."""

    def __init__(self, db) -> None:
        self.db, self.failing = db, True

    def __getattr__(self, name):
        return getattr(self.db, name)

    def commit_run(self, *args, **kw):
        if self.failing:
            raise RunDBError("run DB x cannot be written: the disk is full")
        return self.db.commit_run(*args, **kw)


def test_a_failing_flush_is_said_once_then_the_buffers_land_when_the_db_recovers(
    clean_env, capsys
):
    db = _Failing(get_run_db())
    run = RunObject()
    run.metadata.uid, run.metadata.name, run.metadata.project = "f1", "faulty", "p"
    ctx = Context(run, db)
    recorder = ctx._recorder
    recorder.run.status.state = "running"
    ctx.log_result("kept", 1)
    recorder.write_log("a line\n")
    for _ in range(3):
        recorder._background_flush(time.monotonic())
    err = capsys.readouterr().err
    said = "run 'faulty' (f1) cannot be written to the run DB, retrying every 1 s: run DB x"
    assert err.count(said) == 1 and err.count("\n") == 1
    assert recorder.flush_error.startswith("run DB x cannot be written")
    db.failing = False
    recorder._background_flush(time.monotonic())
    assert recorder.flush_error == "" and capsys.readouterr().err == ""
    stored = db.db.read_run("f1", "p")
    assert stored["status"]["results"] == {"kept": 1}
    assert db.db.get_log("f1", "p") == b"a line\n"  # the error is not in the run's output
