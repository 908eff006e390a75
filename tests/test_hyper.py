import json

import pytest

from mlflowlet.errors import HyperParamError, ParameterError
from mlflowlet.hyper import (
    expand_iterations,
    iteration_table,
    parse_selector,
    parse_stop_condition,
    read_param_file,
    select_best,
    table_to_csv,
)

# -- expansion ---------------------------------------------------------------------------------


def test_grid_is_cartesian_product():
    out = expand_iterations({"a": [1, 2], "b": ["x", "y", "z"]})
    assert len(out) == 6
    assert out[0] == {"a": 1, "b": "x"}
    assert out[1] == {"a": 1, "b": "y"}  # last key varies fastest
    assert out[-1] == {"a": 2, "b": "z"}


def test_grid_is_default_when_strategy_empty_or_none():
    assert expand_iterations({"a": [1, 2], "b": [3, 4]}, strategy=None) == expand_iterations(
        {"a": [1, 2], "b": [3, 4]}, strategy=""
    )
    assert len(expand_iterations({"a": [1, 2], "b": [3, 4]}, strategy=None)) == 4


def test_grid_accepts_tuples():
    assert expand_iterations({"a": (1, 2)}) == [{"a": 1}, {"a": 2}]


def test_list_strategy_zips_values():
    out = expand_iterations({"a": [1, 2, 3], "b": [4, 5, 6]}, strategy="list")
    assert out == [{"a": 1, "b": 4}, {"a": 2, "b": 5}, {"a": 3, "b": 6}]


def test_list_strategy_rejects_unequal_lengths():
    with pytest.raises(HyperParamError) as err:
        expand_iterations({"a": [1, 2, 3], "b": [4, 5]}, strategy="list")
    assert "a: 3" in str(err.value) and "b: 2" in str(err.value)


def test_random_is_seedable():
    hp = {"a": list(range(100)), "b": list(range(100))}
    first = expand_iterations(hp, strategy="random", seed=7)
    assert first == expand_iterations(hp, strategy="random", seed=7)
    assert first != expand_iterations(hp, strategy="random", seed=8)
    assert len(first) == 10
    assert all(row["a"] in hp["a"] and row["b"] in hp["b"] for row in first)


def test_random_uses_max_iterations():
    assert len(expand_iterations({"a": [1, 2]}, strategy="random", max_iterations=25, seed=1)) == 25


def test_max_iterations_truncates_grid():
    out = expand_iterations({"a": [1, 2, 3], "b": [1, 2]}, max_iterations=4)
    assert len(out) == 4
    assert out[3] == {"a": 2, "b": 2}


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_max_iterations_errors(bad):
    with pytest.raises(HyperParamError, match="max_iterations"):
        expand_iterations({"a": [1]}, max_iterations=bad)


def test_scalar_value_error_names_the_parameter():
    with pytest.raises(HyperParamError) as err:
        expand_iterations({"p1": 5})
    msg = str(err.value)
    assert "'p1'" in msg and "int 5" in msg and "[1, 2, 3]" in msg


def test_string_value_is_not_a_list():
    with pytest.raises(HyperParamError, match="'p1'"):
        expand_iterations({"p1": "abc"})


def test_empty_value_list_errors():
    with pytest.raises(HyperParamError, match="empty"):
        expand_iterations({"p1": []})


def test_unknown_strategy_lists_the_known_ones():
    with pytest.raises(HyperParamError) as err:
        expand_iterations({"a": [1]}, strategy="bayes")
    assert all(name in str(err.value) for name in ("grid", "list", "random"))


def test_hyper_param_error_is_a_parameter_and_value_error():
    with pytest.raises(ParameterError):
        expand_iterations({"a": 1})
    with pytest.raises(ValueError):
        expand_iterations({"a": 1})


def test_nothing_to_expand_gives_no_iterations():
    assert expand_iterations(None) == []
    assert expand_iterations({}) == []


