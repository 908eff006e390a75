"""The shared SQL layer (``db/_sql.py``) seen through an SQLite run DB: indexed columns of sparse
runs, label rows kept in step with run bodies, combined label filters, lineage walks both ways,
schema upgrades, and the messages of what is missing."""

from __future__ import annotations

import pytest

from mlflowlet.db.sqlite import SCHEMA_VERSION, SQLiteRunDB
from mlflowlet.errors import NotFoundError


@pytest.fixture
def db(tmp_path):
    database = SQLiteRunDB(str(tmp_path / "layer.db"))
    yield database
    database.close()


def _run(uid, labels=None, **status):
    return {"metadata": {"uid": uid, "project": "p", "iteration": 0, "labels": labels or {}},
            "status": status}


def _uids(runs):
    return sorted(r["metadata"]["uid"] for r in runs)


def test_a_run_without_name_state_times_or_parents_indexes_empty_columns(db):
    db.store_run({"metadata": {"uid": "bare", "project": "p"}}, "bare", "p")
    db.store_run(_run("full", state="running", start_time="t0", last_update="t1"), "full", "p")
    rows = db._read("SELECT uid, name, state, start_time, last_update, parent_uid, pipeline_uid"
                    " FROM runs ORDER BY uid")
    assert rows == [("bare", "", "", "", "", "", ""), ("full", "", "running", "t0", "t1", "", "")]
    assert _uids(db.list_runs(parent_uid="")) == ["bare", "full"]


def test_relabelling_a_run_keeps_the_labels_that_did_not_change(db):
    db.store_run(_run("r", {"a": "1", "b": "2"}), "r", "p")
    db.store_run(_run("r", {"a": "1", "b": "3", "c": "4"}), "r", "p")
    assert _uids(db.list_runs(labels="a=1")) == ["r"]
    assert _uids(db.list_runs(labels="b=3")) == ["r"] and db.list_runs(labels="b=2") == []
    assert sorted(db._read("SELECT key, value FROM run_labels")) == [
        ("a", "1"), ("b", "3"), ("c", "4")]


def test_label_rows_are_written_only_where_they_changed(db):
    statements = []
    db._conn.set_trace_callback(statements.append)
    db.store_run(_run("r", {"a": "1", "b": "2"}), "r", "p")
    written = [s.split(" (")[0] for s in statements if "run_labels" in s]
    assert written == ["INSERT INTO run_labels"] * 2  # a new run: nothing to delete first
    statements.clear()
    db.store_run(_run("r", {"a": "1", "c": "4"}), "r", "p")  # b goes, c comes, a stays
    db._conn.set_trace_callback(None)
    assert [s for s in statements if s.startswith("DELETE FROM run_labels")] == [
        "DELETE FROM run_labels WHERE run_id=1 AND key='b'"]
    assert [s for s in statements if s.startswith("INSERT INTO run_labels")] == [
        "INSERT INTO run_labels (run_id, key, value) VALUES (1,'c','4')"]
    assert db.list_runs(labels="b=2") == [] and _uids(db.list_runs(labels="c=4")) == ["r"]


def test_every_equality_filter_is_checked_whichever_drives_the_query(db):
    db.store_run(_run("match", {"a": "1", "b": "2"}), "match", "p")
    db.store_run(_run("other-b", {"a": "1", "b": "3"}), "other-b", "p")
    db.store_run(_run("other-a", {"a": "9", "b": "2"}), "other-a", "p")
    for extra in range(3):  # make either filter the more selective one
        db.store_run(_run(f"a{extra}", {"a": "1"}), f"a{extra}", "p")
    assert _uids(db.list_runs(labels=["a=1", "b=2"])) == ["match"]
    assert _uids(db.list_runs(labels=["b=2", "a=1"])) == ["match"]
    assert _uids(db.list_runs(labels=["a=1", "a=1", "b=2"])) == ["match"]


