"""`serve` and the server stay inside their roots whatever a request names (resolved paths)."""

from __future__ import annotations

import os
import textwrap

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

TOKEN = "conf-token"
HANDLERS = textwrap.dedent("""
    def writer(context, name: str = "out.txt"):
        context.log_artifact(name, body=b"written by the handler")
        return context.artifact_path

    def reader(context, data=None):
        return data.get().decode() if data is not None else "no input"
""")


def _files_under(path) -> set[str]:
    return {os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs}


@pytest.fixture
def fn(tmp_path):
    from mlflowlet.server._uvicorn import ThreadedServer
    from mlflowlet.server.serve import create_function_app

    (tmp_path / "handlers.py").write_text(HANDLERS)
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("outside the root")
    servers = []

    def start(name: str):
        app = create_function_app(
            f"{tmp_path / 'handlers.py'}:{name}", token="", artifact_root=str(root)
        )
        server = ThreadedServer(app).start()
        servers.append(server)
        return server.url

    yield start, root, outside
    for server in servers:
        server.stop()


@pytest.mark.parametrize(
    "field, body",
    [
        ("metadata.project", {"metadata": {"project": "../../outside"}}),
        ("metadata.project", {"metadata": {"project": ".."}}),
        ("metadata.uid", {"metadata": {"uid": "../../../outside/x"}}),
        ("metadata.uid", {"metadata": {"uid": "a\\..\\..\\b"}}),
        ("spec.artifact_path", {"spec": {"artifact_path": "OUTSIDE"}}),
        ("spec.artifact_path", {"spec": {"artifact_path": "../outside"}}),
        ("spec.artifact_path", {"spec": {"artifact_path": "ROOT/../outside"}}),
        ("spec.artifact_path", {"spec": {"artifact_path": "s3://bucket/elsewhere"}}),
    ],
)
def test_serve_refuses_a_request_writing_outside_its_root(fn, field, body):
    start, root, outside = fn
    url = start("writer")
    text = str(body).replace("OUTSIDE", str(outside)).replace("ROOT", str(root))
    import ast

    resp = httpx.post(url, json=ast.literal_eval(text))
    assert resp.status_code == 400, resp.text
    assert field in resp.json()["detail"] and str(root) in resp.json()["detail"]
    assert _files_under(outside) == {str(outside / "secret.txt")}
    assert _files_under(root) == set()  # the handler never ran


def test_serve_refuses_a_symlinked_project_leading_out(fn):
    start, root, outside = fn
    (root / "proj").symlink_to(outside, target_is_directory=True)
    resp = httpx.post(start("writer"), json={"metadata": {"project": "proj"}})
    assert resp.status_code == 400 and "spec.artifact_path" in resp.json()["detail"]
    assert _files_under(outside) == {str(outside / "secret.txt")}


def test_serve_key_through_a_symlink_is_refused_by_the_handler_run(fn):
    start, root, outside = fn
    run_dir = root / "p" / "u1"
    run_dir.mkdir(parents=True)
    (run_dir / "link").symlink_to(outside, target_is_directory=True)
    for key in ("link/planted.txt", "../../../outside/planted.txt", "/tmp/abs.txt"):
        resp = httpx.post(
            start("writer"),
            json={"metadata": {"project": "p", "uid": "u1"}, "spec": {"params": {"name": key}}},
        )
        assert resp.status_code == 200
        run = resp.json()
        assert run["status"]["state"] == "error", key
        assert (
            "PathTraversalError" in run["status"]["error"] or "is outside" in run["status"]["error"]
        )
    assert _files_under(outside) == {str(outside / "secret.txt")}


@pytest.mark.parametrize(
    "field, spec",
    [
        ("spec.inputs.data", {"inputs": {"data": "OUTSIDE/secret.txt"}}),
        ("spec.inputs.data", {"inputs": {"data": "file://OUTSIDE/secret.txt"}}),
        ("spec.inputs.data", {"inputs": {"data": "../outside/secret.txt"}}),
        ("spec.param_file", {"param_file": "OUTSIDE/secret.txt"}),
        (
            "spec.secret_sources[0].source",
            {"secret_sources": [{"kind": "file", "source": "OUTSIDE/secret.txt"}]},
        ),
    ],
)
def test_serve_refuses_to_read_outside_its_root(fn, field, spec):
    import json

    start, _, outside = fn
    body = json.loads(json.dumps({"spec": spec}).replace("OUTSIDE", str(outside)))
    resp = httpx.post(start("reader"), json=body)
    assert resp.status_code == 400 and field in resp.json()["detail"]
    assert "outside the root" not in resp.text


