"""Clear errors at the edges of the command line: bad numbers, hostile names, ``--kind dask``."""

from __future__ import annotations

import pytest

from mlflowlet import get_run_db, new_runner, new_task
from mlflowlet._text import printable
from mlflowlet.cli import main
from mlflowlet.errors import ConfigError, HyperParamError


def cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("flag, value", [("--parallel", "-3"), ("--parallel", "0"),
                                         ("--timeout", "-1"), ("--timeout", "0"),
                                         ("--timeout", "nan"), ("--max-iterations", "-2")])
def test_run_refuses_numbers_that_are_not_positive(capsys, examples_dir, flag, value):
    code, _, err = cli(capsys, "run", flag, value, "-x", "p1=[1,2]",
                       str(examples_dir / "training.py"))
    assert code == 2
    assert f"{flag} {value} must be greater than 0" in err
    assert get_run_db().list_runs("") == []  # refused before anything ran


@pytest.mark.parametrize("args", [["get", "runs", "--last", "-1"],
                                  ["get", "artifacts", "--last", "-5"],
                                  ["del", "runs", "--days-ago", "-1"]])
def test_other_counts_refuse_negative_values(capsys, args):
    code, _, err = cli(capsys, *args)
    assert code == 2 and "greater than or equal to 0" in err


@pytest.mark.parametrize("kwargs, match", [({"parallel": -3}, "parallel=-3"),
                                           ({"parallel": 0}, "parallel=0"),
                                           ({"max_iterations": 0}, "max_iterations"),
                                           ({"max_errors": -1}, "max_errors=-1"),
                                           ({"parallel": 1.5}, "parallel=1.5")])
def test_api_refuses_the_same_bad_iteration_options(kwargs, match):
    with pytest.raises(HyperParamError, match=match):
        new_task().with_hyper_params({"p1": [1, 2]}, **kwargs)


@pytest.mark.parametrize("timeout", [-1, 0, float("nan")])
def test_api_refuses_a_timeout_that_is_not_positive(timeout):
    def handler(context):
        context.log_result("ran", True)

    with pytest.raises(ConfigError, match="timeout=.* must be a number of seconds > 0"):
        new_runner().run(handler=handler, timeout=timeout)
    assert get_run_db().list_runs("") == []


HOSTILE = "evil\x1b[31mRED\x1b]0;pwned\x07\rX\u202etxt"


def test_printable_escapes_controls_and_keeps_letters():
    assert printable(HOSTILE) == "evil\\x1b[31mRED\\x1b]0;pwned\\x07\\rX\\u202etxt"
    assert printable("modèle-λ.txt") == "modèle-λ.txt"
    assert printable("a\nb\tc\x9bd\x7f") == "a\\nb\\tc\\x9bd\\x7f"


def test_hostile_names_are_escaped_on_the_terminal(capsys):
    def handler(context):
        context.log_result("x", 1)

    # new names with control characters are refused; a record written before that check (or by
    # another client of the DB) still holds them, and bidi overrides are allowed in names
    run = new_runner().run(handler=handler, name="txt\u202egnp.exe")
    record = run.to_dict()
    record["metadata"]["uid"] = "0" * 32
    record["metadata"]["name"] = HOSTILE
    record["status"]["results"] = {HOSTILE: 1}
    get_run_db().store_run(record, "0" * 32, run.metadata.project)
    code, out, _ = cli(capsys, "get", "runs")
    assert code == 0
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out and "\u202e" not in out
    assert "evil\\x1b[31mRED" in out and "txt\\u202egnp.exe" in out
    code, out, _ = cli(capsys, "get", "runs", "-o", "json")  # JSON escapes them itself
    assert code == 0 and "\x1b" not in out and "\\u001b" in out


def test_run_summary_escapes_result_keys(capsys, tmp_path):
    key = "acc\u202e\u2066"
    (tmp_path / "h.py").write_text(f"def h(context):\n    context.log_result({key!r}, 2)\n")
    code, out, _ = cli(capsys, "run", f"{tmp_path / 'h.py'}:h", "--name", "summary")
    assert code == 0
    assert "\u202e" not in out and "acc\\u202e\\u2066=2" in out


def test_run_kind_dask_with_a_file_and_handler(capsys, examples_dir):
    pytest.importorskip("distributed")
    code, out, err = cli(capsys, "run", "--kind", "dask", "--handler", "my_func", "-p", "p1=4",
                         str(examples_dir / "handler.py"))
    assert code == 0, err
    (run,) = get_run_db().list_runs("my_func").objects()
    assert run.metadata.labels["kind"] == "dask"
    assert run.results == {"accuracy": 8, "p2_length": 8}


@pytest.mark.parametrize("args, match", [
    (["--kind", "dask", "handler.py"], "give --handler NAME"),
    (["--kind", "dask", "--handler", "f", "handler.py:my_func"], "already names the function"),
])
def test_run_kind_dask_says_what_is_missing(capsys, examples_dir, args, match):
    code, _, err = cli(capsys, "run", *args)
    assert code == 2 and match in err
