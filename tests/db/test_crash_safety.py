"""What a run logs survives SIGKILL, and the next reader resolves the run whose process is gone.

Real processes: a child Python tracks a run, the test waits until the DB file holds what it
logged (polling the DB, never a fixed sleep), kills it with SIGKILL, and reads the DB again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone

import pytest

from mlflowlet import get_run_db
from mlflowlet._owner import hostname, process_identity
from mlflowlet.model import RunObject

VICTIM = textwrap.dedent("""
    import sys, time
    from mlflowlet import new_runner

    def victim(context):
        context.log_result("accuracy", 0.93)
        context.log_result("epochs", 7)
        context.set_label("stage", "train")
        context.log_metric("loss", 0.25)
        context.log_metric("loss", 0.125)
        context.log_artifact("model.txt", body=b"weights")
        print("printed before the kill", flush=True)
        time.sleep(600)  # SIGKILL lands here: nothing else is ever logged

    new_runner().run(handler=victim, name="victim")
""")

FIRST_SECOND = textwrap.dedent("""
    import time
    from mlflowlet import new_runner

    def early(context):
        time.sleep(600)

    new_runner().run(handler=early, name="early")
""")


def wait_for(predicate, timeout: float = 60.0, what: str = "the condition"):
    """Poll ``predicate`` until it returns something truthy (a bounded wait, not a sleep)."""
    deadline, pause = time.monotonic() + timeout, 0.01
    while True:
        found = predicate()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def _spawn(tmp_path, dbdir, script: str, **env) -> subprocess.Popen:
    path = tmp_path / "child.py"
    path.write_text(script)
    full = {**os.environ, "MLFLOWLET_DBPATH": str(dbdir), **env}
    return subprocess.Popen(
        [sys.executable, str(path)],
        env=full,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _one(name: str) -> dict | None:
    runs = get_run_db().list_runs(name=name)
    return runs[0] if len(runs) == 1 else None


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def test_sigkill_after_logging_keeps_everything_and_the_run_ends_error(tmp_path, dbdir):
    proc = _spawn(tmp_path, dbdir, VICTIM)
    db = get_run_db()
    try:

        def flushed():
            run = _one("victim")
            if not run or not run["status"]["artifacts"]:
                return None
            log = db.get_log(run["metadata"]["uid"]).decode()
            return run if "printed before the kill" in log else None

        before = wait_for(flushed, what="the victim's logged rows in the DB")
        assert before["status"]["state"] == "running"
    finally:
        _kill(proc)
    (run,) = db.list_runs(name="victim")
    status, uid = run["status"], run["metadata"]["uid"]
    assert status["state"] == "error"
    beat = status["heartbeat"]
    where = f"pid {proc.pid} on {hostname()}"
    assert status["error"] == f"process died ({where}, last heartbeat {beat})"
    assert status["results"] == {"accuracy": 0.93, "epochs": 7}
    assert run["metadata"]["labels"]["stage"] == "train"
    assert [(m["step"], m["value"]) for m in db.get_metrics(uid, "loss")] == [(0, 0.25), (1, 0.125)]
    assert [a["key"] for a in status["artifacts"]] == ["model.txt"]
    assert db.read_artifact("model.txt")["producer"]["uid"] == uid
    log = db.get_log(uid).decode()
    assert "printed before the kill" in log and log.endswith(status["error"] + "\n")
    # the resolution was stored, not only shown: a raw read of the row says error too
    raw = db._read("SELECT state, body FROM runs WHERE uid=?", (uid,))[0]
    assert raw[0] == "error" and json.loads(raw[1])["status"]["error"] == status["error"]


def test_a_process_killed_at_once_leaves_a_running_row_that_readers_resolve(tmp_path, dbdir):
    # a 30 s flush interval: only the start record itself can put the row there in time
    proc = _spawn(tmp_path, dbdir, FIRST_SECOND, MLFLOWLET_FLUSH_INTERVAL="30")
    started = time.monotonic()
    try:
        row = wait_for(lambda: _one("early"), what="the early run's row")
        assert row["status"]["state"] == "running"
        assert row["status"]["process"]["pid"] == proc.pid
    finally:
        _kill(proc)
    assert time.monotonic() - started < 30  # well before any flush could have written it
    run = RunObject.model_validate(get_run_db().read_run(row["metadata"]["uid"]))
    assert run.state == "error" and run.error.startswith(f"process died (pid {proc.pid} on ")


def test_cli_get_runs_resolves_a_dead_run(tmp_path, dbdir):
    proc = _spawn(tmp_path, dbdir, FIRST_SECOND)
    try:
        wait_for(lambda: _one("early"), what="the early run's row")
    finally:
        _kill(proc)
    out = subprocess.run(
        [sys.executable, "-m", "mlflowlet", "get", "runs", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "MLFLOWLET_DBPATH": str(dbdir)},
    ).stdout
    (run,) = json.loads(out)
    assert run["status"]["state"] == "error"
    assert run["status"]["error"].startswith(f"process died (pid {proc.pid} on ")


# owners judged without killing anything ---------------------------------------------------------
def _running(uid: str, process: dict, beat: datetime) -> dict:
    run = RunObject()
    run.metadata.uid, run.metadata.name, run.metadata.project = uid, "judged", "p"
    run.status.state, run.status.process = "running", process
    run.status.start_time = run.status.heartbeat = beat.isoformat()
    return run.to_dict()


def _state(db, uid: str) -> tuple[str, str]:
    status = db.read_run(uid, "p")["status"]
    return status["state"], status["error"]


def test_a_recycled_pid_is_not_taken_for_the_owner():
    db = get_run_db()
    now = datetime.now(timezone.utc)
    me = process_identity()
    assert me["pid"] == os.getpid() and me["started"] is not None
    recycled = {**me, "started": me["started"] - 1}  # same pid, another process's start time
    db.store_run(_running("mine", me, now), "mine", "p")
    db.store_run(_running("recycled", recycled, now), "recycled", "p")
    assert _state(db, "mine") == ("running", "")
    state, error = _state(db, "recycled")
    assert state == "error" and error.startswith(f"process died (pid {os.getpid()} on ")


def test_a_run_of_another_host_ends_after_the_heartbeat_timeout(monkeypatch):
    db = get_run_db()
    now = datetime.now(timezone.utc)
    foreign = {"host": "elsewhere.example", "pid": 4242, "started": 1, "boot": "x"}
    db.store_run(_running("old", foreign, now - timedelta(minutes=6)), "old", "p")
    db.store_run(_running("recent", foreign, now - timedelta(minutes=2)), "recent", "p")
    runs = {r["metadata"]["uid"]: r["status"] for r in db.list_runs(project="p")}
    assert runs["recent"]["state"] == "running"  # the default timeout is 5 minutes
    assert runs["old"]["state"] == "error"
    beat = (now - timedelta(minutes=6)).isoformat()
    assert runs["old"]["error"].startswith(
        f"process died (pid 4242 on elsewhere.example, last heartbeat {beat}; no heartbeat for 36"
    )
    monkeypatch.setenv("MLFLOWLET_HEARTBEAT_TIMEOUT", "60")
    assert _state(db, "recent")[0] == "error"


def test_a_state_filter_judges_dead_runs_only_when_they_could_match_it():
    # a dead owner's run is stored running and read as error: a list of completed runs has
    # nothing to judge (the cached-rerun lookup lists completed runs while its pipeline runs)
    db = get_run_db()
    old = datetime.now(timezone.utc) - timedelta(hours=1)
    foreign = {"host": "elsewhere.example", "pid": 4242, "started": 1, "boot": "x"}
    db.store_run(_running("gone", foreign, old), "gone", "p")
    done = RunObject()
    done.metadata.uid, done.metadata.name, done.metadata.project = "done", "judged", "p"
    done.status.state = "completed"
    db.store_run(done.to_dict(), "done", "p")

    def stored(uid: str) -> str:
        return db._read("SELECT state FROM runs WHERE uid=?", (uid,))[0][0]

    listed = db.list_runs(project="p", state="completed")
    assert [r["metadata"]["uid"] for r in listed] == ["done"]
    assert stored("gone") == "running"  # not judged by that list
    assert [r["metadata"]["uid"] for r in db.list_runs(project="p", state="running")] == []
    assert stored("gone") == "error"  # judged: it no longer lists as running
    (dead,) = db.list_runs(project="p", state="error")
    assert dead["metadata"]["uid"] == "gone" and dead["status"]["error"].startswith("process died")


def test_a_list_judges_only_the_dead_runs_its_filter_matches():
    # every list read and judged every running run of the DB (the running pipeline run's whole
    # graph at each cache lookup of its steps); it judges those it may return, the rest stay
    db = get_run_db()
    old = datetime.now(timezone.utc) - timedelta(hours=1)
    foreign = {"host": "elsewhere.example", "pid": 4242, "started": 1, "boot": "x"}
    for uid in ("gone-a", "gone-b"):
        db.store_run(_running(uid, foreign, old), uid, "p")

    def stored(uid: str) -> str:
        return db._read("SELECT state FROM runs WHERE uid=?", (uid,))[0][0]

    (listed,) = db.list_runs(uid="gone-a", project="p")
    assert listed["status"]["state"] == "error" and stored("gone-a") == "error"
    assert stored("gone-b") == "running"  # not this list's business
    assert db.list_runs(uid="gone-b", project="q") == []  # another project: still not judged
    assert stored("gone-b") == "running"
    assert [r["status"]["state"] for r in db.list_runs(project="p")] == ["error", "error"]
    assert stored("gone-b") == "error"


@pytest.mark.parametrize("state", ["error", ""])
def test_listing_errors_or_every_state_judges_dead_runs(state):
    db = get_run_db()
    old = datetime.now(timezone.utc) - timedelta(hours=1)
    foreign = {"host": "elsewhere.example", "pid": 4242, "started": 1, "boot": "x"}
    db.store_run(_running("gone", foreign, old), "gone", "p")
    (dead,) = db.list_runs(project="p", state=state)
    assert dead["status"]["state"] == "error"
    assert db._read("SELECT state FROM runs WHERE uid=?", ("gone",))[0][0] == "error"


def _taken_for_dead(context):
    """Make this live run look like another host's whose heartbeats stopped, as a reader sees it
    when its owner was paused or cut off from the DB; then log on, as the owner does."""
    db = get_run_db()
    row = db.read_run(context.uid, context.project)
    old = datetime.now(timezone.utc) - timedelta(minutes=10)
    foreign = {**row["status"]["process"], "host": "elsewhere.example"}
    db.store_run(_running(context.uid, foreign, old), context.uid, context.project)
    verdict = db.read_run(context.uid, context.project)["status"]  # the reader's verdict
    context.log_result("verdict", verdict["state"])
    end = time.monotonic() + 60
    while db.read_state(context.uid, context.project) != "running":  # the owner's next write
        assert time.monotonic() < end, "the live owner never wrote again"
        time.sleep(0.01)
    return {"after": 1}


def test_a_live_owner_taken_for_dead_says_so_in_its_log_and_completes(monkeypatch):
    # the run came back from `error` to `running` and `completed`, its log keeping the
    # reader's false "process died" line with nothing saying the process was alive
    from mlflowlet import new_runner

    monkeypatch.setenv("MLFLOWLET_FLUSH_INTERVAL", "0.05")
    run = new_runner().run(handler=_taken_for_dead, project="p")
    assert run.results == {"verdict": "error", "after": 1}
    db = get_run_db()
    stored = db.read_run(run.uid, "p")["status"]
    assert stored["state"] == "completed" and stored["error"] == ""
    lines = db.get_log(run.uid, "p").decode().splitlines()
    assert len(lines) == 2 and lines[0].startswith("process died (pid "), lines
    me = process_identity()
    assert lines[1].startswith(
        f"mlflowlet: the process died verdict above was wrong: the run's process (pid "
        f"{me['pid']} on {me['host']}) is alive and the run goes on"
    )


def test_the_died_line_starts_its_own_line_after_output_cut_mid_line():
    # a process killed after printing "half-" read back as "half-process died (...)"
    db = get_run_db()
    old = datetime.now(timezone.utc) - timedelta(minutes=6)
    foreign = {"host": "elsewhere.example", "pid": 4242, "started": 1, "boot": "x"}
    for uid, output in (("cut", b"line\nhalf-"), ("whole", b"line\n"), ("silent", b"")):
        db.store_run(_running(uid, foreign, old), uid, "p")
        if output:
            db.store_log(uid, "p", output)
    assert {r["status"]["state"] for r in db.list_runs(project="p")} == {"error"}
    for uid, before in (("cut", "line\nhalf-\n"), ("whole", "line\n"), ("silent", "")):
        log = db.get_log(uid, "p").decode()
        assert log.startswith(before + "process died (pid 4242 on elsewhere.example")
        assert log.count("\n") == before.count("\n") + 1


@pytest.mark.parametrize("backend", ["http", "postgres"])
def test_servers_and_postgresql_resolve_dead_runs_too(backend, request, tmp_path):
    if backend == "http":
        pytest.importorskip("fastapi")
        from mlflowlet.db.http import HTTPRunDB
        from mlflowlet.db.sqlite import SQLiteRunDB
        from mlflowlet.server._uvicorn import ThreadedServer
        from mlflowlet.server.app import create_app

        app = create_app(
            SQLiteRunDB(str(tmp_path / "server.db")), token="crash-test-token", ui=False
        )
        server = ThreadedServer(app).__enter__()
        request.addfinalizer(lambda: server.__exit__(None, None, None))
        db = HTTPRunDB(server.url, token="crash-test-token", retries=0)
    else:
        db = request.getfixturevalue("postgres_rundb")
    foreign = {"host": "elsewhere.example", "pid": 4242, "started": 1, "boot": "x"}
    old = datetime.now(timezone.utc) - timedelta(hours=1)
    db.store_run(_running("gone", foreign, old), "gone", "p")
    (listed,) = db.list_runs(project="p")
    assert listed["status"]["state"] == "error"
    assert listed["status"]["error"].startswith("process died (pid 4242 on elsewhere.example")
    assert "process died" in db.get_log("gone", "p").decode()


SWEEP_VICTIM = textwrap.dedent("""
    import time
    from mlflowlet import new_runner, new_task

    def victim(context, x: int):
        context.log_result("loss", x)
        print(f"iteration {x} logged", flush=True)
        if x == 2:
            time.sleep(600)  # SIGKILL lands here

    task = new_task(name="sweepvictim").with_hyper_params({"x": [1, 2, 3]}, strategy="list")
    new_runner().run(task, handler=victim)
