"""The remote runtime when things go wrong around the call: the caller killed mid-request, inline
secrets, a long wait. A real HTTP function (``create_function_app``) on 127.0.0.1, real callers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from mlflowlet import get_run_db
from mlflowlet.model import new_task
from mlflowlet.runtimes import new_runner
from tests._procs import served_functions, stop_while_waiting, wait_for

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

SECRET = "s3cr3t-value-4711"

HANDLERS = textwrap.dedent('''
    import os
    import time

    def gated(context, folder: str = ""):
        """Tell the test the request arrived, then wait (bounded) for the test's go."""
        with open(os.path.join(folder, "started"), "w") as fh:
            fh.write(str(os.getpid()))
        end = time.monotonic() + 60
        while not os.path.exists(os.path.join(folder, "go")):
            if time.monotonic() > end:
                raise TimeoutError("the test never said go")
            time.sleep(0.01)
        return {"ok": 1}

    def interrupts(context):
        print("stopping myself")
        raise KeyboardInterrupt

    def secretive(context):
        token = context.get_secret("TOKEN")
        print(f"token is {token}")
        context.log_result("token", token)
        return {"length": len(token or "")}

    def beats(context, caller_db: str = ""):
        """Return once the caller's record of this run shows two renewed heartbeats."""
        from mlflowlet.db.sqlite import SQLiteRunDB

        db, seen, end = SQLiteRunDB(caller_db), set(), time.monotonic() + 60
        while len(seen) < 3:
            if time.monotonic() > end:
                raise TimeoutError(f"the caller renewed no heartbeat: {seen}")
            status = db.read_run(context.uid, context.project)["status"]
            seen.add(status["heartbeat"])
            time.sleep(0.01)
        return {"state_while_waiting": status["state"], "pid": status["process"]["pid"]}
''')

CALLER = textwrap.dedent("""
    import sys
    from mlflowlet import new_runner

    if __name__ == "__main__":
        new_runner(sys.argv[1]).run(name="victim", params={"folder": sys.argv[2]})
""")


@pytest.fixture(scope="module")
def function_url(tmp_path_factory):
    path = tmp_path_factory.mktemp("remote_faults") / "fault_handlers.py"
    path.write_text(HANDLERS)
    yield from served_functions(path)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("signum", "state", "error"),
    [
        (signal.SIGKILL, "error", "process died (pid {pid} on "),  # was `running` forever
        (signal.SIGINT, "aborted", "aborted by Ctrl-C (SIGINT)"),  # was `running`, then died
    ],
    ids=["sigkill", "sigint"],
)
def test_a_caller_stopped_mid_request_leaves_a_run_that_says_so(
    function_url, tmp_path, dbdir, signum, state, error
):
    (tmp_path / "caller.py").write_text(CALLER)
    child = subprocess.Popen(
        [sys.executable, str(tmp_path / "caller.py"), function_url("gated"), str(tmp_path)],
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    stop_while_waiting(child, tmp_path, signum)  # the request is in the function
    runs = get_run_db().list_runs(name="victim")
    assert len(runs) == 1, child.stderr.read() if child.stderr else ""
    status = runs[0]["status"]
    assert status["state"] == state  # the row named no owner: nobody could resolve it
    assert status["error"].startswith(error.format(pid=child.pid))


def test_inline_secrets_reach_the_function_and_no_record(function_url, tmp_path, dbdir):
    task = new_task(secrets=("inline", {"TOKEN": SECRET}))
    run = new_runner(function_url("secretive")).run(task, raise_on_error=False)
    assert run.state == "completed", run.error
    assert run.results == {"token": "***", "length": len(SECRET)}  # was None: never sent
    assert run.spec.handler == "fault_handlers:secretive"  # was empty: an in-process run names it
    db = get_run_db()
    assert db.get_log(run.uid) == b"token is ***\n"
    stored = db.read_run(run.uid, run.metadata.project)
    reduced = {"kind": "inline", "source": None, "keys": ["TOKEN"]}
    assert stored["spec"]["secret_sources"] == [reduced]
    for path in dbdir.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_the_caller_owns_the_waiting_run_and_renews_its_heartbeat(
    function_url, tmp_path, dbdir, monkeypatch
):
    from mlflowlet._flush import flusher
    from mlflowlet.db.sqlite import SQLiteRunDB
    from mlflowlet.runtimes._claim import Claim

    monkeypatch.setenv("MLFLOWLET_FLUSH_INTERVAL", "0.02")
    monkeypatch.setenv("MLFLOWLET_HEARTBEAT_TIMEOUT", "0.1")  # a heartbeat every 0.025 s
    db = SQLiteRunDB(str(tmp_path / "caller.db"))
    run = new_runner(function_url("beats")).run(params={"caller_db": db.path}, db=db)
    assert run.results["state_while_waiting"] == "running"
    assert run.results["pid"] == os.getpid()  # the caller, while the function ran it
    assert not [c for c in flusher.live() if isinstance(c, Claim)]  # released: no more beats
    flusher.flush_all()
    assert db.read_run(run.uid, run.metadata.project)["status"]["state"] == "completed"


def _answering(answer):
    """A real HTTP server on 127.0.0.1 answering every POST with ``answer(request_json)``."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            out = json.dumps(answer(body)).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _ended(body, **extra):
    body["status"]["state"] = "completed"
    return {"run": body, **extra}


@pytest.mark.parametrize(
    ("answer", "what"),
    [
        (lambda body: {"run": body}, "ValueError: its run has not ended: state 'running'"),
        (lambda body: [body], "TypeError: a JSON list, not an object"),
        (lambda body: {"run": {"metadata": {"name": 5}}}, "metadata.name: Input should be a"),
        (lambda body: _ended(body, metrics=[["loss"]]), "a metric row ['loss'] that is not"),
        (lambda body: _ended(body, artifacts=[{"uri": "x"}]), "an artifact record without"),
        (lambda body: _ended(body, log=5), "TypeError: its log is a int, not text"),
    ],
    ids=["not-ended", "not-an-object", "not-a-run", "metric-row", "artifact", "log"],
)
def test_an_answer_that_is_not_an_ended_run_is_a_one_line_run_error(answer, what, dbdir):
    # a non-terminal run was stored as answered (run() returned it `running`); a malformed
    # metric row or artifact raised KeyError out of run(); pydantic's error spanned lines
    server = _answering(answer)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        run = new_runner(url).run(name="odd", raise_on_error=False)
    finally:
        server.shutdown()
    assert run.state == "error"
    assert "\n" not in run.error and what in run.error, run.error
    assert run.error.startswith(f"remote function {url} answered something that is not an ended")
    assert get_run_db().read_run(run.uid, run.metadata.project)["status"]["error"] == run.error


PEEK = textwrap.dedent('''
    def peek(context, event):
        print("headers:", dict(event.headers))
        context.log_result("auth", event.headers.get("authorization"))
