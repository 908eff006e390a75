"""A map over a map and conditions on the item, compiled (#13): Argo carries them, KFP refuses.

Argo fans out over every output of each item that succeeded (``{{tasks.X.outputs.parameters}}``,
read back with ``--item-output``) and tests the item in the task's ``when``
(``{{item.KEY__if}}``, the result's govaluate literal); ``--check`` runs it against the local run.
"""

import json
import os
import subprocess
import sys

import agg_pipelines as ap
import pytest
from compiler_checks import argo_args, argo_schema_errors

from mlflowlet.compilers import compile
from mlflowlet.compilers._validate import validate_argo
from mlflowlet.compilers.check import check
from mlflowlet.errors import CompileError
from mlflowlet.pipelines import collect, condition, item, pipeline


def _task(doc, name):
    return next(t for t in doc["spec"]["templates"][0]["dag"]["tasks"] if t["name"] == name)


def test_argo_fans_out_over_every_output_and_tests_the_item_in_when():
    doc = compile(ap.hostile, "argo")
    assert argo_schema_errors(doc) == [] and validate_argo(doc, ap.hostile.dag) == []
    halve = _task(doc, "halve")
    assert halve["withParam"] == "{{tasks.tag.outputs.parameters}}"
    # the producer writes label's govaluate literal; the literal is escaped the same way
    assert halve["when"] == "{{item.label__if}} == 's:it\\'s \\\"2\\\" == 2'"
    assert "label:when=/tmp/mlflowlet/results/label__if" in argo_args(doc, "tag")
    assert "n:item=/tmp/mlflowlet/results/n" in argo_args(doc, "tag")
    args = argo_args(doc, "halve")
    assert args[args.index("--item-output") + 1] == "n=n"
    assert "n:json={{inputs.parameters.n}}" in args
    show = _task(doc, "show")  # the item condition never skips the whole task: no `when`
    assert show["withParam"] == "{{tasks.halve.outputs.parameters}}" and "when" not in show
    assert show["depends"] == "(halve.Succeeded || halve.Skipped)"
    shown = argo_args(doc, "show")
    assert shown[shown.index("--item-output") + 1] == "value=return"


def test_argo_reads_a_whole_collected_item_by_its_result_key():
    doc = compile(ap.whole_items, "argo")
    assert validate_argo(doc, ap.whole_items.dag) == []
    assert _task(doc, "show")["when"] == "{{item.label__if}} != 's:q'"
    args = argo_args(doc, "show")
    assert args[args.index("--item-output") + 1] == "value=label"


def test_argo_keeps_an_outer_condition_beside_the_item_condition():
    doc = compile(ap.outer_and_item, "argo")
    when = _task(doc, "halve")["when"]
    outer = "{{tasks.switch.outputs.parameters.return__if}} == 's:{{workflow.parameters.want}}'"
    assert outer in when
    assert "{{item.even__if}} == false" in when


def _over_list():
    @pipeline(image=ap.IMAGE)
    def over_list():
        with condition(item.n > 1):
            ap.halve.map(items=[{"n": 1}, {"n": 4}], n=item.n)

    return over_list


def _collected(into: str):
    """An item-tested map whose results are collected ``into`` a step parameter or an output."""

    @pipeline(image=ap.IMAGE, name=f"collected-{into}")
    def collected():
        tagged = ap.tag.map(items=[1, 2], item_param="n", label="x")
        with condition(item.even == True):  # noqa: E712
            kept = ap.halve.map(items=collect(tagged.results), n=item.n)
        if into == "output":
            return {"halves": collect(kept.output)}
        ap.total(values=collect(kept.output))
        return None

    return collected


@pytest.mark.parametrize(("make", "words"), [
    (_over_list, r"step 'halve' .*maps over \[.*\] under `with condition\(item\['n'\] > 1\)`: "
                 r"Argo target compiles a condition on the item of a map over collected results "
                 r"only"),
    (lambda: _collected("param"),
     r"parameter 'values' of step 'total' .*collects collect\(halve.results\["
     r"'return'\]\), a map under a condition on its item: Argo leaves that "
     r"aggregate unresolved when every item was skipped "
     r"\(argo-workflows#16793\)"),
    (lambda: _collected("output"), r"pipeline output 'halves' collects .*argo-workflows#16793"),
])
def test_argo_refuses_what_it_cannot_carry_exactly(make, words):
    pipe = make()
    assert pipe.run().state == "completed"  # locally it runs
    with pytest.raises(CompileError, match=words):
        compile(pipe, "argo")


@pytest.mark.parametrize(("make", "words"), [
    (lambda: ap.hostile, r"step 'halve' .*maps over collect\(tag.results\): a map over a mapped "
                         r"step's collected results cannot be expressed on KFP v2"),
    (lambda: ap.whole_items, r"step 'show' .*maps over collect\(tag.results\['label'\]\)"),
    (_over_list, r"step 'halve' .*maps under `with condition\(item\['n'\] > 1\)`, which tests "
                 r"the item: a per-item condition cannot be expressed on KFP v2 yet"),
])
def test_kfp_refuses_a_map_over_a_map_and_an_item_condition(make, words):
    with pytest.raises(CompileError, match=words):
        compile(make(), "kfp")


