"""The REST server on a real uvicorn: auth, bad input, downloads with Range, OpenAPI, logging."""

from __future__ import annotations

import logging
import socket

import pytest

from mlflowlet.db.sqlite import SQLiteRunDB
from mlflowlet.model import RunObject

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

TOKEN = "t0ken-very-secret-value"


@pytest.fixture
def server(tmp_path):
    from mlflowlet.server._uvicorn import ThreadedServer
    from mlflowlet.server.app import create_app

    root = tmp_path / "artifacts"
    (root / "proj" / "run1").mkdir(parents=True)
    (root / "proj" / "run1" / "data.bin").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "secret.txt").write_text("outside the root")
    db = SQLiteRunDB(str(tmp_path / "server.db"))
    app = create_app(db, token=TOKEN, artifact_root=str(root), max_body=4096, ui=False)
    with ThreadedServer(app, access_log=True, log_level="info") as srv:
        srv.db, srv.root = db, root
        yield srv


def auth(extra: dict | None = None) -> dict:
    return {"authorization": f"Bearer {TOKEN}", **(extra or {})}


def test_health_needs_no_token_but_everything_else_does(server):
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}
    resp = httpx.get(server.url + "/api/v1/runs")
    assert resp.status_code == 401 and "Bearer" in resp.json()["detail"]
    assert httpx.get(server.url + "/api/v1/runs", headers=auth()).status_code == 200


@pytest.mark.parametrize("headers", [
    {"x-api-token": TOKEN},
    {"authorization": f"Token {TOKEN}"},
    {"authorization": f"Basic {TOKEN}"},
    {"authorization": "Bearer wrong"},
])
def test_token_in_the_wrong_header_or_wrong_token_is_401(server, headers):
    resp = httpx.get(server.url + "/api/v1/version", headers=headers)
    assert resp.status_code == 401


def test_token_never_appears_in_the_server_logs(server, caplog):
    caplog.set_level(logging.DEBUG)
    httpx.get(server.url + f"/api/v1/runs?token={TOKEN}", headers=auth())
    httpx.get(server.url + "/api/v1/runs/nope", headers=auth())
    httpx.get(server.url + "/api/v1/runs", headers={"authorization": f"Bearer {TOKEN}x"})
    server_side = [r for r in caplog.records if r.name.startswith(("uvicorn", "mlflowlet"))]
    text = "\n".join(r.getMessage() for r in server_side)
    assert "/api/v1/runs" in text  # the access log did record the requests
    assert TOKEN not in text


def test_unknown_run_uid_is_404_naming_it(server):
    resp = httpx.get(server.url + "/api/v1/runs/no-such-uid", headers=auth())
    assert resp.status_code == 404 and "no-such-uid" in resp.json()["detail"]


def test_malformed_json_body_is_400(server):
    resp = httpx.put(server.url + "/api/v1/runs/u1", content=b'{"metadata": {',
                     headers=auth({"content-type": "application/json"}))
    assert resp.status_code == 400 and "malformed JSON" in resp.json()["detail"]


def test_wrongly_typed_run_body_is_422(server):
    resp = httpx.put(server.url + "/api/v1/runs/u1", json={"metadata": {"labels": [1, 2]}},
                     headers=auth())
    assert resp.status_code == 422


def test_oversized_body_is_413_by_header_and_while_streaming(server):
    big = b"x" * 5000
    resp = httpx.post(server.url + "/api/v1/logs/u1", content=big, headers=auth())
    assert resp.status_code == 413 and "4096" in resp.json()["detail"]

    def chunks():
        for _ in range(5):
            yield b"y" * 1000

    resp = httpx.post(server.url + "/api/v1/logs/u1", content=chunks(), headers=auth())
    assert resp.status_code == 413
    assert server.db.get_log("u1") == b""


