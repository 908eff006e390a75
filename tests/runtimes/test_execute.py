"""``Runtime.execute``: run a prepared run here, the hook the entrypoint and pipeline steps call."""

from __future__ import annotations

import pytest

from mlflowlet import get_run_db, new_task
from mlflowlet.errors import ConfigError
from mlflowlet.model import RunObject, new_uid
from mlflowlet.runtimes.local import LocalRuntime


def scored(context, x: int = 0):
    context.log_result("score", x * 10)
    return {"x": x}


def _prepared(**hyper) -> RunObject:
    task = new_task(name="scored", project="default", handler=scored, params={"x": 1})
    if hyper:
        task.with_hyper_params(hyper, selector="max.score")
    run = RunObject.model_validate(task.model_dump())
    run.metadata.uid = new_uid()
    return run


def test_execute_runs_a_prepared_run_and_records_it(dbdir):
    run = LocalRuntime().execute(_prepared(), scored)
    assert run.state == "completed" and run.results == {"score": 10, "x": 1}
    assert get_run_db().read_run(run.uid)["status"]["results"]["score"] == 10


def test_execute_runs_a_sweep_and_selects_the_best(dbdir):
    run = LocalRuntime().execute(_prepared(x=[1, 3, 2]), scored)
    assert run.state == "completed" and run.results["best_iteration"] == 2
    children = get_run_db().list_runs(uid=run.uid, iter=True)
    assert sorted(r["metadata"]["iteration"] for r in children) == [0, 1, 2, 3]


def test_execute_one_iteration_runs_only_that_one(dbdir):
    run = LocalRuntime().execute(_prepared(x=[1, 3, 2]), scored, iteration=3)
    assert run.metadata.iteration == 3 and run.spec.params["x"] == 2
    assert run.results["score"] == 20
    stored = get_run_db().list_runs(uid=run.uid, iter=True)
    assert [r["metadata"]["iteration"] for r in stored] == [3]  # no parent, no summary


def test_execute_refuses_an_iteration_the_sweep_lacks(dbdir):
    with pytest.raises(ConfigError, match="iteration 4 does not exist: .* has 3 iteration"):
        LocalRuntime().execute(_prepared(x=[1, 3, 2]), scored, iteration=4)
