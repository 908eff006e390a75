"""The remote runtime against a real HTTP function (``create_function_app``) on 127.0.0.1."""

from __future__ import annotations

import textwrap
import time

import pytest

from mlflowlet.db.sqlite import SQLiteRunDB
from mlflowlet.errors import RunError
from mlflowlet.model import new_task
from mlflowlet.runtimes import new_runner
from tests._procs import served_functions

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

HANDLERS = textwrap.dedent('''
    import threading
    import time

    from mlflowlet import get_or_create_ctx

    LOCK = threading.Lock()
    STATE = {"in_flight": 0, "max_in_flight": 0}
    BARRIER = threading.Barrier(2, timeout=10)

    def train(context, p1: int = 1):
        print(f"training with p1={p1}")
        context.log_metric("loss", 1.0 / p1)
        context.log_artifact("note", body=f"p1 is {p1}", format="txt")
        return {"double": p1 * 2}

    def event_style(context, event):
        ctx = get_or_create_ctx("myfunc", event=event)
        ctx.log_result("got", ctx.get_param("p1"))
        ctx.log_result("same_ctx", ctx is context)
        ctx.log_result("method", event.method)

    def fails(context):
        print("about to fail")
        raise ValueError("remote boom")

    def paired(context, p1: int = 0):
        with LOCK:
            STATE["in_flight"] += 1
            STATE["max_in_flight"] = max(STATE["max_in_flight"], STATE["in_flight"])
        try:
            BARRIER.wait()  # two requests must be in flight together to pass
        finally:
            with LOCK:
                STATE["in_flight"] -= 1
        return {"score": p1 * 10}

    def slow(context):
        time.sleep(1.5)

    def numbers(context, x: float = 0.0):
        context.log_metric("m", float("inf"))
        return {"x": x, "nan": float("nan")}
''')


@pytest.fixture(scope="module")
def handlers_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("remote") / "remote_handlers.py"
    path.write_text(HANDLERS)
    return str(path)


@pytest.fixture(scope="module")
def function_url(handlers_file):
    """One served function per handler name, started lazily and kept for the module."""
    yield from served_functions(handlers_file)


@pytest.fixture
def db(tmp_path):
    db = SQLiteRunDB(str(tmp_path / "caller.db"))
    yield db
    db.close()


def test_remote_run_stores_the_returned_run_with_log_metrics_and_artifacts(function_url, db):
    run = new_runner(function_url("train")).run(params={"p1": 5}, db=db)
    assert run.state == "completed"
    assert run.results == {"double": 10}
    stored = db.read_run(run.uid, run.metadata.project)
    assert stored["status"]["state"] == "completed"
    assert stored["metadata"]["labels"]["kind"] == "remote"
    assert b"training with p1=5" in db.get_log(run.uid)
    assert [m["value"] for m in db.get_metrics(run.uid, "loss")] == [0.2]
    assert db.read_artifact("note", project=run.metadata.project)["tree"] == run.uid


def test_nan_and_infinities_cross_the_remote_call_exactly(function_url, db):
    import math

    run = new_runner(function_url("numbers")).run(params={"x": float("-inf")}, db=db)
    assert run.state == "completed" and run.results["x"] == -math.inf
    assert math.isnan(run.results["nan"])
    stored = db.read_run(run.uid, run.metadata.project)
    assert stored["spec"]["params"] == {"x": -math.inf}
    assert math.isnan(stored["status"]["results"]["nan"])
    assert [m["value"] for m in db.get_metrics(run.uid, "m")] == [math.inf]


def test_handler_with_event_gets_the_request_context(function_url, db):
    run = new_runner(function_url("event_style")).run(params={"p1": 7}, db=db)
    assert run.results == {"got": 7, "same_ctx": True, "method": "POST"}


def test_remote_handler_raising_gives_an_error_run_with_the_remote_traceback(function_url, db):
    runner = new_runner(function_url("fails"))
    run = runner.run(db=db, raise_on_error=False)
    assert run.state == "error"
    assert "Traceback" in run.error and "remote_handlers.py" in run.error
    assert "ValueError: remote boom" in run.error
    assert db.read_run(run.uid)["status"]["state"] == "error"
    assert b"about to fail" in db.get_log(run.uid)
    with pytest.raises(RunError, match="remote boom"):
        runner.run(db=db)


def test_hyper_params_run_as_bounded_concurrent_requests(function_url, handlers_file, db):
    import remote_handlers  # the served module, imported by the server in this process

    task = new_task(hyper_params={"p1": [1, 2, 3, 4, 5, 6]}, selector="max.score")
    runner = new_runner(function_url("paired"), max_concurrency=2)
    run = runner.run(task, db=db)
    assert run.state == "completed"
    assert run.results["best_iteration"] == 6 and run.results["score"] == 60
    assert remote_handlers.STATE["max_in_flight"] == 2
    children = db.list_runs(uid=run.uid, iter=True)
    assert sorted(r["metadata"]["iteration"] for r in children) == list(range(7))
    assert all(r["spec"]["parent_uid"] == run.uid for r in children if r["metadata"]["iteration"])


def test_endpoint_down_is_a_clear_error_within_bounded_time(db):
    from mlflowlet.server._uvicorn import free_port

    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    run = new_runner(url, retries=1).run(db=db, raise_on_error=False)
    assert time.monotonic() - started < 10
    assert run.state == "error"
    assert "unreachable after 2 attempt(s)" in run.error and url in run.error
    assert db.read_run(run.uid)["status"]["error"] == run.error


def test_slow_remote_handler_hits_the_timeout(function_url, db):
    run = new_runner(function_url("slow"), timeout=0.3).run(db=db, raise_on_error=False)
    assert run.state == "error"
    assert "did not answer within 0.3s" in run.error


def test_non_http_command_is_refused():
    from mlflowlet.runtimes.remote import RemoteRuntime

    with pytest.raises(ValueError, match="http"):
        RemoteRuntime("ftp://x")
