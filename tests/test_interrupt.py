"""Ctrl-C and SIGTERM during in-process sweeps and pipelines: runs end ``aborted``, fast.

The CLI runs in a child process; the test waits for files the handlers write (observable state),
then signals it, and checks the exit code, the bound, and every recorded run.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

from mlflowlet import get_run_db
from tests._procs import wait_for

HANDLERS = """
import os, time

def block(context, p: int = 0):
    context.log_result("started", p)
    context.commit()
    print("started", p, flush=True)
    open(f"iter-{p}.pid.tmp", "w").write(str(os.getpid()))
    os.rename(f"iter-{p}.pid.tmp", f"iter-{p}.pid")
    time.sleep(300)  # a handler stuck in C: Ctrl-C cannot reach it
"""

PIPELINE = """
import os, time
from mlflowlet import pipeline, step

@step
def first(n: int = 1) -> int:
    return n + 1

@step
def slow(n: int, tag: str) -> int:
    print("slow step", tag, "running", flush=True)
    open(f"step-{tag}.pid.tmp", "w").write(str(os.getpid()))
    os.rename(f"step-{tag}.pid.tmp", f"step-{tag}.pid")
    time.sleep(300)
    return n

@pipeline
def pipe(n: int = 1):
    x = first(n)
    slow(x.results["return"], "a")
    slow(x.results["return"], "b")
"""


def _cli(tmp_path, *args):
    return subprocess.Popen([sys.executable, "-m", "mlflowlet", "run", *args], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _stop(cli, sig) -> tuple[str, float]:
    start = time.monotonic()
    cli.send_signal(sig)
    out, _ = cli.communicate(timeout=60)
    return out, time.monotonic() - start


@pytest.mark.parametrize(("sig", "code", "why"), [
    (signal.SIGINT, 130, "aborted by Ctrl-C (SIGINT)"),
    (signal.SIGTERM, 143, "aborted by SIGTERM"),
])
def test_interrupting_a_parallel_in_process_sweep_aborts_every_run(tmp_path, dbdir, sig, code,
                                                                    why):
    (tmp_path / "handlers.py").write_text(textwrap.dedent(HANDLERS))
    cli = _cli(tmp_path, "handlers:block", "-x", "p=[1,2,3,4,5,6]", "--parallel", "4")
    for p in (1, 2, 3, 4):
        wait_for(tmp_path / f"iter-{p}.pid")
    out, took = _stop(cli, sig)
    assert cli.returncode == code, out
    assert took < 10, took  # 5 s asked (59 s before); room for a loaded machine
    runs = get_run_db().list_runs(iter=True)
    by_iter = {r["metadata"]["iteration"]: r for r in runs}
    assert set(by_iter) == {0, 1, 2, 3, 4}, out  # 5 and 6 never started
    for it, run in by_iter.items():
        assert run["status"]["state"] == "aborted" and run["status"]["error"] == why, it
        if it:
            assert run["status"]["results"] == {"started": it}  # what it logged is kept
            log = get_run_db().get_log(run["metadata"]["uid"]).decode()
            assert f"started {it}" in log


def test_ctrl_c_during_a_pipeline_aborts_the_pipeline_and_its_running_steps(tmp_path, dbdir):
    (tmp_path / "pipe.py").write_text(textwrap.dedent(PIPELINE))
    cli = _cli(tmp_path, "pipe:pipe")
    wait_for(tmp_path / "step-a.pid")
    wait_for(tmp_path / "step-b.pid")
    out, took = _stop(cli, signal.SIGINT)
    assert cli.returncode == 130, out
    assert took < 10, took
    runs = {r["metadata"]["name"]: r for r in get_run_db().list_runs(iter=True)}
    assert set(runs) == {"pipe", "first", "slow", "slow-2"}
    assert runs.pop("first")["status"]["state"] == "completed"
    for name, run in runs.items():
        assert run["status"]["state"] == "aborted", name
        assert run["status"]["error"] == "aborted by Ctrl-C (SIGINT)", name
    for name in ("slow", "slow-2"):
        tag = runs[name]["spec"]["params"]["tag"]
        log = get_run_db().get_log(runs[name]["metadata"]["uid"]).decode()
        assert f"slow step {tag} running" in log


def test_sigterm_to_a_tracked_script_records_it_aborted(tmp_path, dbdir):
    (tmp_path / "script.py").write_text(textwrap.dedent("""
        import os, time
        from mlflowlet import get_or_create_ctx
        ctx = get_or_create_ctx("script")
        ctx.log_result("step", 1)
        print("working", flush=True)
        open("script.pid", "w").write(str(os.getpid()))
        time.sleep(300)
    """))
    proc = subprocess.Popen([sys.executable, "script.py"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(tmp_path / "script.pid")
    proc.terminate()
    proc.communicate(timeout=60)
    (run,) = get_run_db().list_runs()
    assert run["status"]["state"] == "aborted" and run["status"]["error"] == "aborted by SIGTERM"
    assert run["status"]["results"] == {"step": 1}



def _seen_in_the_run(context):
    for name, signum in (("sigint", signal.SIGINT), ("sigterm", signal.SIGTERM)):
        handler = signal.getsignal(signum)
        context.log_result(name, getattr(handler, "__name__", str(handler)))


def test_a_run_guards_sigint_and_sigterm_and_gives_back_exactly_what_was_there(dbdir):
    from mlflowlet import new_runner

    def own(signum, frame):  # the application's own SIGTERM handler: left in place
        raise AssertionError("not called")

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        run = new_runner().run(handler=_seen_in_the_run)
        assert run.results == {"sigint": "_handle", "sigterm": "_handle"}
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the enum member, as before
        signal.signal(signal.SIGTERM, own)
        run = new_runner().run(handler=_seen_in_the_run)
        assert run.results == {"sigint": "_handle", "sigterm": "own"}
        assert signal.getsignal(signal.SIGTERM) is own
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        run = new_runner().run(handler=_seen_in_the_run)
        assert run.results == {"sigint": "_handle", "sigterm": str(signal.SIG_IGN)}
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        new_runner().run(handler=lambda: [signal.signal(signal.SIGTERM, own)] and None)  # in it
        assert signal.getsignal(signal.SIGTERM) is own  # kept: not the guard's to undo
    finally:
        signal.signal(signal.SIGINT, before[0])
        signal.signal(signal.SIGTERM, before[1])


def test_a_keyboardinterrupt_the_code_raised_is_recorded_as_that_not_as_ctrl_c(dbdir):
    # no signal was sent, yet the run, the pipeline and its running steps said "Ctrl-C"
    from mlflowlet import new_runner, pipeline, step

    def handler(context):
        raise KeyboardInterrupt("stop")

    with pytest.raises(KeyboardInterrupt):
        new_runner().run(handler=handler)
    (run,) = get_run_db().list_runs()
    said = "aborted: the code raised KeyboardInterrupt (stop); no signal was sent"
    assert (run["status"]["state"], run["status"]["error"]) == ("aborted", said)

    @step
    def stops(context) -> int:
        raise KeyboardInterrupt("stop")

    @pipeline(name="kb")
    def kb():
        stops()

    with pytest.raises(KeyboardInterrupt):
        kb.run()
    runs = {r["metadata"]["name"]: r["status"] for r in get_run_db().list_runs()}
    assert runs["kb"]["error"] == runs["stops"]["error"] == said
