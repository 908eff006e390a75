"""One run-DB contract, run against SQLiteRunDB and against HTTPRunDB talking to a real server.

The HTTP case starts uvicorn once per module on 127.0.0.1 (free port, readiness by polling
``/health``) and gives each test a fresh SQLite store behind it. The PostgreSQL case runs on a
new database of a throwaway cluster (``tests/db/conftest.py``), and skips, saying why, where the
PostgreSQL binaries or psycopg are missing.
"""

from __future__ import annotations

import json
import math

import pytest

from mlflowlet.db._json import decode
from mlflowlet.db.sqlite import SQLiteRunDB
from mlflowlet.errors import ConfigError, NotFoundError
from mlflowlet.model import RunObject

pytest.importorskip("fastapi")
pytest.importorskip("httpx")


@pytest.fixture(scope="module")
def http_server():
    import tempfile

    from mlflowlet.server._uvicorn import ThreadedServer
    from mlflowlet.server.app import create_app

    holder = tempfile.mkdtemp(prefix="mlflowlet-contract-")
    app = create_app(SQLiteRunDB(f"{holder}/boot.db"), token="contract-token", ui=False)
    with ThreadedServer(app) as server:
        yield app, server


def _backends() -> list:
    return ["sqlite", "http", "postgres"]


@pytest.fixture(params=_backends())
def rundb(request, tmp_path):
    if request.param == "sqlite":
        db = SQLiteRunDB(str(tmp_path / "contract.db"))
        yield db
        db.close()
    elif request.param == "http":
        from mlflowlet.db.http import HTTPRunDB

        app, server = request.getfixturevalue("http_server")
        app.state.db = SQLiteRunDB(str(tmp_path / "server.db"))
        yield HTTPRunDB(server.url, token="contract-token", retries=0)
    else:
        yield request.getfixturevalue("postgres_rundb")


def make_run(uid: str, name: str = "train", project: str = "p", state: str = "completed",
             labels: dict | None = None, start: str = "2024-01-01T00:00:00+00:00",
             iteration: int = 0, **spec) -> dict:
    run = RunObject()
    run.metadata.uid, run.metadata.name, run.metadata.project = uid, name, project
    run.metadata.iteration = iteration
    run.metadata.labels = dict(labels or {})
    run.status.state, run.status.start_time = state, start
    run.status.results = {"accuracy": 0.5 + iteration / 10}
    for key, value in spec.items():
        setattr(run.spec, key, value)
    return run.to_dict()


def store(db, run: dict) -> None:
    meta = run["metadata"]
    db.store_run(run, meta["uid"], meta["project"], meta["iteration"])


# runs -------------------------------------------------------------------------------------------
def test_store_then_read_returns_the_same_run(rundb):
    run = make_run("u1", labels={"team": "a"})
    store(rundb, run)
    got = rundb.read_run("u1", "p")
    assert got["metadata"]["labels"] == {"team": "a"}
    assert got["status"]["results"] == {"accuracy": 0.5}
    assert got == rundb.read_run("u1")


def test_store_replaces_an_existing_run(rundb):
    store(rundb, make_run("u1", state="running"))
    store(rundb, make_run("u1", state="completed"))
    assert rundb.read_run("u1", "p")["status"]["state"] == "completed"
    assert len(rundb.list_runs(project="p")) == 1


def test_read_unknown_run_raises_not_found_naming_the_uid(rundb):
    with pytest.raises(NotFoundError, match="missing-uid"):
        rundb.read_run("missing-uid", "p")


def test_update_run_sets_dotted_keys(rundb):
    store(rundb, make_run("u1", state="running"))
    rundb.update_run({"status.state": "error", "status.error": "boom"}, "u1", "p")
    got = rundb.read_run("u1", "p")
    assert (got["status"]["state"], got["status"]["error"]) == ("error", "boom")


def test_update_run_without_a_project_updates_the_run_where_it_is(rundb):
    store(rundb, make_run("u1", state="running", labels={"team": "a"}))
    rundb.update_run({"status.state": "completed", "metadata.labels.team": "b"}, "u1")
    (only,) = rundb.list_runs(uid="u1")  # updated in project 'p', not copied into project ''
    assert (only["metadata"]["project"], only["status"]["state"]) == ("p", "completed")
    assert [r["metadata"]["uid"] for r in rundb.list_runs(labels="team=b")] == ["u1"]
    assert rundb.list_runs(labels="team=a") == []
    with pytest.raises(NotFoundError, match="run nope .iteration 0. not found in project 'p'"):
        rundb.update_run({"status.state": "error"}, "nope", "p")


