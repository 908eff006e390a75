"""The ``mlflowlet`` command line: the seed's command lines, each command, bad input, exits."""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import sys

import pytest
import yaml

from mlflowlet import get_run_db, new_runner
from mlflowlet._cli._progress import IterationProgress
from mlflowlet.cli import main
from mlflowlet.model import RunObject


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run the command line in this process; return (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def shell(command: str, cwd, **env: str) -> subprocess.CompletedProcess:
    """Run ``mlflowlet ...`` as a shell would split it, as ``python -m mlflowlet``."""
    argv = shlex.split(command)
    assert argv[0] == "mlflowlet"
    return subprocess.run([sys.executable, "-m", "mlflowlet", *argv[1:]], cwd=cwd, text=True,
                          capture_output=True, timeout=300, env={**os.environ, **env})


@pytest.fixture
def ex(examples_dir, monkeypatch):
    """Work in a private copy of examples/ (nothing is written to the repository)."""
    monkeypatch.chdir(examples_dir)
    return examples_dir


def _runs(name: str = "", iterations: bool = False) -> list[RunObject]:
    return get_run_db().list_runs(name=name, iter=iterations).objects()


# the seed's command lines ----------------------------------------------------------------------
def test_seed_run_with_params_inputs_and_secrets(ex):
    proc = shell("mlflowlet run --name train -p p2=5 -i infile.txt=infile.txt "
                 "-s file=secrets.txt training.py", ex)
    assert proc.returncode == 0, proc.stderr
    assert "run 'train' completed" in proc.stdout
    (run,) = _runs("train")
    assert run.state == "completed" and run.spec.params == {"p1": 1, "p2": 5}
    assert run.results == {"accuracy": 2, "loss": 3}
    assert run.spec.inputs == {"infile.txt": str(ex / "infile.txt")}
    log = run.logs()
    assert "line one of the input" in log and "access key is set: True" in log
    assert "dummy-access-key-123" not in log and "dummy-access-key-123" not in run.to_yaml()


def test_seed_hyper_sweep_runs_nine_iterations(ex):
    proc = shell('mlflowlet run --name train_hyper -x p1="[3,7,5]" -x p2="[5,2,9]" training.py',
                 ex)
    assert proc.returncode == 0, proc.stderr
    (parent,) = _runs("train_hyper")
    assert parent.state == "completed" and len(parent.status.iterations) == 9 + 1
    children = [r for r in _runs("train_hyper", iterations=True) if r.metadata.iteration]
    assert sorted(r.metadata.iteration for r in children) == list(range(1, 10))
    assert {r.state for r in children} == {"completed"}
    assert "9/9 iterations done" in proc.stdout  # plain progress lines: stdout is no terminal


def test_seed_hyper_sweep_selects_the_best_iteration(ex, capsys):
    code, out, err = cli(capsys, "run", "--name", "train_hyper", "-x", "p1=[3,7,5]",
                         "-x", "p2=[5,2,9]", "--selector", "max.accuracy", "training.py")
    assert code == 0, err
    (parent,) = _runs("train_hyper")
    assert parent.results["best_iteration"] == 4 and parent.results["accuracy"] == 14
    assert "best accuracy=14 (iteration 4)" in out


def test_seed_noctx_script_that_only_reads_argv(ex):
    (ex / "argv_only.py").write_text("import sys\nprint('argv', sys.argv[1:])\n")
    proc = shell("mlflowlet run --mode noctx -p p1=5 -p p2=x argv_only.py", ex)
    assert proc.returncode == 0, proc.stderr
    (run,) = _runs("argv_only")
    assert run.state == "completed" and run.status.exit_code == 0
    assert "argv ['--p1', '5', '--p2', 'x']" in run.logs()


def test_seed_dump_prints_the_final_run_yaml(ex):
    proc = shell("mlflowlet run --name train -p p1=4 --dump training.py", ex)
    assert proc.returncode == 0, proc.stderr
    data = yaml.safe_load(proc.stdout)  # stdout holds only the YAML; the run's output is on stderr
    assert data["status"]["state"] == "completed" and data["status"]["results"]["accuracy"] == 8
    assert "Params: p1=4" in proc.stderr


# what runs where -------------------------------------------------------------------------------
def test_module_function_runs_in_process(ex):
    proc = shell("mlflowlet run handler:my_func -p p1=3 --json", ex)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["metadata"]["labels"]["kind"] == "local"
    assert data["status"]["results"] == {"accuracy": 6, "p2_length": 8}
    assert "my_func got p1=3" in proc.stderr


def test_file_function_runs_in_process_in_the_same_interpreter(ex, capsys):
    code, out, err = cli(capsys, "run", "handler.py:my_func", "-p", "p2=hello", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["status"]["results"]["p2_length"] == 5
    assert data["metadata"]["labels"]["kind"] == "local"


def test_handler_with_a_file_runs_in_a_child(ex, capsys):
    code, out, err = cli(capsys, "run", "--handler", "my_func", "handler.py", "-p", "p1=3")
    assert code == 0, err
    (run,) = _runs("my_func")
    assert run.results == {"accuracy": 6, "p2_length": 8}
    assert run.metadata.labels["kind"] == "subprocess"
    assert "my_func got p1=3" in out  # the child's output, echoed


def test_an_object_with_run_is_run_as_a_pipeline(ex, capsys):
    (ex / "fakepipe.py").write_text(
        "from mlflowlet.model import RunObject\n"
        "class Pipe:\n"
        "    def run(self, **params):\n"
        "        run = RunObject()\n"
        "        run.metadata.name, run.metadata.uid = 'pipe', 'u1'\n"
        "        run.status.state = 'completed'\n"
        "        run.status.results = dict(params)\n"
        "        return run\n"
        "train_eval = Pipe()\n"
    )
    code, out, err = cli(capsys, "run", "fakepipe.py:train_eval", "-p", "rows=50")
    assert code == 0, err
    assert "run 'pipe' completed" in out and "rows=50" in out


def test_output_flag_writes_an_artifact_and_a_result(ex, capsys):
    code, _, err = cli(capsys, "run", "handler.py:training", "-p", "p1=2",
                       "-o", "model.txt=out/model.txt", "-o", "loss=out/loss")
    assert code == 0, err
    assert (ex / "out/model.txt").read_bytes() == b"weights for p1=2"
    assert (ex / "out/loss").read_text() == "4"


def test_param_file_and_labels(ex, capsys):
    code, out, err = cli(capsys, "run", "--param-file", "params.csv", "--selector",
                         "max.accuracy", "-l", "team=a", "--no-watch", "handler.py:training")
    assert code == 0, err
    (run,) = _runs()
    assert run.results["best_iteration"] == 3 and run.metadata.labels["team"] == "a"
    assert "iterations done" not in out  # --no-watch: no progress


# bad input: exit 1 or 2, one line naming the culprit, earlier runs stay -----------------------
@pytest.mark.parametrize("args, code, message", [
    (["run", "nope.py"], 1, "script 'nope.py' does not exist"),
    (["run", "no_such_module_xyz:fn"], 1, "cannot import 'no_such_module_xyz'"),
    (["run", "handler.py:nothing"], 1, "'handler.py' has no 'nothing'"),
    (["run", "-s", "file=missing-secrets.txt", "training.py"], 1, "missing-secrets.txt"),
    (["run", "--param-file", "bad.csv", "handler.py:my_func"], 1,
     "param file 'bad.csv' column(s) 'a', 'b' name no parameter of my_func()"),
    (["run", "--param-file", "bad.csv", "--handler", "my_func", "handler.py"], 1,
     "name no parameter of my_func()"),
])
def test_bad_input_is_one_line_and_exit_1(ex, capsys, args, code, message):
    (ex / "bad.csv").write_text("a,b\n1,2\n")
    new_runner().run(handler=lambda context: 1, name="kept")
    got, out, err = cli(capsys, *args)
    assert got == code
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert [r.metadata.name for r in _runs()] == ["kept"]


@pytest.mark.parametrize("args, message", [
    (["run", "-p", "p1", "training.py"], "-p/--param 'p1' is not KEY=VALUE"),
    (["run", "-x", "p1=5", "training.py"], "values must be a non-empty list"),
    (["run", "--mode", "weird", "training.py"], "--mode 'weird' is not one of noctx, pass"),
    (["run"], "say what to run"),
    (["run", "--dump", "--json", "training.py"], "choose one"),
    (["del", "runs"], "refusing to delete every run"),
    (["run", "--no-such-flag", "training.py"], "No such option"),
])
def test_bad_usage_exits_2(ex, capsys, args, message):
    code, _, err = cli(capsys, *args)
    assert code == 2
    assert message in " ".join(err.replace("│", " ").split())


def test_a_child_killed_by_a_signal_exits_1_naming_it(ex, capsys):
    (ex / "die.py").write_text(
        "import os, signal\nfrom mlflowlet import get_or_create_ctx\n"
        "get_or_create_ctx('die')\nos.kill(os.getpid(), signal.SIGKILL)\n")
    code, _, err = cli(capsys, "run", "die.py")
    assert code == 1
    assert "failed: process killed by SIGKILL" in err.strip().splitlines()[-1]
    assert _runs("die")[0].state == "error"


def test_a_child_that_writes_garbage_to_its_run_record_exits_1(ex, capsys):
    (ex / "garbage.py").write_text(
        "import json, os, sqlite3\n"
        "uid = json.loads(os.environ['MLFLOWLET_EXEC_CONFIG'])['metadata']['uid']\n"
        "con = sqlite3.connect(os.environ['MLFLOWLET_DBPATH'])\n"
        "con.execute(\"UPDATE runs SET body='{{{' WHERE uid=?\", (uid,))\n"
        "con.commit()\n")
    code, _, err = cli(capsys, "run", "garbage.py")
    assert code == 1 and "unreadable run record" in err


def test_an_unwritable_artifact_path_exits_1_naming_it(ex, capsys):
    (ex / "a-file").write_text("not a directory")
    code, _, err = cli(capsys, "run", "--artifact-path", "a-file/sub", "handler.py:training")
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert "Not a directory" in last and "a-file/sub" in last and "Traceback" not in err


def test_verbose_shows_the_traceback(ex, capsys):
    code, _, err = cli(capsys, "--verbose", "run", "no_such_module_xyz:fn")
    assert code == 1 and "Traceback" in err and err.strip().splitlines()[-1].startswith("error:")


# get, logs, del, version, config ---------------------------------------------------------------
def test_get_runs_run_artifacts_artifact(ex, capsys):
    code, _, err = cli(capsys, "run", "--name", "g1", "handler.py:training", "-l", "team=x")
    assert code == 0, err
    (run,) = _runs("g1")
    code, out, _ = cli(capsys, "get", "runs", "-l", "team=x")
    assert code == 0 and run.uid in out and "completed" in out
    code, out, _ = cli(capsys, "get", "runs", "--output", "json", "--state", "error")
    assert code == 0 and json.loads(out) == []
    code, out, _ = cli(capsys, "get", "run", run.uid)
    assert yaml.safe_load(out)["metadata"]["name"] == "g1"
    code, out, _ = cli(capsys, "get", "artifacts", "-o", "json")
    assert [a["key"] for a in json.loads(out)] == ["model.txt"]
    code, out, _ = cli(capsys, "get", "artifact", "model.txt", "-o", "table")
    assert "model.txt" in out and "g1" in out
    code, _, err = cli(capsys, "get", "run", "0" * 32)
    assert code == 1 and f"run {'0' * 32} (iteration 0) not found" in err


def test_logs_prints_the_captured_output(ex, capsys):
    cli(capsys, "run", "--name", "talk", "handler.py:my_func", "-p", "p1=9")
    (run,) = _runs("talk")
    code, out, _ = cli(capsys, "logs", run.uid, "--follow")  # already ended: returns at once
    assert code == 0 and "my_func got p1=9" in out


def test_logs_follow_waits_for_the_run_to_end(ex):
    db = get_run_db()
    run = RunObject()
    run.metadata.uid, run.metadata.name, run.metadata.project = "live1", "live", "default"
    run.status.state = "running"
    db.store_run(run.to_dict(), "live1", "default")
    db.store_log("live1", "default", b"first line\n")
    follower = subprocess.Popen([sys.executable, "-m", "mlflowlet", "logs", "live1", "--follow"],
                                cwd=ex, stdout=subprocess.PIPE, text=True)
    assert follower.stdout.readline() == "first line\n"  # it printed, and keeps following
    db.store_log("live1", "default", b"second line\n")
    run.status.state = "completed"
    db.store_run(run.to_dict(), "live1", "default")
    rest, _ = follower.communicate(timeout=60)
    assert follower.returncode == 0 and "second line" in rest


def test_del_runs_deletes_only_the_filtered_runs(ex, capsys):
    new_runner().run(handler=lambda context: 1, name="keep")
    new_runner().run(handler=lambda context: 2, name="drop")
    code, out, _ = cli(capsys, "del", "runs", "--name", "drop")
    assert code == 0 and "deleted 1 run(s)" in out
    assert [r.metadata.name for r in _runs()] == ["keep"]


def test_del_runs_label_value_with_not_equals_deletes_only_that_run(ex, capsys):
    for value in ("a!=b", "a", "b"):
        new_runner().run(handler=lambda context: 1, name=f"r-{len(value)}", labels={"k": value})
    code, out, _ = cli(capsys, "del", "runs", "-l", "k=a!=b")
    assert code == 0 and "1 run(s) match" in out and "deleted 1 run(s)" in out
    assert sorted(r.metadata.labels["k"] for r in _runs()) == ["a", "b"]


def test_del_runs_lists_the_matches_and_needs_yes_for_more_than_one(ex, capsys):
    runs = [new_runner().run(handler=lambda context: 1, name="drop") for _ in range(2)]
    new_runner().run(handler=lambda context: 1, name="keep")
    code, out, err = cli(capsys, "del", "runs", "--name", "drop")
    assert code == 1 and "2 run(s) match" in out and "--yes" in err
    assert all(r.uid in out for r in runs) and len(_runs()) == 3  # nothing deleted
    code, out, _ = cli(capsys, "del", "runs", "--name", "drop", "--yes")
    assert code == 0 and "deleted 2 run(s)" in out
    assert [r.metadata.name for r in _runs()] == ["keep"]
    code, out, _ = cli(capsys, "del", "runs", "--name", "nothing-like-it")
    assert code == 0 and "deleted 0 run(s)" in out


def test_del_artifacts_takes_the_exact_key_and_needs_yes_for_more_than_one(ex, capsys):
    def handler(context):
        context.log_artifact("ch", body=b"1")
        context.log_artifact("chart.html", body=b"<p>")

    new_runner().run(handler=handler)
    new_runner().run(handler=handler)
    code, out, err = cli(capsys, "del", "artifacts", "--name", "ch")
    assert code == 1 and "2 artifact version(s) match" in out and "chart.html" not in out
    code, out, _ = cli(capsys, "del", "artifacts", "--name", "ch", "--yes")
    assert code == 0 and "deleted 2 artifact version(s)" in out
    assert sorted(a["key"] for a in get_run_db().list_artifacts(tag="*")) == ["chart.html"] * 2


def test_version_and_config(ex, capsys, dbdir):
    from mlflowlet import __version__

    assert cli(capsys, "version")[1] == f"mlflowlet {__version__}\n"
    code, out, _ = cli(capsys, "config", "-o", "json")
    rows = {r["setting"]: r for r in json.loads(out)}
    assert rows["dbpath"] == {"setting": "dbpath", "value": str(dbdir), "from": "MLFLOWLET_DBPATH"}
    assert rows["project"]["from"] == "default"
    assert rows["(run DB file)"]["value"] == str(dbdir / "mlflowlet.db")


def test_config_hides_the_api_token(ex, capsys, monkeypatch):
    monkeypatch.setenv("MLFLOWLET_API_TOKEN", "tok-very-secret")
    code, out, _ = cli(capsys, "config")
    assert code == 0 and "tok-very-secret" not in out and "***" in out


@pytest.mark.parametrize("command", [
    [], ["run"], ["get"], ["get", "runs"], ["get", "run"], ["get", "artifacts"],
    ["get", "artifact"], ["logs"], ["del"], ["del", "runs"], ["version"], ["config"],
])
def test_help_on_every_command(capsys, command):
    code, out, _ = cli(capsys, *command, "--help")
    assert code == 0 and "Usage: mlflowlet" in out
    if command not in (["get"], ["del"]):
        assert "Example" in out


def test_help_and_version_load_no_core_module():
    code = (
        "import sys\nfrom mlflowlet.cli import main\n"
        "for argv in (['--help'], ['version']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "heavy = [m for m in ('pydantic', 'networkx', 'mlflowlet.model', 'mlflowlet.db', "
        "'sqlite3', 'yaml') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60).stdout
    assert "HEAVY []" in out


def test_console_script_and_python_dash_m_agree(tmp_path):
    from mlflowlet import __version__

    out = subprocess.run([sys.executable, "-m", "mlflowlet", "version"], capture_output=True,
                         text=True, timeout=60).stdout
    assert out == f"mlflowlet {__version__}\n"
    script = os.path.join(os.path.dirname(sys.executable), "mlflowlet")
    if os.path.exists(script):
        assert subprocess.run([script, "version"], capture_output=True, text=True,
                              timeout=60).stdout == out


# progress --------------------------------------------------------------------------------------
class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _child(iteration: int, state: str, **results) -> RunObject:
    run = RunObject()
    run.metadata.iteration, run.status.state, run.status.results = iteration, state, results
    return run


def test_progress_redraws_one_line_on_a_terminal():
    stream = _Tty()
    progress = IterationProgress(3, "min.loss", stream)
    progress.update(_child(2, "completed", loss=0.5))
    progress.update(_child(1, "error"))
    progress.update(_child(3, "completed", loss=0.5))
    progress.close()
    text = stream.getvalue()
    assert text.count("\r\x1b[K") == 3 and text.endswith("\n") and text.count("\n") == 1
    assert "3/3 iterations done, 1 failed; best loss=0.5 (iteration 2)" in text


def test_progress_never_names_a_failed_or_nan_iteration_best():
    # a failed iteration's result, or a NaN first, was shown as "best" though the sweep
    # (hyper.Best) selects only completed iterations with a number
    stream = io.StringIO()
    progress = IterationProgress(4, "max.acc", stream)
    progress.update(_child(1, "completed", acc=float("nan")))
    progress.update(_child(2, "error", acc=3))
    progress.update(_child(3, "completed", acc=2))
    progress.update(_child(4, "completed", acc=1))
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines[1] == "iteration 2 error: 2/4 iterations done, 1 failed"
    assert lines[3].endswith("; best acc=2 (iteration 3)") and progress.best == (3, 2)


def test_progress_writes_plain_lines_elsewhere():
    stream = io.StringIO()
    progress = IterationProgress(2, "max.acc", stream)
    progress.update(_child(1, "completed", acc=0.7))
    progress.update(_child(2, "completed", acc=0.7))
    progress.close()
    assert stream.getvalue().splitlines() == [
        "iteration 1 completed: 1/2 iterations done; best acc=0.7 (iteration 1)",
        "iteration 2 completed: 2/2 iterations done; best acc=0.7 (iteration 1)",
    ]


def test_a_pipeline_run_takes_project_labels_and_artifact_path(ex, capsys, tmp_path):
    code, _, err = cli(capsys, "run", "train_eval.py:train_eval", "--project", "team-a",
                       "-l", "owner=ana", "--artifact-path", str(tmp_path / "arts"), "--no-watch")
    assert code == 0, err
    (run,) = [r for r in get_run_db().list_runs(project="team-a").objects()
              if r.metadata.labels.get("owner") == "ana"]
    assert run.metadata.name == "train-eval" and run.state == "completed"
    assert any((tmp_path / "arts").rglob("*"))  # the steps' artifacts went where asked


@pytest.mark.parametrize("flags", [
    ["-s", "file=secrets.txt"], ["-x", "rows=[1,2]"], ["--param-file", "params.csv"],
    ["--selector", "max.accuracy"], ["--strategy", "list"], ["--max-iterations", "2"],
    ["--parallel", "2"], ["--timeout", "5"], ["--name", "other"],
])
def test_a_flag_a_pipeline_run_cannot_carry_is_refused_not_dropped(ex, capsys, flags):
    before = len(_runs())
    code, _, err = cli(capsys, "run", "train_eval.py:train_eval", *flags)
    assert code == 2 and f"{flags[0]}" in err and "not carried by a pipeline run" in err, err
    assert len(_runs()) == before  # refused before anything ran


def test_an_object_with_run_gets_no_run_options_it_would_take_as_params(ex, capsys):
    (ex / "fakepipe2.py").write_text(
        "class Pipe:\n"
        "    def run(self, **params):\n"
        "        raise AssertionError(f'ran with {params}')\n"
        "p = Pipe()\n"
    )
    code, _, err = cli(capsys, "run", "fakepipe2.py:p", "--project", "x")
    assert code == 2 and "--project is not carried" in err, err
