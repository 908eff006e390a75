"""Grid, list and random generators: strategy names, exact refusals, random rows of param files.

(The selection, stop conditions and streaming of :mod:`mlflowlet.hyper` are in test_hyper.py.)
"""

from __future__ import annotations

import json

import pytest

from mlflowlet.errors import HyperParamError
from mlflowlet.hyper import DEFAULT_RANDOM_ITERATIONS, expand_iterations


@pytest.mark.parametrize("strategy", [" LIST ", "List", "list"])
def test_strategy_names_ignore_case_and_spaces(strategy):
    assert expand_iterations({"a": [1, 2], "b": [3, 4]}, strategy=strategy) == [
        {"a": 1, "b": 3}, {"a": 2, "b": 4}]


@pytest.mark.parametrize("strategy", [3, ["grid"], "bayes"])
def test_unknown_strategy_is_a_hyper_param_error_listing_the_known_ones(strategy):
    with pytest.raises(HyperParamError) as err:
        expand_iterations({"a": [1]}, strategy=strategy)
    assert str(err.value) == (f"unknown hyper-parameter strategy {strategy!r}; "
                              "use one of grid, list, random")


def test_unequal_list_lengths_are_named_with_the_way_out():
    with pytest.raises(HyperParamError) as err:
        expand_iterations({"a": [1, 2, 3], "b": [4, 5]}, strategy="list")
    assert str(err.value) == ("strategy 'list' needs lists of equal length, got a: 3, b: 2; "
                              "use strategy 'grid' for every combination")


def test_random_strategy_samples_whole_rows_of_a_param_file(tmp_path):
    rows = [{"a": i, "b": f"r{i}"} for i in range(50)]
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(rows))
    picked = expand_iterations(None, strategy="random", param_file=str(path), max_iterations=7,
                               seed=3)
    assert len(picked) == 7 and all(row in rows for row in picked)  # rows kept whole
    assert picked == expand_iterations(None, strategy="random", param_file=str(path),
                                       max_iterations=7, seed=3)
    assert picked != expand_iterations(None, strategy="random", param_file=str(path),
                                       max_iterations=7, seed=4)
    default = expand_iterations(None, strategy="random", param_file=str(path), seed=3)
    assert len(default) == DEFAULT_RANDOM_ITERATIONS == 10
    assert default[:7] == picked  # the same seed draws the same sequence
    assert expand_iterations(None, param_file=str(path)) == rows  # 'list': the rows as they are