@pytest.mark.parametrize("path", [
    "..%2Fsecret.txt", "proj/..%2F..%2Fsecret.txt", "%2Fetc%2Fpasswd", "proj%00/x",
])
def test_path_traversal_in_downloads_is_refused(server, path):
    resp = httpx.get(server.url + "/api/v1/files/" + path, headers=auth())
    assert resp.status_code in (400, 404, 422)
    assert b"outside the root" not in resp.content and b"root:" not in resp.content


def test_client_stalling_mid_body_gets_408(tmp_path):
    from mlflowlet.server._uvicorn import ThreadedServer
    from mlflowlet.server.app import create_app

    app = create_app(SQLiteRunDB(str(tmp_path / "slow.db")), token="", ui=False,
                     body_timeout=0.3)
    with ThreadedServer(app) as srv, socket.create_connection((srv.host, srv.port), 10) as sock:
        sock.sendall(b"POST /api/v1/logs/u1 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                     b"Content-Type: application/octet-stream\r\n\r\nonly ten b")
        reply = b""  # the server answers on its own: we never send the rest
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    assert reply.split(b" ", 2)[1] == b"408"
    assert b"did not arrive within 0.3s" in reply
    assert app.state.db.get_log("u1") == b""


def test_raw_dotdot_path_is_refused(server):
    host, port = server.host, server.port
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(f"GET /api/v1/files/../secret.txt HTTP/1.1\r\nHost: x\r\n"
                     f"Authorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert b"outside the root" not in data
    assert data.split(b" ", 2)[1] in (b"400", b"404")


def test_download_streams_the_file_and_honours_range(server):
    url = server.url + "/api/v1/files/proj/run1/data.bin"
    whole = httpx.get(url, headers=auth())
    assert whole.status_code == 200 and whole.content == bytes(range(256)) * 4
    assert whole.headers["accept-ranges"] == "bytes"
    part = httpx.get(url, headers=auth({"range": "bytes=10-19"}))
    assert part.status_code == 206 and part.content == bytes(range(10, 20))
    assert part.headers["content-range"] == "bytes 10-19/1024"
    tail = httpx.get(url, headers=auth({"range": "bytes=-4"}))
    assert tail.content == bytes(range(252, 256))
    bad = httpx.get(url, headers=auth({"range": "bytes=5000-"}))
    assert bad.status_code == 416 and bad.headers["content-range"] == "bytes */1024"


def test_download_by_artifact_key_and_client_download(server):
    from mlflowlet.db.http import HTTPRunDB

    uri = str(server.root / "proj" / "run1" / "data.bin")
    server.db.store_artifact("data", {"key": "data", "uri": uri, "hash": "h"}, project="proj")
    resp = httpx.get(server.url + "/api/v1/download", params={"key": "data", "project": "proj"},
                     headers=auth({"range": "bytes=0-3"}))
    assert resp.status_code == 206 and resp.content == bytes(range(4))
    client = HTTPRunDB(server.url, token=TOKEN)
    assert client.download("proj/run1/data.bin", 256, 259) == bytes(range(4))
    server.db.store_artifact("elsewhere", {"key": "elsewhere", "uri": "/etc/passwd"},
                             project="proj")
    resp = httpx.get(server.url + "/api/v1/download",
                     params={"key": "elsewhere", "project": "proj"}, headers=auth())
    assert resp.status_code == 404 and "outside the server's artifact root" in resp.text


def test_openapi_document_lists_the_run_db_operations(server):
    doc = httpx.get(server.url + "/openapi.json", headers=auth()).json()
    summaries = {op["summary"] for path in doc["paths"].values() for op in path.values()}
    for name in ("store_run", "read_run", "list_runs", "del_runs", "store_artifact",
                 "list_artifacts", "get_log", "store_metrics", "list_lineage", "commit_run"):
        assert name in summaries


def test_version_reports_artifact_root_and_store(server):
    doc = httpx.get(server.url + "/api/v1/version", headers=auth()).json()
    assert doc["artifact_root"] == str(server.root) and doc["db"] == "SQLiteRunDB"


def test_nan_values_round_trip_instead_of_failing(server):
    from mlflowlet.db.http import HTTPRunDB

    run = RunObject().to_dict()
    run["metadata"]["uid"], run["status"]["results"] = "nan-run", {"loss": float("nan")}
    server.db.store_run(run, "nan-run")
    client = HTTPRunDB(server.url, token=TOKEN)
    got = client.read_run("nan-run")["status"]["results"]["loss"]
    assert got != got  # NaN
    client.store_metrics("nan-run", "", 0, [("loss", 0, float("inf"), 1.0)])
    assert client.get_metrics("nan-run")[0]["value"] == float("inf")


def test_client_without_token_gets_a_clear_error(server):
    from mlflowlet.db.http import HTTPRunDB
    from mlflowlet.errors import RunDBError

    with pytest.raises(RunDBError, match="MLFLOWLET_API_TOKEN"):
        HTTPRunDB(server.url, token="").list_runs()


def test_client_reports_an_unreachable_server_after_bounded_retries():
    from mlflowlet.db.http import HTTPRunDB
    from mlflowlet.errors import RunDBError
    from mlflowlet.server._uvicorn import free_port

    db = HTTPRunDB(f"http://127.0.0.1:{free_port()}", retries=2, backoff=0.01)
    with pytest.raises(RunDBError, match="after 3 attempt"):
        db.read_run("x")


def test_get_run_db_with_an_http_url_returns_the_client(monkeypatch, server):
    from mlflowlet.db import get_run_db
    from mlflowlet.db.http import HTTPRunDB

    monkeypatch.setenv("MLFLOWLET_DBPATH", server.url)
    monkeypatch.setenv("MLFLOWLET_API_TOKEN", TOKEN)
    db = get_run_db()
    assert isinstance(db, HTTPRunDB) and TOKEN not in repr(db)
    assert db.list_runs() == []


def test_local_run_records_into_the_server(monkeypatch, server):
    from mlflowlet.runtimes import new_runner

    monkeypatch.setenv("MLFLOWLET_DBPATH", server.url)
    monkeypatch.setenv("MLFLOWLET_API_TOKEN", TOKEN)

    def handler(context, x: int = 2):
        print("hello from the handler")
        context.log_metric("m", x)
        return x * 3

    run = new_runner().run(handler=handler, params={"x": 4})
    stored = server.db.read_run(run.uid)
    assert stored["status"]["state"] == "completed"
    assert stored["status"]["results"] == {"return": 12}
    assert b"hello from the handler" in server.db.get_log(run.uid)


def test_a_sweep_over_the_server_records_each_iteration_running_before_its_handler(
    monkeypatch, server
):
    """Nothing batches commits over HTTP: an iteration's start record is written at once."""
    from mlflowlet.model import new_task
    from mlflowlet.runtimes import new_runner

    monkeypatch.setenv("MLFLOWLET_DBPATH", server.url)
    monkeypatch.setenv("MLFLOWLET_API_TOKEN", TOKEN)
    monkeypatch.setenv("MLFLOWLET_FLUSH_INTERVAL", "3600")  # the flush thread writes nothing
    seen = []

    def handler(context, x: int):
        assert not getattr(context._db, "holds_commits", True)  # a BatchedDB over HTTP
        seen.append(server.db.read_run(context.uid, iter=context.iteration)["status"]["state"])

    task = new_task(name="sw").with_hyper_params({"x": [1, 2]})
    run = new_runner().run(task, handler=handler)
    assert run.state == "completed" and seen == ["running", "running"]


@pytest.mark.filterwarnings("error::pydantic.warnings.UnsupportedFieldAttributeWarning")
def test_storing_a_run_raises_no_pydantic_warning(server):
    """The strict body models are built when defined (the run models' are deferred: issue 18);
    a deferred one FastAPI builds inside its parameter's alias, which pydantic warns about."""
    run = RunObject()
    run.metadata.uid, run.metadata.name, run.metadata.project = "w1", "r", "proj"
    resp = httpx.put(server.url + "/api/v1/runs/w1", params={"project": "proj"},
                     json=run.to_dict(), headers=auth())
    assert resp.status_code == 204, resp.text
