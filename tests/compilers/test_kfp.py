import json

import compiler_pipelines as cp
import pytest
from compiler_checks import kfp_docs, kfp_strict_errors

from mlflowlet.compilers import compile, compile_text
from mlflowlet.compilers._validate import validate_kfp
from mlflowlet.errors import CompileError

PIPELINES = [cp.diamond, cp.fanout, cp.hyper, cp.gated, cp.secured]
SECURED = {"secrets": {"DB_PASSWORD": "db-creds:password"}, "labels": {"team": "ml"},
           "steps": {"secret_user": {"node_selector": {"pool": "gpu"}}}}


def _executor(spec, name):
    return spec["deploymentSpec"]["executors"][f"exec-{name}"]["container"]


def _task(spec, display):
    dags = [spec["root"]["dag"], *(c["dag"] for c in spec["components"].values() if "dag" in c)]
    return next(t for d in dags for t in d["tasks"].values() if t["taskInfo"]["name"] == display)


@pytest.mark.parametrize("pipe", PIPELINES, ids=lambda p: p.name)
def test_ir_parses_strictly_loads_as_a_component_and_resolves(pipe, tmp_path):
    text = compile_text(pipe, "kfp", **(SECURED if pipe is cp.secured else {}))
    assert kfp_strict_errors(text, tmp_path) == []
    assert validate_kfp(kfp_docs(text)[0], pipe.dag) == []


def test_output_is_byte_identical_across_compiles():
    assert compile_text(cp.hyper, "kfp") == compile_text(cp.hyper, "kfp")


def test_steps_run_the_entrypoint_with_kfp_placeholders():
    spec = compile(cp.diamond, "kfp")
    count = _executor(spec, "count")
    assert count["command"] == ["python", "-m", "mlflowlet.entrypoint"]
    assert count["image"] == cp.IMAGE
    assert "data={{$.inputs.artifacts['data'].path}}/" in count["args"]
    assert "n:json={{$.outputs.parameters['n'].output_file}}" in count["args"]
    join = _task(spec, "join")
    assert join["inputs"]["parameters"]["n"] == {
        "taskOutputParameter": {"outputParameterKey": "n", "producerTask": "count"}}
    assert join["inputs"]["parameters"]["label"] == {"componentInputParameter": "label"}
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert inputs["rows"] == {"defaultValue": 4.0, "isOptional": True,
                              "parameterType": "NUMBER_INTEGER"}


def _artifact_types(pipe, comp):
    outs = compile(pipe, "kfp")["components"][comp]["outputDefinitions"]["artifacts"]
    return {k: v["artifactType"]["schemaTitle"] for k, v in outs.items()}


def test_artifacts_are_typed_as_declared_never_by_their_name():
    import express_pipelines as ep

    assert _artifact_types(ep.kinds, "comp-typed") == {
        "model": "system.Model", "metrics": "system.Metrics", "report": "system.HTML",
        "notes": "system.Markdown", "rows": "system.Dataset", "blob": "system.Artifact",
        "mlflowlet_metrics": "system.Metrics"}
    assert _artifact_types(ep.kinds, "comp-untyped") == {
        "model": "system.Artifact", "dataset": "system.Artifact",
        "mlflowlet_metrics": "system.Metrics"}
    assert _artifact_types(ep.kinds, "comp-annotated") == {  # -> tuple[Model, HTML]
        "weights": "system.Model", "page": "system.HTML", "mlflowlet_metrics": "system.Metrics"}


