"""Parameter coercion by any annotation (pydantic), one-line errors, and the JSON record."""

from __future__ import annotations

import dataclasses
import enum
import inspect
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Literal, Optional

import numpy as np
import pytest
from pydantic import BaseModel, Field

from mlflowlet._coerce import (
    adapter_for,
    coerce,
    json_value,
    parse_cli,
    plain_json,
    recorded,
    same,
)
from mlflowlet.errors import ParameterError


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


@pytest.mark.parametrize(
    ("value", "hint", "expected"),
    [
        (["1", "2"], list[int], [1, 2]),
        ('["1", "2"]', list[int], [1, 2]),
        ("[1, 2]", list[int], [1, 2]),
        ({"a": "1.5"}, dict[str, float], {"a": 1.5}),
        ("{'a': 2}", dict[str, float], {"a": 2.0}),
        ("a", Literal["a", "b"], "a"),
        ("2", Literal[1, 2], 2),
        ("red", Color, Color.RED),
        ("2024-01-02T03:04:05+00:00", datetime, datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        ("x/y", Path, Path("x/y")),
        ("7", Optional[int], 7),  # noqa: UP045 - the typing spelling must work too
        (None, Optional[int], None),  # noqa: UP045
        (None, int | None, None),
        ("3", Annotated[int, Field(ge=0)], 3),
        ((1, 2), tuple[int, int], (1, 2)),
    ],
)
def test_values_are_coerced_by_any_annotation(value, hint, expected):
    got = coerce(value, hint, "p")
    assert got == expected and type(got) is type(expected)


def test_a_pydantic_model_param_arrives_as_the_model():
    got = coerce({"name": "adam", "lr": "0.5"}, Optim, "optim")
    assert isinstance(got, Optim) and got.lr == 0.5
    got = coerce('{"name": "sgd"}', Optim, "optim")  # a CLI string is JSON first
    assert isinstance(got, Optim) and got == Optim(name="sgd")
    assert json_value(got, "optim") == {"name": "sgd", "lr": 0.1}


def test_a_dataclass_param_arrives_as_the_dataclass():
    got = coerce({"start": "1", "end": 5}, Window, "w")
    assert got == Window(1, 5) and isinstance(got, Window)
    assert json_value(got, "w") == {"start": 1, "end": 5}


@pytest.mark.parametrize(
    ("value", "hint", "type_text"),
    [
        ("c", Literal["a", "b"], "Literal['a', 'b']"),
        (["1", "x"], list[int], "list[int]"),
        ("green", Color, "Color"),
        ({"lr": 1}, Optim, "Optim"),  # name missing
        ({"start": 1}, Window, "Window"),
        (b"\xff\xfe", str, "str"),  # invalid UTF-8
        (object(), int, "int"),
        (True, int, "int"),  # a bool is never a number
        (False, Optional[float], "float"),  # noqa: UP045
        (None, int, "int"),
        ("-1", Annotated[int, Field(ge=0)], "int"),
        ("1.5", int, "int"),
    ],
)
def test_a_value_that_does_not_fit_is_one_line_naming_param_value_and_type(value, hint, type_text):
    with pytest.raises(ParameterError) as info:
        coerce(value, hint, "my_param")
    message = str(info.value)
    assert "'my_param'" in message and type_text in message and "\n" not in message
    assert repr(value)[:20] in message
    assert "pydantic" not in message and "errors.pydantic.dev" not in message


def test_none_is_accepted_where_the_default_is_none():
    assert coerce(None, int, "p", default=None) is None
    with pytest.raises(ParameterError, match="'p'"):
        coerce(None, int, "p", default=3)


def test_record_is_json_and_keeps_nan_and_infinities():
    assert json_value({"a": (1, 2), "b": {3}}, "p") == {"a": [1, 2], "b": [3]}
    assert json_value(Color.BLUE, "p") == "blue"
    assert json_value(Path("a/b"), "p") == "a/b"
    got = json_value([math.nan, math.inf, -math.inf], "p")
    assert math.isnan(got[0]) and got[1:] == [math.inf, -math.inf]


@pytest.mark.parametrize("value", [object(), b"\xff", {"k": object()}])
def test_a_value_json_cannot_hold_is_refused_naming_the_param(value):
    with pytest.raises(ParameterError) as info:
        json_value(value, "blob")
    assert "'blob'" in str(info.value) and "\n" not in str(info.value)


def test_adapters_are_built_once_per_annotation():
    assert adapter_for(list[int]) is adapter_for(list[int])
    assert adapter_for(Optim) is adapter_for(Optim)
    assert adapter_for("Unresolved") is None and adapter_for(object) is None


@pytest.mark.parametrize(
    ("value", "hint", "record"),
    [(b"x", bytes, "x"), ({3}, set[int], [3]), ((1, 2), tuple[int, int], [1, 2]),
     (datetime(2024, 1, 2, tzinfo=timezone.utc), datetime, "2024-01-02T00:00:00Z"),
     (Color.BLUE, Color, "blue"), ({1: "a"}, dict[int, str], {"1": "a"}),
     (Path("/x"), Path, "/x"), (-0.0, float, -0.0)],
)
def test_a_value_its_annotation_reads_back_is_received_as_given(value, hint, record):
    got, stored = recorded(value, hint, "p")
    assert same(got, value) and stored == record
    assert same(coerce(stored, hint, "p"), value)  # what a subprocess or a rerun binds


@pytest.mark.parametrize(
    ("value", "received"),
    [((1, (2, 3)), [1, [2, 3]]), ({1: "a", 2.5: (1,)}, {"1": "a", "2.5": [1]}), (None, None),
     ({"a": (1, 2)}, {"a": [1, 2]})],
)
def test_without_an_annotation_a_tuple_arrives_as_its_list_and_keys_as_text(value, received):
    # as log_result records them and as a pipeline step or a subprocess receives them
    got, stored = recorded(value, inspect.Parameter.empty, "p")
    assert same(got, received) and same(stored, received)


@pytest.mark.parametrize(
    ("value", "shown"),
    [(b"x", "b'x' (bytes)"), (1j, "1j (complex)"), ({3}, "{3} (set)"),
     (Color.RED, "(Color)"), (Optim(name="a"), "(Optim)"),
     ({1: "a", "1": "b"}, "dict keys 1 and '1' both become JSON key '1'"),
     ({(1, 2): 3}, "dict key (1, 2) (tuple)")],
)
def test_a_value_its_record_reads_back_as_another_is_refused_naming_the_param(value, shown):
    # b'x' was recorded 'x', 1j '1j', {3} [3], {1: 'a', '1': 'b'} {'1': 'b'}: all silently
    with pytest.raises(ParameterError) as info:
        recorded(value, inspect.Parameter.empty, "p1")
    message = str(info.value)
    assert message.startswith("parameter 'p1': ") and shown in message and "\n" not in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [((1, 2), [1, 2]), ({"k": (None, True)}, {"k": [None, True]}), (math.inf, math.inf),
     (np.float64(0.5), 0.5), (np.int64(3), 3), (np.array([[1, 2]]), [[1, 2]])],
)
def test_plain_json_keeps_what_json_holds(value, expected):
    got = plain_json(value, "result 'r':")
    assert same(got, expected)


@pytest.mark.parametrize("value", [b"\x00\xffab", {1}, frozenset({1}), 1j, Color.RED, object()])
def test_plain_json_refuses_what_it_would_record_as_its_str(value):
    # log_result stored b'\x00\xffab' as the text "b'\\x00\\xffab'" and {1} as '{1}'
    with pytest.raises(ParameterError, match=r"^result 'r': .*no exact JSON form"):
        plain_json(value, "result 'r':")


@pytest.mark.parametrize(
    ("text", "value"),
    [("b'x'", "b'x'"), ("1j", "1j"), ("{1, 2}", "{1, 2}"), ("(1, 2)", (1, 2)),
     ("[1, 'a']", [1, "a"]), ("{'a': 1}", {"a": 1}), ("1.5", 1.5), ("plain", "plain")],
)
def test_cli_text_is_read_as_a_literal_only_when_json_holds_it(text, value):
    assert same(parse_cli(text), value)
    assert same(coerce(parse_cli("{1, 2}"), set[int], "s"), {1, 2})  # the annotation reads it
