"""Map item sub-fields compiled: the whole element carried, ``--item-field`` reads the key."""

import express_pipelines as ep
import pytest
from compiler_checks import argo_args, argo_schema_errors, kfp_strict_errors

from mlflowlet.compilers import compile, compile_text
from mlflowlet.compilers._validate import validate_argo, validate_kfp
from mlflowlet.compilers.check import check
from mlflowlet.errors import CompileError
from mlflowlet.pipelines import item, pipeline


def test_argo_passes_the_element_and_names_the_field():
    doc = compile(ep.item_fields, "argo")
    assert argo_schema_errors(doc) == [] and validate_argo(doc, ep.item_fields.dag) == []
    args = argo_args(doc, "concat")
    assert "a:json={{inputs.parameters.a}}" in args and "b:json={{inputs.parameters.b}}" in args
    assert args[args.index("--item-field") + 1] == "a=a" and "b=b" in args
    task = next(t for t in doc["spec"]["templates"][0]["dag"]["tasks"] if t["name"] == "concat")
    assert {p["name"]: p["value"] for p in task["arguments"]["parameters"]} == {
        "a": "{{item}}", "b": "{{item}}"}
    row = argo_args(doc, "describe-row")
    assert "row:json={{inputs.parameters.row}}" in row and "row=" not in " ".join(row)


def test_kfp_passes_the_loop_item_to_each_field(tmp_path):
    text = compile_text(ep.item_fields, "kfp")
    assert kfp_strict_errors(text, tmp_path) == []
    doc = compile(ep.item_fields, "kfp")
    assert validate_kfp(doc, ep.item_fields.dag) == []
    assert "--item-field" in text and "a=a" in text


def test_fields_of_a_pipeline_parameters_items_are_refused():
    @pipeline(image=ep.IMAGE)
    def over_param(rows: list[str] = ["x"]):  # noqa: B006
        ep.concat.map(items=rows, a=item["a"], b="y")

    for target in ("argo", "kfp"):
        with pytest.raises(CompileError, match=r"reads sub-fields \['a'\] of the items of "
                                               r"pipeline parameter 'rows'"):
            compile(over_param, target)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["argo", "kfp"])
def test_compiled_fields_match_the_local_run(target, tmp_path):
    report = check(ep.item_fields, target, params={"n": 3}, workdir=str(tmp_path))
    assert report.ok, report.summary()
    assert sorted(p.node for p in report.pods) == [
        "concat", "concat", "describe_row", "describe_row", "describe_row", "pairs"]


@pytest.mark.parametrize(("element", "words"), [
    ('{"b": 1}', "the item ({'b': 1}) has no key 'a'"),
    ('["a"]', "the item (['a']) is not a dict"),
])
def test_the_entrypoint_refuses_an_element_without_the_field(element, words, tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "MLFLOWLET_DBPATH": str(tmp_path / "db"),
           "PYTHONPATH": os.path.dirname(ep.__file__)}
    done = subprocess.run(
        [sys.executable, "-m", "mlflowlet.entrypoint", "--handler", "express_pipelines:concat",
         "--param", f"a:json={element}", "--item-field", "a=a", "--param", "b:str=x"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 2 and f"error: --item-field a=a: {words}" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("target", ["argo", "kfp"])
def test_a_field_of_the_wrong_type_fails_the_map_on_both_sides(target, tmp_path):
    local = ep.item_field_types.run()
    assert local.state == "error"
    assert "cannot convert 2.5 (float) to int" in local.run.status.steps["add_one"]["error"]
    report = check(ep.item_field_types, target, workdir=str(tmp_path))
    assert report.ok and report.status == "Failed", report.summary()