""")


def test_sigkill_in_a_sweeps_iteration_keeps_the_iterations_and_readers_resolve_them(
    tmp_path, dbdir
):
    """A sweep's iterations are batched in memory for a tick: what was flushed survives."""
    proc = _spawn(tmp_path, dbdir, SWEEP_VICTIM, MLFLOWLET_FLUSH_INTERVAL="0.1")
    db = get_run_db()
    try:

        def second_logged():
            rows = db.list_runs(name="sweepvictim", iter=True)
            second = [r for r in rows if r["metadata"].get("iteration") == 2]
            return second if second and second[0]["status"].get("results") else None

        (before,) = wait_for(second_logged, what="iteration 2's logged result in the DB")
        assert before["status"]["state"] == "running"
    finally:
        _kill(proc)
    rows = {r["metadata"].get("iteration", 0): r for r in db.list_runs(name="sweepvictim",
                                                                       iter=True)}
    assert sorted(rows) == [0, 1, 2]  # the parent, iteration 1 ended, iteration 2 running
    assert rows[1]["status"]["state"] == "completed" and rows[1]["status"]["results"] == {
        "loss": 1}
    second = rows[2]["status"]
    assert second["state"] == "error" and second["error"].startswith("process died (pid ")
    assert second["results"] == {"loss": 2}
    assert rows[0]["status"]["state"] == "error"
    uid = rows[0]["metadata"]["uid"]
    assert "iteration 2 logged" in db.get_log(uid).decode()
