"""Typed params from every entry point: the API, the CLI, param files, hyper lists, pipelines.

Each path must coerce by the handler's annotations (at any depth), refuse what does not fit with
one line naming the parameter, the value and the type, and record the params the handler
received (defaults included) as JSON.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import textwrap
from typing import Literal, Optional

import pytest
from pydantic import BaseModel

from mlflowlet import get_run_db, new_runner, new_task, pipeline, step
from mlflowlet.cli import main
from mlflowlet.errors import ParameterError, PipelineError, RunError


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Optim(BaseModel):
    name: str
    lr: float = 0.1


@dataclasses.dataclass
class Window:
    start: int
    end: int


SEEN: dict = {}


def typed(
    context,
    ids: list[int],
    mode: Literal["a", "b"] = "a",
    color: Color = Color.RED,
    optim: Optim | None = None,
    window: Optional[Window] = None,  # noqa: UP045 - the typing spelling must work too
    scale: float = 1.0,
):
    SEEN.clear()
    SEEN.update(ids=ids, mode=mode, color=color, optim=optim, window=window, scale=scale)
    return sum(ids)


def _stored(run) -> dict:
    return get_run_db().read_run(run.uid, project=run.metadata.project,
                                 iter=run.metadata.iteration)


def test_api_params_arrive_typed_and_the_record_holds_them_with_defaults():
    params = {"ids": ["1", "2"], "optim": {"name": "adam"}, "window": {"start": "3", "end": 4},
              "color": "blue"}
    run = new_runner().run(handler=typed, params=params)
    assert run.results == {"return": 3}
    assert SEEN["ids"] == [1, 2] and all(type(i) is int for i in SEEN["ids"])
    assert isinstance(SEEN["optim"], Optim) and SEEN["optim"].lr == 0.1
    assert SEEN["window"] == Window(3, 4) and SEEN["color"] is Color.BLUE
    expected = {"ids": [1, 2], "mode": "a", "color": "blue", "optim": {"name": "adam", "lr": 0.1},
                "window": {"start": 3, "end": 4}, "scale": 1.0}
    assert run.spec.params == expected
    assert _stored(run)["spec"]["params"] == expected


def test_defaults_alone_are_recorded():
    def train(context, p1: int = 1, p2: str = "x", opts: tuple = (1, 2), nothing=None):
        pass

    run = new_runner().run(handler=train)
    expected = {"p1": 1, "p2": "x", "opts": [1, 2], "nothing": None}
    assert run.spec.params == expected and _stored(run)["spec"]["params"] == expected


def test_a_literal_refuses_other_values_naming_param_value_and_type():
    with pytest.raises(RunError) as info:
        new_runner().run(handler=typed, params={"ids": [1], "mode": "c"})
    message = str(info.value)
    assert "'mode'" in message and "'c'" in message and "Literal['a', 'b']" in message
    assert "\n" not in message and "pydantic" not in message
    stored = _stored(info.value.run)
    assert stored["status"]["state"] == "error" and "'mode'" in stored["status"]["error"]
    assert stored["spec"]["params"]["mode"] == "c"  # what was given, kept


@pytest.mark.parametrize(
    ("params", "culprit"),
    [({"ids": [1], "optim": {"lr": 2}}, "'optim'"), ({"ids": ["x"]}, "'ids'"),
     ({"ids": [1], "color": "green"}, "'color'"), ({"ids": [1], "scale": True}, "'scale'")],
)
def test_a_value_that_does_not_fit_fails_the_run_in_one_line(params, culprit):
    with pytest.raises(RunError) as info:
        new_runner().run(handler=typed, params=params)
    assert culprit in str(info.value) and "\n" not in str(info.value)
    assert info.value.run.results == {}


def test_a_param_json_cannot_hold_is_refused_before_anything_is_stored():
    def train(context, blob=None):
        pass

    with pytest.raises(ParameterError, match="'blob'") as info:
        new_runner().run(handler=train, params={"blob": object()})
    assert "\n" not in str(info.value)
    with pytest.raises(ParameterError, match="'blob'"):
        new_runner().run(handler=train, params={"blob": b"\xff\xfe"})
    with pytest.raises(ParameterError, match="'blob'"):
        new_runner().run(new_task().with_hyper_params({"blob": [1, object()]}), handler=train)
    assert len(get_run_db().list_runs(iter=True)) == 0


def test_invalid_utf8_for_a_str_param_names_it():
    def train(context, text: str = ""):
        pass

    with pytest.raises(ParameterError, match="'text'") as info:
        new_runner().run(handler=train, params={"text": b"ok\xff"})
    assert "invalid utf-8" in str(info.value) and "\n" not in str(info.value)


def test_hyper_lists_are_coerced_per_iteration():
    task = new_task().with_hyper_params({"ids": [["1"], ["2", "3"]], "color": ["red", "blue"]},
                                        selector="max.return")
    run = new_runner().run(task, handler=typed)
    assert run.state == "completed" and run.results["return"] == 5
    children = get_run_db().list_runs(iter=True, parent_uid=run.uid)
    params = sorted((c["spec"]["params"]["ids"], c["spec"]["params"]["color"]) for c in children)
    assert params == [([1], "blue"), ([1], "red"), ([2, 3], "blue"), ([2, 3], "red")]


def test_a_bad_hyper_value_fails_before_any_iteration_runs():
    task = new_task().with_hyper_params({"ids": [[1]], "mode": ["a", "c"]}, selector="max.return")
    with pytest.raises(RunError) as info:
        new_runner().run(task, handler=typed)
    assert "'mode'" in str(info.value) and "'c'" in str(info.value)
    assert [r["metadata"]["iteration"] for r in get_run_db().list_runs(iter=True)] == [0]
    task = new_task().with_hyper_params({"idz": [[1]]})
    with pytest.raises(RunError, match=r"\['idz'\]"):
        new_runner().run(task, handler=typed, params={"ids": [1]})


def test_param_file_rows_are_coerced_and_a_bad_row_names_the_param(tmp_path):
    (tmp_path / "rows.csv").write_text(
        "ids,mode,color,window,optim\n"
        "\"['1', '2']\",b,blue,\"{'start': '1', 'end': 2}\",\"{'name': 'adam'}\"\n"
        "\"[5]\",c,red,,\n")
    task = new_task().with_param_file(str(tmp_path / "rows.csv"), selector="max.return")
    run = new_runner().run(task, handler=typed, raise_on_error=False)
    kids = {c["metadata"]["iteration"]: c for c in
            get_run_db().list_runs(iter=True, parent_uid=run.uid)}
    assert kids[1]["status"]["state"] == "completed"
    assert kids[1]["spec"]["params"] == {"ids": [1, 2], "mode": "b", "color": "blue",
                                         "window": {"start": 1, "end": 2},
                                         "optim": {"name": "adam", "lr": 0.1}, "scale": 1.0}
    assert kids[2]["status"]["state"] == "error" and "'mode'" in kids[2]["status"]["error"]
    assert run.results["best_iteration"] == 1


def test_cli_params_are_coerced_and_refused_by_the_handler_types(tmp_path, monkeypatch, capsys):
    (tmp_path / "typed_cli_mod.py").write_text(textwrap.dedent("""
        import enum
        from typing import Literal
        from pydantic import BaseModel

        class Color(enum.Enum):
            RED = "red"
            BLUE = "blue"

        class Optim(BaseModel):
            name: str
            lr: float = 0.1

        def train(context, ids: list[int], mode: Literal["a", "b"] = "a",
                  color: Color = Color.RED, optim: Optim = Optim(name="sgd"), tag: str = ""):
            context.log_result("types", [type(ids[0]).__name__, type(optim).__name__,
                                         type(color).__name__, tag])
    """))
    monkeypatch.syspath_prepend(str(tmp_path))

    def cli(*args):
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            main(["run", "typed_cli_mod:train", *args, "--json"])
        return info.value.code, capsys.readouterr()

    code, out = cli("-p", 'ids=["1","2"]', "-p", "color=blue", "-p", 'optim={"name": "adam"}',
                    "-p", "mode=b")
    assert code in (0, None), out.err
    record = json.loads(out.out)
    assert record["status"]["results"]["types"] == ["int", "Optim", "Color", ""]
    assert record["spec"]["params"] == {"ids": [1, 2], "mode": "b", "color": "blue",
                                        "optim": {"name": "adam", "lr": 0.1}, "tag": ""}
    code, out = cli("-p", "ids=[1]", "-p", "mode=c")
    assert code == 1 and "'mode'" in out.err and "Literal['a', 'b']" in out.err
    code, out = cli("-p", "ids=[1]", "-p", "nope=1")
    assert code == 1 and "['nope']" in out.err


@step
def add_ids(context, ids: list[int], mode: Literal["a", "b"] = "a") -> int:
    return sum(ids)


@pipeline
def typed_pipe(ids: list[int], mode: Literal["a", "b"] = "a"):
    add_ids(ids=ids, mode=mode)


def test_pipeline_params_are_coerced_and_refused_by_their_types():
    run = typed_pipe.run(ids='["1", "2"]')
    assert run.state == "completed"
    step_run = run.steps["add_ids"]
    assert step_run.results == {"return": 3}
    assert step_run.spec.params == {"ids": [1, 2], "mode": "a"}
    with pytest.raises(ParameterError, match="'mode'"):
        typed_pipe.run(ids=[1], mode="c")

    @pipeline
    def bad_constant():
        add_ids(ids=[1], mode="z")

    with pytest.raises(PipelineError, match="'mode'"):  # traced on first use
        bad_constant.describe()


def test_nan_and_infinite_params_keep_their_value():
    def train(context, lr: float = 0.1, limits: list = ()):
        pass

    run = new_runner().run(handler=train, params={"lr": "nan", "limits": [math.inf, -math.inf]})
    stored = _stored(run)["spec"]["params"]
    assert math.isnan(stored["lr"]) and stored["limits"] == [math.inf, -math.inf]


def test_cli_text_for_a_str_param_stays_as_typed(tmp_path, monkeypatch, capsys):
    (tmp_path / "text_cli_mod.py").write_text(
        "def train(context, version: str, ratio: float, raw=None):\n"
        "    context.log_result('got', [version, ratio, raw])\n")
    (tmp_path / "text_cli_script.py").write_text(
        "def train(context, version: str, ratio: float, raw=None):\n"
        "    context.log_result('got', [version, ratio, raw])\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for target in (["text_cli_mod:train"], ["--handler", "train", "text_cli_script.py"]):
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            main(["run", *target, "-p", "version=1.10", "-p", "ratio=1.10", "-p", "raw=1.10",
                  "--json"])
        out = capsys.readouterr()
        assert info.value.code in (0, None), out.err
        assert json.loads(out.out)["status"]["results"]["got"] == ["1.10", 1.1, 1.1]


def test_cli_no_strict_lets_unknown_params_through(tmp_path, monkeypatch, capsys):
    (tmp_path / "loose_cli_mod.py").write_text(
        "def train(context):\n    context.log_result('p', context.get_param('p', 0))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SystemExit) as info:
        main(["run", "loose_cli_mod:train", "-p", "p=3", "--no-strict", "--json"])
    out = capsys.readouterr()
    assert info.value.code in (0, None), out.err
    assert json.loads(out.out)["status"]["results"] == {"p": 3}


def test_text_that_was_not_utf8_is_refused_naming_the_param(tmp_path, monkeypatch, capsys):
    (tmp_path / "utf_cli_mod.py").write_text("def f(context, text: str = ''):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SystemExit) as info:  # argv carries byte 0xff as the surrogate \udcff
        main(["run", "utf_cli_mod:f", "-p", "text=ok\udcff"])
    err = capsys.readouterr().err
    assert info.value.code == 1 and "'text'" in err and "UTF-8" in err


@pytest.mark.parametrize("value", [b"x", 1j, {3}, {1: "a", "1": "b"}, Color.RED])
def test_a_param_recorded_as_another_value_is_refused_before_anything_is_stored(value):
    # b'x' reached the handler as bytes and was recorded 'x' (a subprocess received 'x')
    def train(context, p1=None):
        pass

    for kind in ("local", "subprocess"):
        with pytest.raises(ParameterError, match="^parameter 'p1': ") as info:
            new_runner(kind=kind).run(handler=train, params={"p1": value})
        assert "\n" not in str(info.value)
    with pytest.raises(ParameterError, match="^parameter 'p1': "):
        new_runner().run(new_task().with_hyper_params({"p1": [1, value]}), handler=train)
    assert get_run_db().list_runs(iter=True) == []


def test_a_param_arrives_as_its_record_reads_back_in_every_runtime(tmp_path, monkeypatch):
    (tmp_path / "rec_mod.py").write_text(
        "def train(context, pair=None, keys=None, blob: bytes = b'',\n"
        "          when: set[int] | None = None):\n"
        "    context.log_result('got', [repr(pair), repr(keys), repr(blob), repr(when)])\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from rec_mod import train

    command = str(tmp_path / "rec_mod.py")
    given = {"pair": (1, (2, 3)), "keys": {1: "a"}, "blob": b"x", "when": {2, 1}}
    local = new_runner().run(handler=train, params=given)
    with pytest.raises(ParameterError, match="^parameter 'blob': .*pass that JSON form"):
        new_runner(kind="subprocess", command=command).run(handler="train", params={"blob": b"x"})
    as_json = {**given, "blob": "x", "when": [2, 1]}  # a named handler: its JSON forms
    child = new_runner(kind="subprocess", command=command).run(handler="train", params=as_json)
    assert local.results == child.results == {
        "got": ["[1, [2, 3]]", "{'1': 'a'}", "b'x'", "{1, 2}"]}
    assert _stored(local)["spec"]["params"] == _stored(child)["spec"]["params"] == {
        "pair": [1, [2, 3]], "keys": {"1": "a"}, "blob": "x", "when": [1, 2]}


def test_cli_literal_json_cannot_hold_stays_text_in_every_runtime(tmp_path, monkeypatch, capsys):
    # -p p1="b'x'" gave the in-process handler b'x' (recorded 'x') and a child 'x'
    source = "def train(context, p1=None, p2=None):\n  context.log_result('got', repr([p1, p2]))\n"
    (tmp_path / "lit_cli_mod.py").write_text(source)
    (tmp_path / "lit_cli_script.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    for target in (["lit_cli_mod:train"], ["--handler", "train", "lit_cli_script.py"]):
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            main(["run", *target, "-p", "p1=b'x'", "-p", "p2=(1, 2)", "--json"])
        out = capsys.readouterr()
        assert info.value.code in (0, None), out.err
        record = json.loads(out.out)
        assert record["status"]["results"]["got"] == repr(["b'x'", [1, 2]])
        assert record["spec"]["params"] == {"p1": "b'x'", "p2": [1, 2]}