def test_serve_reads_and_writes_inside_its_root(fn):
    start, root, _ = fn
    (root / "in.txt").write_text("inside")
    out = httpx.post(start("reader"), json={"spec": {"inputs": {"data": "in.txt"}}}).json()
    assert out["status"]["results"] == {"return": "inside"}
    run = httpx.post(start("writer"), json={"metadata": {"project": "p", "uid": "u2"}}).json()
    assert run["status"]["state"] == "completed"
    assert (root / "p" / "u2" / "out.txt").read_bytes() == b"written by the handler"


# the run DB server ------------------------------------------------------------------------------
@pytest.fixture
def server(tmp_path):
    from mlflowlet.db.sqlite import SQLiteRunDB
    from mlflowlet.server._uvicorn import ThreadedServer
    from mlflowlet.server.app import create_app

    root = tmp_path / "root"
    (root / "p" / "r").mkdir(parents=True)
    (root / "p" / "r" / "ok.csv").write_text("a,b\n1,2\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("secret,value\nOUTSIDE-THE-ROOT,1\n")
    (root / "p" / "escape").symlink_to(outside, target_is_directory=True)
    (root / "p" / "r" / "link.csv").symlink_to(outside / "secret.csv")
    db = SQLiteRunDB(str(tmp_path / "s.db"))
    app = create_app(db, token=TOKEN, artifact_root=str(root))
    with ThreadedServer(app) as srv:
        srv.db, srv.root, srv.outside = db, root, outside
        yield srv


def _get(server, path, **params):
    return httpx.get(server.url + path, params=params, headers={"authorization": f"Bearer {TOKEN}"})


@pytest.mark.parametrize(
    "path",
    [
        "p/escape/secret.csv",
        "p/r/link.csv",
        "p/r/../../../outside/secret.csv",
        "p/r/%2e%2e/%2e%2e/%2e%2e/outside/secret.csv",
    ],
)
def test_server_file_paths_never_leave_the_root(server, path):
    resp = _get(server, "/api/v1/files/" + path)
    assert resp.status_code in (400, 404)
    assert "OUTSIDE-THE-ROOT" not in resp.text


@pytest.mark.parametrize(
    "field, record, params",
    [
        ("key", {"uri": "OUTSIDE/secret.csv"}, {}),
        ("key", {"uri": "ROOT/p/escape/secret.csv"}, {}),
        ("key", {"uri": "ROOT/p/r/link.csv"}, {}),
        ("project", {"uri": "ROOT/p/r/ok.csv"}, {"project": "../outside"}),
        ("uid", {"uri": "ROOT/p/r/ok.csv"}, {"uid": "../../outside/secret.csv"}),
    ],
)
def test_server_download_by_key_never_leaves_the_root(server, field, record, params):
    uri = record["uri"].replace("OUTSIDE", str(server.outside)).replace("ROOT", str(server.root))
    server.db.store_artifact("data", {"key": "data", "uri": uri}, project="p")
    resp = _get(server, "/api/v1/download", key="data", **{"project": "p", **params})
    assert resp.status_code in (400, 404), field
    assert "OUTSIDE-THE-ROOT" not in resp.text


def test_server_ui_previews_never_leave_the_root(server):
    from mlflowlet.model import RunObject

    run = RunObject()
    run.metadata.uid, run.metadata.project, run.metadata.name = "r1", "p", "r1"
    run.status.artifacts = [
        {"key": k, "kind": "table", "format": "csv", "uri": u}
        for k, u in (
            ("direct", str(server.outside / "secret.csv")),
            ("via-dir", str(server.root / "p" / "escape" / "secret.csv")),
            ("via-file", str(server.root / "p" / "r" / "link.csv")),
            (
                "dotdot",
                str(server.root / "p" / "r" / ".." / ".." / ".." / "outside" / "secret.csv"),
            ),
            ("fine", str(server.root / "p" / "r" / "ok.csv")),
        )
    ]
    server.db.store_run(run.to_dict(), "r1", "p")
    page = httpx.get(server.url + "/runs/r1?project=p", cookies={"mlflowlet_token": TOKEN})
    assert page.status_code == 200 and 'data-key="fine"' in page.text
    assert "OUTSIDE-THE-ROOT" not in page.text
