"""``store_runs`` on SQLite: runs not stored yet are found with one read and inserted in one
pass, runs stored already (or earlier in the same batch) are updated in place, labels exact."""

from __future__ import annotations

import pytest

from mlflowlet.db.sqlite import SQLiteRunDB


@pytest.fixture
def db(tmp_path):
    database = SQLiteRunDB(str(tmp_path / "batch.db"))
    yield database
    database.close()


def _run(uid, labels, state="completed", project="p"):
    return {"metadata": {"uid": uid, "project": project, "iteration": 0, "labels": labels},
            "status": {"state": state, "start_time": "t"}}


def _labels(db):
    return sorted(db._read("SELECT r.uid, l.key, l.value FROM run_labels l"
                           " JOIN runs r ON r.id = l.run_id"))


def test_a_batch_mixing_new_stored_and_repeated_runs_lands_exactly(db):
    db.store_run(_run("old", {"a": "1", "b": "2"}, "running"), "old", "p")
    db.store_runs([
        _run("new", {"k": "v"}),
        _run("old", {"a": "1", "c": "3"}),  # stored before: updated, label b dropped
        _run("twice", {"x": "1"}, "running"),
        _run("twice", {"x": "2"}),  # again in the same batch: the later one wins
        _run("new", {"k": "v"}, project="q"),  # the same uid in another project: its own run
    ])
    assert db.read_run("old", "p")["status"]["state"] == "completed"
    assert db.read_run("twice", "p")["metadata"]["labels"] == {"x": "2"}
    assert db.read_run("twice", "p")["status"]["state"] == "completed"
    assert db.read_run("new", "q")["metadata"]["project"] == "q"
    assert _labels(db) == [("new", "k", "v"), ("new", "k", "v"), ("old", "a", "1"),
                           ("old", "c", "3"), ("twice", "x", "2")]
    assert db._read("SELECT count(*) FROM runs")[0][0] == 4
    assert [r["metadata"]["uid"] for r in db.list_runs(labels="x=2")] == ["twice"]


def test_a_batch_larger_than_one_read_of_uids_is_stored_whole(db):
    db.store_runs([_run("u0", {"n": "0"})])
    db.store_runs([_run(f"u{i}", {"n": str(i)}) for i in range(1200)])
    assert db._read("SELECT count(*) FROM runs")[0][0] == 1200
    assert db._read("SELECT count(*) FROM run_labels")[0][0] == 1200
    assert [r["metadata"]["uid"] for r in db.list_runs(labels="n=1100")] == ["u1100"]
