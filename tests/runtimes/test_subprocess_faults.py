"""The subprocess runtime under faults: process trees, a killed parent, a 100 MB line.

Real processes throughout; every test ends by asserting that no process it started survives.
Synchronisation is on files the processes write (their pids), never on sleeps.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mlflowlet import get_run_db, new_runner
from tests._procs import wait_for, wait_gone

TREE = """
import os, subprocess, sys, time
{ctx}
subprocess.Popen(  # a grandchild in a session of its own, holding the output pipe open
    [sys.executable, "-c",
     "import os, time; open('gc.pid.tmp', 'w').write(str(os.getpid())); "
     "os.rename('gc.pid.tmp', 'gc.pid'); time.sleep(300)"],
    start_new_session=True)
while not os.path.exists("gc.pid"):
    time.sleep(0.01)
open("child.pid.tmp", "w").write(str(os.getpid()))
os.rename("child.pid.tmp", "child.pid")
print("tree ready", flush=True)
time.sleep(300)
"""
CTX = "from mlflowlet import get_or_create_ctx\nget_or_create_ctx('tree')"


def _write(folder: Path, name: str, body: str) -> str:
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return str(path)


@pytest.mark.parametrize("mode", ["", "noctx"])
def test_timeout_ends_a_grandchild_in_its_own_session(tmp_path, mode):
    script = _write(tmp_path, "tree.py", TREE.format(ctx="" if mode else CTX))
    started = time.monotonic()
    run = new_runner(command=script, mode=mode, timeout=3, kill_grace=1).run(
        watch=False, raise_on_error=False
    )
    took = time.monotonic() - started
    pids = [wait_for(tmp_path / "child.pid"), wait_for(tmp_path / "gc.pid")]
    assert run.state == "error" and run.error == "timed out after 3 s"
    assert took < 3 + 1 + 5, took  # the timeout, the grace, and room for a loaded machine
    assert "tree ready" in run.logs()
    wait_gone(pids, 5)
    assert get_run_db().read_run(run.uid)["status"]["state"] == "error"


def test_a_grandchild_left_behind_by_a_finished_child_is_ended(tmp_path):
    script = _write(tmp_path, "leave.py", """
        import os, subprocess, sys, time
        subprocess.Popen([sys.executable, "-c",
                          "import os, time; open('gc.pid.tmp', 'w').write(str(os.getpid())); "
                          "os.rename('gc.pid.tmp', 'gc.pid'); time.sleep(300)"],
                         start_new_session=True, stdout=subprocess.DEVNULL)
        while not os.path.exists("gc.pid"):
            time.sleep(0.01)
        print("child done")
    """)
    run = new_runner(command=script, kill_grace=1).run(watch=False)
    assert run.state == "completed" and "child done" in run.logs()
    wait_gone([wait_for(tmp_path / "gc.pid")], 5)


def test_killing_the_cli_parent_ends_the_child_and_its_grandchild(tmp_path, dbdir):
    _write(tmp_path, "tree.py", TREE.format(ctx=CTX))
    cli = subprocess.Popen(
        [sys.executable, "-m", "mlflowlet", "run", "tree.py", "--no-watch"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    pids = [wait_for(tmp_path / "child.pid"), wait_for(tmp_path / "gc.pid")]
    cli.kill()  # SIGKILL: the parent records nothing and runs no cleanup of its own
    cli.wait(timeout=30)
    wait_gone(pids, 10)  # PR_SET_PDEATHSIG (the child), the watchdog (the grandchild)


@pytest.mark.parametrize("mode", ["", "noctx"])
def test_a_100_mb_line_costs_the_parent_a_few_mb_and_the_log_is_capped(tmp_path, mode):
    (tmp_path / "big.py").write_text((CTX if not mode else "") + textwrap.dedent("""
        import sys
        sys.stdout.write("begin ")
        sys.stdout.flush()
        block = b"x" * (1024 * 1024)
        for _ in range(100):
            sys.stdout.buffer.write(block)
        sys.stdout.buffer.write(b"ZZ-end-of-the-line\\n")
    """))
    parent = textwrap.dedent(f"""
        import json, sys
        from mlflowlet import new_runner

        def peak_kb():  # this process's own peak: ru_maxrss would carry pytest's (fork + exec)
            with open("/proc/self/status") as status:
                return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

        runner = new_runner(command="big.py", mode={mode!r})
        runner.run(name="warm", params={{}}, watch=False, timeout=1e-9, raise_on_error=False)
        before = peak_kb()
        run = runner.run(watch=False)
        after = peak_kb()
        print(json.dumps({{"state": run.state, "grew_kb": after - before, "uid": run.uid}}))
    """)
    env = {**os.environ, "MLFLOWLET_MAX_LOG_BYTES": "1000000"}
    out = subprocess.run([sys.executable, "-c", parent], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    import json

    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["state"] == "completed"
    assert report["grew_kb"] < 16 * 1024, report  # a few chunks, never the 100 MB line
    log = get_run_db().get_log(report["uid"]).decode()
    assert log.startswith("begin xxxx") and log.rstrip().endswith("ZZ-end-of-the-line")
    assert "bytes of output left out" in log and "MLFLOWLET_MAX_LOG_BYTES" in log
    assert 1_000_000 < len(log) < 1_000_000 + 70 * 1024


def test_a_secret_split_across_two_reads_is_still_masked(tmp_path):
    value = "s3cr3t-" + "k" * 40
    script = _write(tmp_path, "leak.py", f"""
        import sys
        sys.stdout.write("y" * (64 * 1024 - 10) + {value!r} + "tail\\n")
    """)
    from mlflowlet import new_task

    task = new_task().with_secrets("inline", {"TOKEN": value})
    run = new_runner(command=script, mode="noctx").run(task, watch=False)
    log = run.logs()
    assert value not in log and "***tail" in log


def test_sigint_to_a_subprocess_sweep_aborts_every_run_and_leaves_no_process(tmp_path, dbdir):
    _write(tmp_path, "block.py", """
        import os, time
        from mlflowlet import get_or_create_ctx
        ctx = get_or_create_ctx("block")
        p = ctx.get_param("p")
        open(f"child-{p}.pid.tmp", "w").write(str(os.getpid()))
        os.rename(f"child-{p}.pid.tmp", f"child-{p}.pid")
        print("ready", p, flush=True)
        time.sleep(120)
    """)
    cli = subprocess.Popen(
        [sys.executable, "-m", "mlflowlet", "run", "block.py", "-x", "p=[1,2,3]",
         "--parallel", "3"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    pids = [wait_for(tmp_path / f"child-{p}.pid") for p in (1, 2, 3)]
    start = time.monotonic()
    cli.send_signal(signal.SIGINT)
    out, _ = cli.communicate(timeout=60)
    took = time.monotonic() - start
    assert cli.returncode == 130, out
    assert took < 10, took  # 5 s asked; room for a loaded 2-core machine
    wait_gone(pids, 5)
    runs = get_run_db().list_runs(iter=True)
    states = {r["metadata"]["iteration"]: r["status"]["state"] for r in runs}
    assert states == {0: "aborted", 1: "aborted", 2: "aborted", 3: "aborted"}, out
    errors = {r["status"]["error"] for r in runs}
    assert errors == {"aborted by Ctrl-C (SIGINT)"}
    for r in runs:
        if r["metadata"]["iteration"]:
            assert f"ready {r['spec']['params']['p']}" in get_run_db().get_log(
                r["metadata"]["uid"]).decode()