def test_secrets_go_to_the_platform_spec_as_references():
    text = compile_text(cp.secured, "kfp", **SECURED)
    assert "hunter2" not in text
    doc = compile(cp.secured, "kfp", **SECURED)
    spec, platform = doc["pipeline_spec"], doc["platform_spec"]
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-secret-user"]
    ref = k8s["secretAsEnv"][0]
    assert ref["keyToEnv"] == [{"envVar": "DB_PASSWORD", "secretKey": "password"}]
    assert "db-creds" in json.dumps(ref)
    assert k8s["nodeSelector"]["labels"] == {"pool": "gpu"}
    assert k8s["podMetadata"]["labels"] == {"team": "ml"}
    assert k8s["activeDeadlineSeconds"] == "600"
    container = _executor(spec, "secret-user")
    assert container["resources"]["resourceCpuRequest"] == "500m"
    assert container["resources"]["resourceMemoryRequest"] == "1Gi"
    assert container["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
    task = _task(spec, "secret_user")
    assert task["retryPolicy"]["maxRetryCount"] == 2
    assert task["retryPolicy"]["backoffDuration"] == "5s"
    assert task["cachingOptions"] == {"enableCache": True}


def test_control_flow_uses_kfp_constructs():
    spec = compile(cp.gated, "kfp")
    cond = [c for c in spec["components"] if c.startswith("comp-condition")]
    assert cond, "dsl.If makes a condition group"
    assert ">=" in json.dumps(spec["components"]["comp-exit-handler-1"])
    report = spec["root"]["dag"]["tasks"]["report"]
    assert report["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert "--state" in _executor(spec, "report")["args"]
    fan = compile(cp.fanout, "kfp")
    loops = [c for c in fan["components"] if c.startswith("comp-for-loop")]
    assert loops
    add = _task(fan, "add_all")
    assert "taskOutputParameter" in add["inputs"]["parameters"]["values"]


def test_hyper_step_is_one_task_with_its_sweep_in_the_spec():
    spec = compile(cp.hyper, "kfp")
    env = {e["name"]: e["value"] for e in _executor(spec, "train")["env"]}
    assert json.loads(env["MLFLOWLET_EXEC_CONFIG"])["spec"]["hyper_params"] == {
        "lr": [0.1, 0.2, 0.3]}
    assert [t["taskInfo"]["name"] for t in spec["root"]["dag"]["tasks"].values()] == [
        "evaluate", "train"]


def test_or_conditions_are_refused_for_kfp():
    with pytest.raises(CompileError, match="uses \\|"):
        compile(cp.either, "kfp")


def test_validator_catches_a_dangling_producer_task():
    spec = compile(cp.diamond, "kfp")
    _task(spec, "join")["inputs"]["parameters"]["n"]["taskOutputParameter"]["producerTask"] = \
        "nope"
    assert any("'nope'" in p for p in validate_kfp(spec))


def test_numeric_results_go_to_a_metrics_artifact_for_the_kfp_ui():
    spec = compile(cp.diamond, "kfp")
    for name, comp in spec["components"].items():
        if "executorLabel" not in comp:
            continue
        out = comp["outputDefinitions"]["artifacts"]["mlflowlet_metrics"]
        assert out["artifactType"]["schemaTitle"] == "system.Metrics", name
    args = _executor(spec, "join")["args"]
    assert args[-2:] == ["--metrics", "{{$.outputs.artifacts['mlflowlet_metrics'].path}}"]


def test_collected_return_values_travel_as_item_texts(tmp_path):
    text = compile_text(cp.returned_fanout, "kfp")  # 'return' is a keyword: 'return_' in KFP
    assert kfp_strict_errors(text, tmp_path) == []
    spec = kfp_docs(text)[0]
    outputs = spec["components"]["comp-halve"]["outputDefinitions"]["parameters"]
    assert outputs["return_"]["parameterType"] == "STRING"  # JSON text: 1.0 stays 1.0
    inputs = spec["components"]["comp-add-floats"]["inputDefinitions"]["parameters"]
    assert inputs["values"]["parameterType"] == "LIST"
    assert "values:items={{$.inputs.parameters['values']}}" in _executor(spec, "add-floats")["args"]


def test_a_default_holding_newlines_keeps_the_yaml_valid(tmp_path):
    from mlflowlet.pipelines import pipeline

    @pipeline(image=cp.IMAGE)
    def multiline(text: str = "a,b\n1,2\n"):
        cp.join(n=1, total=2, label=text)

    text = compile_text(multiline, "kfp")  # kfp's own header comment breaks the YAML here
    assert kfp_strict_errors(text, tmp_path) == []
    assert kfp_docs(text)[0]["root"]["inputDefinitions"]["parameters"]["text"][
        "defaultValue"] == "a,b\n1,2\n"


def test_a_cache_max_age_is_refused_since_kfp_v2_cannot_carry_it():
    import express_pipelines as ep

    with pytest.raises(CompileError, match=r"step 'fresh' .*cache max age.*KFP v2.*argo"):
        compile(ep.stale, "kfp")