def test_list_runs_filters_by_name_project_state_and_labels(rundb):
    store(rundb, make_run("a", name="train", labels={"team": "x", "size": "large"}))
    store(rundb, make_run("b", name="train", state="error", labels={"team": "y"}))
    store(rundb, make_run("c", name="eval", project="q", labels={"team": "x"}))
    uids = lambda runs: sorted(r["metadata"]["uid"] for r in runs)  # noqa: E731
    assert uids(rundb.list_runs(name="train")) == ["a", "b"]
    assert uids(rundb.list_runs(project="q")) == ["c"]
    assert uids(rundb.list_runs(state="error")) == ["b"]
    assert uids(rundb.list_runs(labels=["team=x"])) == ["a", "c"]
    assert uids(rundb.list_runs(labels={"team": "x"})) == ["a", "c"]
    assert uids(rundb.list_runs(labels=["team!=x"])) == ["b"]
    assert uids(rundb.list_runs(labels=["size~=arg"])) == ["a"]
    assert uids(rundb.list_runs(labels=["size"])) == ["a"]
    assert uids(rundb.list_runs(labels="team=x", name="eval")) == ["c"]


def test_list_runs_sorts_newest_first_and_limits_with_last(rundb):
    for i in range(5):
        store(rundb, make_run(f"r{i}", start=f"2024-01-0{i + 1}T00:00:00+00:00"))
    runs = rundb.list_runs(project="p", sort=True)
    assert [r["metadata"]["uid"] for r in runs] == ["r4", "r3", "r2", "r1", "r0"]
    assert [r["metadata"]["uid"] for r in rundb.list_runs(last=2)] == ["r4", "r3"]


def test_list_runs_hides_iterations_unless_asked(rundb):
    store(rundb, make_run("h"))
    for i in (1, 2):
        store(rundb, make_run("h", iteration=i, parent_uid="h"))
    assert len(rundb.list_runs(uid="h")) == 1
    assert sorted(r["metadata"]["iteration"] for r in rundb.list_runs(uid="h", iter=True)) == [
        0, 1, 2]
    assert rundb.read_run("h", "p", 2)["status"]["results"]["accuracy"] == pytest.approx(0.7)


def test_list_runs_filters_by_pipeline_and_parent(rundb):
    store(rundb, make_run("pipe"))
    store(rundb, make_run("s1", pipeline_uid="pipe"))
    store(rundb, make_run("s2", pipeline_uid="pipe", parent_uid="pipe"))
    assert sorted(r["metadata"]["uid"] for r in rundb.list_runs(pipeline_uid="pipe")) == [
        "s1", "s2"]
    assert [r["metadata"]["uid"] for r in rundb.list_runs(parent_uid="pipe")] == ["s2"]


def test_list_runs_unknown_filter_is_a_config_error(rundb):
    with pytest.raises(ConfigError, match="colour"):
        rundb.list_runs(colour="red")


def test_bad_label_filter_is_a_config_error(rundb):
    with pytest.raises(ConfigError, match="no key"):
        rundb.list_runs(labels=["=v"])


def test_del_run_removes_every_iteration_or_one(rundb):
    for i in (0, 1, 2):
        store(rundb, make_run("d", iteration=i))
    rundb.del_run("d", "p", iter=2)
    assert len(rundb.list_runs(uid="d", iter=True)) == 2
    rundb.del_run("d", "p")
    assert len(rundb.list_runs(uid="d", iter=True)) == 0


def test_del_run_of_one_iteration_takes_its_metrics_and_keeps_the_others(rundb):
    # a map item's failed attempt is moved out this way: the item's history must not keep it
    for i in (0, 1, 2):
        store(rundb, make_run("m", iteration=i))
        rundb.store_metrics("m", "p", i, [("loss", i, i / 10, 1.0)])
    rundb.store_log("m", "p", b"shared output")
    rundb.del_run("m", "p", iter=2)
    assert rundb.get_metrics("m", iter=2, project="p") == []
    assert [r["value"] for r in rundb.get_metrics("m", iter=1, project="p")] == [0.1]
    assert rundb.get_log("m", "p") == b"shared output"  # the run's, kept for the others


