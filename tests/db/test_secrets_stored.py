"""A secret value pushed through every logging API never reaches storage, in any run DB.

The handler logs the secret in result keys and values, metric keys, labels, annotations,
artifact names/labels/tags/metadata, params and a print split across two commits; after each
commit (mid-run records included) and at the end, the raw files are searched: the SQLite DB and
its WAL, the server's DB behind the HTTP client, PostgreSQL's data directory after a CHECKPOINT
(plus every row read back through SQL, as PostgreSQL may compress long values), and the
artifact tree (contents and file names).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlflowlet import new_runner, new_task

SECRET = "Zq8sEcReTvAlUe42xY"
HALVES = (SECRET[:9], SECRET[9:])
NEEDLES = (SECRET, *HALVES)


def _hits_in_tree(root: Path) -> list[str]:
    hits = []
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if any(n in str(path) for n in NEEDLES):
                hits.append(f"file name {path}")
                continue
            try:
                data = path.read_bytes()
            except OSError:  # a file gone meanwhile (a WAL checkpointed away)
                continue
            hits += [f"{n!r} in {path}" for n in NEEDLES if n.encode() in data]
    return hits


@pytest.fixture(params=["sqlite", "http", "postgres"])
def store(request, tmp_path):
    """``(run DB, function returning where a secret was found)`` for each backend."""
    from mlflowlet.db.sqlite import SQLiteRunDB

    if request.param == "sqlite":
        db = SQLiteRunDB(str(tmp_path / "db" / "mlflowlet.db"))
        yield db, lambda: _hits_in_tree(tmp_path / "db")
        db.close()
    elif request.param == "http":
        pytest.importorskip("fastapi")
        from mlflowlet.db.http import HTTPRunDB
        from mlflowlet.server._uvicorn import ThreadedServer
        from mlflowlet.server.app import create_app

        app = create_app(
            SQLiteRunDB(str(tmp_path / "srv" / "mlflowlet.db")), token="crash-test-token", ui=False
        )
        with ThreadedServer(app) as server:
            yield (
                HTTPRunDB(server.url, token="crash-test-token", retries=0),
                lambda: _hits_in_tree(tmp_path / "srv"),
            )
    else:
        import psycopg

        cluster = request.getfixturevalue("postgres_cluster")
        db = request.getfixturevalue("postgres_rundb")
        url = request.getfixturevalue("_postgres_shared_url")

        def hits() -> list[str]:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CHECKPOINT")
                rows = []
                for table in (
                    "runs",
                    "run_labels",
                    "artifacts",
                    "artifact_tags",
                    "metrics",
                    "logs",
                    "lineage",
                ):
                    rows += [r[0] for r in conn.execute(f"SELECT t::text FROM {table} t")]
            dumped = [f"{n!r} in a row read back" for n in NEEDLES if any(n in r for r in rows)]
            return dumped + _hits_in_tree(Path(cluster.root) / "data")

        yield db, hits


def test_a_secret_reaches_no_stored_byte(store, tmp_path):
    db, hits = store
    art_dir = tmp_path / "artifacts"
    found: dict[str, list[str]] = {}

    def leaky(context, echo: str = ""):
        s = context.get_secret("TOKEN")
        context.log_result(f"acc_{s}", 1)
        context.log_results({"echo": s, f"r_{s}": [s, {s: s}]})
        context.log_metric(f"loss_{s}", 0.5)
        context.set_label(f"lab_{s}", s)
        context.set_annotation(f"note_{s}", s)
        context.log_artifact(f"file_{s}.txt", body=b"plain body", labels={f"l_{s}": s}, tag=f"t{s}")
        context.log_model(
            "model", body=b"weights", metrics={f"m_{s}": 1}, parameters={"p": s}, labels={"x": s}
        )
        context.commit()  # the mid-run record
        found["mid-run"] = hits()
        print(f"first half {s[:9]}", end="", flush=True)
        context.commit()  # the first half alone must not be stored: it may be a secret's start
        found["half a secret printed"] = hits()
        print(f"{s[9:]} second half")
        context.commit()
        found["whole secret printed"] = hits()

    task = new_task(params={"echo": SECRET}).with_secrets("inline", {"TOKEN": SECRET})
    run = new_runner().run(task, handler=leaky, db=db, artifact_path=str(art_dir))
    assert run.state == "completed", run.error
    found["finished"] = hits()
    found["artifact tree"] = _hits_in_tree(art_dir)
    assert {k: v for k, v in found.items() if v} == {}
    assert SECRET not in run.to_json()  # the returned run matches its record
    log = db.get_log(run.uid).decode()
    assert "first half *** second half" in log  # masked on the joined stream
    results = db.read_run(run.uid)["status"]["results"]
    assert results["acc_***"] == 1 and results["r_***"] == ["***", {"***": "***"}]
    assert [m["key"] for m in db.get_metrics(run.uid)] == ["loss_***"]
    keys = sorted(a["key"] for a in db.list_artifacts(project=run.metadata.project))
    assert keys == ["file_***.txt", "model"]


def test_a_subprocess_run_stores_no_secret_either(tmp_path, dbdir):
    (tmp_path / "job.py").write_text(
        "def job(context, echo=''):\n"
        "    s = context.get_secret('TOKEN')\n"
        "    context.log_result(f'acc_{s}', 1)\n"
        "    print(s[:9], end='', flush=True)\n"
        "    context.commit()\n"
        "    print(s[9:])\n"
    )
    task = new_task(params={"echo": SECRET}).with_secrets("inline", {"TOKEN": SECRET})
    run = new_runner("job.py", handler="job").run(task, artifact_path=str(tmp_path / "art"))
    assert run.state == "completed", run.error
    assert _hits_in_tree(dbdir) == [] and SECRET not in run.to_json()
    assert run.results == {"acc_***": 1}
