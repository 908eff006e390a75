"""A run over the HTTP run DB: output larger than the server's body limit, a result larger than
it, undecodable output bytes (a real ``mlflowlet`` server on 127.0.0.1, SQLite behind it).

Output is split into requests below the limit, in order, stored once even when a part fails; a
result that makes the record larger than the limit fails at ``log_result`` and loses nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from mlflowlet import get_run_db, new_runner
from mlflowlet.db.sqlite import SQLiteRunDB
from mlflowlet.errors import PartlyWrittenError, RecordTooLargeError

pytest.importorskip("httpx")
pytest.importorskip("fastapi")
TOKEN = "limit-token"
MB = 1024 * 1024


class _FailOneCommit:
    """ASGI wrapper: answers the ``nth`` commit request with a 503 (the server "restarting")."""

    def __init__(self, app, nth: int) -> None:
        self.app, self.nth, self.seen = app, nth, 0

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].endswith("/commit"):
            self.seen += 1
            if self.seen == self.nth:
                await send({"type": "http.response.start", "status": 503,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": b'{"detail": "restarting"}'})
                return
        await self.app(scope, receive, send)


def _serve(tmp_path, monkeypatch, max_body: int = MB, fail_commit: int = 0):
    from mlflowlet.server._uvicorn import ThreadedServer
    from mlflowlet.server.app import create_app

    store = SQLiteRunDB(str(tmp_path / "srv.db"))
    app = create_app(store, token=TOKEN, artifact_root=str(tmp_path / "art"), max_body=max_body,
                     ui=False)
    server = ThreadedServer(_FailOneCommit(app, fail_commit) if fail_commit else app)
    monkeypatch.setenv("MLFLOWLET_DBPATH", server.url)
    monkeypatch.setenv("MLFLOWLET_API_TOKEN", TOKEN)
    return server, store


def _lines(n: int, tag: str) -> list[str]:
    return [f"{tag}{i:03d} " + "y" * 100_000 + "\n" for i in range(n)]


def test_output_over_the_body_limit_is_stored_in_parts_in_order(tmp_path, monkeypatch):
    server, store = _serve(tmp_path, monkeypatch)
    lines = _lines(30, "a")  # 3 MB written within one flush: three times the limit

    def handler(context):
        context.log_result("accuracy", 0.93)
        context.commit()
        sys.stdout.write("".join(lines))
        context.log_result("loss", 0.1)

    with server:
        run = new_runner().run(handler=handler)
        log = get_run_db().get_log(run.uid)
    assert run.state == "completed"
    assert store.read_run(run.uid)["status"]["results"] == {"accuracy": 0.93, "loss": 0.1}
    assert log == "".join(lines).encode()


def test_a_part_that_fails_is_sent_again_once_and_nothing_twice(tmp_path, monkeypatch):
    server, store = _serve(tmp_path, monkeypatch, fail_commit=4)  # start, commit, part 1 ok
    monkeypatch.setenv("MLFLOWLET_FLUSH_INTERVAL", "3600")  # only the handler's commits write
    first, then = _lines(30, "a"), _lines(3, "b")
    seen = {}

    def handler(context):
        context.log_result("accuracy", 0.93)
        context.commit()
        sys.stdout.write("".join(first))
        with pytest.raises(PartlyWrittenError) as info:
            context.commit()
        seen["written"] = info.value.written
        sys.stdout.write("".join(then))

    with server:
        run = new_runner().run(handler=handler)
        log = get_run_db().get_log(run.uid)
    assert 0 < seen["written"] < 3 * MB
    assert run.state == "completed"
    assert log == "".join(first + then).encode()


@pytest.mark.parametrize("big", ["x" * (2 * MB), {"nested": ["x" * (2 * MB)]}])
def test_a_result_over_the_body_limit_fails_at_log_result_and_loses_nothing(
    tmp_path, monkeypatch, big
):
    server, store = _serve(tmp_path, monkeypatch)
    seen = {}

    def handler(context):
        context.log_result("accuracy", 0.93)
        context.commit()
        with pytest.raises(RecordTooLargeError) as info:
            context.log_result("blob", big)
        seen["error"] = str(info.value)
        print("after the refusal")
        context.log_result("loss", 0.1)

    with server:
        run = new_runner().run(handler=handler)
        log = get_run_db().get_log(run.uid)
    error = seen["error"]
    size = "2,097,154" if isinstance(big, str) else "2,097,168"
    assert error.startswith(f"result 'blob' is {size} bytes as JSON") and "\n" not in error
    assert "over the 1,044,480 bytes" in error and "--max-body-mb" in error
    stored = store.read_run(run.uid)["status"]
    assert stored["state"] == "completed" and stored["results"] == {"accuracy": 0.93, "loss": 0.1}
    assert run.status.results == {"accuracy": 0.93, "loss": 0.1}
    assert log == b"after the refusal\n"


CHILD = textwrap.dedent(
    """
    import os, sys
    from mlflowlet import new_runner

    def train(context):
        print("UID", context.uid, flush=True)
        context.log_result("accuracy", 0.93)
        context.commit()
        name = os.listdir(sys.argv[1])[0]
        print("found", name, flush=True)
        raise ValueError(f"empty input file {name}")

    try:
        new_runner().run(handler=train)
    except Exception as exc:
        print("RAISED", type(exc).__name__)
    """
)


def test_undecodable_output_and_error_over_http_keep_the_run_exactly(tmp_path, monkeypatch):
    server, store = _serve(tmp_path, monkeypatch)
    data = tmp_path / "data"
    data.mkdir()
    with open(os.path.join(os.fsencode(data), b"caf\xe9.csv"), "wb"):
        pass
    with server:
        out = subprocess.run([sys.executable, "-c", CHILD, str(data)], capture_output=True,
                             env=dict(os.environ), cwd=tmp_path, timeout=120)
        uid = out.stdout.split(b"UID ")[1].split()[0].decode()
        remote = get_run_db()
        status = remote.read_run(uid)["status"]
        log = remote.get_log(uid)
    assert out.stdout.endswith(b"RAISED RunError\n"), out.stderr.decode(errors="replace")
    assert status["state"] == "error" and status["results"] == {"accuracy": 0.93}
    assert status["error"].endswith("ValueError: empty input file caf\udce9.csv\n")
    assert b"found caf\xe9.csv\n" in log and b"empty input file caf\xe9.csv\n" in log


def test_store_log_over_the_body_limit_is_sent_in_parts(tmp_path, monkeypatch):
    server, store = _serve(tmp_path, monkeypatch)
    big = b"".join(b"%07d\n" % i for i in range(300_000))  # 2.4 MB, every line numbered
    with server:
        remote = get_run_db()
        remote.store_log("u1", "p", b"first\n")
        remote.store_log("u1", "p", big)  # appended
        assert remote.get_log("u1", "p") == b"first\n" + big
        remote.store_log("u1", "p", big, append=False)  # replaced by all of it
        assert remote.get_log("u1", "p") == big
        remote.store_log("u1", "p", b"", append=False)
        assert remote.get_log("u1", "p") == b""
