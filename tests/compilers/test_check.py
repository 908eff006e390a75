import copy

import compiler_pipelines as cp
import pytest

from mlflowlet.compilers import compile
from mlflowlet.compilers.check import check, local_shape, run_compiled

pytestmark = pytest.mark.slow
TARGETS = ["argo", "kfp"]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("pipe", [cp.diamond, cp.fanout, cp.hyper], ids=lambda p: p.name)
def test_compiled_run_matches_the_local_run(pipe, target):
    report = check(pipe, target)
    assert report.ok, report.summary()
    assert report.status == "Succeeded"
    assert report.lineage and report.lineage == report.local_lineage
    assert all(pod.ok for pod in report.pods)
    if pipe is cp.hyper:  # best_iteration and the best model flow on, as locally
        train = next(p for p in report.pods if p.node == "train")
        assert train.results["best_iteration"] == 2
        assert ("train", 2, "model", "evaluate", "model") in {r[:5] for r in report.lineage}
    if pipe is cp.fanout:  # one container per item, collected in item order
        assert [p.iteration for p in report.pods if p.node == "square"] == [1, 2, 3]
        assert next(p for p in report.pods if p.node == "add_all").results == {"total": 14}


@pytest.mark.parametrize("target", TARGETS)
def test_secret_references_resolve_to_the_values_given_to_the_check(target):
    report = check(cp.secured, target, secrets={"DB_PASSWORD": "db-creds:password"},
                   secret_values={"db-creds": {"password": "pw"}},
                   ignore_results={"secret_user": ["has_secret"]})
    assert report.ok, report.summary()
    assert report.pods[0].results == {"has_secret": True, "name": "db"}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(("threshold", "deployed"), [(0.5, True), (2.0, False)])
def test_conditions_and_exit_handler_behave_as_locally(target, threshold, deployed):
    report = check(cp.gated, target, params={"threshold": threshold})
    assert report.ok, report.summary()
    assert report.states["deploy"] == ("completed" if deployed else "skipped")
    exit_pod = next(p for p in report.pods if p.node == "report")
    assert exit_pod.results == {"final": "completed"}


def test_argo_or_condition_runs_like_the_local_run():
    report = check(cp.either, "argo", params={"threshold": 0.99})
    assert report.ok, report.summary()
    assert report.states["deploy"] == "completed"


def test_check_catches_a_workflow_that_wires_the_wrong_output(tmp_path):
    doc = compile(cp.diamond, "argo")
    bad = copy.deepcopy(doc)
    join = next(t for t in bad["spec"]["templates"][0]["dag"]["tasks"] if t["name"] == "join")
    for p in join["arguments"]["parameters"]:
        if p["name"] == "n":
            p["value"] = "{{tasks.total.outputs.parameters.sum}}"
    join["dependencies"] = ["total", "count"]
    _status, _pods, _states, shape = run_compiled(bad, "argo", str(tmp_path / "run"),
                                                  env={"PYTHONPATH": cp.__file__.rsplit("/", 1)[0]})
    local = cp.diamond.run()
    assert shape != local_shape(local)
    assert ("total", 0, "sum", "join", "n", "") in shape


@pytest.mark.parametrize("target", TARGETS)
def test_collected_numbers_reach_a_bare_list_as_numbers_like_the_local_run(target):
    # Argo aggregates the mapped outputs as strings (["0.5", ...]); --collected decodes them
    report = check(cp.returned_fanout, target, params={"k": 3})
    assert report.ok, report.summary()
    assert next(p for p in report.pods if p.node == "add_floats").results == {"return": 3.0}
    assert ("halve", 1, "return_", "add_floats", "values", "") in report.lineage
