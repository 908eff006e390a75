"""The Dask runtime under faults: a silent scheduler, a task past its timeout, Ctrl-C.

Real parts only: a TCP listener that accepts and never answers, a real LocalCluster whose worker
processes are checked by pid, the CLI in a child process.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

distributed = pytest.importorskip("distributed")

from mlflowlet import get_run_db, new_runner  # noqa: E402
from mlflowlet.errors import RunError  # noqa: E402
from tests._procs import alive, stop_while_waiting, wait_for, wait_gone  # noqa: E402


def sleeper(context, folder: str = "", seconds: float = 600.0):
    """Ignores cancellation: the interrupt lands only when time.sleep returns."""
    with open(os.path.join(folder, "worker.pid"), "w") as fh:
        fh.write(str(os.getpid()))
    time.sleep(seconds)


def spinner(context, folder: str = ""):
    """Honours cancellation: pure Python, so the interrupt lands at once."""
    with open(os.path.join(folder, "worker.pid"), "w") as fh:
        fh.write(str(os.getpid()))
    end = time.monotonic() + 600
    while time.monotonic() < end:
        pass


def quick(x: int = 1):
    return {"y": x + 1, "pid": os.getpid()}


@pytest.fixture
def one_worker():
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    )
    runner = new_runner(kind="dask", cluster=cluster)
    yield runner
    runner.close()
    cluster.close()


@pytest.mark.timeout(60)
def test_a_scheduler_that_accepts_and_never_answers_fails_within_the_connect_timeout():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        accepted = []
        threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
        start = time.monotonic()
        with pytest.raises(RunError, match=f"tcp://127.0.0.1:{port}") as info:
            new_runner(command=f"dask://127.0.0.1:{port}", connect_timeout=2).run(
                handler=quick, params={"x": 1})
        took = time.monotonic() - start
    assert took < 2 + 5 + 10, took  # the handshake's deadline, not Dask's unbounded read
    assert accepted, "the runtime never reached the listener"
    stored = get_run_db().read_run(info.value.run.uid, project=info.value.run.metadata.project)
    assert stored["status"]["state"] == "error" and "within 2 s" in stored["status"]["error"]


@pytest.mark.timeout(120)
def test_a_task_past_its_timeout_frees_its_worker_for_the_next_run(one_worker, tmp_path):
    run = one_worker.run(handler=sleeper, params={"folder": str(tmp_path)}, timeout=2,
                         raise_on_error=False)
    old_worker = int((tmp_path / "worker.pid").read_text())
    assert run.state == "error" and "timeout of 2 s" in run.error
    assert "ignored cancellation" in run.error and "was restarted" in run.error
    wait_gone([old_worker], 30)  # the busy worker process is gone, not left sleeping
    start = time.monotonic()
    after = one_worker.run(handler=quick, params={"x": 41})
    assert after.state == "completed" and after.results["y"] == 42
    assert after.results["pid"] != old_worker
    assert time.monotonic() - start < 30


@pytest.mark.timeout(120)
def test_a_task_that_honours_cancellation_frees_its_thread_without_a_restart(one_worker, tmp_path):
    run = one_worker.run(handler=spinner, params={"folder": str(tmp_path)}, timeout=2,
                         raise_on_error=False)
    worker = int((tmp_path / "worker.pid").read_text())
    assert run.state == "error" and "cancelled and its worker thread freed" in run.error
    after = one_worker.run(handler=quick, params={"x": 1})
    assert after.results["pid"] == worker and alive(worker)  # the same worker, now free


HANDLERS = """
import os, time

def block(context, p: int = 0):
    open(f"iter-{p}.pid.tmp", "w").write(str(os.getpid()))
    os.rename(f"iter-{p}.pid.tmp", f"iter-{p}.pid")
    print("started", p, flush=True)
    time.sleep(300)
