"""Sweep iterations fork from a warm worker: each a fresh process, as `python script.py` runs it."""

from __future__ import annotations

import os
import signal
import textwrap
from pathlib import Path

import pytest
from _procs import alive, wait_gone

from mlflowlet import get_run_db, new_runner, new_task
from mlflowlet.runtimes.subprocess import SubprocessRuntime

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="warm workers are Linux-only")

PROBE = """
    import os, random, sys
    from mlflowlet import get_or_create_ctx
    ctx = get_or_create_ctx("probe")
    p = ctx.get_param("p", 0)
    print(f"iteration says {p}")
    ctx.log_result("pid", os.getpid())
    ctx.log_result("ppid", os.getppid())
    ctx.log_result("pgid_is_pid", os.getpgid(0) == os.getpid())
    ctx.log_result("argv", " ".join(sys.argv))
    ctx.log_result("name_file", f"{__name__} {__file__}")
    ctx.log_result("path0", sys.path[0])
    ctx.log_result("random", random.random())
    ctx.log_result("main_is_fresh", "probe_marker" not in globals())
    probe_marker = 1
    if p == 3:
        raise ValueError("iteration three fails")
    if p == 4:
        os.kill(os.getpid(), signal.SIGKILL) if False else os._exit(7)
"""


def _script(folder: Path, name: str, body: str) -> str:
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return name


def _sweep(script: str, values: list, **options):
    runner = new_runner(command=f"{script} --flag", **options)
    task = new_task().with_hyper_params({"p": values}, parallel=2, max_errors=10)
    run = runner.run(task, watch=False, raise_on_error=False)
    kids = [
        r for r in get_run_db().list_runs(uid=run.uid, iter=True) if r["metadata"]["iteration"]
    ]  # fmt: skip
    return runner, run, {k["spec"]["params"]["p"]: k for k in kids}


def test_iterations_fork_from_one_warm_worker_and_run_as_python_would(tmp_path):
    script = _script(tmp_path, "probe.py", PROBE)
    runner, _, kids = _sweep(script, [1, 2, 3, 4, 5, 6])
    assert runner.warm_reason == ""
    ok = {p: k["status"]["results"] for p, k in kids.items() if p not in (3, 4)}
    parents = {r["ppid"] for r in ok.values()}
    assert len(parents) == 1 and parents != {os.getpid()}  # all forked by the worker
    assert len({r["pid"] for r in ok.values()}) == 4  # one fresh process per iteration
    assert len({r["random"] for r in ok.values()}) == 4  # reseeded after each fork
    for p, r in ok.items():
        assert r["pgid_is_pid"] is True and r["main_is_fresh"] is True
        assert r["argv"] == "probe.py --flag"
        assert r["name_file"] == f"__main__ {tmp_path / 'probe.py'}"
        assert r["path0"] == str(tmp_path)
        assert kids[p]["status"]["state"] == "completed"
    failed = kids[3]["status"]
    assert failed["state"] == "error" and "iteration three fails" in failed["error"]
    assert 'probe.py", line' in failed["error"] and "_forkserver" not in failed["error"]
    crashed = kids[4]["status"]
    assert crashed["state"] == "error" and crashed["exit_code"] == 7
    assert "process exited with code 7" in crashed["error"]


def test_output_of_each_forked_iteration_reaches_the_runs_log_once(tmp_path):
    script = _script(tmp_path, "probe.py", PROBE)
    runner, run, kids = _sweep(script, [1, 2])
    assert runner.warm_reason == ""
    log = get_run_db().get_log(run.uid, run.metadata.project).decode()
    for p in kids:
        assert log.count(f"iteration says {p}\n") == 1, log


IMPORTS = """
    import sys
    start = set(sys.modules)
    from mlflowlet import get_or_create_ctx
    ctx = get_or_create_ctx("imports")
    ctx.log_result("p", ctx.get_param("p", 0))
    ctx.log_artifact("model.txt", body=b"weights")
    new = {m for m in set(sys.modules) - start if m.split(".")[0] in ("mlflowlet", "pwd")}
    ctx.log_result("imported", ",".join(sorted(new)))
"""


def test_a_tracked_forked_iteration_imports_nothing_the_warm_up_could_have(tmp_path):
    # each module a child imports on its own is paid again by every iteration
    _, run, kids = _sweep(_script(tmp_path, "imports.py", IMPORTS), [1, 2])
    assert run.state == "completed", run.error
    assert {p: k["status"]["results"]["imported"] for p, k in kids.items()} == {1: "", 2: ""}


