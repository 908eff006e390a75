"""The text protocol across a process boundary: every value keeps its declared type."""

import json
from datetime import date

import pytest

from mlflowlet._govaluate import argo_text, govaluate_literal, when_literal
from mlflowlet._wire import (
    decode_collected,
    decode_param,
    encode_result,
    read_run_json,
    run_json_line,
    split_typed,
)
from mlflowlet.errors import ParameterError, RunError


@pytest.mark.parametrize("text", ["1.10", "true", "null", "1e3", "007", " x ", '"q"', "[1]"])
def test_a_str_parameter_is_never_parsed(text):
    assert decode_param("s", "str", text) == text


@pytest.mark.parametrize(("typ", "text", "value"), [
    ("int", "4", 4), ("int", "-4", -4), ("int", "4.0", 4), ("float", "1.10", 1.1),
    ("float", "1", 1.0), ("float", "1e3", 1000.0), ("bool", "true", True), ("bool", "False", False),
])
def test_scalars_read_as_their_declared_type(typ, text, value):
    got = decode_param("p", typ, text)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(("typ", "text"), [
    ("int", "4.5"), ("int", "true"), ("bool", "1"), ("bool", "yes"), ("float", "abc"),
    ("json", "{"), ("list[int]", "[1.5]"), ("list[str]", "[1]"), ("list[int]", '{"a": 1}'),
    ("items", "3"),
])
def test_a_value_that_is_not_of_the_declared_type_names_the_parameter(typ, text):
    with pytest.raises(ParameterError, match=rf"parameter 'p' is declared {typ.replace('[', '.')}"):
        decode_param("p", typ, text)


def test_json_keeps_int_and_float_inside_containers():
    got = decode_param("d", "json", '{"a": 0, "b": [1, 2.5, 3.0], "c": null}')
    assert got == {"a": 0, "b": [1, 2.5, 3.0], "c": None}
    assert type(got["a"]) is int and type(got["b"][0]) is int and type(got["b"][2]) is float


def test_typed_lists_read_kfp_doubles_as_the_declared_element_type():
    assert [type(v) for v in decode_param("xs", "list[int]", "[1.0, 2.0]")] == [int, int]
    assert decode_param("xs", "list[float]", "[1, 2.5]") == [1.0, 2.5]
    assert decode_param("xs", "list[str]", '["1.10", "null"]') == ["1.10", "null"]


def _argo_aggregate(texts):
    """What Argo does with a fan-out's output texts (controller/operator.go tryJSONUnmarshal)."""
    parsed = [json.loads(t) for t in texts]
    if all(isinstance(p, (list, dict)) for p in parsed):
        return json.dumps(parsed)  # re-marshalled: Go writes the float 1.0 as 1
    return json.dumps(texts)


@pytest.mark.parametrize("values", [[1, 2.5, 3.0], ["1.10", "null"], [{"a": 1.0}, {"a": 2}],
                                    [[0], [0.0]], [True, None]])
def test_collected_items_survive_an_engine_aggregation_exactly(values):
    texts = [encode_result(v, "item") for v in values]
    got = decode_param("values", "items", _argo_aggregate(texts))
    assert got == values
    assert [json.dumps(g) for g in got] == [json.dumps(v) for v in values]  # 1.0 stays 1.0
    kfp = json.dumps(texts)  # dsl.Collected: the list of the items' string outputs
    assert [json.dumps(g) for g in decode_param("values", "items", kfp)] == \
        [json.dumps(v) for v in values]


def test_map_items_are_each_elements_exact_json_text():
    text = encode_result([1, 1.0, "1", {"a": 0}], "items")
    assert [decode_param("x", "json", item) for item in json.loads(text)] == [1, 1.0, "1", {"a": 0}]
    assert [type(decode_param("x", "json", i)) for i in json.loads(text)][:2] == [int, float]
    assert encode_result("[1, 2]", "items") == json.dumps(["mlflowlet:not-a-list:a str '[1, 2]'"])
    (marker,) = json.loads(encode_result("[1, 2]", "items"))  # one item that fails the step
    with pytest.raises(ParameterError, match=r"fans out over a str '\[1, 2\]', which is not a"):
        decode_param("x", "json", marker)


@pytest.mark.parametrize(("value", "literal"), [
    (1e-05, "0.00001"), (1e20, "100000000000000000000"), (-2, "-2"), (True, "true"),
    (False, "false"), ("heads", "'heads'"), ("it's \\ \"x\"", "'it\\'s \\\\ \\\"x\\\"'"),
    (0.1, "0.1"), ("{{x}} {", "'\\{\\{x}} \\{'"),  # a { escaped: Argo substitutes no tag
    # anything else: its JSON text, quoted (what JSON lacks as its str)
    ({"a": [1, date(2024, 1, 2)]}, "'\\{\\\"a\\\": [1, \\\"2024-01-02\\\"]}'"),  # no {{ either
])
def test_when_literals_follow_govaluate(value, literal):
    assert govaluate_literal(value) == literal