"""


@pytest.mark.timeout(180)
def test_sigint_to_a_dask_sweep_aborts_the_runs_and_leaves_no_worker(tmp_path, dbdir):
    (tmp_path / "handlers.py").write_text(textwrap.dedent(HANDLERS))
    cli = subprocess.Popen(
        [sys.executable, "-m", "mlflowlet", "run", "dask://", "--handler", "handlers:block",
         "-x", "p=[1,2,3,4]"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    workers = [wait_for(tmp_path / f"iter-{p}.pid", 120) for p in (1, 2)]  # 2 local workers
    start = time.monotonic()
    cli.send_signal(signal.SIGINT)
    out, _ = cli.communicate(timeout=60)
    assert cli.returncode == 130, out
    assert time.monotonic() - start < 10  # 5 s asked; room for a loaded machine
    wait_gone(workers, 15)
    runs = get_run_db().list_runs(iter=True)
    states = {r["metadata"]["iteration"]: r["status"]["state"] for r in runs}
    assert states[0] == "aborted" and states[1] == states[2] == "aborted", states
    assert all(s in ("aborted", "created", "pending") for s in states.values()), states


CALLER = """
import os, sys, time
from mlflowlet import new_runner

def gated(context, folder: str = ""):
    open(os.path.join(folder, "started"), "w").write(str(os.getpid()))
    end = time.monotonic() + 60
    while not os.path.exists(os.path.join(folder, "go")) and time.monotonic() < end:
        time.sleep(0.01)

if __name__ == "__main__":
    new_runner(sys.argv[1]).run(handler=gated, name="victim", params={"folder": sys.argv[2]})
"""


@pytest.mark.timeout(120)
def test_a_caller_killed_while_its_task_runs_leaves_a_run_readers_resolve(one_worker, tmp_path):
    (tmp_path / "caller.py").write_text(textwrap.dedent(CALLER))
    address = one_worker.cluster.scheduler_address.replace("tcp://", "dask://")
    child = subprocess.Popen([sys.executable, str(tmp_path / "caller.py"), address, str(tmp_path)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stop_while_waiting(child, tmp_path, signal.SIGKILL, 90)  # the task runs on the worker
    runs = get_run_db().list_runs(name="victim")
    assert len(runs) == 1
    status = runs[0]["status"]
    assert status["state"] == "error", status  # was `pending` forever: the row named no owner
    assert status["error"].startswith(f"process died (pid {child.pid} on ")


def gate(context, folder: str = "", name: str = ""):
    """Tell the test this run started, then wait (bounded) for the test's go."""
    with open(os.path.join(folder, f"{name}.started"), "w") as fh:
        fh.write(str(os.getpid()))
    end = time.monotonic() + 60
    while not os.path.exists(os.path.join(folder, "go")) and time.monotonic() < end:
        time.sleep(0.01)


@pytest.mark.timeout(120)
def test_a_run_queued_behind_another_starts_when_its_handler_starts(one_worker, tmp_path):
    runs = {}

    def run(name):
        params = {"folder": str(tmp_path), "name": name}
        runs[name] = one_worker.run(handler=gate, name=name, params=params)

    first = threading.Thread(target=run, args=("first",))
    first.start()
    wait_for(tmp_path / "first.started")  # the only worker thread is busy
    second = threading.Thread(target=run, args=("second",))
    second.start()
    db = get_run_db()
    try:
        end = time.monotonic() + 60
        while not db.list_runs(name="second", state="running"):  # submitted: queued behind
            assert time.monotonic() < end, "the second run was never submitted"
            time.sleep(0.01)
    finally:
        (tmp_path / "go").write_text("go")
        first.join(60)
        second.join(60)
    assert runs["first"].state == runs["second"].state == "completed"
    # was the time the caller submitted it: the wait in the queue counted as run time
    assert runs["second"].status.start_time >= runs["first"].status.end_time


