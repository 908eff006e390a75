"""``RunObject.abort()`` and ``mlflowlet abort UID`` for runs in processes (real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timezone

import pytest

from mlflowlet import get_run_db, new_runner
from mlflowlet.errors import ConfigError
from mlflowlet.model import RunObject

WAITER = textwrap.dedent("""
    import time
    from mlflowlet import new_runner

    def waiter(context):
        context.log_result("before", 1)
        context.commit()
        time.sleep(600)  # SIGINT interrupts the sleep as Ctrl-C would
        context.log_result("after", 1)

    try:
        new_runner().run(handler=waiter, name="waiter")
    except KeyboardInterrupt:  # the local runtime records the run aborted, then lets it through
        print("interrupted")
""")

HANDLER_FILE = textwrap.dedent("""
    import time

    def waiter(context):
        context.log_result("before", 1)
        context.commit()
        time.sleep(600)
""")


def wait_for(predicate, timeout: float = 60.0, what: str = "the condition"):
    deadline, pause = time.monotonic() + timeout, 0.01
    while True:
        found = predicate()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def _running(name: str) -> RunObject | None:
    runs = [r for r in get_run_db().list_runs(name=name) if r["status"]["results"].get("before")]
    return RunObject.model_validate(runs[0]) if runs else None


def _start_waiter(tmp_path, dbdir) -> subprocess.Popen:
    (tmp_path / "waiter.py").write_text(WAITER)
    return subprocess.Popen([sys.executable, str(tmp_path / "waiter.py")], cwd=tmp_path,
                            env={**os.environ, "MLFLOWLET_DBPATH": str(dbdir)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_abort_signals_a_local_run_in_another_process(tmp_path, dbdir):
    proc = _start_waiter(tmp_path, dbdir)
    try:
        run = wait_for(lambda: _running("waiter"), what="the waiter to run")
        done = run.abort()
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert done.state == "aborted", done.error
    assert "interrupted" in out, err
    stored = get_run_db().read_run(run.uid)
    assert stored["status"]["state"] == "aborted"
    assert stored["status"]["results"] == {"before": 1}
    assert "SIGINT" in stored["status"]["error"]  # the process recorded why it stopped


def test_cli_abort_signals_the_run_and_reports_it(tmp_path, dbdir):
    proc = _start_waiter(tmp_path, dbdir)
    try:
        run = wait_for(lambda: _running("waiter"), what="the waiter to run")
        cli = subprocess.run([sys.executable, "-m", "mlflowlet", "abort", run.uid],
                             capture_output=True, text=True, timeout=120,
                             env={**os.environ, "MLFLOWLET_DBPATH": str(dbdir)})
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.startswith(f"run 'waiter' ({run.uid}) aborted")
    assert get_run_db().read_run(run.uid)["status"]["state"] == "aborted"
    again = subprocess.run([sys.executable, "-m", "mlflowlet", "abort", run.uid],
                           capture_output=True, text=True, timeout=120,
                           env={**os.environ, "MLFLOWLET_DBPATH": str(dbdir)})
    assert again.returncode == 1 and "already ended (aborted)" in again.stderr


def test_abort_of_a_subprocess_run_keeps_it_aborted(tmp_path):
    (tmp_path / "job.py").write_text(HANDLER_FILE)
    seen = {}
    worker = threading.Thread(target=lambda: seen.update(
        run=new_runner("job.py", handler="waiter").run(name="job", raise_on_error=False)))
    worker.start()
    try:
        run = wait_for(lambda: _running("job"), what="the child to run")
        assert run.status.process["pid"] != os.getpid()  # owned by the child
        done = run.abort()
    finally:
        worker.join(timeout=60)
    assert done.state == "aborted"
    assert seen["run"].state == "aborted", seen["run"].error  # the parent kept the abort
    assert get_run_db().read_run(run.uid)["status"]["state"] == "aborted"


def test_abort_of_a_run_on_another_host_marks_it():
    db = get_run_db()
    run = RunObject()
    run.metadata.uid, run.metadata.name, run.metadata.project = "far", "far", "p"
    run.metadata.labels["kind"] = "local"
    run.status.state, run.status.heartbeat = "running", datetime.now(timezone.utc).isoformat()
    run.status.process = {"host": "elsewhere.example", "pid": 4242, "started": 1, "boot": "x"}
    db.store_run(run.to_dict(), "far", "p")
    done = run.abort()
    assert done.state == "aborted"
    assert "(its process, pid 4242 on elsewhere.example, cannot be signalled" in done.error
    stored = db.read_run("far", "p")["status"]
    assert (stored["state"], stored["error"]) == ("aborted", done.error)
    assert done.error in db.get_log("far", "p").decode()


def test_abort_of_a_run_in_this_process_stops_it_at_its_next_log_call():
    go, stopped = threading.Event(), threading.Event()

    def looping(context):
        context.log_result("before", 1)
        go.set()
        for _ in range(3000):  # bounded: a broken abort fails the test instead of hanging it
            context.log_metric("tick", 1.0)  # raises KeyboardInterrupt once aborted
            time.sleep(0.01)

    def target():
        try:
            new_runner().run(handler=looping, name="looping")
        except KeyboardInterrupt:
            stopped.set()

    worker = threading.Thread(target=target)
    worker.start()
    assert go.wait(timeout=30)
    (stored,) = get_run_db().list_runs(name="looping")
    done = RunObject.model_validate(stored).abort()
    worker.join(timeout=30)
    assert stopped.is_set() and done.state == "aborted"
    final = get_run_db().read_run(stored["metadata"]["uid"])["status"]
    assert final["state"] == "aborted" and final["error"].startswith("aborted by ")
    assert final["results"] == {"before": 1}


def test_abort_of_an_unknown_or_finished_run_says_why():
    run = new_runner().run(handler=lambda: 1)
    with pytest.raises(ConfigError, match=r"already ended \(completed\)"):
        run.abort()
    get_run_db().del_run(run.uid)
    with pytest.raises(KeyError, match=run.uid):
        run.abort()


IGNORES_SIGINT = textwrap.dedent("""
    import signal, time
    from mlflowlet import new_runner

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a job started with `&` by a shell has it

    def stubborn(context):
        context.log_result("before", 1)
        context.commit()
        for i in range(6000):  # logs on: once the DB says aborted, a log call stops it
            context.log_metric("tick", i)
            time.sleep(0.01)

    try:
        new_runner().run(handler=stubborn, name="stubborn")
    except KeyboardInterrupt:
        print("stopped")
