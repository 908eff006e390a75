"""HTTP functions (``mlflowlet serve``): run spec in, run JSON out, concurrent and isolated."""

from __future__ import annotations

import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

SOURCE = textwrap.dedent('''
    import threading

    GATE = threading.Barrier(4, timeout=10)

    def echo(context, who: str = "nobody"):
        GATE.wait()  # all four requests are inside the handler at once
        print(f"I am {who}")
        context.set_label("who", who)
        return {"who": who, "uid": context.uid}

    def plain(context, p1: int = 1):
        return p1 + 1
''')


@pytest.fixture
def served(tmp_path):
    from mlflowlet.server._uvicorn import ThreadedServer
    from mlflowlet.server.serve import create_function_app

    path = tmp_path / "served_handlers.py"
    path.write_text(SOURCE)
    started = []

    def serve(name: str, **kw):
        server = ThreadedServer(create_function_app(f"{path}:{name}", **kw)).start()
        started.append(server)
        return server.url

    yield serve
    for server in started:
        server.stop()


def test_post_runs_the_handler_and_returns_the_run_json(served):
    url = served("plain", token="")
    run = httpx.post(url, json={"spec": {"params": {"p1": 41}}}).json()
    assert run["status"]["state"] == "completed"
    assert run["status"]["results"] == {"return": 42}
    assert run["metadata"]["name"] == "plain" and len(run["metadata"]["uid"]) == 32


def test_put_works_too_for_mlrun_clients(served):
    url = served("plain", token="")
    assert httpx.put(url, json={}).json()["status"]["results"] == {"return": 2}


def test_concurrent_requests_run_together_with_isolated_contexts(served):
    url = served("echo", token="")
    names = ["ann", "bob", "cy", "dee"]
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(
            lambda n: httpx.post(url, params={"envelope": 1}, timeout=20,
                                 json={"spec": {"params": {"who": n}}}).json(), names))
    for name, out in zip(names, outs, strict=True):
        assert out["run"]["status"]["results"]["who"] == name
        assert out["run"]["metadata"]["labels"]["who"] == name
        assert f"I am {name}" in out["log"]
        assert all(f"I am {other}" not in out["log"] for other in names if other != name)
    assert len({o["run"]["metadata"]["uid"] for o in outs}) == 4


def test_malformed_json_is_400_and_non_object_is_400(served):
    url = served("plain", token="")
    resp = httpx.post(url, content=b"{nope", headers={"content-type": "application/json"})
    assert resp.status_code == 400 and "malformed JSON" in resp.json()["detail"]
    resp = httpx.post(url, json=[1, 2])
    assert resp.status_code == 400 and "JSON object" in resp.json()["detail"]


def test_oversized_body_is_413(served):
    url = served("plain", token="", max_body=1000)
    resp = httpx.post(url, json={"spec": {"params": {"p1": 1, "pad": "x" * 2000}}})
    assert resp.status_code == 413


def test_function_token_is_required_when_set(served):
    url = served("plain", token="fn-token")
    assert httpx.post(url, json={}).status_code == 401
    assert httpx.get(url + "/health").status_code == 200
    ok = httpx.post(url, json={}, headers={"authorization": "Bearer fn-token"})
    assert ok.status_code == 200


def test_function_records_into_its_own_db_when_given_one(served, tmp_path):
    from mlflowlet.db.sqlite import SQLiteRunDB

    db = SQLiteRunDB(str(tmp_path / "fn.db"))
    url = served("plain", token="", db=db)
    run = httpx.post(url, json={"spec": {"params": {"p1": 1}}}).json()
    assert db.read_run(run["metadata"]["uid"], "default")["status"]["results"] == {"return": 2}


def test_unknown_handler_is_refused_at_start(tmp_path):
    from mlflowlet.errors import ConfigError
    from mlflowlet.server.serve import create_function_app

    path = tmp_path / "h.py"
    path.write_text("def a(context):\n    pass\n")
    with pytest.raises(ConfigError, match="no function 'b'"):
        create_function_app(f"{path}:b")


def test_oversized_chunked_and_too_deep_bodies_name_the_limit(served):
    url = served("plain", token="", max_body=1000)

    def chunks():
        for _ in range(5):
            yield b" " * 400

    resp = httpx.post(url, content=chunks(), headers={"content-type": "application/json"})
    assert resp.status_code == 413 and "1000 bytes" in resp.json()["detail"]
    deep = '{"spec": {"params": {"p1": ' + "[" * 100 + "]" * 100 + "}}}"
    resp = httpx.post(url, content=deep, headers={"content-type": "application/json"})
    assert resp.status_code == 400 and "64 levels" in resp.json()["detail"]


def test_function_answers_carry_the_security_headers(served):
    resp = httpx.post(served("plain", token=""), json={})
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]