@pytest.mark.slow
@pytest.mark.parametrize(("pipe", "params", "printed"), [
    (ap.hostile, {}, ["1 int", "1 int"]),  # both KEEP items, and only them
    (ap.typed_test, {}, []),               # item.label == 2 (an int) is false for "2"
    (ap.none_kept, {}, []),                # every item skipped: the next map runs over []
    (ap.whole_items, {}, ["'p' str"]),
    (ap.outer_and_item, {}, ["0 int", "1 int"]),
    (ap.outer_and_item, {"want": "off"}, []),
    (ap.after_failure, {}, ["1 int"]),     # on="failure": runs, each item deciding
])
def test_argo_run_matches_the_local_run(pipe, params, printed, tmp_path):
    report = check(pipe, "argo", params=params, workdir=str(tmp_path))
    assert report.ok, report.summary()
    logs = sorted(line for p in report.pods if p.node == "show" for line in p.log.splitlines()
                  if line.strip() and not line.startswith("MLFLOWLET_RUN_JSON="))
    assert logs == printed


@pytest.mark.slow
@pytest.mark.parametrize(("values", "op", "literal", "printed"), [
    # govaluate reads a quoted date-like string as a time: "2024-01-01 00:00" was equal
    (["2024-01-01 00:00", "2024-01-01"], "__eq__", "2024-01-01", ["'2024-01-01' str"]),
    ([True, 2, 1.0], "__eq__", 1, ["1.0 float", "True bool"]),  # Python's True == 1
    (["é", "z", "d"], "__gt__", "e", ["'z' str", "'é' str"]),
    ([2**53, 0.5], "__ge__", 2**53, [f"{2**53} int"]),
])
def test_argo_compares_an_item_as_python_does(values, op, literal, printed, tmp_path):
    report = check(ap.compared(values, op, literal), "argo", workdir=str(tmp_path))
    assert report.ok, report.summary()
    logs = sorted(line for p in report.pods if p.node == "show" for line in p.log.splitlines()
                  if line.strip() and not line.startswith("MLFLOWLET_RUN_JSON="))
    assert logs == printed


@pytest.mark.slow
@pytest.mark.parametrize(("value", "words"), [
    (2**53 + 1, "beyond 2**53"),
    (None, "is a NoneType"),
    ([1, 2], "is a list"),
    (float("nan"), "is nan"),
    (float("inf"), "is inf"),
])
def test_argo_refuses_an_item_it_cannot_compare_as_python_does(value, words, tmp_path):
    # the producer fails naming the result: before, Argo compared another value silently
    literal = "null" if value is None or isinstance(value, list) else 0
    report = check(ap.compared([value], "__eq__", literal), "argo", workdir=str(tmp_path))
    assert not report.ok
    (carry,) = [p for p in report.pods if p.node == "carry"]
    assert "result 'x' (--result x:when=...)" in carry.log and words in carry.log, carry.log


@pytest.mark.parametrize(("literal", "words"), [
    (2**53 + 1, "beyond 2\\*\\*53"), (float("inf"), "is inf"), (float("nan"), "is nan"),
    (None, r"step 'show' \(.*agg_pipelines.py:\d+\), its condition item\['x'\] < None on the "
           r"map item: condition carry.results\['x'\] < None compares None"),
])
def test_argo_refuses_a_literal_it_cannot_compare_as_python_does(literal, words):
    with pytest.raises(CompileError, match=words):
        compile(ap.compared([1], "__lt__", literal), "argo")


def test_argo_refuses_a_result_compared_as_a_boolean_and_as_a_number():
    @pipeline(image=ap.IMAGE)
    def both():
        tagged = ap.tag(n=1, label="x")
        with condition(tagged.results["even"] == True):  # noqa: E712
            ap.show(value=1)
        with condition(tagged.results["even"] > 0):
            ap.show.with_options(name="show2")(value=2)

    with pytest.raises(CompileError, match="compared as bool in one condition and as float"):
        compile(both, "argo")


@pytest.mark.slow
def test_a_float_parameter_in_a_condition_is_written_without_an_exponent(tmp_path):
    doc = compile(ap.tiny_threshold, "argo")
    (param,) = doc["spec"]["arguments"]["parameters"]
    assert param == {"name": "eps", "value": "0.0000001"}  # json wrote 1e-07: no govaluate number
    for params in ({}, {"eps": 2.5e-8}):
        report = check(ap.tiny_threshold, "argo", params=params, workdir=str(tmp_path / "c"))
        assert report.ok, report.summary()
    with pytest.raises(CompileError, match=r"argument eps=inf, compared in a condition, is inf"):
        check(ap.tiny_threshold, "argo", params={"eps": float("inf")}, workdir=str(tmp_path))