def test_both_hyper_params_and_param_file_error(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("a\n1\n")
    with pytest.raises(HyperParamError, match="not both"):
        expand_iterations({"a": [1]}, param_file=str(path))


# -- param files -------------------------------------------------------------------------------


def test_param_file_csv_rows(tmp_path):
    path = tmp_path / "params.csv"
    path.write_text('lr, name ,layers,flag\n0.1,alpha,"[1, 2]",true\n2,beta,[3],None\n')
    rows = read_param_file(str(path))
    assert rows == [
        {"lr": 0.1, "name": "alpha", "layers": [1, 2], "flag": True},
        {"lr": 2, "name": "beta", "layers": [3], "flag": None},
    ]
    assert expand_iterations(None, strategy=None, param_file=str(path)) == rows


def test_param_file_csv_with_max_iterations(tmp_path):
    path = tmp_path / "params.csv"
    path.write_text("a\n1\n2\n3\n")
    assert expand_iterations(None, param_file=str(path), max_iterations=2) == [{"a": 1}, {"a": 2}]


def test_param_file_missing_names_the_path(tmp_path):
    missing = str(tmp_path / "nope.csv")
    with pytest.raises(HyperParamError) as err:
        expand_iterations(None, param_file=missing)
    assert missing in str(err.value)


def test_param_file_csv_header_only_errors(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("a,b\n")
    with pytest.raises(HyperParamError, match="no rows"):
        read_param_file(str(path))


def test_param_file_csv_empty_errors(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("\n\n")
    with pytest.raises(HyperParamError, match="empty"):
        read_param_file(str(path))


def test_param_file_csv_blank_column_name_errors(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("a,,c\n1,2,3\n")
    with pytest.raises(HyperParamError, match="empty column name"):
        read_param_file(str(path))


def test_param_file_csv_short_row_names_line(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("a,b\n1,2\n3\n")
    with pytest.raises(HyperParamError, match="line 3"):
        read_param_file(str(path))


def test_param_file_json_list_of_dicts(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps([{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]))
    assert expand_iterations(None, param_file=str(path)) == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]


def test_param_file_json_dict_of_lists_defaults_to_list(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"a": [1, 2], "b": [3, 4]}))
    assert expand_iterations(None, strategy=None, param_file=str(path)) == [
        {"a": 1, "b": 3},
        {"a": 2, "b": 4},
    ]
    assert len(expand_iterations(None, strategy="grid", param_file=str(path))) == 4


def test_param_file_json_bad_item_errors(tmp_path):
    path = tmp_path / "p.json"
    path.write_text("[1, 2]")
    with pytest.raises(HyperParamError, match="item 1"):
        read_param_file(str(path))


def test_param_file_without_extension_sniffs_json(tmp_path):
    path = tmp_path / "params"
    path.write_text('[{"a": 1}]')
    assert read_param_file(str(path)) == [{"a": 1}]


# -- selectors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("min.loss", ("min", "loss")),
        ("max.accuracy", ("max", "accuracy")),
        ("accuracy", ("max", "accuracy")),
        ("min.val.loss", ("min", "val.loss")),
        (" MAX.f1 ", ("max", "f1")),
    ],
)
def test_parse_selector(selector, expected):
    assert parse_selector(selector) == expected


@pytest.mark.parametrize("bad", ["", "   ", "min.", "max. ", None])
def test_parse_selector_bad_errors(bad):
    with pytest.raises(HyperParamError):
        parse_selector(bad)


def test_selector_min_with_negative_values():
    candidates = [(1, {"loss": -0.5}), (2, {"loss": -2.0}), (3, {"loss": 1.0})]
    assert select_best(candidates, "min.loss") == 2
    assert select_best(candidates, "max.loss") == 3


def test_selector_bare_key_is_max():
    assert select_best([(1, {"acc": 0.7}), (2, {"acc": 0.9}), (3, {"acc": 0.8})], "acc") == 2


def test_selector_tie_picks_lowest_iteration():
    candidates = [(3, {"acc": 0.9}), (1, {"acc": 0.5}), (2, {"acc": 0.9})]
    assert select_best(candidates, "max.acc") == 2


def test_selector_min_tie_picks_lowest_iteration():
    candidates = [(4, {"loss": 0.2}), (1, {"loss": 0.5}), (3, {"loss": 0.2}), (2, {"loss": 0.7})]
    assert select_best(candidates, "min.loss") == 3
    assert select_best([(2, {"loss": 1}), (1, {"loss": 1.0})], "min.loss") == 1


def test_selector_skips_non_numbers():
    candidates = [(1, {"loss": "n/a"}), (2, {"loss": 0.3}), (3, {"loss": True}), (4, {})]
    assert select_best(candidates, "min.loss") == 2


def test_selector_naming_unknown_result_errors():
    with pytest.raises(HyperParamError) as err:
        select_best([(1, {"a": 1}), (2, {"b": 2})], "min.loss")
    assert str(err.value) == (
        "selector 'min.loss' names result 'loss' that no iteration logged (logged: a, b)"
    )


def test_selector_with_only_non_numeric_values_errors():
    with pytest.raises(HyperParamError, match="'loss'"):
        select_best([(1, {"loss": "x"})], "min.loss")


def test_empty_selector_selects_nothing():
    assert select_best([(1, {"a": 1})], "") is None
    assert select_best([(1, {"a": 1})], None) is None


# -- stop conditions ---------------------------------------------------------------------------


def test_stop_condition_simple():
    cond = parse_stop_condition("accuracy>=0.9")
    assert cond({"accuracy": 0.9}) is True
    assert cond({"accuracy": 0.89}) is False


def test_stop_condition_and_or():
    both = parse_stop_condition("loss < 0.1 and accuracy > 0.8")
    assert both({"loss": 0.05, "accuracy": 0.9})
    assert not both({"loss": 0.05, "accuracy": 0.7})
    either = parse_stop_condition("loss < 0.1 or accuracy > 0.8")
    assert either({"loss": 0.5, "accuracy": 0.9})
    assert not either({"loss": 0.5, "accuracy": 0.5})
    symbols = parse_stop_condition("loss<0.1 & acc>0.8 | done == 'yes'")
    assert symbols({"done": "yes"})
    assert not symbols({"loss": 0.05, "acc": 0.1})


def test_stop_condition_and_binds_tighter_than_or():
    cond = parse_stop_condition("a > 1 or b > 1 and c > 1")
    assert cond({"a": 2, "b": 0, "c": 0})
    assert not cond({"a": 0, "b": 2, "c": 0})
    assert cond({"a": 0, "b": 2, "c": 2})


def test_stop_condition_missing_key_is_false():
    cond = parse_stop_condition("accuracy >= 0.9")
    assert cond({}) is False
    assert parse_stop_condition("x != 1")({}) is False


def test_stop_condition_negative_numbers_and_strings():
    assert parse_stop_condition("loss<-1")({"loss": -2})
    assert parse_stop_condition('state == "ok"')({"state": "ok"})
    assert parse_stop_condition("state != ok")({"state": "bad"})
    assert not parse_stop_condition("acc > 0.5")({"acc": "high"})


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "accuracy",
        "accuracy >",
        "accuracy = 0.9",
        "a > 1 and",
        "__import__('os')",
        "(a>1)",
        "a>1 b<2",
        "or a>1",
    ],
)
def test_stop_condition_malformed_errors(bad):
    with pytest.raises(HyperParamError) as err:
        parse_stop_condition(bad)
    assert repr(bad) in str(err.value)
    assert "accuracy >= 0.9" in str(err.value)