''')


def test_the_function_token_never_reaches_a_handler_s_records(tmp_path, dbdir):
    # a handler that logged its event recorded `Bearer <token>` in its log and results, in the
    # function's run DB and the caller's
    from mlflowlet.server._uvicorn import ThreadedServer
    from mlflowlet.server.serve import create_function_app

    token = "tok-4242-function-token"
    (tmp_path / "peek.py").write_text(PEEK)
    function_db = tmp_path / "function-db"
    app = create_function_app(f"{tmp_path / 'peek.py'}:peek", db=str(function_db), token=token)
    server = ThreadedServer(app).start()
    try:
        run = new_runner(server.url, token=token).run(raise_on_error=False)
    finally:
        server.stop()
    assert run.state == "completed", run.error
    assert run.results == {"auth": "Bearer ***"}
    log = get_run_db().get_log(run.uid).decode()
    assert "'authorization': 'Bearer ***'" in log and token not in log
    for folder in (dbdir, function_db):
        for path in folder.rglob("*"):
            if path.is_file():
                assert token.encode() not in path.read_bytes(), path


def test_a_handler_raising_keyboardinterrupt_is_an_aborted_run_not_a_500(function_url, dbdir):
    # the function answered `500: Internal Server Error`: the run's output and state were lost
    url = function_url("interrupts")
    for _ in range(2):  # and the function serves on
        run = new_runner(url).run(raise_on_error=False)
        assert run.state == "aborted"
        assert run.error == "aborted: the code raised KeyboardInterrupt; no signal was sent"
        log = get_run_db().get_log(run.uid).decode()
        assert log == f"stopping myself\n{run.error}\n"


@pytest.mark.timeout(120)
def test_mlflowlet_abort_stops_the_caller_waiting_on_the_function(function_url, tmp_path, dbdir):
    # the run was marked aborted, then the function's answer overwrote it with `completed`
    from mlflowlet.model import RunObject
    from mlflowlet.runtimes import abort_run

    (tmp_path / "caller.py").write_text(CALLER)
    child = subprocess.Popen(
        [sys.executable, str(tmp_path / "caller.py"), function_url("gated"), str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(tmp_path / "started")  # the request is in the function: the caller waits
        db = get_run_db()
        (stored,) = db.list_runs(name="victim")
        run = abort_run(RunObject.model_validate(stored), db)
        child.wait(timeout=30)  # Ctrl-C ends a caller that does not catch it
    finally:
        (tmp_path / "go").write_text("go")  # free the function's thread
        if child.poll() is None:
            child.kill()
            child.wait()
    assert run.state == "aborted" and run.error == "aborted by Ctrl-C (SIGINT)"
    status = db.read_run(run.uid, run.metadata.project)["status"]
    assert status["state"] == "aborted" and status["error"] == run.error
