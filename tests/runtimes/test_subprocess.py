"""The subprocess runtime: real child processes recording into the parent's SQLite run DB."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mlflowlet import get_run_db, new_runner, new_task
from mlflowlet.errors import ConfigError, SecretsError
from mlflowlet.model import RunObject
from mlflowlet.runtimes.subprocess import SubprocessRuntime


def _script(folder: Path, name: str, body: str) -> str:
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def test_training_example_completes_with_params_inputs_secrets(examples_dir):
    task = new_task(params={"p1": 5}).with_secrets("file", str(examples_dir / "secrets.txt"))
    task.with_input("infile.txt", str(examples_dir / "infile.txt"))
    run = new_runner(command="examples/training.py").run(task, watch=False)

    assert isinstance(run, RunObject) and run.state == "completed", run.error
    assert run.results == {"accuracy": 10, "loss": 15}
    assert run.metadata.labels == {"kind": "subprocess", "framework": "sklearn"}
    assert sorted(a["key"] for a in run.status.artifacts) == [
        "chart.html", "dataset.csv", "model.txt", "results.html"]
    assert run.status.exit_code == 0
    log = run.logs()
    assert "Params: p1=5, p2=a-string" in log and "line two of the input" in log
    assert "access key is set: True" in log
    stored = get_run_db().read_run(run.uid, run.metadata.project)
    assert stored["status"]["state"] == "completed"


def test_handler_in_a_file_runs_in_a_child_through_the_entrypoint(examples_dir):
    run = new_runner(command="examples/handler.py").run(
        new_task(params={"p1": 3}), handler="my_func", watch=False)

    assert run.state == "completed", run.error
    assert run.results == {"accuracy": 6, "p2_length": 8}
    assert "my_func got p1=3 p2=a-string" in run.logs()
    assert run.metadata.labels["kind"] == "subprocess"


def test_the_handler_runs_in_another_process(tmp_path):
    script = _script(tmp_path, "pid.py", """
        import os
        def whoami(context):
            return os.getpid()
    """)
    run = new_runner(command=script).run(handler="whoami", watch=False)
    assert run.state == "completed"
    assert isinstance(run.results["return"], int) and run.results["return"] != os.getpid()


def test_child_sees_the_run_spec_and_the_parent_db(tmp_path, dbdir):
    script = _script(tmp_path, "env.py", """
        import json, os
        from mlflowlet import get_or_create_ctx
        ctx = get_or_create_ctx("env")
        spec = json.loads(os.environ["MLFLOWLET_EXEC_CONFIG"])
        ctx.log_result("spec_uid", spec["metadata"]["uid"])
        ctx.log_result("dbpath", os.environ["MLFLOWLET_DBPATH"])
    """)
    run = new_runner(command=script).run(name="env", watch=False)
    assert run.results["spec_uid"] == run.uid
    assert run.results["dbpath"] == str(dbdir / "mlflowlet.db")


def test_inline_secrets_reach_the_child_but_never_the_db_or_spec(tmp_path, dbdir, capsys):
    value = "hunter2-very-secret"
    script = _script(tmp_path, "sec.py", """
        import os
        from mlflowlet import get_or_create_ctx
        ctx = get_or_create_ctx("sec")
        token = ctx.get_secret("TOKEN")
        print("token is", token)
        ctx.log_result("token_length", len(token or ""))
        ctx.log_result("left_in_env", "MLFLOWLET_EXEC_SECRETS" in os.environ)
        ctx.log_result("in_spec", token in os.environ["MLFLOWLET_EXEC_CONFIG"])
    """)
    task = new_task().with_secrets("inline", {"TOKEN": value})
    run = new_runner(command=script).run(task)

    assert run.results == {"token_length": len(value), "left_in_env": False, "in_spec": False}
    assert "token is ***" in run.logs() and value not in run.logs()
    assert "token is ***" in capsys.readouterr().out  # the echoed output is masked too
    for name in os.listdir(dbdir):
        if name.startswith("mlflowlet.db"):
            assert value.encode() not in (dbdir / name).read_bytes()


def test_noctx_passes_params_as_arguments_and_records_output(tmp_path):
    script = _script(tmp_path, "plain.py", """
        import sys
        print("args:", sys.argv[1:])
    """)
    run = new_runner(command=f"{script} --first", mode="noctx").run(
        params={"p1": 5, "name": "abc", "xs": [1, 2]}, watch=False)

    assert run.state == "completed" and run.status.exit_code == 0
    assert run.metadata.name == "plain"
    assert "args: ['--first', '--p1', '5', '--name', 'abc', '--xs', '[1, 2]']" in run.logs()


def test_noctx_nonzero_exit_is_an_error_with_the_code(tmp_path):
    script = _script(tmp_path, "fail.py", "import sys\nprint('bad input')\nsys.exit(3)\n")
    run = new_runner(command=script, mode="noctx").run(watch=False, raise_on_error=False)
    assert run.state == "error" and run.status.exit_code == 3
    assert run.error == "process exited with code 3"
    assert "bad input" in run.logs() and "process exited with code 3" in run.logs()


def test_pass_mode_runs_the_command_as_given_with_params_substituted(tmp_path):
    script = _script(tmp_path, "echo.py", "import sys\nprint('got', *sys.argv[1:])\n")
    run = new_runner(command=f"{script} --who {{who}} {{missing}}", mode="pass").run(
        params={"who": "world"}, watch=False)
    assert run.state == "completed"
    assert "got --who world {missing}" in run.logs()


def test_child_killed_by_a_signal_is_an_error_naming_the_signal(tmp_path):
    script = _script(tmp_path, "kill.py", """
        import os, signal
        from mlflowlet import get_or_create_ctx
        ctx = get_or_create_ctx("kill")
        ctx.log_result("before", 1, commit=True)
        print("about to die")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    run = new_runner(command=script).run(watch=False, raise_on_error=False)
    assert run.state == "error" and run.status.exit_code == -9
    assert "SIGKILL" in run.error
    assert run.results == {"before": 1}  # what the child recorded before dying stays
    assert "about to die" in run.logs()


