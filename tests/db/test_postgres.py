"""The PostgreSQL run DB beyond the shared contract: opening by URL,
deadlock retries, fork safety, bad URLs and unreachable servers, the UI paging query, and
``mlflowlet server --db postgresql://...``.

The cluster comes from ``tests/db/conftest.py`` (skips where PostgreSQL is not installed).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import pytest

from mlflowlet import get_run_db
from mlflowlet.errors import MissingDependencyError, RunDBError

psycopg = pytest.importorskip("psycopg")


def _run(uid: str, state: str = "completed", labels: dict | None = None, name: str = "train",
         start: str = "2024-01-01T00:00:00+00:00") -> dict:
    return {"metadata": {"uid": uid, "name": name, "project": "p", "iteration": 0,
                         "labels": dict(labels or {})},
            "spec": {"params": {"x": 1}},
            "status": {"state": state, "start_time": start, "results": {"uid": uid}}}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# opening ----------------------------------------------------------------------------------------
def test_get_run_db_opens_both_url_schemes_once_per_process(postgres_url):
    from mlflowlet.db._sql import SCHEMA_VERSION
    from mlflowlet.db.postgres import PostgresRunDB

    db = get_run_db(postgres_url)
    assert isinstance(db, PostgresRunDB) and db.url == postgres_url
    assert get_run_db(postgres_url) is db
    other = get_run_db(postgres_url.replace("postgresql://", "postgres://", 1))
    assert isinstance(other, PostgresRunDB) and other is not db
    assert db._read("SELECT max(version) FROM schema_version") == [(SCHEMA_VERSION,)]


def test_missing_psycopg_names_the_postgres_extra(monkeypatch):
    from mlflowlet.db.postgres import PostgresRunDB

    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(MissingDependencyError, match=r"mlflowlet\[postgres\]"):
        PostgresRunDB("postgresql://u@127.0.0.1:5432/db")


def test_a_newer_schema_is_refused(postgres_url):
    from mlflowlet.db.postgres import PostgresRunDB

    PostgresRunDB(postgres_url).close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version=99")
    with pytest.raises(RunDBError, match="schema version 99, newer.*upgrade mlflowlet"):
        PostgresRunDB(postgres_url)


# bad input --------------------------------------------------------------------------------------
def test_unreachable_server_is_a_run_db_error_naming_it():
    port = _free_port()  # nothing listens there
    with pytest.raises(RunDBError, match=f"cannot reach PostgreSQL run DB "
                                         f"postgresql://u@127.0.0.1:{port}/db .*start the server"):
        get_run_db(f"postgresql://u@127.0.0.1:{port}/db")


@pytest.mark.timeout(30)  # the point: it gives up by itself, well before this
def test_a_server_that_never_answers_times_out_with_a_run_db_error():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts the TCP connection, never speaks PostgreSQL
        port = silent.getsockname()[1]
        with pytest.raises(RunDBError, match="cannot reach.*(timeout|timed out)"):
            get_run_db(f"postgresql://u@127.0.0.1:{port}/db?connect_timeout=2")


def test_bad_urls_are_run_db_errors_that_hide_the_password():
    with pytest.raises(RunDBError, match="bad PostgreSQL run DB URL") as bad_port:
        get_run_db("postgresql://u:hunter2@127.0.0.1:notaport/db")
    with pytest.raises(RunDBError, match="bad PostgreSQL run DB URL") as bad_host:
        get_run_db("postgresql://u:hunter2@[bad")
    for err in (bad_port, bad_host):
        assert "hunter2" not in str(err.value)


def test_missing_database_is_named_and_the_password_never_shows(postgres_cluster):
    from mlflowlet.db.postgres import PostgresRunDB

    base = f"postgresql://postgres:hunter2@127.0.0.1:{postgres_cluster.port}"
    with pytest.raises(RunDBError, match='"nope" does not exist.*createdb nope') as err:
        PostgresRunDB(f"{base}/nope")
    assert "hunter2" not in str(err.value)
    db = PostgresRunDB(f"{base}/postgres")  # trust auth ignores the password
    try:
        assert "hunter2" not in repr(db) and "127.0.0.1" in repr(db)
        assert "hunter2" in db.url  # child processes reopen the DB with it
    finally:
        db.close()


# concurrency ------------------------------------------------------------------------------------
# Several processes writing at once (shared artifact keys, log and run): tests/db/test_writers.py,
# one contract for SQLite, PostgreSQL and the HTTP server.
def test_a_transaction_that_loses_a_deadlock_is_retried(postgres_rundb):
    db = postgres_rundb
    for uid in ("a", "b"):
        db.store_run(_run(uid, "created"), uid, "p")
    holds = {"a": threading.Event(), "b": threading.Event()}
    calls: list[str] = []

    def update(conn, first: str, second: str) -> None:
        calls.append(first)
        conn.execute("UPDATE runs SET state=? WHERE uid=?", (f"by-{first}", first))
        holds[first].set()
        holds[second].wait(timeout=30)  # both hold one row, then each wants the other's
        conn.execute("UPDATE runs SET state=? WHERE uid=?", (f"by-{first}", second))

    failures: list[BaseException] = []

    def worker(first: str, second: str) -> None:
        try:
            db._transact(update, first, second)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=pair) for pair in (("a", "b"), ("b", "a"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert len(calls) == 3  # PostgreSQL aborted one of the two; it ran again and committed
    winner = calls[-1]
    assert {r[0] for r in db._read("SELECT state FROM runs")} == {f"by-{winner}"}


def test_a_forked_child_leaves_the_parents_connections_alone(postgres_rundb):
    db = postgres_rundb
    db.store_run(_run("parent"), "parent", "p")
    (session,) = db._read("SELECT pg_backend_pid()")
    pid = os.fork()
    if pid == 0:  # the child closes what it inherited, then works on a connection of its own
        code = 0
        try:
            db.close()
            db._pool._closed = False
            db.store_run(_run("child"), "child", "p")
            db.close()
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert sorted(r["metadata"]["uid"] for r in db.list_runs()) == ["child", "parent"]
    assert db._read("SELECT pg_backend_pid()") == [session]  # the parent's session lives on


def test_a_dropped_pooled_connection_is_replaced(postgres_rundb, postgres_cluster):
    db = postgres_rundb

    def drop_sessions() -> tuple:  # as a server restart or an idle timeout would
        (session,) = db._read("SELECT pg_backend_pid()")
        with psycopg.connect(postgres_cluster.url("postgres"), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", session)
        return session

    old = drop_sessions()
    db.store_run(_run("after-drop"), "after-drop", "p")  # BEGIN fails, retried on a new one
    assert db._read("SELECT pg_backend_pid()") != [old]
    drop_sessions()
    assert [r["metadata"]["uid"] for r in db.list_runs()] == ["after-drop"]


# server side ------------------------------------------------------------------------------------
def test_ui_pages_runs_with_sql_on_postgres(postgres_rundb):
    from mlflowlet.server._query import page_runs

    for i in range(30):
        postgres_rundb.store_run(_run(f"r{i:02d}", labels={"parity": str(i % 2)}, name=f"n{i:02d}"),
                                 f"r{i:02d}", "p")
    page, total = page_runs(postgres_rundb, labels="parity=1", sort="name", desc=False,
                            offset=5, limit=4)
    assert total == 15
    assert [r["metadata"]["name"] for r in page] == ["n11", "n13", "n15", "n17"]


def test_server_command_serves_a_postgres_db(postgres_url, tmp_path):
    pytest.importorskip("fastapi")
    httpx = pytest.importorskip("httpx")
    from mlflowlet.db.http import HTTPRunDB
    from mlflowlet.server._uvicorn import free_port, wait_ready

    secret_url = postgres_url.replace("postgres@", "postgres:hunter2@", 1)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOWLET_")}
    proc = subprocess.Popen([sys.executable, "-m", "mlflowlet", "server", "--port", str(port),
                             "--db", secret_url], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_ready(f"http://127.0.0.1:{port}", timeout=30)
        client = HTTPRunDB(f"http://127.0.0.1:{port}", retries=0)
        client.store_run(_run("via-http"), "via-http", "p")
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/health").status_code == 200
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert get_run_db(postgres_url).read_run("via-http", "p")["metadata"]["uid"] == "via-http"
    assert "postgresql://postgres:***@127.0.0.1" in out and "hunter2" not in out