""")


def test_a_run_whose_process_ignores_sigint_is_marked_and_stops_at_its_next_log(tmp_path, dbdir):
    (tmp_path / "stubborn.py").write_text(IGNORES_SIGINT)
    proc = subprocess.Popen([sys.executable, str(tmp_path / "stubborn.py")], cwd=tmp_path,
                            env={**os.environ, "MLFLOWLET_DBPATH": str(dbdir)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run = wait_for(lambda: _running("stubborn"), what="the stubborn run")
        done = run.abort(timeout=0.5)
        assert done.state == "aborted" and "had not recorded the run's end" in done.error
        out, err = proc.communicate(timeout=60)  # it stops on its own, well before 60 s
    finally:
        proc.kill()
    assert "stopped" in out, err
    final = get_run_db().read_run(run.uid)["status"]
    assert final["state"] == "aborted" and final["results"] == {"before": 1}


def test_the_abort_check_reads_a_runs_record_only_once_it_reads_aborted():
    # the flush thread checks every heartbeat; a sweep's parent holds every hyper-parameter
    # value in its record (a million: ~80 MB to parse), so the check reads the state column
    from mlflowlet._ctx_faults import ended_elsewhere

    db = get_run_db()
    reads: list[str] = []

    class Counting:
        def __getattr__(self, name):
            return getattr(db, name)

        def read_run(self, uid, project="", iter=0):
            reads.append(uid)
            return db.read_run(uid, project, iter)

    run = RunObject()
    run.metadata.uid, run.metadata.name, run.metadata.project = "watched", "watched", "p"
    run.status.state = "running"
    db.store_run(run.to_dict(), "watched", "p")
    counting = Counting()
    assert db.read_state("watched", "p") == "running" and db.read_state("nothing", "p") == ""
    assert ended_elsewhere(counting, run) == ("", "") and reads == []
    db.update_run({"status.state": "aborted", "status.error": "stopped from afar"}, "watched", "p")
    assert db.read_state("watched", "p") == "aborted"
    assert ended_elsewhere(counting, run) == ("aborted", "stopped from afar") and reads == [
        "watched"
    ]


def test_a_sweep_marked_aborted_from_another_host_launches_no_more_iterations(monkeypatch):
    """The parent's abort, read back by the flush thread, stops the sweep's loop too."""
    from mlflowlet import _process
    from mlflowlet.model import new_task

    monkeypatch.setenv("MLFLOWLET_FLUSH_INTERVAL", "0.05")
    monkeypatch.setenv("MLFLOWLET_HEARTBEAT_TIMEOUT", "0.2")  # the quiet parent is read often
    db = get_run_db()

    def handler(context, x: int):
        context.log_result("x", x)
        if x != 3:
            return
        db.update_run({"status.state": "aborted", "status.error": "stopped from afar"},
                      context.uid, context.project)  # as `mlflowlet abort` from elsewhere
        parent = next(c for c in list(_process.live_contexts)
                      if c.uid == context.uid and c.iteration == 0)
        deadline = time.monotonic() + 30
        while not parent._recorder.abort_requested and time.monotonic() < deadline:
            time.sleep(0.01)  # bounded: until the flush thread has read the abort

    task = new_task(name="farsweep").with_hyper_params({"x": list(range(1, 21))},
                                                       strategy="list")
    run = new_runner().run(task, handler=handler)
    assert run.state == "aborted" and "stopped from afar" in run.error
    launched = [r["metadata"]["iteration"] for r in db.list_runs(uid=run.uid, iter=True)
                if r["metadata"].get("iteration")]
    assert sorted(launched) == [1, 2, 3]  # nothing after the abort was read
    stored = db.read_run(run.uid)["status"]
    assert stored["state"] == "aborted" and stored["results"]["stopped"].startswith(
        "aborted before iteration 4: stopped from afar")
