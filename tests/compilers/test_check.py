import copy
import os
import sys
import tempfile
import time
from pathlib import Path

import compiler_pipelines as cp
import pytest

from mlflowlet.compilers import compile
from mlflowlet.compilers.check import CheckReport, check, local_shape, run_compiled
from mlflowlet.db import get_run_db
from mlflowlet.errors import CompileError
from mlflowlet.pipelines import pipeline, step

pytestmark = pytest.mark.slow
TARGETS = ["argo", "kfp"]
_ENV = {"PYTHONPATH": cp.__file__.rsplit("/", 1)[0]}


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
    assert any(d.startswith("compiled workflow: ")
               and "edge total -> join (result) is not a dependency" in d for d in found), found


def test_a_dropped_dependency_in_a_kfp_document_is_reported(tmp_path):
    doc = compile(cp.diamond, "kfp")
    join = doc["root"]["dag"]["tasks"]["join"]
    join["dependentTasks"] = [t for t in join["dependentTasks"] if t != "total"]
    with _session(cp.diamond, "kfp", tmp_path, doc) as session:
        found = session.differences()
    assert "compiled workflow: edge total -> join (result) is not a dependency" in found, found


@pytest.mark.parametrize("target", TARGETS)
def test_result_keys_that_prefix_each_other_run_and_compare(target):
    import fidelity_pipelines as fp

    report = check(fp.prefix_keys, target)
    assert report.ok, report.summary()
    assert _pod(report, "read_prefixed").results == {"sum": 6.0}


def test_kfp_outputs_renamed_for_a_clashing_input_compare_as_the_result(tmp_path):
    import fidelity_pipelines as fp

    # KFP renames refine's output x to x__out (refine also takes an input x); lineage says x
    report = check(fp.same_names, "kfp", workdir=str(tmp_path))
    assert report.ok, report.summary()
    assert ("refine", 0, "x", "refine-2", "x", "") in report.lineage, report.lineage


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
    mine = {d: get_run_db(str(tmp_path / "rel" / d)) for d in ("rundb", "local-db")}
    started = time.perf_counter()
    report = check(cp.diamond, workdir="rel")  # the target defaults to argo
    took = time.perf_counter() - started
    for db in mine.values():  # the check opened its own connections: ours stay open
        assert db.list_runs()
        db.close()
    assert report.ok, report.summary()
    assert report.target == "argo"
    assert 0 < report.seconds < took  # the compiled run's share of the check
    assert (tmp_path / "rel" / "argo").is_dir()
    assert not (tmp_path / "rel" / "argo" / "rel").exists()
    # both runs' records stay in the workdir, and the check closed its DBs without caching them
    for db_dir, kinds in (("rundb", 4), ("local-db", 4)):
        db = get_run_db(str(tmp_path / "rel" / db_dir))
        try:
            steps = [r for r in db.list_runs(iter=True) if r["metadata"]["name"] != "diamond"]
            assert len(steps) == kinds, (db_dir, steps)
        finally:
            db.close()


def test_the_image_given_to_the_check_is_the_one_compiled(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOWLET_IMAGE", raising=False)
    with pytest.raises(CompileError, match="step 'make' has no container image"):
        check(cp.imageless, "argo", workdir=str(tmp_path / "none"))
    report = check(cp.imageless, "argo", image="example.com/given:1", workdir=str(tmp_path))
    assert report.ok, report.summary()
    assert [p.node for p in report.pods] == ["make", "count"]


def test_an_exit_handler_from_a_package_elsewhere_is_importable_in_its_container(
        tmp_path, monkeypatch):
    # the containers import each step's module from its root: here a package's parent folder
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "check_exit_root"))
    from checkexit.handlers import farewell

    @pipeline(image=cp.IMAGE, on_exit=farewell)
    def farewelled(rows: int = 2):
        cp.make(rows=rows)

    report = check(farewelled, "argo", workdir=str(tmp_path))
    assert report.ok, report.summary()
    assert _pod(report, "farewell").results == {"final": "completed"}


def test_a_step_from_a_notebook_checks_with_steps_from_modules(tmp_path, monkeypatch):
    # a notebook's __main__ has no file: its step travels pickled, the next by its module's root
    monkeypatch.delattr(sys.modules["__main__"], "__file__", raising=False)

    def rows() -> dict:
        return {"rows": 3}

    rows.__module__ = "__main__"
    first = step(rows)

    @pipeline(image=cp.IMAGE)
    def notebook():
        cp.make(rows=first().results["rows"])

    report = check(notebook, "argo", workdir=str(tmp_path))
    assert report.ok, report.summary()
    assert [p.node for p in report.pods] == ["rows", "make"]