def test_same_records_with_and_without_the_warm_worker(tmp_path, monkeypatch):
    script = _script(tmp_path, "probe.py", PROBE)
    _, _, warm = _sweep(script, [1, 2])
    monkeypatch.setenv("MLFLOWLET_NO_FORKSERVER", "1")
    runner, _, cold = _sweep(script, [1, 2])
    assert runner.warm_reason == "MLFLOWLET_NO_FORKSERVER is set"
    assert {r["status"]["results"]["ppid"] for r in cold.values()} == {os.getpid()}
    for p in (1, 2):
        a, b = warm[p]["status"]["results"], cold[p]["status"]["results"]
        for key in ("argv", "name_file", "path0", "pgid_is_pid", "main_is_fresh"):
            assert a[key] == b[key], key


@pytest.mark.parametrize(
    ("module", "reason"),
    [
        ("import threading\nthreading.Thread(target=threading.Event().wait, daemon=True).start()\n",
         "started threads"),
        ("print('hello from an import')\n", "wrote"),
    ],
)  # fmt: skip
def test_imports_that_start_threads_or_write_fall_back_to_fresh_interpreters(
    tmp_path, module, reason
):
    (tmp_path / "sideeffect.py").write_text(module)
    script = _script(tmp_path, "uses.py", "import sideeffect\n" + textwrap.dedent(PROBE))
    runner, _, kids = _sweep(script, [1, 2])
    assert reason in runner.warm_reason
    assert {k["status"]["results"]["ppid"] for k in kids.values()} == {os.getpid()}
    assert all(k["status"]["state"] == "completed" for k in kids.values())


def test_a_timed_out_forked_iteration_loses_its_whole_tree(tmp_path):
    script = _script(tmp_path, "hang.py", """
        import os, subprocess, sys, time
        from mlflowlet import get_or_create_ctx
        ctx = get_or_create_ctx("hang")
        p = ctx.get_param("p", 0)
        if p == 2:
            kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
            open(f"grandchild.pid", "w").write(str(kid.pid))
            time.sleep(600)
        ctx.log_result("ok", p)
    """)
    runner, _, kids = _sweep(script, [1, 2], timeout=3, kill_grace=0.5)
    assert runner.warm_reason == ""
    assert kids[1]["status"]["state"] == "completed"
    assert kids[2]["status"]["state"] == "error"
    assert "timed out after 3 s" in kids[2]["status"]["error"]
    grandchild = int((tmp_path / "grandchild.pid").read_text())
    assert not alive(grandchild)  # ended before the sweep returned


def test_handler_sweeps_fork_through_the_entrypoint(tmp_path):
    _script(tmp_path, "handlers.py", """
        import os
        def job(context, p: int = 0):
            context.log_result("double", p * 2)
            return os.getppid()
    """)
    runner = new_runner(command="handlers.py")
    task = new_task().with_hyper_params({"p": [1, 2, 3]}, parallel=2, selector="max.double")
    run = runner.run(task, handler="job", watch=False)
    assert run.state == "completed", run.error
    assert runner.warm_reason == "" and run.results["double"] == 6
    kids = [r for r in get_run_db().list_runs(uid=run.uid, iter=True) if r["metadata"]["iteration"]]
    assert {k["status"]["results"]["return"] for k in kids} - {os.getpid()}


def test_a_forked_iteration_ends_as_an_interpreter_ends(tmp_path):
    script = _script(tmp_path, "ending.py", """
        import atexit, sys, threading, time
        from mlflowlet import get_or_create_ctx
        ctx = get_or_create_ctx("ending")
        p = ctx.get_param("p", 0)
        left_open = open(f"unclosed-{p}.txt", "w")  # never closed: flushed at exit
        left_open.write("kept")
        atexit.register(lambda: print(f"atexit ran {p}"))
        worker = threading.Thread(target=lambda: (time.sleep(0.2), open(f"thread-{p}", "w")))
        worker.start()  # not a daemon: the exit waits for it
        if p == 2:
            sys.exit("a message and code 1")
    """)
    runner, run, kids = _sweep(script, [1, 2])
    assert runner.warm_reason == ""
    for p in (1, 2):
        assert (tmp_path / f"unclosed-{p}.txt").read_text() == "kept"
        assert (tmp_path / f"thread-{p}").exists()
    log = get_run_db().get_log(run.uid, run.metadata.project).decode()
    assert "atexit ran 1" in log and "atexit ran 2" in log and "a message and code 1" in log
    assert kids[1]["status"]["state"] == "completed"
    assert kids[2]["status"]["exit_code"] == 1 and kids[2]["status"]["state"] == "error"


