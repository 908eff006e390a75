"""Pipeline outputs compiled: KFP pipeline outputs, Argo workflow outputs, checked by --check."""

import json

import express_pipelines as ep
import pytest
import yaml
from compiler_checks import argo_schema_errors, kfp_strict_errors

from mlflowlet.compilers import compile, compile_text
from mlflowlet.compilers._validate import validate_argo, validate_kfp
from mlflowlet.compilers.check import CheckSession, check
from mlflowlet.errors import CompileError
from mlflowlet.pipelines import pipeline

TARGETS = ["argo", "kfp"]


def test_argo_outputs_are_the_entrypoints_outputs_and_resolve():
    doc = compile(ep.outputs, "argo")
    main = doc["spec"]["templates"][0]
    assert main["name"] == "main" and main["outputs"] == {
        "parameters": [
            {"name": "acc", "valueFrom": {"parameter": "{{tasks.fit.outputs.parameters.acc}}"}},
            {"name": "tag", "valueFrom": {"parameter": "{{tasks.fit.outputs.parameters.tag}}"}},
            {"name": "doubles",
             "valueFrom": {"parameter": "{{tasks.double.outputs.parameters.return}}"}},
        ],
        "artifacts": [{"name": "model", "from": "{{tasks.fit.outputs.artifacts.model}}"}]}
    assert argo_schema_errors(doc) == [] and validate_argo(doc, ep.outputs.dag) == []
    broken = yaml.safe_load(yaml.safe_dump(doc))
    broken["spec"]["templates"][0]["outputs"]["parameters"][0]["valueFrom"]["parameter"] = (
        "{{tasks.fit.outputs.parameters.nope}}")
    assert validate_argo(broken, ep.outputs.dag) == [
        "workflow output {{tasks.fit.outputs.parameters.nope}} does not resolve"]


def test_kfp_outputs_are_pipeline_outputs_typed(tmp_path):
    text = compile_text(ep.outputs, "kfp")
    assert kfp_strict_errors(text, tmp_path) == []
    spec = compile(ep.outputs, "kfp")
    assert validate_kfp(spec, ep.outputs.dag) == []
    assert spec["root"]["outputDefinitions"] == {
        "artifacts": {"model": {"artifactType": {"schemaTitle": "system.Model",
                                                 "schemaVersion": "0.0.1"}}},
        "parameters": {"acc": {"parameterType": "STRING"}, "doubles": {"parameterType": "LIST"},
                       "tag": {"parameterType": "STRING"}}}
    outs = spec["root"]["dag"]["outputs"]
    assert outs["parameters"]["acc"] == {
        "valueFromParameter": {"outputParameterKey": "acc", "producerSubtask": "fit"}}
    assert outs["artifacts"]["model"]["artifactSelectors"] == [
        {"outputArtifactKey": "model", "producerSubtask": "fit"}]
    single = compile(ep.one_output, "kfp")["root"]["outputDefinitions"]
    assert single == {"parameters": {"Output": {"parameterType": "STRING"}}}


@pytest.mark.parametrize("target", TARGETS)
def test_a_literal_or_parameter_output_is_refused_when_compiling(target):
    @pipeline(image=ep.IMAGE)
    def constant(n: int = 1):
        ep.double(num=n)
        return {"n": n}

    with pytest.raises(CompileError, match=f"output 'n' is a pipeline parameter; {target} "):
        compile(constant, target)


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_compiled_outputs_match_the_local_run(target):
    report = check(ep.outputs, target, params={"n": 5})
    assert report.ok, report.summary()
    assert set(report.outputs) == {"acc", "tag", "model", "doubles"}
    single = check(ep.one_output, target)
    assert single.ok and set(single.outputs) == {"return"}, single.summary()


@pytest.mark.slow
@pytest.mark.parametrize(("key", "value", "words"), [
    ("tag", ("parameter", "1.1"), 'pipeline output \'tag\': 1.1 != local "1.10"'),
    ("acc", ("parameter", "0.5"), None),
    ("model", ("artifact", "0" * 64), "pipeline output 'model' holds other bytes"),
    ("doubles", ("parameter", json.dumps([json.dumps(json.dumps(2))])),  # one item text
     "pipeline output 'doubles': [2] != local [2, 4, 6]"),
])
def test_a_tampered_output_is_reported(key, value, words, tmp_path):
    doc = compile(ep.outputs, "argo")
    with CheckSession(ep.outputs, doc, "argo", {"n": 5}, workdir=str(tmp_path)) as session:
        assert session.differences() == []
        session.report.outputs[key] = value
        found = session.differences()
        session.report.outputs.pop(key)
        missing = session.differences()
    if words is None:  # the same value: no difference
        assert found == []
    else:
        assert any(words in d for d in found), found
    assert f"pipeline output {key!r}: missing in the compiled run" in missing
