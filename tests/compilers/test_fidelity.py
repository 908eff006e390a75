"""Regression tests of issue 12: each compile-fidelity defect, on both targets.

The compile-level tests read the compiled documents; the ``slow`` ones run them with ``check``
(the engines' rules applied to real subprocesses) against a local run of the same pipeline.
"""

import json

import fidelity_pipelines as fp
import pytest
from compiler_checks import argo_schema_errors, kfp_docs, kfp_strict_errors

from mlflowlet.compilers import compile, compile_text
from mlflowlet.compilers._argo_expr import CACHE_KEY, memoize_key
from mlflowlet.compilers._validate import validate_argo, validate_kfp
from mlflowlet.compilers.check import check

TARGETS = ["argo", "kfp"]


def _argo_tasks(doc):
    main = next(t for t in doc["spec"]["templates"] if t["name"] == "main")
    return {t["name"]: t for t in main["dag"]["tasks"]}


def _kfp_dags(spec):
    return {"root": spec["root"]["dag"],
            **{k: c["dag"] for k, c in spec["components"].items() if "dag" in c}}


def _kfp_task(spec, display):
    for dag_name, dag in _kfp_dags(spec).items():
        for name, task in dag["tasks"].items():
            if task["taskInfo"]["name"] == display:
                return dag_name, name, task
    raise KeyError(display)


@pytest.fixture
def fresh_cwd(tmp_path, monkeypatch):
    """Each check gets its own working directory (steps that keep files there)."""
    def enter(name):
        path = tmp_path / name
        path.mkdir()
        monkeypatch.chdir(path)
        return path
    return enter


# --- KFP: one condition group per `with` block ------------------------------------------------
@pytest.mark.parametrize("pipe", [fp.block_pair, fp.nested_blocks], ids=lambda p: p.name)
def test_kfp_compiles_each_with_block_as_one_group(pipe, tmp_path):
    text = compile_text(pipe, "kfp")
    assert kfp_strict_errors(text, tmp_path) == []
    spec = kfp_docs(text)[0]
    assert validate_kfp(spec, pipe.dag) == []
    group, _, _ = _kfp_task(spec, "make")
    assert _kfp_task(spec, "use" if pipe is fp.block_pair else "make")[0] == group
    if pipe is fp.nested_blocks:  # the inner block is a group inside the outer one
        inner, _, _ = _kfp_task(spec, "use")
        refs = [t["componentRef"]["name"] for t in _kfp_dags(spec)[group]["tasks"].values()]
        assert inner != group and inner in refs


def test_kfp_refuses_a_step_outside_a_block_reading_a_step_inside_it():
    from mlflowlet.errors import CompileError
    from mlflowlet.pipelines import condition, pipeline

    @pipeline(image=fp.IMAGE)
    def leaky():
        f = fp.flip()
        with condition(f.results["return"] == "heads"):
            a = fp.make(x=2)
        fp.use(v=a.results["v"])

    with pytest.raises(CompileError, match=r"step 'use' \(.*test_fidelity.py:\d+\) reads the "
                       r"output of step 'make', which runs inside `with condition\(.*\)` at "
                       r".*test_fidelity.py:\d+; KFP cannot pass data"):
        compile(leaky, "kfp")
    assert argo_schema_errors(compile(leaky, "argo")) == []  # Argo can: depends guards it


# --- .after() edges on both targets ----------------------------------------------------------
def test_after_edges_are_dependencies_on_both_targets():
    spec = compile(fp.after_diamond, "kfp")
    _, _, d = _kfp_task(spec, "note-3")
    assert sorted(d["dependentTasks"]) == ["fail-if", "note-2"]
    assert validate_kfp(spec, fp.after_diamond.dag) == []
    tasks = _argo_tasks(compile(fp.after_diamond, "argo"))
    assert tasks["note-3"]["depends"] == (
        "(note-2.Succeeded || note-2.Skipped || note-2.Omitted) && "
        "(fail-if.Succeeded || fail-if.Skipped || fail-if.Omitted)")


def test_the_validator_reports_a_dropped_after_edge():
    spec = compile(fp.after_diamond, "kfp")
    _, _, d = _kfp_task(spec, "note-3")
    d["dependentTasks"].remove("fail-if")
    assert any("edge fail_if -> note-3 (order) is not a dependency" in p
               for p in validate_kfp(spec, fp.after_diamond.dag))