def test_a_worker_killed_mid_sweep_loses_only_the_iteration_in_flight(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARE_PID", str(os.getpid()))  # never kill pytest (no warm worker)
    script = _script(tmp_path, "killer.py", """
        import os, signal, sys, threading
        from mlflowlet import get_or_create_ctx
        ctx = get_or_create_ctx("killer")
        p = ctx.get_param("p", 0)
        ctx.log_result("ppid", os.getppid())
        if p == 2 and os.getppid() == int(os.environ["SPARE_PID"]):
            sys.exit("iteration 2 ran in a fresh interpreter, not in the warm worker")
        if p == 2:
            os.kill(os.getppid(), signal.SIGKILL)  # the warm worker
            threading.Event().wait(60)  # PR_SET_PDEATHSIG ends this child
    """)
    runner = new_runner(command=script)
    task = new_task().with_hyper_params({"p": [1, 2, 3, 4]}, parallel=1, max_errors=4)
    run = runner.run(task, watch=False, raise_on_error=False)
    kids = {
        k["spec"]["params"]["p"]: k["status"]
        for k in get_run_db().list_runs(uid=run.uid, iter=True)
        if k["metadata"]["iteration"]
    }
    assert kids[1]["state"] == "completed" and kids[1]["results"]["ppid"] != os.getpid()
    assert kids[2]["state"] == "error" and "warm worker" in kids[2]["error"]
    for p in (3, 4):  # after it: fresh interpreters, started by this process
        assert kids[p]["state"] == "completed" and kids[p]["results"]["ppid"] == os.getpid()


def test_where_forking_is_not_used_is_said():
    from mlflowlet.runtimes import _warm

    assert "mode='pass'" in _warm.unsafe_reason(["python", "x.py"], "python", "pass")
    assert "not this interpreter" in _warm.unsafe_reason(["/x/python", "x.py"], "/x/python", "")
    runtime = SubprocessRuntime("x.py")
    assert runtime.warm_reason == ""
    assert signal.SIGTERM  # the child restores default signal handling (see _forkserver)


def test_a_warm_child_running_the_seed_script_imports_nothing_new(tmp_path):
    # each module a forked child imports is paid once per iteration of a sweep
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "examples" / "training.py"
    probe = (
        "import sys\n"
        "from mlflowlet.runtimes import _forkserver as f\n"
        f"assert f._warm([{str(script)!r}]) == ''\n"
        "before = set(sys.modules)\n"
        f"assert f._run([{str(script)!r}, '--flag']) == 0\n"
        "print(sorted(set(sys.modules) - before), file=sys.stderr)\n"
    )
    env = {**os.environ, "MLFLOWLET_DBPATH": str(tmp_path / "db")}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                         cwd=tmp_path, check=True)
    assert out.stderr.strip().splitlines()[-1] == "[]"


LEAVER = """
    import os, signal, subprocess, sys, time
    from mlflowlet import get_or_create_ctx
    ctx = get_or_create_ctx("leaver")
    p = ctx.get_param("p", 0)

    def running(pid):
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                return fh.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
        except OSError:
            return False

    def wait_for(name):
        while not os.path.exists(name):
            time.sleep(0.01)
        return int(open(name).read())

    if p == 1:  # a grandchild in a session of its own: out of the iteration's group
        subprocess.Popen([sys.executable, "-c", "import os, time; "
                          "open('gc1.tmp', 'w').write(str(os.getpid())); "
                          "os.rename('gc1.tmp', 'gc1.pid'); time.sleep(300)"],
                         start_new_session=True, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
        wait_for("gc1.pid")
        # a classic daemon: its own session, no environment (no cookie), deaf to SIGTERM
        subprocess.Popen([sys.executable, "-c", "import os, signal, time; "
                          "signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                          "open('gc3.tmp', 'w').write(str(os.getpid())); "
                          "os.rename('gc3.tmp', 'gc3.pid'); time.sleep(300)"],
                         start_new_session=True, env={}, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
        wait_for("gc3.pid")
    if p == 2 and os.fork() == 0:  # a plain fork, left in the iteration's group
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the run's: it would record an abort
        open("gc2.tmp", "w").write(str(os.getpid()))
        os.rename("gc2.tmp", "gc2.pid")
        time.sleep(300)
        os._exit(0)
    if p == 2:
        wait_for("gc2.pid")
    if p == 3:  # runs after both ended (one at a time)
        ctx.log_result("left", [running(wait_for(f"gc{i}.pid")) for i in (1, 2)])
        deadline = time.monotonic() + 60  # the daemon gets SIGKILL after the grace period
        while running(wait_for("gc3.pid")) and time.monotonic() < deadline:
            time.sleep(0.01)
        ctx.log_result("daemon_left", running(wait_for("gc3.pid")))
"""