# -- iteration table ---------------------------------------------------------------------------


def test_iteration_table_unions_keys_in_first_seen_order():
    rows = [
        {"iter": 2, "state": "error", "params": {"b": 2, "a": 1}, "results": {}},
        {"iter": 1, "state": "completed", "params": {"b": 1, "a": 0}, "results": {"loss": 0.5}},
        {"iter": 3, "state": "completed", "params": {"b": 3, "c": 9}, "results": {"acc": 1}},
    ]
    table = iteration_table(rows)
    assert table[0] == ["iter", "state", "param.b", "param.a", "param.c"] + [
        "output.loss",
        "output.acc",
    ]
    assert table[1] == [1, "completed", 1, 0, None, 0.5, None]
    assert table[2] == [2, "error", 2, 1, None, None, None]
    assert table[3] == [3, "completed", 3, None, 9, None, 1]


def test_table_to_csv():
    text = table_to_csv([["iter", "param.a"], [1, None], [2, "x,y"]])
    assert text == 'iter,param.a\n1,\n2,"x,y"\n'


# -- SweepOptions: a sweep's options in one frozen object ----------------------------------------


def test_sweep_options_of_a_spec_iterate_as_expand_iterations_does():
    from mlflowlet import new_task
    from mlflowlet.hyper import SweepOptions

    task = new_task().with_hyper_params(
        {"a": [1, 2, 3], "b": ["x", "y"]}, selector="min.loss", strategy="random",
        max_iterations=4, max_errors=2, stop_condition="loss < 0.1", parallel=3, seed=7,
    )
    opts = SweepOptions.of(task.spec)
    assert (opts.selector, opts.max_errors, opts.parallel, opts.seed) == ("min.loss", 2, 3, 7)
    assert opts.sweeps and opts.param_file is None
    assert opts.expand() == expand_iterations(task.spec.hyper_params, "random", None, 4, 7)
    assert list(opts.iterations()) == opts.expand()
    assert opts.stop()({"loss": 0.05}) and not opts.stop()({"loss": 0.5})
    assert not SweepOptions.of(new_task().spec).sweeps
    assert SweepOptions.of(new_task().spec).stop() is None
    with pytest.raises(AttributeError):
        opts.parallel = 1  # frozen


@pytest.mark.parametrize(("options", "message"), [
    ({"parallel": 0}, "parallel=0 must be a whole number >= 1"),
    ({"parallel": True}, "parallel=True must be"),
    ({"max_errors": -1}, "max_errors=-1 must be a whole number >= 0"),
    ({"strategy": "spiral"}, "unknown hyper-parameter strategy 'spiral'"),
    ({"selector": ""}, "selector must name a result"),
    ({"stop_condition": "loss <"}, "bad stop condition"),
])
def test_sweep_options_checked_names_the_bad_option(options, message):
    from mlflowlet.hyper import SweepOptions

    with pytest.raises(HyperParamError, match=message):
        SweepOptions(**options).checked()
    assert SweepOptions(parallel=1, max_errors=0, selector="max.a").checked().parallel == 1
