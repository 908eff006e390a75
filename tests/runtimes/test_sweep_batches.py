"""A sweep's batched commits: one run's commits in a batch are written as one, nothing lost."""

from __future__ import annotations

import pytest

from mlflowlet import get_run_db, new_runner, new_task
from mlflowlet.runtimes._sweep import BatchedDB


def _record(uid: str, state: str, it: int = 1) -> dict:
    return {"kind": "run",
            "metadata": {"uid": uid, "project": "b", "iteration": it, "name": "n", "labels": {}},
            "spec": {}, "status": {"state": state, "results": {"step": state}}}


def _artifact(uid: str, key: str, it: int = 1) -> dict:
    return {"key": key, "kind": "file", "uid": uid, "iteration": it, "project": "b",
            "target_path": f"/x/{key}", "producer": {"uid": uid}}


def test_commits_of_one_run_in_a_batch_are_written_as_one_keeping_everything(clean_env):
    db = get_run_db()
    batched = BatchedDB(db, interval=3600, rows=100)
    try:
        batched.commit_run(_record("u1", "running"), [_artifact("u1", "a")],
                           [("loss", 0, 0.5, 1.0)], b"first ")
        batched.commit_run(_record("u2", "running", it=2), (), (), b"other")
        batched.commit_run(_record("u1", "completed"), [_artifact("u1", "b")],
                           [("loss", 1, 0.25, 2.0)], "second")
        assert len(batched._pending) == 2 and batched._commits == 3  # u1 once, u2 once
        assert db.list_runs(project="b", iter=True) == []  # buffered until the flush
    finally:
        batched.close()
    one = db.read_run("u1", project="b", iter=1)
    assert one["status"] == {"state": "completed", "results": {"step": "completed"}}
    assert db.get_log("u1", project="b") == b"first second"
    assert [(m["step"], m["value"]) for m in db.get_metrics("u1", "loss", iter=1)] == [
        (0, 0.5), (1, 0.25)]
    keys = {a["key"] for a in db.list_artifacts(project="b")}
    assert keys == {"a", "b"}
    assert db.read_run("u2", project="b", iter=2)["status"]["state"] == "running"
    assert db.get_log("u2", project="b") == b"other"


def test_the_batch_flushes_after_rows_commits_not_rows_runs(clean_env):
    db = get_run_db()
    batched = BatchedDB(db, interval=3600, rows=3)
    try:
        batched.commit_run(_record("r1", "running"))
        batched.commit_run(_record("r1", "completed"))
        assert db.list_runs(project="b", iter=True) == []
        batched.commit_run(_record("r2", "running", it=2))  # the third commit: written now
        assert batched._pending == [] and batched._commits == 0
        states = {r["metadata"]["uid"]: r["status"]["state"]
                  for r in db.list_runs(project="b", iter=True)}
        assert states == {"r1": "completed", "r2": "running"}
        batched.commit_run(_record("r1", "error"))  # a new batch: the run's place is gone
        assert len(batched._pending) == 1
    finally:
        batched.close()
    assert db.read_run("r1", project="b", iter=1)["status"]["state"] == "error"


def test_a_sweep_with_a_long_flush_interval_records_every_iteration_whole(clean_env,
                                                                          monkeypatch):
    monkeypatch.setenv("MLFLOWLET_FLUSH_INTERVAL", "3600")  # one batch: running + final merged

    def handler(context, x: int):
        print(f"iteration of {x}")
        context.log_metric("m", x * 10, step=1)
        context.log_result("loss", 10 - x)

    task = new_task(name="sw", project="b").with_hyper_params({"x": [1, 2, 3]},
                                                               selector="min.loss")
    run = new_runner().run(task, handler=handler)
    assert run.state == "completed" and run.results["best_iteration"] == 3
    db = get_run_db()
    for it in (1, 2, 3):
        record = db.read_run(run.uid, project="b", iter=it)
        assert record["status"]["state"] == "completed"
        assert record["status"]["results"] == {"loss": 10 - it}
        assert [m["value"] for m in db.get_metrics(run.uid, "m", iter=it)] == [it * 10]
    assert all(f"iteration of {x}" in db.get_log(run.uid, project="b").decode() for x in (1, 2, 3))


def test_a_merge_never_moves_output_or_an_artifact_before_a_later_commits(clean_env):
    # parallel iterations share one log (the sweep's uid) and the project's `latest` tags:
    # iteration 1's later commit merged into its first would write its lines before
    # iteration 2's, and its artifact version before iteration 2's (which then stays latest)
    db = get_run_db()
    batched = BatchedDB(db, interval=3600, rows=100)
    try:
        batched.commit_run(_record("sw", "running", it=1), [_artifact("sw", "model", 1)],
                           (), b"it1 starts\n")
        batched.commit_run(_record("sw", "completed", it=2), [_artifact("sw", "model", 2)],
                           (), b"it2 done\n")
        done = {**_artifact("sw", "model", 1), "uid": "v3"}
        batched.commit_run(_record("sw", "completed", it=1), [done], (), b"it1 done\n")
    finally:
        batched.close()
    assert db.get_log("sw", project="b") == b"it1 starts\nit2 done\nit1 done\n"
    assert db.read_artifact("model", project="b")["uid"] == "v3"  # the last one logged
    assert db.read_run("sw", project="b", iter=1)["status"]["state"] == "completed"


