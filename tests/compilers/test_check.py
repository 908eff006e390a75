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


# --- the check catches every kind of difference (tampered compiled runs) -------------------------
def _session(pipe, target, tmp_path, doc=None):
    from mlflowlet.compilers.check import CheckSession

    return CheckSession(pipe, doc or compile(pipe, target), target, workdir=str(tmp_path / "w"))


def _pod(report, node):
    return next(p for p in report.pods if p.node == node)


TAMPERS = {
    "results": (lambda s: _pod(s.report, "join").run["status"]["results"].update(
        summary="d:4:7"), "step 'join': results"),
    "result type only": (lambda s: _pod(s.report, "count").run["status"]["results"].update(
        n=4.0), "step 'count': results {'n': '4.0'} != local {'n': '4'}"),
    "state": (lambda s: s.report.states.update(join="skipped"),
              "step 'join': local run completed, compiled run skipped"),
    "artifact bytes": (lambda s: _pod(s.report, "make").artifacts.update(data="0" * 64),
                       "artifact 'data' holds other bytes"),
    "artifact keys": (lambda s: _pod(s.report, "make").run["status"].update(artifacts=[]),
                      "step 'make': artifacts [] != local ['data']"),
    "lineage": (lambda s: s.report.lineage.pop(), "lineage differs"),
    "order": (lambda s: setattr(_pod(s.report, "join"), "started", 0),
              "step 'join' started before step 'count' finished"),
    "attempts": (lambda s: setattr(_pod(s.report, "total"), "attempts", 2),
                 "step 'total': 2 attempt(s), local 1"),
    "output": (lambda s: s.compiled_db.store_log(
        _pod(s.report, "count").run["metadata"]["uid"], "default", b"extra\n", append=True),
        "step 'count': printed output"),
}


@pytest.mark.parametrize("what", sorted(TAMPERS))
def test_each_tampered_part_of_a_compiled_run_is_reported(what, tmp_path):
    tamper, message = TAMPERS[what]
    with _session(cp.diamond, "argo", tmp_path) as session:
        assert session.differences() == []
        tamper(session)
        found = session.differences()
    assert any(message in d for d in found), found


def test_a_dropped_dependency_in_the_document_is_reported(tmp_path):
    doc = compile(cp.diamond, "argo")
    join = next(t for t in doc["spec"]["templates"][0]["dag"]["tasks"] if t["name"] == "join")
    join["depends"] = "count.Succeeded"  # 'total' dropped: join may run before it
    with _session(cp.diamond, "argo", tmp_path, doc) as session:
        found = session.differences()
    assert any("edge total -> join (result) is not a dependency" in d for d in found), found


@pytest.mark.parametrize("target", TARGETS)
def test_result_keys_that_prefix_each_other_run_and_compare(target):
    import fidelity_pipelines as fp

    report = check(fp.prefix_keys, target)
    assert report.ok, report.summary()
    assert _pod(report, "read_prefixed").results == {"sum": 6.0}


def test_what_cannot_be_reproduced_here_is_said_not_passed_over():
    import fidelity_pipelines as fp

    report = check(fp.memoized, "argo")
    assert report.ok and not report.complete
    assert any("memoization" in u for u in report.unverified)
    assert "not reproduced here: memoization" in report.summary()
    assert "1 thing(s) not" in report.summary().splitlines()[0]
    plain = check(cp.diamond, "argo")
    assert plain.complete and "not reproduced" not in plain.summary()


def test_a_relative_workdir_is_taken_from_where_the_check_starts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report = check(cp.diamond, "argo", workdir="rel")
    assert report.ok, report.summary()
    assert (tmp_path / "rel" / "argo").is_dir()
    assert not (tmp_path / "rel" / "argo" / "rel").exists()