@pytest.mark.parametrize(("value", "booleans", "literal"), [
    ("2024-01-01", False, "'s:2024-01-01'"),  # tagged: govaluate would read a date
    ("it's", False, "'s:it\\'s'"), (True, False, "1"), (False, False, "0"),
    (True, True, "true"), (False, True, "false"), (1e-05, False, "0.00001"),
    (2**53, False, str(2**53)), (-3, False, "-3"),
])
def test_condition_literals_compare_in_argo_as_in_python(value, booleans, literal):
    assert when_literal(value, booleans) == literal
    assert encode_result(value, "when-bool" if booleans else "when") == literal


@pytest.mark.parametrize(("value", "booleans", "words"), [
    (2**53 + 1, False, r"beyond 2\*\*53: .*; compare a smaller number or a string$"),
    (-(2**53) - 1, False, "beyond"), (float("nan"), False, "is nan"),
    (float("-inf"), False, "is -inf"),
    (None, False, r"is a NoneType .* as Python does; compare a str, int, float or bool$"),
    ([1], False, "is a list"), ({"a": 1}, False, "is a dict"),
    (1, True, r"is 1 \(int\), compared with a boolean: .*; return a bool$"),
    ("true", True, r"is 'true' \(str\), compared with a boolean"),
])
def test_condition_literals_refuse_what_argo_would_compare_otherwise(value, booleans, words):
    with pytest.raises(ValueError, match=words):
        when_literal(value, booleans)


@pytest.mark.parametrize(("value", "text"), [
    (1e-07, "0.0000001"), (2.5, "2.5"), ("1e-07", "1e-07"), (3, "3"), (True, "true"),
    (float("inf"), "Infinity"), ({"a": 1e-07}, '{"a": 1e-07}'),
])
def test_argo_parameters_carry_floats_without_an_exponent(value, text):
    assert argo_text(value) == text


def test_the_run_record_is_found_after_output_without_a_newline():
    record = {"metadata": {"uid": "u"}, "status": {"state": "completed"}}
    out = "step printed this" + run_json_line(record)
    assert read_run_json(out) == record
    assert read_run_json("a\n" + run_json_line({"metadata": {"uid": "old"}}) + out) == record
    with pytest.raises(RunError, match="printed no"):
        read_run_json("nothing here\n")


def test_unknown_types_are_named():
    with pytest.raises(ParameterError, match="unknown type 'float32'"):
        split_typed("x:float32", "--param", ("str",))
    assert split_typed("x", "--param", ("str",)) == ("x", "")


_BRACED_VALUES = [
    "{{workflow.name}}", "a {", "{{=x}}{{$}}", "mlflowlet:json:1", {"k{{": ["{{$}}", 1]},
]


@pytest.mark.parametrize("value", _BRACED_VALUES)
@pytest.mark.parametrize("form", ["text", "json", "item", "items"])
def test_no_result_form_writes_a_brace_pair_and_each_reads_back_exactly(value, form):
    value = [value] if form == "items" else value
    text = encode_result(value, form)
    assert "{{" not in text and not text.endswith("{")
    if form == "text":
        typ = "str" if isinstance(value, str) else "json"
        assert decode_param("p", typ, text) == value
    elif form == "json":
        assert decode_param("p", "json", text) == value
    elif form == "item":
        assert json.loads(json.loads(text)) == value
    else:
        aggregated = json.dumps([json.dumps(t) for t in json.loads(text)])
        assert decode_param("p", "items", aggregated) == value


def test_a_collected_str_holding_braces_reads_back_as_it():
    texts = [encode_result(v, "text") for v in ("{{a}}", "plain", 2)]
    assert decode_collected("k", json.dumps(texts)) == ["{{a}}", "plain", 2]


def test_argo_value_writes_no_brace_pair():
    from mlflowlet.compilers._types import argo_value

    assert argo_value(1e-07) == argo_text(1e-07)
    assert argo_value("{{workflow.uid}}") == 'mlflowlet:json:"\\u007b\\u007bworkflow.uid}}"'
    assert argo_value(["{{x}}"]) == '["\\u007b\\u007bx}}"]'
    assert argo_value("no braces {}") == "no braces {}"


def test_an_untyped_param_reads_a_braced_str_back_and_other_text_by_the_cli_rule():
    assert decode_param("p", "", encode_result("{{a}} 1", "text")) == "{{a}} 1"
    assert decode_param("p", "", "1") == 1 and decode_param("p", "", "x {") == "x {"


@pytest.mark.parametrize(("value", "kind", "text"), [
    (True, "float", "1"), (False, "float", "0"), (2, "float", "2"), (0.5, "float", "0.5"),
    ("1", "float", "NaN"), (None, "float", "NaN"), ([1], "float", "NaN"),
    ("1", "str", "1"), (1, "str", "mlflowlet:not-a-str:int"),
    (None, "str", "mlflowlet:not-a-str:NoneType"),
    (True, "bool", "true"), (1, "bool", "true"), (0.0, "bool", "false"),
])
def test_a_kfp_condition_operand_compares_as_the_value_does_in_python(value, kind, text):
    assert encode_result(value, f"if-{kind}") == text


@pytest.mark.parametrize("value", ["1", 2, None])
def test_a_kfp_bool_operand_refuses_a_value_no_boolean_holds(value):
    with pytest.raises(ValueError, match=r"compared with a bool in a condition, which KFP "):
        encode_result(value, "if-bool")