class _FailingOnce:
    """A real SQLite run DB whose next transaction fails once (a fault injected: a full disk)."""

    def __init__(self, db, fails: int = 1):
        self._db, self.fails = db, fails

    def _transact(self, *args):
        from mlflowlet.errors import RunDBError

        if self.fails:
            self.fails -= 1
            raise RunDBError("the disk is full (injected)")
        return self._db._transact(*args)

    def __getattr__(self, name):
        return getattr(self._db, name)


def test_a_failed_flush_keeps_every_buffered_commit_for_the_next(clean_env):
    from mlflowlet.errors import RunDBError

    db = get_run_db()
    failing = _FailingOnce(db)
    batched = BatchedDB(failing, interval=3600, rows=2)
    batched.commit_run(_record("f1", "completed"), [_artifact("f1", "a")], [], b"one ")
    batched.commit_run(_record("f2", "completed", it=2), (), [], b"two")  # due: the flush fails
    assert failing.fails == 0 and db.list_runs(project="b", iter=True) == []
    assert len(batched._pending) == 2  # nothing dropped, the trigger's commit neither
    batched.commit_run(_record("f1", "error"), (), [], b"three")  # merged into f1's entry
    batched.close()
    states = {r["metadata"]["uid"]: r["status"]["state"]
              for r in db.list_runs(project="b", iter=True)}
    assert states == {"f1": "error", "f2": "completed"}
    assert db.get_log("f1", project="b") == b"one three"
    assert db.get_log("f2", project="b") == b"two"
    assert {a["key"] for a in db.list_artifacts(project="b")} == {"a"}
    still = BatchedDB(_FailingOnce(db, fails=9), interval=3600, rows=100)
    still.commit_run(_record("f3", "completed"))
    with pytest.raises(RunDBError, match="disk is full"):
        still.close()  # the DB still fails at the end: the sweep fails, loudly


def test_a_running_iteration_reaches_the_db_within_a_tick_of_the_flush_thread(clean_env,
                                                                              monkeypatch):
    """An iteration's ``running`` record is written by the flush thread, not at its start."""
    import time

    monkeypatch.setenv("MLFLOWLET_FLUSH_INTERVAL", "0.05")
    monkeypatch.setenv("MLFLOWLET_HEARTBEAT_TIMEOUT", "3600")  # no heartbeat writes it instead
    db = get_run_db()

    def handler(context, x: int):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # this iteration, as another reader sees it
            rows = db.list_runs(uid=context.uid, project="b", iter=True)
            if any(r["metadata"]["iteration"] == context.iteration
                   and r["status"]["state"] == "running" for r in rows):
                context.log_result("seen", True)
                return
            time.sleep(0.01)  # polling another reader's view, bounded by the deadline above
        context.log_result("seen", False)

    task = new_task(name="sw", project="b").with_hyper_params({"x": [1, 2]})
    run = new_runner().run(task, handler=handler)
    assert run.state == "completed"
    for it in (1, 2):
        assert db.read_run(run.uid, project="b", iter=it)["status"]["results"] == {"seen": True}


def test_a_sweep_reads_its_git_facts_once_and_every_iteration_records_them(clean_env,
                                                                           monkeypatch):
    from mlflowlet import _ctx_recorder

    reads = []
    real = _ctx_recorder.git_info

    def counted(start: str) -> dict:
        reads.append(start)
        return real(start)

    monkeypatch.setattr(_ctx_recorder, "git_info", counted)
    task = new_task(name="sw", project="b").with_hyper_params({"x": [1, 2, 3]})
    run = new_runner().run(task, handler=lambda x: {"y": x})
    assert run.state == "completed" and len(reads) == 1
    db = get_run_db()
    parent = db.read_run(run.uid, project="b")["status"]["git"]
    assert parent == real(reads[0]) and parent  # the tests run in a git checkout
    for it in (1, 2, 3):
        assert db.read_run(run.uid, project="b", iter=it)["status"]["git"] == parent


class _Ticked:
    """What the flush thread calls: a flush interval, and an event set at each flush."""

    def __init__(self, interval: float) -> None:
        import threading

        self._flush_interval = interval
        self.flushed = threading.Event()

    def _background_flush(self, now: float, final: bool = False) -> None:
        self.flushed.set()


def test_a_run_with_a_shorter_flush_interval_wakes_a_flush_thread_waiting_longer():
    """A process that ran a long-interval sweep then a default run: its writes are not late."""
    from mlflowlet._flush import Flusher

    flusher, slow, fast = Flusher(), _Ticked(3600), _Ticked(0.05)
    import time

    flusher.add(slow)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until the thread waits out its hour-long tick
        with flusher._cond:
            if flusher._waiting == 3600:
                break
        time.sleep(0.001)
    assert flusher._waiting == 3600 and not slow.flushed.is_set()
    flusher.add(fast)
    assert fast.flushed.wait(timeout=30)
