"""Handler binding: context injection, params/inputs by name, coercion by type hints."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pytest

from mlflowlet import Context, DataItem, get_run_db, new_runner, new_task
from mlflowlet._binding import (
    bind_arguments,
    code_hash,
    coerce,
    handler_signature,
    parse_literal,
    resolve_handler,
)
from mlflowlet.errors import ConfigError, ParameterError, RunError


def _run(handler, **kw):
    return new_runner().run(handler=handler, **kw)


@pytest.mark.parametrize(
    ("value", "hint", "expected"),
    [
        ("0.1", float, 0.1),
        ("3", int, 3),
        (3.0, int, 3),
        (2, float, 2.0),
        ("true", bool, True),
        ("False", bool, False),
        ("yes", bool, True),
        ("0", bool, False),
        (1, bool, True),
        (5, str, "5"),
        ("[1, 2]", list, [1, 2]),
        ("{'a': 1}", dict, {"a": 1}),
        ("(1, 2)", tuple, (1, 2)),
        ("7", Optional[int], 7),  # noqa: UP045 - the typing form must work too
        ("x", Path, Path("x")),
        ("anything", "UnresolvedForwardRef", "anything"),
    ],
)
def test_coerce_converts_by_hint(value, hint, expected):
    assert coerce(value, hint, "p") == expected
    if expected is not None:
        assert type(coerce(value, hint, "p")) is type(expected)


@pytest.mark.parametrize(
    ("value", "hint"),
    [("abc", float), ("1.5", int), (1.5, int), ("maybe", bool), (True, int), ("[1", list),
     ("[1]", dict), (2, bool)],
)
def test_bad_coercion_names_the_parameter_and_type(value, hint):
    with pytest.raises(ParameterError) as info:
        coerce(value, hint, "lr")
    message = str(info.value)
    assert "'lr'" in message and hint.__name__ in message and "\n" not in message


def test_parse_literal_reads_python_and_json_and_keeps_text():
    assert parse_literal("0.1") == 0.1
    assert parse_literal("true") is True
    assert parse_literal("[1, 'a']") == [1, "a"]
    assert parse_literal("hello world") == "hello world"


def test_cli_string_becomes_a_float_for_a_float_hint():
    def train(context, lr: float, epochs: int = 1, verbose: bool = False):
        context.log_results({"lr_type": type(lr).__name__, "lr": lr, "epochs": epochs,
                             "verbose": verbose})

    run = _run(train, params={"lr": "0.1", "epochs": "3", "verbose": "true"})
    assert run.results == {"lr_type": "float", "lr": 0.1, "epochs": 3, "verbose": True}


def test_a_param_that_does_not_coerce_fails_the_run_naming_it():
    def train(context, lr: float):
        context.log_result("never", 1)

    with pytest.raises(RunError) as info:
        _run(train, params={"lr": "fast"})
    assert "'lr'" in str(info.value) and "float" in str(info.value)
    assert "\n" not in str(info.value)
    assert info.value.run.state == "error" and info.value.run.results == {}


def test_a_missing_required_param_names_it():
    def train(context, p1, p2=2):
        pass

    with pytest.raises(RunError, match="'p1'") as info:
        _run(train)
    stored = get_run_db().read_run(info.value.run.uid)
    assert stored["status"]["state"] == "error" and "'p1'" in stored["status"]["error"]


def test_unknown_params_are_an_error_naming_the_accepted_ones_unless_strict_false():
    def train(context, p1: int = 1, p2: str = "x"):
        context.log_result("p1", p1)

    with pytest.raises(RunError) as info:
        _run(train, params={"p1": 2, "extra": 3})
    message = str(info.value)
    assert "['extra']" in message and "['p1', 'p2']" in message and "strict=False" in message
    assert info.value.run.state == "error" and info.value.run.results == {}
    with pytest.raises(RunError, match="'extra'"):
        _run(train, task=new_task(params={"extra": 3}))
    run = _run(train, params={"p1": 2, "extra": 3}, strict=False)
    assert run.results == {"p1": 2}
    assert run.spec.params == {"p1": 2, "p2": "x", "extra": 3}  # get_param can read it
    run = _run(train, task=new_task(params={"extra": 3}, strict=False))
    assert run.state == "completed" and run.spec.params["extra"] == 3
    task = new_task(params={"extra": 3}, strict=False)
    with pytest.raises(RunError, match="'extra'"):  # run(strict=True) overrides the task's
        _run(train, task=task, strict=True)


def test_kwargs_handler_receives_extra_params():
    def train(context, **kwargs):
        context.log_results(kwargs)

    assert _run(train, params={"a": 1, "b": "x"}).results == {"a": 1, "b": "x"}


def test_context_is_injected_by_name_or_annotation():
    def by_annotation(ctx: Context, p1: int = 1):
        ctx.log_result("ok", isinstance(ctx, Context))

    def by_name(context):
        context.log_result("ok", isinstance(context, Context))

    assert _run(by_annotation).results == {"ok": True}
    assert _run(by_name).results == {"ok": True}


def test_a_handler_without_context_runs_too():
    def plain(x: int = 2):
        return x * 10

    assert _run(plain, params={"x": "4"}).results == {"return": 40}


def test_inputs_bind_as_dataitems_and_str_hint_gets_the_url(tmp_path):
    (tmp_path / "data.txt").write_text("payload")
    seen = {}

    def handler(context, data: DataItem, raw: str, untyped):
        seen.update(data=data, raw=raw, untyped=untyped)

    inputs = {"data": "data.txt", "raw": "data.txt", "untyped": "data.txt"}
    _run(handler, inputs=inputs)
    assert isinstance(seen["data"], DataItem) and seen["data"].get() == b"payload"
    assert seen["raw"] == "data.txt"
    assert isinstance(seen["untyped"], DataItem)


def test_a_param_bound_to_a_dataitem_hint_becomes_a_dataitem(tmp_path):
    (tmp_path / "d.txt").write_text("abc")

    def handler(context, data: DataItem):
        return data.get().decode()

    assert _run(handler, params={"data": "d.txt"}).results == {"return": "abc"}


def test_params_win_over_inputs_and_defaults_fill_the_rest(tmp_path):
    def handler(context, a: str = "default-a", b: str = "default-b"):
        return {"a": a, "b": b}

    run = _run(handler, params={"a": "param"}, inputs={"a": "input.txt"})
    assert run.results == {"a": "param", "b": "default-b"}


def test_a_missing_input_file_fails_the_run_naming_it():
    def handler(context, data: DataItem):
        data.get()

    with pytest.raises(RunError, match="nothere.csv") as info:
        _run(handler, inputs={"data": "nothere.csv"})
    assert "\n" not in str(info.value)


def test_return_values_are_logged():
    def scalar(context):
        return 0.5

    def mapping(context):
        return {"accuracy": 0.9, "loss": 0.1}

    def nothing(context):
        return None

    assert _run(scalar).results == {"return": 0.5}
    assert _run(mapping).results == {"accuracy": 0.9, "loss": 0.1}
    assert _run(nothing).results == {}


def test_handler_signature_is_read_once_and_knows_required():
    def fn(context, a: int, b: str = "x", *args, **kw):
        pass

    sig = handler_signature(fn)
    assert handler_signature(fn) is sig
    assert sig.names() == ["a", "b"] and sig.var_keyword
    assert [p.required for p in sig.params if not p.is_context] == [True, False]


def test_bind_arguments_directly():
    def fn(context, a: int, b: float = 1.0):
        pass

    kwargs = bind_arguments(fn, "CTX", {"a": "3"}, {})
    assert kwargs == {"context": "CTX", "a": 3}


def test_resolve_handler_from_module_file_and_name(tmp_path):
    (tmp_path / "mod_for_binding.py").write_text("def f(context):\n    return 1\n")
    assert resolve_handler("mod_for_binding.py:f").__name__ == "f"
    assert resolve_handler("f", "mod_for_binding.py").__name__ == "f"
    assert resolve_handler("json:dumps").__name__ == "dumps"
    with pytest.raises(ConfigError, match="'nope'"):
        resolve_handler("json:nope")
    with pytest.raises(ConfigError, match="no_such_module_xyz"):
        resolve_handler("no_such_module_xyz:f")


def test_code_hash_changes_with_the_source():
    def a(context):
        return 1

    def b(context):
        return 2

    assert code_hash(a) != code_hash(b) and len(code_hash(a)) == 64


def test_an_unreachable_url_fails_the_run_naming_it():
    def handler(context, data: DataItem):
        data.get()

    with pytest.raises(RunError, match="127.0.0.1:9") as info:
        _run(handler, inputs={"data": "http://127.0.0.1:9/data.csv"})
    assert "\n" not in str(info.value)