def test_artifact_label_filters_by_substring(db):
    db.store_artifact("m1", {"uri": "/a", "labels": {"team": "vision-a"}}, uid="u1", project="p")
    db.store_artifact("m2", {"uri": "/b", "labels": {"team": "nlp"}}, uid="u2", project="p")
    db.store_artifact("m3", {"uri": "/c", "labels": {}}, uid="u3", project="p")
    found = db.list_artifacts(project="p", labels="team~=vision")
    assert [a["key"] for a in found] == ["m1"]
    assert sorted(a["key"] for a in db.list_artifacts(project="p", labels="team~=")) == [
        "m1", "m2"]


def _edge(producer, consumer):
    return {"project": "p", "pipeline_uid": "pipe", "producer_uid": producer, "output": "o",
            "uri": f"/{producer}", "hash": "h", "consumer_uid": consumer, "consumer_param": "x"}


def test_lineage_walks_up_and_down_at_once_without_looping(db):
    db.store_lineage([_edge("a", "b"), _edge("b", "c"), _edge("c", "d")])
    both = db.list_lineage(run_uid="b", upstream=True, downstream=True)
    assert sorted((e["producer_uid"], e["consumer_uid"]) for e in both) == [
        ("a", "b"), ("b", "c"), ("c", "d")]
    assert [(e["producer_uid"], e["consumer_uid"])
            for e in db.list_lineage(run_uid="c", upstream=True)] == [("b", "c"), ("a", "b")]