def test_the_callers_pythonpath_reaches_the_containers(tmp_path, monkeypatch):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "check_library.py").write_text("VALUE = 7\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(lib), *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.syspath_prepend(str(lib))  # the local run imports it too
    report = check(cp.uses_library, "argo", workdir=str(tmp_path / "w"))
    assert report.ok, report.summary()
    assert _pod(report, "from_library").results == {"value": 7}


def test_an_unknown_parameter_is_refused_naming_it(tmp_path):
    with pytest.raises(CompileError, match=r"pipeline 'diamond' has no parameter\(s\) \['nope'\]"):
        check(cp.diamond, "argo", params={"nope": 1}, workdir=str(tmp_path))


def test_summary_says_the_verdict_and_lists_every_difference():
    agreed = CheckReport("kfp", "Succeeded", [], {})
    assert agreed.ok and agreed.complete
    assert agreed.summary() == "kfp: 0 container run(s), workflow Succeeded; matches the local run"
    partial = CheckReport("argo", "Succeeded", [], {}, unverified=["memoization", "back-off"])
    assert partial.ok and not partial.complete
    assert partial.summary().splitlines() == [
        "argo: 0 container run(s), workflow Succeeded; matches the local run in what could be "
        "run here (2 thing(s) not)",
        "  (not reproduced here: memoization)",
        "  (not reproduced here: back-off)",
    ]
    differing = CheckReport("argo", "Failed", [], {}, differences=["one", "two"],
                            unverified=["memoization"])
    assert not differing.ok
    assert differing.summary() == (
        "argo: 0 container run(s), workflow Failed; differs from the local run\n"
        "  - one\n  - two\n  (not reproduced here: memoization)"
    )


def test_a_step_that_gives_another_result_each_run_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the check's own temp dir: here
    report = check(cp.unrepeatable, "argo")
    assert list(tmp_path.glob("mlflowlet-check-*")) == []  # removed when the check is done
    assert f"{tmp_path}{os.sep}mlflowlet-check-" in str(report.differences)  # the step's cwd
    assert not report.ok
    lines = report.summary().splitlines()
    assert lines[0] == "argo: 1 container run(s), workflow Succeeded; differs from the local run"
    assert [line for line in lines[1:] if "step 'process_id': results" in line], lines
    assert lines[1:] == [f"  - {d}" for d in report.differences]


def test_a_container_past_the_time_limit_fails_the_check(tmp_path):
    # no python process starts, imports mlflowlet and runs a step within a millisecond
    report = check(cp.diamond, "argo", workdir=str(tmp_path), timeout=0.001)
    assert report.status == "Failed" and not report.ok
    assert any("step 'make': local run completed, compiled run" in d
               for d in report.differences), report.differences


@pytest.mark.parametrize("target", TARGETS)
def test_run_compiled_stops_a_container_at_its_time_limit(target, tmp_path):
    status, pods, _states, _shape = run_compiled(
        compile(cp.never_ends, target), target, str(tmp_path), env=_ENV, timeout=1)
    assert status == "Failed"
    assert [p.node for p in pods] == ["endless"] and not pods[0].ok


def test_run_compiled_takes_parameters_and_secret_values(tmp_path):
    status, _pods, states, _shape = run_compiled(
        compile(cp.gated, "argo"), "argo", str(tmp_path / "gated"), params={"threshold": 2.0},
        env=_ENV)
    assert status == "Succeeded" and states["deploy"] == "skipped"
    doc = compile(cp.secured, "argo", secrets={"DB_PASSWORD": "db-creds:password"})
    _status, pods, _states, _shape = run_compiled(
        doc, "argo", str(tmp_path / "secured"), env=_ENV,
        secrets={"db-creds": {"password": "pw"}})
    assert pods[0].results == {"has_secret": True, "name": "db"}


def test_why_the_engine_failed_a_step_is_in_its_difference(tmp_path):
    doc = compile(cp.diamond, "argo")
    join = next(t for t in doc["spec"]["templates"][0]["dag"]["tasks"] if t["name"] == "join")
    join["when"] = "{{tasks.nowhere.outputs.parameters.x}} == 1"
    with _session(cp.diamond, "argo", tmp_path, doc) as session:
        found = session.differences()
        why = session.report.messages["join"]
    assert why and any(d.startswith("step 'join': local run completed, compiled run ")
                       and d.endswith(f" ({why})") for d in found), found
