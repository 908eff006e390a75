"""One concurrent-writer contract for every run DB: SQLite, PostgreSQL and the HTTP server.

Several spawned processes write into one store at once and share what real work shares: an
artifact key every writer logs versions of, a log every writer appends to, and a run every writer
updates (each its own result key). Nothing may be lost, torn or duplicated: every version, every
log line whole, every writer's last update of the shared run, and the label index agreeing with
the run bodies. SQLite and PostgreSQL writers open a brand-new store at the same moment (one
schema must come of it); the HTTP writers talk to one real server on 127.0.0.1.
"""

from __future__ import annotations

import multiprocessing

import pytest

from mlflowlet.db.sqlite import SQLiteRunDB

WRITERS, ROUNDS, UPDATES = 4, 30, 4
TOKEN = "writers-token"


def _run(uid: str, state: str, labels: dict) -> dict:
    return {"metadata": {"uid": uid, "name": "train", "project": "p", "iteration": 0,
                         "labels": dict(labels)},
            "spec": {"params": {"uid": uid}},
            "status": {"state": state, "results": {"uid": uid}}}


def _open(kind: str, url: str):
    if kind == "http":
        from mlflowlet.db.http import HTTPRunDB

        return HTTPRunDB(url, token=TOKEN, retries=0)
    if kind == "postgres":
        from mlflowlet.db.postgres import PostgresRunDB

        return PostgresRunDB(url)
    return SQLiteRunDB(url)


def _writer(kind: str, url: str, worker: int, opened, ready, errors) -> None:
    try:
        opened.wait(timeout=60)
        db = _open(kind, url)  # every writer opens the (brand-new) store at once
        ready.wait(timeout=60)  # the parent has stored the shared run meanwhile
        for i in range(ROUNDS):
            uid = f"w{worker}-{i}"
            db.commit_run(_run(uid, "running", {"writer": str(worker)}))
            db.commit_run(
                _run(uid, "completed", {"writer": str(worker), "i": str(i)}),
                [{"key": "shared-model", "uid": uid, "hash": uid},
                 {"key": f"own-{worker}", "uid": uid, "hash": uid}],
                [("loss", i, 1.0 / (i + 1), float(i))],
                f"{uid}\n".encode(),
            )
            db.store_log("shared-log", "p", f"{uid} {'x' * 200}\n".encode())
            for step in range(UPDATES):  # hot: every writer read-modify-writes the shared run
                db.update_run({f"status.results.w{worker}": i * UPDATES + step,
                               f"metadata.labels.seen-{worker}": uid}, "shared", "p")
        close = getattr(db, "close", None)
        if close is not None:
            close()
    except BaseException as exc:  # reported to the parent, which fails the test with it
        errors.put(f"writer {worker}: {type(exc).__name__}: {exc}")


@pytest.fixture(params=["sqlite", "http", "postgres"])
def store(request, tmp_path):
    """``(kind, url)`` of an empty store of each backend."""
    if request.param == "sqlite":
        yield "sqlite", str(tmp_path / "writers.db")
    elif request.param == "postgres":
        yield "postgres", request.getfixturevalue("postgres_url")
    else:
        pytest.importorskip("fastapi")
        from mlflowlet.server._uvicorn import ThreadedServer
        from mlflowlet.server.app import create_app

        app = create_app(SQLiteRunDB(str(tmp_path / "server.db")), token=TOKEN, ui=False)
        with ThreadedServer(app) as server:
            yield "http", server.url


def test_writers_sharing_keys_logs_and_runs_lose_nothing(store):
    kind, url = store
    ctx = multiprocessing.get_context("spawn")  # no locks inherited from this threaded process
    opened, ready, errors = ctx.Barrier(WRITERS + 1), ctx.Barrier(WRITERS + 1), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(kind, url, w, opened, ready, errors))
             for w in range(WRITERS)]
    for proc in procs:
        proc.start()
    opened.wait(timeout=60)
    db = _open(kind, url)
    db.store_run(_run("shared", "running", {"team": "a"}), "shared", "p")
    ready.wait(timeout=60)
    for proc in procs:
        proc.join(timeout=240)
    assert errors.empty(), errors.get()
    assert [proc.exitcode for proc in procs] == [0] * WRITERS

    runs = db.list_runs(project="p")
    assert len(runs) == WRITERS * ROUNDS + 1
    for w in range(WRITERS):
        mine = db.list_runs(labels={"writer": str(w)})
        assert sorted(r["metadata"]["uid"] for r in mine) == sorted(
            f"w{w}-{i}" for i in range(ROUNDS))
        assert {r["status"]["state"] for r in mine} == {"completed"}
        assert len(db.list_artifacts(name=f"own-{w}", tag="*")) == ROUNDS
        assert db.get_log(f"w{w}-3", "p") == f"w{w}-3\n".encode()
        assert [m["value"] for m in db.get_metrics(f"w{w}-3")] == [0.25]

    versions = db.list_artifacts(name="shared-model", tag="*")
    assert sorted(a["uid"] for a in versions) == sorted(
        f"w{w}-{i}" for w in range(WRITERS) for i in range(ROUNDS))
    (latest,) = db.list_artifacts(name="shared-model")  # one 'latest', on one real version
    assert latest["uid"] == latest["hash"] and latest["uid"] in {a["uid"] for a in versions}

    lines = db.get_log("shared-log", "p").decode().splitlines()
    assert sorted(lines) == sorted(f"w{w}-{i} {'x' * 200}"
                                   for w in range(WRITERS) for i in range(ROUNDS))

    shared = db.read_run("shared", "p")  # every writer's last update of the shared run is kept
    assert {k: v for k, v in shared["status"]["results"].items() if k != "uid"} == {
        f"w{w}": ROUNDS * UPDATES - 1 for w in range(WRITERS)}
    labels = shared["metadata"]["labels"]
    assert labels == {"team": "a", **{f"seen-{w}": f"w{w}-{ROUNDS - 1}" for w in range(WRITERS)}}
    (found,) = db.list_runs(labels=[f"{k}={v}" for k, v in labels.items()])  # the label index
    assert found["metadata"]["uid"] == "shared"