# --- typed parameters --------------------------------------------------------------------------
def test_parameters_are_declared_with_their_types():
    spec = compile(fp.typed_values, "kfp")
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert inputs["s"] == {"defaultValue": "1.10", "isOptional": True, "parameterType": "STRING"}
    assert inputs["d"]["parameterType"] == "STRING"  # JSON text: KFP's STRUCT loses 0 vs 0.0
    assert json.loads(inputs["d"]["defaultValue"]) == {"a": 0, "b": [1, 2.5]}
    args = spec["deploymentSpec"]["executors"]["exec-echo"]["container"]["args"]
    assert "value:str={{$.inputs.parameters['value']}}" in args
    xs = compile(fp.map_over_param, "kfp")["root"]["inputDefinitions"]["parameters"]["xs"]
    assert xs["parameterType"] == "LIST"
    doc = compile(fp.typed_values, "argo")
    assert {p["name"]: p["value"] for p in doc["spec"]["arguments"]["parameters"]} == {
        "s": "1.10", "d": '{"a": 0, "b": [1, 2.5]}', "e": "1e3"}


# --- Argo: conditions guard on the producer's status, in govaluate ------------------------------
def test_argo_nested_conditions_depend_on_the_producer_succeeding():
    tasks = _argo_tasks(compile(fp.nested_blocks, "argo"))
    assert tasks["use"]["depends"] == "make.Succeeded && flip.Succeeded"
    assert tasks["use"]["when"] == ("{{tasks.flip.outputs.parameters.return__if}} == 's:heads' && "
                                    "{{tasks.make.outputs.parameters.v__if}} > 1")


# --- Argo memoize keys -------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["a/b:c.d=e", "", "-x", "日本 {{x}} '\""])
def test_argo_cache_keys_satisfy_argos_rule_whatever_the_inputs(value):
    for version in ("4", "3"):
        doc = compile(fp.memoized, "argo", argo_version=version)
        template = next(t for t in doc["spec"]["templates"] if t["name"] == "cached")
        key = memoize_key(template["memoize"]["key"], {"inputs.parameters.x": value})
        assert CACHE_KEY.match(key), key
        assert argo_schema_errors(doc, ("4.1.2" if version == "4" else "3.7.18",)) == []
        assert validate_argo(doc, fp.memoized.dag) == []


def test_the_cache_key_changes_with_the_run_spec():
    base = compile(fp.memoized, "argo")["spec"]["templates"][1]["memoize"]["key"]
    changed = compile(fp.memoized, "argo", env={"X": "1"})["spec"]["templates"][1]["memoize"]
    assert changed["key"] != base


# --- DNS names ---------------------------------------------------------------------------------
def test_names_cut_to_63_characters_never_end_in_a_dash():
    from mlflowlet.compilers._naming import dns1123

    assert dns1123("a" * 62 + "-b") == "a" * 62
    assert dns1123("a" * 62 + ".-b") == "a" * 62
    doc = compile(fp.long_named, "argo", cache=True)
    names = [doc["metadata"]["generateName"][:-1], *(t["name"] for t in doc["spec"]["templates"])]
    step = next(t for t in doc["spec"]["templates"] if "container" in t)
    names.append(step["memoize"]["cache"]["configMap"]["name"])
    assert len(doc["metadata"]["generateName"]) + 5 <= 63
    for name in names:
        assert len(name) <= 63 and name[0].isalnum() and name[-1].isalnum(), name
    assert step["memoize"]["cache"]["configMap"]["name"] == "mlflowlet-cache-" + "p" * 46
    assert argo_schema_errors(doc, ("4.1.2",)) == []


# --- the compiled runs, checked -------------------------------------------------------------------
CASES = [
    (fp.block_pair, {}), (fp.block_pair, {"side": "tails"}),
    (fp.nested_blocks, {}), (fp.nested_blocks, {"x": 0}), (fp.nested_blocks, {"side": "tails"}),
    (fp.after_diamond, {}), (fp.after_diamond, {"fail": True}),
    (fp.typed_values, {}), (fp.typed_values, {"s": "null", "e": "true"}),
    (fp.glued_output, {}), (fp.same_names, {}), (fp.retried, {}), (fp.retried_items, {}),
    (fp.empty_fanout, {}), (fp.map_over_text, {}), (fp.map_over_param, {}),
    (fp.map_over_param, {"xs": [5]}), (fp.optional_param, {}),
    (fp.optional_param, {"tag": "heads", "opts": {"n": 1.0}}),
]


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(("pipe", "params"), CASES,
                         ids=[f"{p.name}-{'-'.join(map(str, a.values())) or 'default'}"
                              for p, a in CASES])
