"""The best iteration, whole (``select_best``) and folded (``Best``); lazy expansion's edges.

``Best`` must agree with ``select_best`` whatever order the iterations finish in; the messages
are compared whole because users act on them.
"""

import itertools

import pytest

from mlflowlet.errors import HyperParamError
from mlflowlet.hyper import Best, SweepOptions, expand_iterations, iter_iterations, select_best

CANDIDATE_SETS = [
    [(1, {"loss": 0.5}), (2, {"loss": 0.2}), (3, {"loss": 0.9})],
    [(1, {"loss": 0.3}), (2, {"loss": 0.3}), (3, {"loss": 0.1}), (4, {"loss": 0.1})],
    [(1, {"loss": "n/a"}), (2, {"loss": 2}), (3, {}), (4, None), (5, {"loss": -1.5})],
    [(7, {"loss": 4}), (3, {"loss": 4})],
]


@pytest.mark.parametrize("selector", ["min.loss", "max.loss", "loss"])
@pytest.mark.parametrize("candidates", CANDIDATE_SETS)
def test_best_folded_in_any_order_is_select_best(candidates, selector):
    expected = select_best(candidates, selector)
    for order in itertools.permutations(candidates):
        best = Best(selector)
        for iteration, results in order:
            best.add(iteration, results)
        assert (best.result(), best.seen) == (expected, len(candidates))


def test_best_add_says_whether_the_iteration_is_best_so_far():
    best = Best("min.loss")
    assert best.result() is None and best.seen == 0
    assert [best.add(2, {"loss": 0.5}), best.add(5, {"loss": 0.7}), best.add(3, {"loss": 0.5}),
            best.add(1, {"loss": 0.5}), best.add(4, {"loss": "x"}), best.add(6, None),
            best.add(8, {"loss": 0.4})] == [True, False, False, True, False, False, True]
    assert (best.iteration, best.value, best.seen) == (8, 0.4, 7)
    high = Best("max.acc")
    assert [high.add(1, {"acc": 0.5}), high.add(2, {"acc": 0.5}), high.add(3, {"acc": 0.6})] == [
        True, False, True]


@pytest.mark.parametrize(("results", "message"), [
    ([{"loss": "high"}, {"acc": 1}],
     "selector 'min.loss' names result 'loss' that no iteration logged as a number "
     "(logged: loss, acc)"),
    ([{}, None], "selector 'min.loss' names result 'loss' that no iteration logged "
     "(logged: nothing)"),
])
def test_no_number_to_select_names_what_was_logged_both_ways(results, message):
    best = Best("min.loss")
    for iteration, result in enumerate(results, 1):
        best.add(iteration, result)
    with pytest.raises(HyperParamError) as folded:
        best.result()
    with pytest.raises(HyperParamError) as whole:
        select_best(list(enumerate(results, 1)), "min.loss")
    assert str(folded.value) == str(whole.value) == message


def test_a_selector_without_a_key_shows_how_to_write_it():
    with pytest.raises(HyperParamError) as err:
        Best("MIN.")
    assert str(err.value) == "selector 'MIN.' names no result; write it like 'min.loss'"


def test_iter_iterations_defaults_to_grid_and_bounds():
    assert list(iter_iterations({"a": [1, 2], "b": ["x", "y"]})) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]
    assert list(iter_iterations({"a": [1, 2, 3]}, max_iterations=1)) == [{"a": 1}]
    with pytest.raises(HyperParamError) as err:
        list(iter_iterations([1, 2]))  # type: ignore[arg-type]
    assert str(err.value) == (
        "hyper_params must be a dict of lists, got list (e.g. {'p1': [1, 2, 3]})")


def test_both_sources_are_named_in_the_refusal(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("a\n1\n")
    with pytest.raises(HyperParamError) as err:
        iter_iterations({"a": [1], "b": [2]}, param_file=str(path))
    assert str(err.value) == (
        "give either hyper_params or param_file, not both "
        f"(got hyper-parameters a, b and file {str(path)!r})")


def test_random_rows_of_a_param_file_take_max_iterations(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("a\n1\n2\n3\n")
    rows = expand_iterations(None, "random", str(path), max_iterations=12, seed=1)
    assert len(rows) == 12 and {row["a"] for row in rows} <= {1, 2, 3}
    assert len(expand_iterations(None, "random", str(path), seed=1)) == 10  # the default count


def test_sweep_options_carry_the_param_file(tmp_path):
    from mlflowlet import new_task

    path = tmp_path / "p.csv"
    path.write_text("a\n1\n2\n")
    task = new_task(param_file=str(path))
    opts = SweepOptions.of(task.spec)
    assert opts.param_file == str(path) and opts.sweeps
    assert list(opts.iterations()) == [{"a": 1}, {"a": 2}]
    assert SweepOptions.of(new_task().spec).param_file is None


def test_iteration_table_puts_a_row_without_an_iteration_first():
    from mlflowlet.hyper import iteration_table

    table = iteration_table([{"iter": 1, "state": "completed"}, {"state": "error"}])
    assert [row[:2] for row in table[1:]] == [[None, "error"], [1, "completed"]]


def test_the_keys_named_in_the_refusal_stop_at_a_thousand():
    best = Best("min.loss")
    best.add(1, {f"k{i}": i for i in range(1000)})
    best.add(2, {"late": 1})
    with pytest.raises(HyperParamError) as err:
        best.result()
    assert "k999)" in str(err.value) and "late" not in str(err.value)