def test_del_runs_deletes_matching_and_refuses_an_empty_filter(rundb):
    store(rundb, make_run("a", state="error"))
    store(rundb, make_run("b", state="completed"))
    with pytest.raises(ConfigError, match="needs a filter"):
        rundb.del_runs()
    assert rundb.del_runs(state="error") == 1
    assert [r["metadata"]["uid"] for r in rundb.list_runs()] == ["b"]


# artifacts --------------------------------------------------------------------------------------
def art(key: str, h: str, **kw) -> dict:
    return {"key": key, "kind": kw.pop("kind", "artifact"), "hash": h, "uri": f"/x/{h}",
            "labels": kw.pop("labels", {}), **kw}


def test_store_artifact_moves_latest_and_keeps_tags(rundb):
    rundb.store_artifact("model", art("model", "h1"), uid="v1", project="p", tag="prod")
    rundb.store_artifact("model", art("model", "h2"), uid="v2", project="p")
    assert rundb.read_artifact("model", project="p")["hash"] == "h2"
    assert rundb.read_artifact("model", tag="prod", project="p")["hash"] == "h1"
    assert rundb.read_artifact("model", project="p", uid="v1")["hash"] == "h1"
    assert rundb.list_artifact_tags("p") == ["latest", "prod"]


def test_read_unknown_artifact_raises_not_found(rundb):
    with pytest.raises(NotFoundError, match="nothing"):
        rundb.read_artifact("nothing", project="p")


def test_list_artifacts_latest_all_versions_kind_and_labels(rundb):
    rundb.store_artifact("data", art("data", "d1", kind="dataset"), uid="1", project="p")
    rundb.store_artifact("data", art("data", "d2", kind="dataset"), uid="2", project="p")
    rundb.store_artifact("loss-plot", art("loss-plot", "c1", kind="chart",
                                           labels={"stage": "train"}), uid="3", project="p")
    assert sorted(a["key"] for a in rundb.list_artifacts(project="p")) == ["data", "loss-plot"]
    assert len(rundb.list_artifacts(project="p", tag="*")) == 3
    assert [a["key"] for a in rundb.list_artifacts(project="p", kind="chart")] == ["loss-plot"]
    assert [a["hash"] for a in rundb.list_artifacts(labels=["stage=train"])] == ["c1"]
    assert [a["hash"] for a in rundb.list_artifacts(name="data")] == ["d2"]


def test_del_artifact_and_del_artifacts(rundb):
    rundb.store_artifact("a", art("a", "1"), uid="1", project="p")
    rundb.store_artifact("a", art("a", "2"), uid="2", project="p")
    rundb.store_artifact("b", art("b", "3"), uid="3", project="p")
    assert rundb.del_artifact("a", project="p", uid="1") == 1
    assert len(rundb.list_artifacts(name="a", tag="*")) == 1
    with pytest.raises(ConfigError, match="needs a filter"):
        rundb.del_artifacts()
    assert rundb.del_artifacts(project="p") == 2
    assert len(rundb.list_artifacts(project="p", tag="*")) == 0


def test_iteration_versions_list_and_delete_one_by_one(rundb):
    for it in (1, 2):  # a sweep: one version per iteration, then the parent's link to the best
        rundb.store_artifact("m", art("m", f"h{it}"), uid=f"v{it}", iter=it, project="p")
    rundb.store_artifact("m", art("m", "h2", link_iteration=2), uid="v2", iter=0, project="p")
    assert rundb.read_artifact("m", project="p")["link_iteration"] == 2
    assert [a["hash"] for a in rundb.list_artifacts("m", project="p", tag="*", iter=1)] == ["h1"]
    assert [a["iteration"] for a in rundb.list_artifacts("m", project="p", tag="*", iter=0)] == [0]
    assert len(rundb.list_artifacts("m", project="p", tag="*")) == 3
    assert rundb.del_artifact("m", project="p", uid="v2", iter=2) == 1  # the link stays
    assert [a["iteration"] for a in rundb.list_artifacts("m", project="p", tag="*")] == [0, 1]


# logs and metrics -------------------------------------------------------------------------------
def test_logs_append_replace_offset_and_size(rundb):
    rundb.store_log("u", "p", b"hello ")
    rundb.store_log("u", "p", "world\n")
    assert rundb.get_log("u", "p") == b"hello world\n"
    assert rundb.get_log("u", "p", offset=6) == b"world\n"
    assert rundb.get_log("u", "p", offset=6, size=3) == b"wor"
    rundb.store_log("u", "p", b"\xff\x00binary", append=False)
    assert rundb.get_log("u", "p") == b"\xff\x00binary"
    assert rundb.get_log("nobody", "p") == b""