def test_what_a_finished_forked_iteration_leaves_running_is_ended_with_it(tmp_path):
    # the worker is its children's subreaper: it tells the runtime when a child's tree ended
    # with it (no /proc search then); a tree that did not is searched and ended, as before
    script = _script(tmp_path, "leaver.py", LEAVER)
    runner = new_runner(command=script, kill_grace=0.2)
    task = new_task().with_hyper_params({"p": [1, 2, 3]}, parallel=1)
    try:
        run = runner.run(task, watch=False)
        assert runner.warm_reason == ""
        kids = {
            k["spec"]["params"]["p"]: k["status"]
            for k in get_run_db().list_runs(uid=run.uid, iter=True)
            if k["metadata"]["iteration"]
        }
        assert [kids[p]["state"] for p in (1, 2, 3)] == ["completed"] * 3
        assert kids[3]["results"]["left"] == [False, False]
        assert kids[3]["results"]["daemon_left"] is False  # the worker, its subreaper, ends it
    finally:
        for name in ("gc1.pid", "gc2.pid", "gc3.pid"):
            path = tmp_path / name
            if path.exists() and alive(int(path.read_text())):
                os.kill(int(path.read_text()), signal.SIGKILL)


def test_the_worker_says_a_child_ended_alone_only_when_nothing_of_its_tree_runs(tmp_path):
    import subprocess
    import sys

    from mlflowlet.runtimes import _warm

    _script(tmp_path, "quiet.py", "x = 1\n")
    _script(tmp_path, "leave.py", """
        import subprocess, sys
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                                   start_new_session=True, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        open("left.pid", "w").write(str(sleeper.pid))
    """)
    env = {**os.environ, "MLFLOWLET_DBPATH": str(tmp_path)}
    worker = _warm.WarmWorker([sys.executable, "quiet.py"], env, str(tmp_path), [])
    ended = []
    try:
        assert worker.usable, worker.why
        for name in ("quiet.py", "leave.py"):
            proc, _ = worker.start([sys.executable, name], env, str(tmp_path))
            proc.stdout.read()  # EOF: the child (and whatever holds its output) ended
            proc.wait(60)
            ended.append((name, proc.returncode, proc.alone, _warm.left_nothing(proc)))
        # its leftover became the worker's child: the worker ends it (SIGTERM, then SIGKILL)
        wait_gone([int((tmp_path / "left.pid").read_text())], 60)
        gone = subprocess.Popen(["true"])
        gone.wait()
        runs = subprocess.Popen(["sleep", "300"], start_new_session=True)
        for group, nothing in ((runs.pid, False), (gone.pid, True)):  # a group that runs, or none
            proc = _warm.ForkedProcess(["x"])
            proc._ended(0, alone=True)
            proc.group = group
            ended.append((group == runs.pid, _warm.left_nothing(proc) is nothing))
    finally:
        worker.close()
        if "runs" in locals():
            runs.kill()
            runs.wait()
        left = tmp_path / "left.pid"
        leftover = int(left.read_text()) if left.exists() else 0
        if leftover and alive(leftover):
            os.kill(leftover, signal.SIGKILL)
    assert ended == [
        ("quiet.py", 0, True, True),
        ("leave.py", 0, False, False),  # its leftover ran on: the worker's child, searched
        (True, True),  # alone, but its group still runs: searched
        (False, True),  # alone and its group gone: nothing to search
    ]


def test_a_forked_iteration_exits_with_the_status_python_gives_sys_exit(tmp_path, monkeypatch):
    # int arguments (a bool is one) become the exit status as CPython makes it, never printed;
    # -2 is an exit status (254), not an interrupt
    codes = ["None", "True", "-2", "256", "2**31", "-(2**31) - 1", "2**63", "'bye'"]
    script = _script(tmp_path, "exits.py", """
        import sys
        from mlflowlet import get_or_create_ctx
        ctx = get_or_create_ctx("exits")
        CODES = [None, True, -2, 256, 2**31, -(2**31) - 1, 2**63, 'bye']
        sys.exit(CODES[ctx.get_param("p", 0)])
    """)
    runner, run, warm = _sweep(script, list(range(len(codes))))
    assert runner.warm_reason == ""
    warm_log = get_run_db().get_log(run.uid, run.metadata.project).decode()
    monkeypatch.setenv("MLFLOWLET_NO_FORKSERVER", "1")
    _, run, cold = _sweep(script, list(range(len(codes))))
    cold_log = get_run_db().get_log(run.uid, run.metadata.project).decode()
    got = {codes[p]: (k["status"]["state"], k["status"].get("exit_code")) for p, k in warm.items()}
    assert got == {codes[p]: (k["status"]["state"], k["status"].get("exit_code"))
                   for p, k in cold.items()}
    assert got["-2"] == ("error", 254) and got["2**31"][1] in (0, None)  # as `python` exits
    assert "True" not in warm_log and "bye" in warm_log and "bye" in cold_log
