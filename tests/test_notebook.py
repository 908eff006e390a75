"""Notebooks as scripts: papermill-style parameters, IPython syntax, local runs, the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mlflowlet import get_run_db, new_runner
from mlflowlet._notebook import notebook_to_script
from mlflowlet.cli import main
from mlflowlet.errors import ConfigError

sys.path.insert(0, str(Path(__file__).parent / "runtimes"))
from test_notebook_job import TRAIN, notebook  # noqa: E402


def test_parameters_cell_gets_the_runs_params_and_records_the_defaults(tmp_path):
    path = notebook(tmp_path / "train.ipynb", TRAIN)
    run = new_runner(str(path)).run(params={"p1": 6})
    assert run.state == "completed" and run.metadata.labels["kind"] == "local"
    assert run.results == {"accuracy": 3.0}
    assert run.spec.params == {"p1": 6, "lr": 0.5}
    assert run.artifact("model.txt").get() == b"[6, 0.5]"
    assert run.status.code_hash  # the converted notebook's code


def test_undeclared_params_are_injected_too_and_no_parameters_cell_injects_at_the_top(tmp_path):
    path = notebook(tmp_path / "nb.ipynb", [
        ("code", [], "from mlflowlet import get_or_create_ctx\n"
                     "get_or_create_ctx('nb').log_result('seen', extra * 2)")])
    run = new_runner(str(path)).run(params={"extra": 21})
    assert run.state == "completed" and run.results == {"seen": 42}


def test_a_failing_cell_fails_the_run_with_its_traceback(tmp_path):
    path = notebook(tmp_path / "bad.ipynb", [("code", [], "x = 1"),
                                             ("code", [], "raise ValueError('cell two broke')")])
    run = new_runner(str(path)).run(raise_on_error=False)
    assert run.state == "error" and "cell two broke" in run.status.error
    assert str(path) in run.status.error  # the traceback points at the notebook


@pytest.mark.parametrize("source, match", [
    ("!pip install sklearn", r"cell 1 line 1: '!pip install sklearn' is IPython syntax"),
    ("%%bash\necho hi", "cell magic '%%bash'"),
    ("import os\n%cd /tmp", r"line 2: '%cd /tmp'"),
])
def test_ipython_syntax_a_script_cannot_run_is_refused(tmp_path, source, match):
    path = notebook(tmp_path / "m.ipynb", [("code", [], source)])
    with pytest.raises(ConfigError, match=match):
        notebook_to_script(str(path))


def test_valid_python_that_looks_like_a_magic_is_kept(tmp_path):
    code = "x = ('%s'\n     % 'a')\ny = 3"
    path = notebook(tmp_path / "ok.ipynb", [("code", [], code)])
    assert code in notebook_to_script(str(path))


def test_conversion_is_deterministic_and_names_cells_as_the_notebook_does(tmp_path):
    path = notebook(tmp_path / "train.ipynb", TRAIN)
    text = notebook_to_script(str(path))
    assert text == notebook_to_script(str(path))
    assert "# %% cell 2\n# (IPython, display only) %matplotlib inline" in text
    assert text.index("# %% cell 3") < text.index("injected parameters") < \
        text.index("# %% cell 4")


@pytest.mark.parametrize("body, match", [("{", "is not JSON"),
                                         (json.dumps({"nbformat": 3}), "nbformat 4")])
def test_not_a_notebook_is_refused(tmp_path, body, match):
    (tmp_path / "x.ipynb").write_text(body)
    with pytest.raises(ConfigError, match=match):
        notebook_to_script(str(tmp_path / "x.ipynb"))


def test_cli_runs_a_notebook_with_params(tmp_path, capsys):
    path = notebook(tmp_path / "train.ipynb", TRAIN)
    with pytest.raises(SystemExit) as done:
        main(["run", str(path), "-p", "p1=8"])
    assert done.value.code in (0, None)
    assert "run 'train' completed" in capsys.readouterr().out
    (run,) = get_run_db().list_runs("train").objects()
    assert run.results == {"accuracy": 4.0}


def test_script_iterations_in_parallel_threads_do_not_mix_their_globals(tmp_path):
    from mlflowlet import new_task

    (tmp_path / "s.py").write_text(
        "import sys, time\nfrom mlflowlet import get_or_create_ctx\n"
        "ctx = get_or_create_ctx('s')\nmine = ctx.get_param('p', 0)\n"
        "time.sleep(0.05)  # widens any overlap of two iterations\n"
        "ctx.log_result('echo', mine)\nctx.log_result('argv', sys.argv[0])\n")
    task = new_task().with_hyper_params({"p": [1, 2, 3, 4]}, selector="max.echo", parallel=4)
    run = new_runner(str(tmp_path / "s.py"), kind="local").run(task)
    assert run.state == "completed" and run.results["best_iteration"] == 4
    rows = run.status.iterations
    header = rows[0]
    echo, p = header.index("output.echo"), header.index("param.p")
    assert all(row[echo] == row[p] for row in rows[1:])