def test_metrics_keep_order_and_filter_by_key(rundb):
    rundb.store_metrics("u", "p", 0, [("loss", 0, 0.9, 1.0), ("acc", 0, 0.1, 1.0)])
    rundb.store_metrics("u", "p", 0, [("loss", 1, 0.5, 2.0)])
    rundb.store_metrics("u", "p", 1, [("loss", 0, 7.0, 3.0)])
    assert [m["value"] for m in rundb.get_metrics("u", "loss")] == [0.9, 0.5]
    assert [m["key"] for m in rundb.get_metrics("u")] == ["loss", "acc", "loss"]
    assert rundb.get_metrics("u", "loss", iter=1) == [
        {"key": "loss", "step": 0, "value": 7.0, "time": 3.0}]


# lineage ----------------------------------------------------------------------------------------
def edge(producer: str, consumer: str, key: str, pipeline: str = "pipe") -> dict:
    return {"project": "p", "pipeline_uid": pipeline, "producer_uid": producer,
            "producer_iter": 0, "output": key, "artifact_key": key, "artifact_uri": f"/a/{key}",
            "artifact_hash": "h", "consumer_uid": consumer, "consumer_param": key,
            "time": "2024-01-01T00:00:00+00:00"}


def test_lineage_lists_edges_and_walks_up_and_down(rundb):
    rundb.store_lineage([edge("prep", "train", "data"), edge("train", "eval", "model"),
                         edge("other", "x", "z", pipeline="p2")])
    assert len(rundb.list_lineage(pipeline_uid="pipe")) == 2
    assert [e["consumer_uid"] for e in rundb.list_lineage(run_uid="prep")] == ["train"]
    up = rundb.list_lineage(run_uid="eval", upstream=True)
    assert {e["producer_uid"] for e in up} == {"prep", "train"}
    down = rundb.list_lineage(artifact_key="data", downstream=True)
    assert {e["consumer_uid"] for e in down} == {"train", "eval"}
    up_from_model = rundb.list_lineage(artifact_key="model", upstream=True)
    assert {e["producer_uid"] for e in up_from_model} == {"prep", "train"}
    assert rundb.list_lineage(run_uid="prep")[0]["artifact_uri"] == "/a/data"


# one-shot commit --------------------------------------------------------------------------------
def test_commit_run_writes_run_artifacts_metrics_and_log(rundb):
    run = make_run("c1", state="running")
    rundb.commit_run(run, [art("out", "o1", uid="o1")], [("loss", 0, 0.3, 1.0)], b"line\n")
    run["status"]["state"] = "completed"
    rundb.commit_run(run, [], [("loss", 1, 0.2, 2.0)], b"done\n")
    assert rundb.read_run("c1", "p")["status"]["state"] == "completed"
    assert rundb.read_artifact("out", project="p")["tree"] == "c1"
    assert [m["value"] for m in rundb.get_metrics("c1", "loss")] == [0.3, 0.2]
    assert rundb.get_log("c1", "p") == b"line\ndone\n"


# numbers ----------------------------------------------------------------------------------------
NAN, INF = float("nan"), float("inf")