def meet(context, folder: str = "", me: str = "", other: str = ""):
    """Wait (bounded) until the other run runs too, then write at the fd level."""
    with open(os.path.join(folder, f"{me}.started"), "w") as fh:
        fh.write(str(os.getpid()))
    end = time.monotonic() + 60
    while other and not os.path.exists(os.path.join(folder, f"{other}.started")):
        if time.monotonic() > end:
            raise TimeoutError(f"{other} never started")
        time.sleep(0.01)
    os.write(1, f"fd output of {me}\n".encode())
    with open(os.path.join(folder, f"{me}.wrote"), "w") as fh:
        fh.write("1")
    end = time.monotonic() + 60  # both wrote before either ends: the overlap is certain
    while other and not os.path.exists(os.path.join(folder, f"{other}.wrote")):
        if time.monotonic() > end:
            raise TimeoutError(f"{other} never wrote")
        time.sleep(0.01)
    print(f"print of {me}")


@pytest.mark.timeout(120)
def test_runs_sharing_a_worker_process_say_where_their_fd_output_went(tmp_path):
    # fd-level output carries no thread: on a worker with 2 threads both runs' went to the
    # first run's log, silently (the README sent users to Dask to keep it apart)
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=True, host="127.0.0.1",
        dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    )
    runner = new_runner(kind="dask", cluster=cluster)
    try:
        runs = {}

        def run(me, other):
            params = {"folder": str(tmp_path), "me": me, "other": other}
            runs[me] = runner.run(handler=meet, name=me, params=params)

        threads = [threading.Thread(target=run, args=pair) for pair in (("a", "b"), ("b", "a"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
        alone = runner.run(handler=meet, name="alone", params={"folder": str(tmp_path), "me": "c"})
    finally:
        runner.close()
        cluster.close()
    db = get_run_db()
    logs = {name: db.get_log(r.uid).decode() for name, r in [*runs.items(), ("alone", alone)]}
    assert runs["a"].status.process["pid"] == runs["b"].status.process["pid"]  # one process
    for name in ("a", "b"):
        assert f"print of {name}\n" in logs[name]  # Python-level output: the writer's run
        assert "other runs ran in this Dask worker process at the same time" in logs[name]
    assert "fd output of a" in logs["a"] + logs["b"]
    assert logs["alone"] == "fd output of c\nprint of c\n"  # no overlap, no note


def interrupts(context):
    print("stopping myself", flush=True)
    raise KeyboardInterrupt


@pytest.mark.timeout(120)
def test_a_handler_raising_keyboardinterrupt_is_aborted_and_its_worker_lives(one_worker):
    # the KeyboardInterrupt left the task and killed the worker process, 4 times over (Dask's
    # retries): the run read `KilledWorker`, and the tasks of those workers were lost
    before = one_worker.run(handler=quick).results["pid"]
    run = one_worker.run(handler=interrupts, raise_on_error=False)
    assert run.state == "aborted"
    assert run.error == "aborted: the code raised KeyboardInterrupt; no signal was sent"
    assert get_run_db().get_log(run.uid).decode().startswith("stopping myself\n")
    assert one_worker.run(handler=quick).results["pid"] == before  # the same worker process


def failing(context, x: int = 1):
    raise ValueError(f"failing at x={x}")


@pytest.mark.timeout(120)
def test_a_dask_run_records_the_handler_as_an_in_process_run_does(one_worker):
    # shipped by value, the handler reached the worker as `<dynamic-code>`: its code hash was
    # its bytecode's, its git facts the worker's working directory's, its traceback had no file
    from mlflowlet import new_task

    local = new_runner().run(handler=failing, raise_on_error=False)
    remote = one_worker.run(handler=failing, raise_on_error=False)
    assert local.status.git, "this test file lives in a git checkout"
    assert remote.status.code_hash == local.status.code_hash
    assert remote.status.git == local.status.git
    assert remote.error == local.error  # the same traceback: file, line and source quoted
    assert f'File "{__file__}"' in remote.error and 'raise ValueError(f"failing' in remote.error
    sweep = one_worker.run(new_task(hyper_params={"x": [1, 2]}), handler=failing,
                           raise_on_error=False)
    children = get_run_db().list_runs(uid=sweep.uid, iter=True)
    assert {r["status"]["code_hash"] for r in children} == {local.status.code_hash}