def test_an_older_schema_is_upgraded_when_opened(tmp_path):
    path = str(tmp_path / "old.db")
    SQLiteRunDB(path).close()
    old = SQLiteRunDB(path)
    old._transact(lambda conn: conn.execute("UPDATE schema_version SET version=?",
                                            (SCHEMA_VERSION - 1,)))
    old.close()
    again = SQLiteRunDB(path)
    assert again._read("SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    again.close()


def test_missing_runs_and_artifacts_are_named_exactly(db):
    with pytest.raises(NotFoundError) as err:
        db.read_run("nope")
    assert err.value.args[0] == "run nope (iteration 0) not found"
    with pytest.raises(NotFoundError) as err:
        db.read_artifact("model", project="p")
    assert err.value.args[0] == "artifact model:latest not found in project 'p'"
    with pytest.raises(NotFoundError) as err:
        db.del_artifact("model", tag="v2", project="p")
    assert err.value.args[0] == "artifact model:v2 not found in project 'p'"
    with pytest.raises(NotFoundError) as err:
        db.del_artifact("model", uid="abc")
    assert err.value.args[0] == "artifact model@abc not found in project '*'"


def test_deleting_a_version_by_uid_and_iteration_keeps_the_others(db):
    for it in (1, 2):
        db.store_artifact("m", {"uri": f"/m{it}"}, uid="u", iter=it, project="p")
    db.store_artifact("m", {"uri": "/q"}, uid="u", iter=1, project="q")
    assert db.del_artifact("m", uid="u", iter=1, project="p") == 1
    assert sorted(a["iteration"] for a in db.list_artifacts(name="m", project="p", tag="*")) == [2]
    assert len(db.list_artifacts(name="m", project="q", tag="*")) == 1


def test_a_missing_iteration_of_a_version_is_named_and_project_defaults_to_the_record(db):
    for it in (1, 2):
        db.store_artifact("m", {"uri": f"/m{it}"}, uid="u", iter=it, project="p")
    with pytest.raises(NotFoundError):
        db.del_artifact("m", uid="u", iter=3, project="p")
    assert db.del_artifact("m", uid="u", iter=2) == 1  # found in its own project
    assert [a["iteration"] for a in db.list_artifacts(name="m", project="p", tag="*")] == [1]


@pytest.mark.parametrize(("pattern", "names"), [
    ("~a_b", ["a_b"]), ("~50%", ["50%"]), ("~a\\b", ["a\\b"]), ("~A_B", ["a_b"]),
])
def test_substring_name_filters_take_like_wildcards_literally(db, pattern, names):
    for uid, name in (("u1", "a_b"), ("u2", "axb"), ("u3", "50%"), ("u4", "500"),
                      ("u5", "a\\b"), ("u6", "a\\\\b")):
        db.store_run({"metadata": {"uid": uid, "name": name, "project": "p"}}, uid, "p")
    assert sorted(r["metadata"]["name"] for r in db.list_runs(name=pattern)) == names


# --- bulk deletes, artifact version ids and commit_run's defaults, exactly ----------------------


def test_bulk_deletes_without_a_filter_are_refused_naming_the_filters(db):
    from mlflowlet.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        db.del_runs()
    assert str(err.value) == ("del_runs() needs a filter (name, project, labels, state, "
                              "days_ago); refusing to delete every run")
    with pytest.raises(ConfigError) as err:
        db.del_artifacts()
    assert str(err.value) == ("del_artifacts() needs a filter (name, project, tag, labels); "
                              "refusing to delete every artifact")


def test_del_runs_deletes_every_iteration_of_the_projects_matching_runs_only(db):
    for project in ("p", "q"):
        uid = f"sweep-{project}"
        for it in (0, 1, 2):
            run = {"metadata": {"uid": uid, "name": "sweep", "project": project,
                                "iteration": it, "labels": {}}, "status": {"state": "completed"}}
            db.store_run(run, uid, project, it)
    assert db.del_runs(name="sweep", project="p") == 1  # one run (uid), with its iterations
    assert db.list_runs(project="p", iter=True) == []
    assert len(db.list_runs(project="q", iter=True)) == 3


def test_del_artifacts_by_key_tag_and_project_with_iterations(db):
    def art(uid, it=0):
        return {"kind": "model", "updated": "2024-01-01T00:00:00", "uid": uid, "iteration": it}

    db.store_artifact("m", art("v1"), tag="t1", project="p")
    db.store_artifact("m", art("v2", 3), iter=3, tag="t2", project="p")
    db.store_artifact("m", art("v3"), tag="t1", project="q")
    db.store_artifact("other", art("o1"), tag="t1", project="p")
    assert db.del_artifacts(name="m", tag="t2", project="p") == 1
    assert [a["uid"] for a in db.list_artifacts("m", project="p", tag="*")] == ["v1"]
    assert db.del_artifacts(name="m", project="p") == 1
    assert db.list_artifacts("m", project="p", tag="*") == []
    assert [a["uid"] for a in db.list_artifacts("m", project="q", tag="*")] == ["v3"]
    assert [a["key"] for a in db.list_artifacts(project="p", tag="*")] == ["other"]


def test_artifact_version_ids_come_from_the_uid_the_hash_or_the_clock(db):
    db.store_artifact("h", {"hash": "sha256:0123456789abcdef0123"}, project="p")
    assert db.read_artifact("h", project="p")["uid"] == "0123456789abcdef"
    db.store_artifact("c", {"iteration": 2, "tree": "pipe1"}, project="p")  # linked: no hash
    stored = db.read_artifact("c", project="p", iter=2)
    assert stored["uid"].isdigit() and (stored["iteration"], stored["tree"]) == (2, "pipe1")
    db.store_artifact("t", {"tree": "from-body"}, project="p", tree="given")
    assert db.read_artifact("t", project="p")["tree"] == "given"


def test_commit_run_files_artifacts_metrics_and_log_under_the_runs_project_and_iteration(db):
    run = {"metadata": {"uid": "r1", "name": "r", "project": "p", "iteration": 2, "labels": {}},
           "status": {"state": "completed"}}
    arts = [{"key": "a", "uid": "ua", "tag": "t1"}, {"key": "b", "uid": "ub", "tree": "pipe"}]
    db.commit_run(run, arts, [("loss", 1, 0.5, "2024-01-01T00:00:00")], b"hello\n")
    a = db.read_artifact("a", tag="t1", project="p", iter=2)
    assert (a["uid"], a["tree"], a["iteration"]) == ("ua", "r1", 2)
    assert db.read_artifact("b", project="p", iter=2)["tree"] == "pipe"
    assert [(m["key"], m["value"]) for m in db.get_metrics("r1", iter=2, project="p")] == [
        ("loss", 0.5)]
    assert db.get_log("r1", project="p") == b"hello\n"
    bare = {"metadata": {"uid": "r2", "name": "r"}, "status": {"state": "completed"}}
    db.commit_run(bare, [{"key": "c", "uid": "uc"}])
    c = db.read_artifact("c", project="")
    assert (c["uid"], c["iteration"], c["project"], c["tree"]) == ("uc", 0, "", "r2")