@pytest.mark.slow
def test_a_producer_over_an_empty_runtime_list_fails_loudly_on_argo(tmp_path):
    # Argo defines no aggregate for a fan-out over nothing (a Skipped node back-fills its
    # declared outputs only): the map over it errors there, where the local run completes.
    # A known limit, never silent: --check names the reference
    report = check(ap.typed_test, "argo", params={"words": []}, workdir=str(tmp_path))
    assert not report.ok
    assert "{{tasks.tag.outputs.parameters}} does not resolve" in report.summary()


def _entrypoint(tmp_path, element, field):
    env = {**os.environ, "MLFLOWLET_DBPATH": str(tmp_path / "db"),
           "PYTHONPATH": os.path.dirname(ap.__file__)}
    return subprocess.run(
        [sys.executable, "-m", "mlflowlet.entrypoint", "--handler", "agg_pipelines:show",
         "--param", f"value:json={json.dumps(element)}", "--item-output", f"value={field}"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


@pytest.mark.parametrize(("value", "shown"), [
    (2, "2 int"), ("2", "'2' str"), ({"a": [1.0]}, "{'a': [1.0]} dict"), ("it's", "\"it's\" str"),
])
def test_the_entrypoint_decodes_an_aggregated_output_back_to_the_result(value, shown, tmp_path):
    # an item of {{tasks.X.outputs.parameters}}: output name -> the text `--result KEY:item` wrote
    element = {"return": json.dumps(json.dumps(value)), "other": "x"}
    done = _entrypoint(tmp_path, element, "return")
    assert done.returncode == 0, done.stderr
    assert shown in done.stdout


@pytest.mark.parametrize(("element", "words"), [
    ({"other": "1"}, "the item ({'other': '1'}) has no key 'return'"),
    (["1"], "the item (['1']) is not a dict"),
    ({"return": "not json"}, "'not json' is no item"),
])
def test_the_entrypoint_refuses_an_element_without_the_output(element, words, tmp_path):
    done = _entrypoint(tmp_path, element, "return")
    assert done.returncode == 2 and f"error: --item-output value=return: {words}" in done.stderr


def _nested():
    outside = {}

    @pipeline(image=ap.IMAGE)
    def body(k: int):  # maps over the results of a map outside it
        ap.halve.map(items=collect(outside["tagged"].results), n=item.n)

    @pipeline(image=ap.IMAGE)
    def nested():
        outside["tagged"] = ap.tag.map(items=[1], item_param="n", label="x")
        body.map(items=[1, 2], k=item)

    return nested


def _bounded(tested):
    @pipeline(image=ap.IMAGE)
    def bounded():
        tagged = ap.tag.map(items=[1, 2], item_param="n", label="x")
        if tested:
            with condition(item.even == True):  # noqa: E712
                ap.halve.map(items=collect(tagged.results), n=item.n, parallel=1)
        else:
            ap.halve.map(items=collect(tagged.results), n=item.n, parallel=1)

    return bounded


@pytest.mark.parametrize(("make", "words"), [
    (_nested, r"step 'halve' .*maps over collect\(tag.results\) inside a mapped sub-pipeline: "
              r"Argo target does not pass collected results into a loop yet"),
    (lambda: _bounded(True), r"step 'halve' .*maps with parallel=1 over collected results or "
                             r"under a condition on its item: Argo target bounds"),
    (lambda: _bounded(False), r"step 'halve' .*maps with parallel=1"),
])
def test_argo_refuses_maps_over_maps_inside_loop_templates(make, words):
    pipe = make()
    assert pipe.run().state == "completed"  # locally it runs
    with pytest.raises(CompileError, match=words):
        compile(pipe, "argo")


def _sub_field_of_one_result(in_condition):
    @pipeline(image=ap.IMAGE)
    def sub_field():
        tagged = ap.tag.map(items=[1], item_param="n", label="x")
        if in_condition:
            with condition(item.n > 0):
                ap.show.map(items=collect(tagged.results["label"]), item_param="value")
        else:
            ap.halve.map(items=collect(tagged.results["label"]), n=item.n)

    return sub_field


@pytest.mark.parametrize(("in_condition", "words"), [
    (True, r"step 'show' .*`with condition\(item\['n'\] > 0\)` reads item\['n'\] of "
           r"collect\(tag.results\['label'\]\); test a result by key"),
    (False, r"reads sub-fields \['n'\] of the items of collect\(tag.results\['label'\]\): "
            r"compiled pipelines read the item of one collected result whole"),
])
def test_argo_refuses_a_sub_field_of_one_collected_result(in_condition, words):
    with pytest.raises(CompileError, match=words):
        compile(_sub_field_of_one_result(in_condition), "argo")
