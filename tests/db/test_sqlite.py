"""The embedded SQLite run DB: runs, filters, artifacts, logs, metrics, lineage, bad files,
and several processes writing at once through the runtime (tests/db/test_writers.py has the
shared-key, shared-log, shared-run writer contract of every backend)."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from mlflowlet import get_run_db, new_runner
from mlflowlet.db import RunDB, resolve_db_path
from mlflowlet.db.sqlite import SCHEMA_VERSION, SQLiteRunDB
from mlflowlet.errors import ConfigError, NotFoundError, RunDBError, UnknownBackendError


def _run(
    uid,
    name="r",
    project="p",
    state="completed",
    labels=None,
    iteration=0,
    start=None,
    results=None,
):
    return {
        "metadata": {
            "uid": uid,
            "name": name,
            "project": project,
            "iteration": iteration,
            "labels": dict(labels or {}),
        },
        "spec": {"params": {"x": 1}},
        "status": {
            "state": state,
            "start_time": start or datetime.now(timezone.utc).isoformat(),
            "results": dict(results or {}),
        },
    }


def _store(db, uid, **kw):
    run = _run(uid, **kw)
    meta = run["metadata"]
    db.store_run(run, uid, meta["project"], meta["iteration"])
    return run


def _uids(runs):
    return [r["metadata"]["uid"] for r in runs]


@pytest.fixture
def db(tmp_path):
    database = SQLiteRunDB(str(tmp_path / "t" / "mlflowlet.db"))
    yield database
    database.close()


# -- opening ------------------------------------------------------------------------------------


def test_get_run_db_uses_mlflowlet_dbpath(dbdir):
    db = get_run_db()
    assert isinstance(db, RunDB) and db.path == str(dbdir / "mlflowlet.db")
    assert db.connect() is db and get_run_db() is db
    assert db.artifact_root == str(dbdir / "artifacts")


def test_get_run_db_dot_slash_is_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOWLET_DBPATH")
    assert get_run_db("./").path == str(tmp_path / "mlflowlet.db")
    assert get_run_db().path == str(tmp_path / "mlflowlet.db")


def test_resolve_db_path_accepts_dirs_files_and_urls(tmp_path):
    assert resolve_db_path(str(tmp_path)) == str(tmp_path / "mlflowlet.db")
    assert resolve_db_path(str(tmp_path / "x.db")) == str(tmp_path / "x.db")
    assert resolve_db_path(f"sqlite:///{tmp_path}/y.db") == str(tmp_path / "y.db")
    assert resolve_db_path("sqlite:///rel.db") == str(tmp_path / "rel.db")


def test_get_run_db_refuses_an_unknown_scheme():
    with pytest.raises(UnknownBackendError, match="ftp"):
        get_run_db("ftp://host/db")


def test_schema_is_versioned_and_in_wal_mode(db):
    conn = sqlite3.connect(db.path)
    assert conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "new.db"
    SQLiteRunDB(str(path)).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(RunDBError, match="newer"):
        SQLiteRunDB(str(path))


def test_a_file_that_is_not_a_db_gives_a_clear_error(tmp_path):
    path = tmp_path / "notes.db"
    path.write_bytes(b"this is a text file, not SQLite\n" * 100)
    with pytest.raises(RunDBError) as info:
        SQLiteRunDB(str(path))
    message = str(info.value)
    assert "not an SQLite run DB" in message and str(path) in message and "\n" not in message


def _make_read_only(path):
    """Make a file read-only even for root (chattr +i); return an undo function or None."""
    if os.geteuid() != 0:
        os.chmod(path, 0o444)
        os.chmod(path.parent, 0o555)
        return lambda: (os.chmod(path.parent, 0o755), os.chmod(path, 0o644))
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True)
    if done.returncode != 0:
        return None
    return lambda: subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.mark.parametrize("populated", [False, True])
def test_a_read_only_db_gives_a_clear_error(tmp_path, populated):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "mlflowlet.db"
    if populated:
        db = SQLiteRunDB(str(path))
        _store(db, "a1")
        db._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db._conn.execute("PRAGMA journal_mode=DELETE")
        db.close()
    else:
        path.write_bytes(b"")
    undo = _make_read_only(path)
    if undo is None:
        pytest.skip("cannot make a file read-only for root here (no chattr)")
    try:
        with pytest.raises(RunDBError) as info:
            db = SQLiteRunDB(str(path))
            _store(db, "a2")
        message = str(info.value)
        assert "cannot be written" in message and str(path) in message and "\n" not in message
    finally:
        undo()


# -- runs -----------------------------------------------------------------------------------------


def test_store_read_and_update_a_run(db):
    _store(db, "u1", results={"a": 1})
    assert db.read_run("u1", "p")["status"]["results"] == {"a": 1}
    assert db.read_run("u1")["metadata"]["name"] == "r"
    db.update_run({"status.state": "error", "status.error": "bad"}, "u1", "p")
    got = db.read_run("u1", "p")
    assert got["status"]["state"] == "error" and got["status"]["error"] == "bad"
    assert db.list_runs(state="error")[0]["metadata"]["uid"] == "u1"


def test_read_run_of_an_unknown_uid_names_it(db):
    with pytest.raises(NotFoundError, match="nope") as info:
        db.read_run("nope", "p")
    assert isinstance(info.value, KeyError)


def test_store_run_again_replaces_it_and_its_labels(db):
    _store(db, "u1", labels={"a": "1"})
    _store(db, "u1", labels={"b": "2"})
    assert len(db.list_runs()) == 1
    assert db.list_runs(labels="a") == [] and _uids(db.list_runs(labels="b")) == ["u1"]


def test_list_runs_filters_by_name_uid_project_and_state(db):
    _store(db, "u1", name="train", project="p1", state="completed")
    _store(db, "u2", name="train", project="p2", state="error")
    _store(db, "u3", name="eval", project="p1", state="completed")
    assert sorted(_uids(db.list_runs(name="train"))) == ["u1", "u2"]
    assert _uids(db.list_runs(uid="u3")) == ["u3"]
    assert sorted(_uids(db.list_runs(project="p1"))) == ["u1", "u3"]
    assert _uids(db.list_runs(state="error")) == ["u2"]
    assert _uids(db.list_runs(name="train", project="p1", state="completed")) == ["u1"]
    assert len(db.list_runs("")) == 3


def test_label_filters(db):
    _store(db, "u1", labels={"team": "ml", "stage": "dev"})
    _store(db, "u2", labels={"team": "data-ml"})
    _store(db, "u3", labels={"stage": "prod"})

    def found(labels):
        return sorted(_uids(db.list_runs(labels=labels)))

    assert found("team=ml") == ["u1"]
    assert found("team!=ml") == ["u2", "u3"]
    assert found("team~=ml") == ["u1", "u2"]
    assert found("team") == ["u1", "u2"]
    assert found(["team", "stage=dev"]) == ["u1"]
    assert found({"stage": "prod"}) == ["u3"]
    assert found("team=nobody") == []
    assert found(["stage=dev", "team~=ml"]) == ["u1"]
    assert found(["team=data-ml", "stage"]) == []
    assert found(["team=ml", "stage!=prod"]) == ["u1"]
    assert found({"team": "ml", "stage": "dev"}) == ["u1"]
    assert found(["team=ml", "team=ml"]) == ["u1"]


def test_combined_label_filters_match_whichever_label_is_more_selective(db):
    for i in range(30):
        _store(db, f"u{i}", labels={"common": "yes", "rare": "yes" if i == 7 else "no"})
    for labels in (
        {"common": "yes", "rare": "yes"},
        {"rare": "yes", "common": "yes"},
        ["common=yes", "rare~=ye"],
        ["rare=yes", "common!=no"],
    ):
        assert _uids(db.list_runs(labels=labels)) == ["u7"], labels
    with pytest.raises(ConfigError, match="no key"):
        db.list_runs(labels="=v")


def test_list_runs_sorts_newest_first_and_limits(db):
    base = datetime(2024, 1, 1, tzinfo=timezone.utc)
    for i in range(5):
        _store(db, f"u{i}", start=(base + timedelta(minutes=i)).isoformat())
    assert _uids(db.list_runs()) == ["u4", "u3", "u2", "u1", "u0"]
    assert _uids(db.list_runs(last=2)) == ["u4", "u3"]
    assert sorted(_uids(db.list_runs(sort=False))) == ["u0", "u1", "u2", "u3", "u4"]


def test_list_runs_hides_iterations_unless_asked(db):
    _store(db, "h", iteration=0)
    _store(db, "h", iteration=1)
    _store(db, "h", iteration=2)
    assert [r["metadata"]["iteration"] for r in db.list_runs()] == [0]
    assert sorted(r["metadata"]["iteration"] for r in db.list_runs(iter=True)) == [0, 1, 2]
    assert db.read_run("h", "p", iter=2)["metadata"]["iteration"] == 2


def test_list_runs_refuses_an_unknown_filter(db):
    with pytest.raises(ConfigError, match="colour"):
        db.list_runs(colour="red")


def test_del_run_removes_every_iteration_or_one(db):
    for it in (0, 1, 2):
        _store(db, "h", iteration=it)
    db.store_log("h", "p", b"log")
    db.del_run("h", "p", iter=2)
    assert len(db.list_runs(iter=True)) == 2
    db.del_run("h", "p")
    assert db.list_runs(iter=True) == [] and db.get_log("h") == b""


def test_del_runs_refuses_an_empty_filter(db):
    _store(db, "u1")
    with pytest.raises(ConfigError, match="needs a filter") as info:
        db.del_runs()
    assert "\n" not in str(info.value)
    assert len(db.list_runs()) == 1


def test_del_runs_by_state_labels_name_and_age(db):
    old = (datetime.now(timezone.utc) - timedelta(days=30)).isoformat()
    _store(db, "done", state="completed")
    _store(db, "done", state="completed", iteration=1)
    _store(db, "bad", state="error", labels={"k": "v"})
    _store(db, "old", state="running", start=old, name="ancient")
    _store(db, "new", state="running")
    assert db.del_runs(state="completed") == 1
    assert db.list_runs(iter=True, uid="done") == []
    assert db.del_runs(labels="k=v") == 1
    assert db.del_runs(name="nothing") == 0
    assert db.del_runs(days_ago=7) == 1  # deletes runs started within the last 7 days
    assert _uids(db.list_runs()) == ["old"]


# -- artifacts -------------------------------------------------------------------------------------


def _art(key, uid, kind="artifact", labels=None, updated="2024-01-01T00:00:00", **extra):
    return {
        "key": key,
        "uid": uid,
        "kind": kind,
        "labels": dict(labels or {}),
        "updated": updated,
        "uri": f"/a/{key}/{uid}",
        **extra,
    }


def test_artifact_versions_and_tags(db):
    db.store_artifact("model", _art("model", "v1"), project="p", tag="prod")
    db.store_artifact("model", _art("model", "v2"), project="p")
    assert db.read_artifact("model", project="p")["uid"] == "v2"
    assert db.read_artifact("model", tag="prod", project="p")["uid"] == "v1"
    assert db.read_artifact("model", uid="v1", project="p")["uid"] == "v1"
    assert _uids_of(db.list_artifacts(project="p")) == ["v2"]
    assert sorted(_uids_of(db.list_artifacts(project="p", tag="*"))) == ["v1", "v2"]
    assert _uids_of(db.list_artifacts(project="p", tag="prod")) == ["v1"]
    assert db.list_artifact_tags("p") == ["latest", "prod"]
    with pytest.raises(NotFoundError, match="model:nope"):
        db.read_artifact("model", tag="nope", project="p")


def _uids_of(arts):
    return [a["uid"] for a in arts]


def test_an_artifact_without_uid_or_hash_gets_a_version_id(db):
    db.commit_run(_run("r1"), [{"key": "linked", "uid": None, "hash": None, "kind": None}])
    art = db.read_artifact("linked", project="p")
    assert art["uid"] and art["hash"] is None and art["tree"] == "r1"


def test_list_artifacts_filters(db):
    db.store_artifact(
        "a",
        _art("a", "1", kind="table", labels={"x": "1"}, updated="2024-01-01T00:00:00"),
        project="p",
    )
    db.store_artifact(
        "b",
        _art("b", "2", kind="model", labels={"x": "2"}, updated="2024-06-01T00:00:00"),
        project="p",
    )
    db.store_artifact("c", _art("c", "3"), project="q")
    assert [a["key"] for a in db.list_artifacts("a")] == ["a"]
    assert [a["key"] for a in db.list_artifacts(project="p", kind="model")] == ["b"]
    assert [a["key"] for a in db.list_artifacts(labels="x=1")] == ["a"]
    assert sorted(a["key"] for a in db.list_artifacts(labels="x")) == ["a", "b"]
    assert [a["key"] for a in db.list_artifacts(project="p", since="2024-03-01")] == ["b"]
    assert [a["key"] for a in db.list_artifacts(project="p", until="2024-03-01")] == ["a"]
    assert sorted(a["key"] for a in db.list_artifacts("")) == ["a", "b", "c"]


def test_del_artifact_by_tag_uid_or_key(db):
    for uid in ("v1", "v2", "v3"):
        db.store_artifact("m", _art("m", uid), project="p", tag="t" + uid)
    assert db.del_artifact("m", tag="tv1", project="p") == 1
    assert db.del_artifact("m", uid="v2", project="p") == 1
    assert _uids_of(db.list_artifacts(tag="*")) == ["v3"]
    assert db.del_artifact("m", project="p") == 1
    assert db.list_artifacts(tag="*") == []


def test_del_artifacts_filters_and_refuses_an_empty_filter(db):
    db.store_artifact("a", _art("a", "1", labels={"x": "1"}), project="p")
    db.store_artifact("b", _art("b", "2"), project="p")
    with pytest.raises(ConfigError, match="needs a filter"):
        db.del_artifacts()
    assert db.del_artifacts(labels="x=1") == 1
    assert [a["key"] for a in db.list_artifacts(tag="*")] == ["b"]
    assert db.del_artifacts(project="p") == 1


# -- logs, metrics, lineage ------------------------------------------------------------------------


def test_logs_append_and_read_with_offset_and_size(db):
    db.store_log("u1", "p", b"hello ")
    db.store_log("u1", "p", b"world")
    assert db.get_log("u1") == b"hello world"
    assert db.get_log("u1", offset=6) == b"world"
    assert db.get_log("u1", offset=2, size=3) == b"llo"
    db.store_log("u1", "p", b"new", append=False)
    assert db.get_log("u1") == b"new"
    assert db.get_log("other") == b""


def test_metrics_are_stored_per_run_and_iteration(db):
    db.store_metrics("u1", "p", 0, [("loss", 0, 0.5, 1.0), ("loss", 1, 0.4, 2.0)])
    db.store_metrics("u1", "p", 1, [("loss", 0, 9.0, 3.0)])
    db.store_metrics("u1", "p", 0, [("acc", 0, 0.7, 4.0)])
    got = db.get_metrics("u1", key="loss")
    assert [(m["step"], m["value"]) for m in got] == [(0, 0.5), (1, 0.4)]
    assert [m["value"] for m in db.get_metrics("u1", iter=1)] == [9.0]
    assert [m["key"] for m in db.get_metrics("u1")] == ["loss", "loss", "acc"]


def test_commit_run_writes_everything_in_one_go(db):
    run = _run("c1")
    db.commit_run(run, [_art("out", "x1")], [("m", 0, 1.0, 0.0)], b"line\n")
    assert db.read_run("c1")["metadata"]["uid"] == "c1"
    assert db.read_artifact("out", project="p")["tree"] == "c1"
    assert db.get_metrics("c1")[0]["value"] == 1.0
    assert db.get_log("c1") == b"line\n"


def test_lineage_edges_and_walks(db):
    db.store_lineage(
        [
            {
                "producer_uid": "a",
                "output": "data",
                "artifact_key": "data",
                "consumer_uid": "b",
                "consumer_param": "data",
                "pipeline_uid": "pipe",
            },
            {
                "producer_uid": "b",
                "output": "model",
                "artifact_key": "model",
                "consumer_uid": "c",
                "consumer_param": "model",
                "pipeline_uid": "pipe",
            },
            {
                "producer_uid": "x",
                "output": "o",
                "artifact_key": "o",
                "consumer_uid": "y",
                "pipeline_uid": "other",
            },
        ]
    )
    db.store_lineage([])
    assert len(db.list_lineage(run_uid="b")) == 2
    assert len(db.list_lineage(pipeline_uid="pipe")) == 2
    assert [e["consumer_uid"] for e in db.list_lineage(artifact_key="model")] == ["c"]
    up = db.list_lineage(run_uid="c", upstream=True)
    assert sorted(e["producer_uid"] for e in up) == ["a", "b"]
    down = db.list_lineage(run_uid="a", downstream=True)
    assert sorted(e["consumer_uid"] for e in down) == ["b", "c"]
    assert [e["consumer_uid"] for e in db.list_lineage(artifact_key="data", downstream=True)] == [
        "b",
        "c",
    ]


def test_store_runs_writes_runs_and_lineage_in_one_transaction(db):
    edge = {"producer_uid": "h1", "output": "x", "consumer_uid": "h2", "pipeline_uid": "p"}
    db.store_runs([_run("h1"), _run("h2", labels={"cached_from": "o"})], [edge])
    assert db.read_run("h2", "p")["metadata"]["labels"] == {"cached_from": "o"}
    assert _uids(db.list_runs(labels={"cached_from": "o"})) == ["h2"]
    assert [e["consumer_uid"] for e in db.list_lineage(pipeline_uid="p")] == ["h2"]
    with pytest.raises(KeyError):  # the second run is broken: nothing of the batch lands
        db.store_runs([_run("h3"), {"spec": {}}], [{"producer_uid": "h3", "pipeline_uid": "q"}])
    with pytest.raises(NotFoundError):
        db.read_run("h3", "p")
    assert db.list_lineage(pipeline_uid="q") == []


# -- several writers ------------------------------------------------------------------------

RUNS_PER_WRITER = 300


def _writer(worker: int, barrier) -> None:
    from mlflowlet import new_runner

    def handler(context, i: int):
        context.log_result("i", i)

    runner = new_runner()
    barrier.wait(timeout=60)
    for i in range(RUNS_PER_WRITER):
        runner.run(handler=handler, params={"i": i}, labels={"worker": worker})


def test_four_processes_writing_at_once_lose_nothing(dbdir):
    # spawn, not fork: forking a test process that already runs threads can inherit held locks
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_writer, args=(w, barrier)) for w in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    db = get_run_db()
    runs = db.list_runs()
    assert len(runs) == 4 * RUNS_PER_WRITER
    assert len({r["metadata"]["uid"] for r in runs}) == 4 * RUNS_PER_WRITER
    assert {r["status"]["state"] for r in runs} == {"completed"}
    for worker in range(4):
        mine = db.list_runs(labels=f"worker={worker}")
        assert sorted(r["status"]["results"]["i"] for r in mine) == list(range(RUNS_PER_WRITER))


def test_runs_from_the_runtime_are_listed_with_their_results(dbdir):
    def handler(context, p1: int = 1):
        context.log_result("accuracy", p1 * 2)

    run = new_runner().run(handler=handler, params={"p1": 4})
    listed = get_run_db().list_runs(name="handler")
    assert _uids(listed) == [run.uid]
    assert listed[0]["status"]["results"] == {"accuracy": 8}
    assert listed.objects()[0].state == "completed"


def test_name_filter_with_tilde_matches_a_case_insensitive_substring(tmp_path):
    from mlflowlet.db import get_run_db
    from mlflowlet.model import RunObject

    db = get_run_db(str(tmp_path))
    for uid, name in (("u1", "train"), ("u2", "Train_Hyper"), ("u3", "evaluate"), ("u4", "a%b")):
        run = RunObject()
        run.metadata.uid, run.metadata.name, run.metadata.project = uid, name, "p"
        db.store_run(run.to_dict(), uid, "p")
    assert {r["metadata"]["uid"] for r in db.list_runs("train")} == {"u1"}
    assert {r["metadata"]["uid"] for r in db.list_runs("~train")} == {"u1", "u2"}
    assert {r["metadata"]["uid"] for r in db.list_runs("~%")} == {"u4"}  # % is literal
    db.store_artifact("chart.html", {"kind": "chart", "uri": "/x"}, uid="v1", project="p")
    db.store_artifact("model", {"kind": "model", "uri": "/y"}, uid="v2", project="p")
    assert [a["key"] for a in db.list_artifacts("~ch", tag="*")] == ["chart.html"]
    assert [a["key"] for a in db.list_artifacts("ch", tag="*")] == ["chart.html"]  # a prefix
    assert db.list_artifacts("=ch", tag="*") == [] and db.list_artifacts("hart", tag="*") == []


def test_get_log_accepts_offset_and_size_positionally(tmp_path):
    from mlflowlet.db import get_run_db

    db = get_run_db(str(tmp_path))
    db.store_log("u1", "p", b"0123456789")
    assert db.get_log("u1", 0, 4) == b"0123"
    assert db.get_log("u1", 2) == b"23456789"
    assert db.get_log("u1", "p", 3, 2) == b"34"
    assert db.get_log("u1", offset=5, size=2) == b"56"


def test_listed_artifact_versions_carry_their_current_tags(tmp_path):
    from mlflowlet.db import get_run_db

    db = get_run_db(str(tmp_path))
    db.store_artifact("model", {"kind": "model", "uri": "/v1"}, uid="v1", project="p", tag="prod")
    db.store_artifact("model", {"kind": "model", "uri": "/v2"}, uid="v2", project="p")
    versions = {a["uid"]: a["tags"] for a in db.list_artifacts("model", tag="*")}
    assert versions == {"v1": ["prod"], "v2": ["latest"]}
    assert "latest" in db.list_artifacts("model").to_text()


def test_a_version_1_db_gets_the_top_level_runs_index(tmp_path):
    path = tmp_path / "v1.db"
    db = SQLiteRunDB(str(path))
    db.store_run({"metadata": {"uid": "u1"}, "status": {}}, "u1")
    db.close()
    conn = sqlite3.connect(path)
    conn.execute("DROP INDEX runs_top")
    conn.execute("UPDATE schema_version SET version=1")
    conn.commit()
    conn.close()
    db = SQLiteRunDB(str(path))
    plan = db._read(
        "EXPLAIN QUERY PLAN SELECT body FROM runs WHERE iteration=0"
        " ORDER BY start_time DESC LIMIT 50"
    )
    assert "runs_top" in str(plan)
    assert db.read_run("u1")["metadata"]["uid"] == "u1"


def test_opening_waits_while_another_process_sets_up_a_fresh_file():
    # Processes opening a new DB at once can get "database is locked" before any busy
    # handler runs (the switch to WAL, the schema); opening retries instead of failing.
    from mlflowlet.db.sqlite import _retry_while_busy

    attempts = []

    def set_up():
        attempts.append(1)
        if len(attempts) < 3:
            raise sqlite3.OperationalError("database is locked")
        return 7

    assert _retry_while_busy(set_up) == 7
    assert len(attempts) == 3

    def failing(text):
        def set_up():
            attempts.append(1)
            raise sqlite3.OperationalError(text)

        return set_up

    attempts.clear()
    with pytest.raises(sqlite3.OperationalError, match="locked"):  # gives up after its patience
        _retry_while_busy(failing("database is locked"), patience=0.05)
    assert len(attempts) > 1
    attempts.clear()
    with pytest.raises(sqlite3.OperationalError, match="no such table"):  # others: no retry
        _retry_while_busy(failing("no such table: x"))
    assert len(attempts) == 1