def _same(a, b) -> bool:
    """Equality where NaN equals NaN (and nothing else does)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _raw_bodies(rundb, request) -> list[str]:
    """The run bodies as the store keeps them (the server's JSON for HTTP)."""
    if isinstance(rundb, SQLiteRunDB):
        return [r[0] for r in rundb._read("SELECT body FROM runs")]
    if request.node.callspec.params["rundb"] == "http":
        import httpx

        resp = httpx.get(f"{rundb.url}/api/v1/runs", headers=rundb._headers)
        return [resp.text]
    return [r[0] for r in rundb._read("SELECT body::jsonb::text FROM runs")]  # jsonb takes it


def test_nan_and_infinities_round_trip_exactly_as_strict_json(rundb, request):
    values = {"nan": NAN, "inf": INF, "ninf": -INF, "list": [NAN, 1.5, -INF],
              "looks_tagged": {"$float": "NaN"}, "dict_tag": {"$dict": {"$float": "Infinity"}},
              "text": "NaN", "none": None}
    run = make_run("n1")
    run["status"]["results"] = dict(values)
    run["spec"]["params"] = {"lr": NAN, "limit": INF}
    run["status"]["metrics"] = {"loss": -INF}
    rundb.commit_run(run, [art("scores", "s1", uid="s1", extra={"auc": NAN, "max": INF})],
                     [("loss", 0, NAN, 1.0), ("loss", 1, INF, 2.0), ("loss", 2, -INF, 3.0),
                      ("loss", 3, 0.25, 4.0)])
    for got in (rundb.read_run("n1", "p"), rundb.list_runs(uid="n1")[0]):
        assert _same(got["status"]["results"], values)
        assert _same(got["spec"]["params"], {"lr": NAN, "limit": INF})
        assert got["status"]["metrics"] == {"loss": -INF}
    series = [m["value"] for m in rundb.get_metrics("n1", "loss")]
    assert math.isnan(series[0]) and series[1:] == [INF, -INF, 0.25]
    for got in (rundb.read_artifact("scores", project="p"), rundb.list_artifacts("scores")[0]):
        assert math.isnan(got["extra"]["auc"]) and got["extra"]["max"] == INF
    for text in _raw_bodies(rundb, request):  # strict JSON (no NaN tokens), values tagged
        doc = json.loads(text, parse_constant=lambda token: pytest.fail(f"{token} token"))
        doc = doc["runs"][0] if "runs" in doc else doc
        assert doc["status"]["results"]["nan"] == {"$float": "NaN"}
        assert doc["spec"]["params"]["limit"] == {"$float": "Infinity"}
        assert _same(decode(doc)["status"]["results"], values)


# filters ----------------------------------------------------------------------------------------
def test_a_label_filter_splits_at_the_first_equals_sign(rundb):
    store(rundb, make_run("x", labels={"k": "a!=b"}))
    store(rundb, make_run("y", labels={"k": "a"}))
    store(rundb, make_run("z", labels={"k": "b", "k=a!": "b"}))
    store(rundb, make_run("w", labels={"k": "x=y~=z"}))
    uids = lambda **kw: sorted(r["metadata"]["uid"] for r in rundb.list_runs(**kw))  # noqa: E731
    assert uids(labels="k=a!=b") == ["x"]
    assert uids(labels=["k!=a!=b"]) == ["w", "y", "z"]
    assert uids(labels="k=x=y~=z") == ["w"]
    assert uids(labels="k~==y~") == ["w"]
    assert uids(labels={"k": "a!=b"}) == ["x"]
    assert uids(labels="k=") == []
    with pytest.raises(ConfigError, match="'='"):
        rundb.list_runs(labels={"k=a": "b"})
    assert rundb.del_runs(labels="k=a!=b") == 1
    assert uids(labels="k") == ["w", "y", "z"]


def test_artifact_label_filters_use_the_same_grammar(rundb):
    rundb.store_artifact("m1", art("m1", "1", labels={"k": "a!=b"}), uid="1", project="p")
    rundb.store_artifact("m2", art("m2", "2", labels={"k": "a"}), uid="2", project="p")
    assert [a["key"] for a in rundb.list_artifacts(labels="k=a!=b")] == ["m1"]
    assert [a["key"] for a in rundb.list_artifacts(labels="k!=a")] == ["m1"]


def test_list_artifacts_name_is_a_prefix_tilde_a_substring_equals_exact(rundb):
    for i, key in enumerate(("ch", "chart.html", "Chart2.png", "model", "xch")):
        rundb.store_artifact(key, art(key, str(i)), uid=str(i), project="p")
    keys = lambda name, **kw: sorted(a["key"] for a in rundb.list_artifacts(name, **kw))  # noqa: E731
    assert keys("ch") == ["ch", "chart.html"]
    assert keys("ch", tag="*") == ["ch", "chart.html"]  # the seed's list_artifacts('ch', tag='*')
    assert keys("~CH") == ["Chart2.png", "ch", "chart.html", "xch"]
    assert keys("=ch") == ["ch"] and keys("=c") == [] and keys("chart.html") == ["chart.html"]
    assert keys("%") == [] and keys("~_") == []  # LIKE wildcards are plain text
    assert rundb.del_artifacts(name="ch", project="p") == 1  # a delete never takes a prefix
    assert keys("ch") == ["chart.html"]