def test_a_child_killed_mid_line_leaves_its_line_and_the_error_on_separate_lines(tmp_path):
    # the log read "half-process killed by SIGKILL (exit code -9)"
    script = _script(tmp_path, "half.py", """
        import os, signal, sys
        from mlflowlet import get_or_create_ctx
        get_or_create_ctx("half")
        sys.stdout.write("whole\\nhalf-")
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    run = new_runner(command=script).run(watch=False, raise_on_error=False)
    assert run.state == "error" and run.status.exit_code == -9
    assert run.logs() == "whole\nhalf-\nprocess killed by SIGKILL (exit code -9)\n"


def test_crashing_iterations_fail_alone_and_the_others_finish(tmp_path):
    script = _script(tmp_path, "crash.py", """
        import ctypes, os, signal
        from mlflowlet import get_or_create_ctx
        ctx = get_or_create_ctx("crash")
        p = ctx.get_param("p")
        if p == 2:
            os._exit(7)
        if p == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        if p == 4:
            ctypes.string_at(0)  # segfault
        ctx.log_result("score", p * 10)
    """)
    task = new_task().with_hyper_params({"p": [1, 2, 3, 4, 5]}, selector="max.score", parallel=2)
    run = new_runner(command=script).run(task, watch=False)

    assert run.state == "completed" and run.results["best_iteration"] == 5
    db = get_run_db()
    children = {i: db.read_run(run.uid, run.metadata.project, i)["status"] for i in range(1, 6)}
    assert children[1]["state"] == children[5]["state"] == "completed"
    assert children[2]["error"] == "process exited with code 7"
    assert "SIGKILL" in children[3]["error"] and "SIGSEGV" in children[4]["error"]
    assert {children[i]["state"] for i in (2, 3, 4)} == {"error"}
    assert "3 of 5 iteration(s) failed" in run.error


def test_timeout_kills_the_child_and_marks_the_run(tmp_path):
    script = _script(tmp_path, "slow.py", """
        import time
        from mlflowlet import get_or_create_ctx
        get_or_create_ctx("slow")
        print("working", flush=True)
        time.sleep(120)
    """)
    started = time.monotonic()
    run = new_runner(command=script, timeout=1).run(watch=False, raise_on_error=False)
    assert time.monotonic() - started < 60
    assert run.state == "error" and run.error == "timed out after 1 s"
    assert "working" in run.logs()
    assert get_run_db().read_run(run.uid)["status"]["state"] == "error"


def test_ctrl_c_stops_the_children_and_marks_the_runs_aborted(tmp_path, dbdir):
    _script(tmp_path, "block.py", """
        import time
        from mlflowlet import get_or_create_ctx
        ctx = get_or_create_ctx("block")
        print("ready", ctx.get_param("p"), flush=True)
        time.sleep(120)
    """)
    parent = textwrap.dedent("""
        from mlflowlet import new_runner, new_task
        task = new_task().with_hyper_params({"p": [1, 2]}, parallel=2)
        new_runner(command="block.py").run(task)
    """)
    proc = subprocess.Popen([sys.executable, "-c", parent], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen = []
    for line in proc.stdout:  # both children said they run: now press Ctrl-C
        if line.startswith("ready"):
            seen.append(line.split()[1])
            if len(seen) == 2:
                break
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "interrupted by SIGINT" in out
    runs = get_run_db().list_runs(iter=True)
    states = {r["metadata"]["iteration"]: r["status"]["state"] for r in runs}
    assert states == {0: "aborted", 1: "aborted", 2: "aborted"}


def test_unreadable_run_record_from_the_child_is_an_error(tmp_path):
    script = _script(tmp_path, "garbage.py", """
        import json, os, sqlite3
        uid = json.loads(os.environ["MLFLOWLET_EXEC_CONFIG"])["metadata"]["uid"]
        con = sqlite3.connect(os.environ["MLFLOWLET_DBPATH"])
        con.execute("UPDATE runs SET body='not json at all' WHERE uid=?", (uid,))
        con.commit()
    """)
    run = new_runner(command=script).run(watch=False, raise_on_error=False)
    assert run.state == "error" and "unreadable run record" in run.error
    assert get_run_db().read_run(run.uid)["status"]["state"] == "error"  # repaired record


def test_plain_script_without_a_context_completes_with_its_output(tmp_path):
    script = _script(tmp_path, "hello.py", "print('hello from a plain script')\n")
    run = new_runner(command=script).run(watch=False)
    assert run.state == "completed" and "hello from a plain script" in run.logs()


def test_watch_echoes_the_child_output_and_no_watch_does_not(tmp_path, capsys):
    script = _script(tmp_path, "talk.py", "print('talking to you')\n")
    new_runner(command=script).run(watch=True)
    assert "talking to you" in capsys.readouterr().out
    new_runner(command=script).run(watch=False)
    assert "talking to you" not in capsys.readouterr().out


def test_missing_script_fails_before_anything_is_recorded():
    with pytest.raises(ConfigError, match="script 'nope.py' does not exist"):
        new_runner(command="nope.py").run()
    assert len(get_run_db().list_runs(iter=True)) == 0


def test_missing_secrets_file_fails_before_anything_is_recorded(tmp_path):
    script = _script(tmp_path, "ok.py", "print('ok')\n")
    task = new_task().with_secrets("file", "missing-secrets.txt")
    with pytest.raises(SecretsError, match="missing-secrets.txt"):
        new_runner(command=script).run(task)
    assert len(get_run_db().list_runs(iter=True)) == 0


def test_a_handler_cannot_run_in_noctx_mode(tmp_path):
    script = _script(tmp_path, "h.py", "def f(context):\n    return 1\n")
    with pytest.raises(ConfigError, match="cannot run in mode 'noctx'"):
        new_runner(command=script, mode="noctx").run(handler="f")


def test_default_parallelism_is_the_cpu_count():
    assert SubprocessRuntime("x.py")._default_parallel() == (os.cpu_count() or 1)