def test_the_compiled_run_does_what_the_local_run_does(pipe, params, target, fresh_cwd):
    fresh_cwd("local")
    report = check(pipe, target, params=params)
    assert report.ok, report.summary()
    states = report.states
    if pipe is fp.block_pair:
        assert states["use"] == ("completed" if params.get("side", "heads") == "heads"
                                 else "skipped")
    if pipe is fp.after_diamond:
        assert states["note-3"] == ("skipped" if params.get("fail") else "completed")
        order = {p.node: p for p in report.pods}
        assert order["note"].ended < min(order["note-2"].started, order["fail_if"].started)
    if pipe is fp.typed_values:
        echoed = [p.results for p in report.pods if p.node.startswith("echo")]
        assert {"value": params.get("s", "1.10"), "type": "str"} in echoed
        assert {"value": {"a": 0, "b": [1, 2.5, 3.0]}, "type": "dict"} in echoed
        gathered = next(p for p in report.pods if p.node == "gather").results
        assert gathered["types"] == ["int", "float", "int", "float"]
    if pipe is fp.retried:
        assert report.pods[0].attempts == 2
    if pipe is fp.retried_items:
        assert sorted((p.iteration, p.attempts) for p in report.pods) == [(1, 1), (2, 2), (3, 1)]
    if pipe is fp.map_over_text:
        assert (states["halve"], states["gather"]) == ("error", "skipped")
    if pipe is fp.optional_param:
        echoed = sorted(json.dumps(p.results) for p in report.pods)
        want = [params.get("tag"), params.get("opts", {"n": 0})]
        assert echoed == sorted(json.dumps({"value": v, "type": type(v).__name__}) for v in want)
    if pipe is fp.empty_fanout:
        assert next(p for p in report.pods if p.node == "gather").results["values"] == []


def test_argo_keys_a_cached_step_on_its_input_artifacts_bytes():
    doc = compile(fp.cached_consumer, "argo")
    templates = {t["name"]: t for t in doc["spec"]["templates"]}
    producer = templates["make-data"]
    assert {"name": "data__sha256", "valueFrom": {"path": "/tmp/mlflowlet/results/data__sha256"}} \
        in producer["outputs"]["parameters"]
    assert "--output-digest" in producer["container"]["args"]
    task = _argo_tasks(doc)["count-cached"]
    ref = "{{tasks.make-data.outputs.parameters.data__sha256}}"
    assert {"name": "data__sha256", "value": ref} in task["arguments"]["parameters"]
    key = templates["count-cached"]["memoize"]["key"]
    assert key.endswith("-{{=sprig.sha256sum(toJson([inputs.parameters.data__sha256]))}}")
    one = memoize_key(key, {"inputs.parameters.data__sha256": "a" * 64})
    other = memoize_key(key, {"inputs.parameters.data__sha256": "b" * 64})
    assert one != other and CACHE_KEY.match(one)
    assert argo_schema_errors(doc, ("4.1.2",)) == []
    assert validate_argo(doc, fp.cached_consumer.dag) == []
    assert "data__sha256" not in json.dumps(compile(fp.cached_consumer, "kfp"))  # KFP keys on it


@pytest.mark.slow
def test_the_artifact_digest_the_producer_writes_is_the_artifacts_sha256(fresh_cwd):
    fresh_cwd("digest")
    report = check(fp.cached_consumer, "argo", params={"rows": 5})
    assert report.ok, report.summary()
    make = next(p for p in report.pods if p.node == "make_data")
    assert make.parameters["data__sha256"] == make.artifacts["data"]


def test_a_fan_out_collected_outside_its_block_carries_the_block_condition_on_argo():
    from mlflowlet.errors import CompileError

    task = _argo_tasks(compile(fp.conditional_map, "argo"))["gather"]
    assert task["depends"] == "(halve.Succeeded || halve.Skipped)"
    assert task["when"] == "{{tasks.flip.outputs.parameters.return__if}} == 's:heads'"
    with pytest.raises(CompileError, match="step 'gather' .* reads the output of step 'halve'"):
        compile(fp.conditional_map, "kfp")


@pytest.mark.slow
@pytest.mark.parametrize(("side", "k"), [("heads", 3), ("heads", 0), ("tails", 3)])
def test_a_skipped_fan_out_is_not_an_empty_one(side, k, fresh_cwd):
    fresh_cwd("map")
    report = check(fp.conditional_map, "argo", params={"side": side, "k": k})
    assert report.ok, report.summary()
    assert report.states["gather"] == ("skipped" if side == "tails" else "completed")


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_check_reports_a_map_item_retried_a_different_number_of_times(target, fresh_cwd,
                                                                      tmp_path):
    # the pods' folder already holds item 2's first mark: compiled, it passes at once
    fresh_cwd("local")
    pods = tmp_path / "pods"
    (pods / target / "flaky-marks-2").mkdir(parents=True)  # the pods' working directory
    (pods / target / "flaky-marks-2" / "1").write_text("x")
    report = check(fp.retried_items, target, workdir=str(pods))
    assert not report.ok
    assert "step 'flaky_item': item attempts [1, 1, 1] != local [1, 2, 1]" in report.summary()


@pytest.mark.slow
def test_check_of_a_map_whose_author_labels_it_attempt_compares_it(fresh_cwd):
    # the label counts attempts only when the step retries; the user's own text is no count
    fresh_cwd("local")
    report = check(fp.labelled_items, "argo")
    assert report.ok, report.summary()
    assert sorted((p.iteration, p.attempts) for p in report.pods) == [(1, 1), (2, 1)]
