import json

import compiler_pipelines as cp
import pytest
import yaml
from compiler_checks import argo_schema_errors

from mlflowlet.compilers import available, compile, compile_text
from mlflowlet.compilers._validate import validate_argo
from mlflowlet.errors import CompileError, UnknownBackendError

SECURED = {"secrets": {"DB_PASSWORD": "db-creds:password"},
           "steps": {"secret_user": {"node_selector": {"pool": "gpu"}, "env": {"MODE": "x"}}},
           "labels": {"team": "ml"}, "annotations": {"owner": "me"}, "service_account": "runner",
           "dbpath": "http://mlflowlet.default.svc:8080", "artifact_path": "s3://runs/ml",
           "token_secret": "mlflowlet-api:token",
           "parallelism": 3,
           "active_deadline_seconds": 3600, "ttl_seconds": 600, "pod_gc": "OnPodSuccess"}
PIPELINES = [cp.diamond, cp.fanout, cp.hyper, cp.gated, cp.either]


def _tasks(doc):
    spec = doc["spec"].get("workflowSpec", doc["spec"])
    main = next(t for t in spec["templates"] if t["name"] == "main")
    return {t["name"]: t for t in main["dag"]["tasks"]}


def _template(doc, name):
    return next(t for t in doc["spec"]["templates"] if t["name"] == name)


@pytest.mark.parametrize("pipe", PIPELINES, ids=lambda p: p.name)
def test_compiled_workflow_is_valid_against_both_argo_schemas(pipe):
    doc = compile(pipe, "argo")
    assert argo_schema_errors(doc) == []
    assert validate_argo(doc, pipe.dag) == []


def test_every_option_stays_valid_v4_and_v3_with_their_cache_shapes():
    doc4 = compile(cp.secured, "argo", **SECURED)
    assert argo_schema_errors(doc4, ("4.1.2",)) == []
    assert "key" not in _template(doc4, "secret-user")["memoize"]["cache"]["configMap"]
    doc3 = compile(cp.secured, "argo", argo_version="3", **SECURED)
    assert argo_schema_errors(doc3, ("3.7.18",)) == []
    assert _template(doc3, "secret-user")["memoize"]["cache"]["configMap"]["key"] == "cache"


def test_strict_schema_catches_a_typo_in_a_field_name():
    doc = compile(cp.diamond, "argo")
    _tasks(doc)["join"]["dependz"] = ["make"]
    assert any("dependz" in e for e in argo_schema_errors(doc))


def test_output_is_byte_identical_across_compiles():
    assert compile_text(cp.diamond, "argo") == compile_text(cp.diamond, "argo")


def test_artifacts_and_results_flow_through_argo_passing():
    doc = compile(cp.diamond, "argo")
    tasks = _tasks(doc)
    assert tasks["count"]["arguments"]["artifacts"] == [
        {"name": "data", "from": "{{tasks.make.outputs.artifacts.data}}"}]
    params = {p["name"]: p["value"] for p in tasks["join"]["arguments"]["parameters"]}
    assert params == {"label": "{{workflow.parameters.label}}",
                      "n": "{{tasks.count.outputs.parameters.n}}",
                      "total": "{{tasks.total.outputs.parameters.sum}}"}
    assert tasks["join"]["depends"] == "count.Succeeded && total.Succeeded"
    count = _template(doc, "count")
    assert count["outputs"]["parameters"] == [
        {"name": "n", "valueFrom": {"path": "/tmp/mlflowlet/results/n"}}]
    args = count["container"]["args"]
    assert args[:2] == ["--handler", "compiler_pipelines:count"]
    assert "data=/tmp/mlflowlet/inputs/data/" in args
    assert count["container"]["command"] == ["python", "-m", "mlflowlet.entrypoint"]
    wf_params = {p["name"]: p["value"] for p in doc["spec"]["arguments"]["parameters"]}
    assert wf_params == {"rows": "4", "label": "d"}


def test_secrets_are_references_and_options_land_where_argo_reads_them():
    text = compile_text(cp.secured, "argo", **SECURED)
    doc = yaml.safe_load(text)
    tpl = _template(doc, "secret-user")
    env = {e["name"]: e for e in tpl["container"]["env"]}
    assert env["DB_PASSWORD"] == {"name": "DB_PASSWORD", "valueFrom": {
        "secretKeyRef": {"name": "db-creds", "key": "password"}}}
    config = json.loads(env["MLFLOWLET_EXEC_CONFIG"]["value"])
    assert config["spec"]["secret_sources"] == [{"kind": "env", "source": "DB_PASSWORD"}]
    assert env["MLFLOWLET_DBPATH"]["value"] == "http://mlflowlet.default.svc:8080"
    assert env["MODE"]["value"] == "x"
    assert tpl["container"]["resources"] == {"limits": {"nvidia.com/gpu": "1"},
                                             "requests": {"cpu": "500m", "memory": "1Gi"}}
    assert tpl["retryStrategy"] == {"backoff": {"duration": "5s", "factor": "2"}, "limit": "2",
                                    "retryPolicy": "Always"}
    assert tpl["activeDeadlineSeconds"] == "600"
    assert tpl["nodeSelector"] == {"pool": "gpu"}
    assert tpl["metadata"]["labels"]["team"] == "ml"
    key = tpl["memoize"]["key"]  # Argo's cache-key rule after substitution: a hash of the inputs
    assert key.startswith("secret-user-")
    assert key.endswith("-{{=sprig.sha256sum(toJson([inputs.parameters.name]))}}")
    spec = doc["spec"]
    assert (spec["serviceAccountName"], spec["parallelism"], spec["activeDeadlineSeconds"]) == (
        "runner", 3, 3600)
    assert spec["ttlStrategy"] == {"secondsAfterCompletion": 600}
    assert spec["podGC"] == {"strategy": "OnPodSuccess"}
    assert doc["metadata"]["annotations"]["owner"] == "me"


def test_hyper_step_runs_its_iterations_in_one_task():
    doc = compile(cp.hyper, "argo")
    assert set(_tasks(doc)) == {"train", "evaluate"}
    env = {e["name"]: e.get("value") for e in _template(doc, "train")["container"]["env"]}
    spec = json.loads(env["MLFLOWLET_EXEC_CONFIG"])["spec"]
    assert spec["hyper_params"] == {"lr": [0.1, 0.2, 0.3]}
    assert spec["selector"] == "max.accuracy"


def test_map_and_collect_use_with_param_and_the_aggregated_output():
    tasks = _tasks(compile(cp.fanout, "argo"))
    assert tasks["square"]["withParam"] == "{{tasks.items.outputs.parameters.items__items}}"
    assert tasks["square"]["arguments"]["parameters"] == [{"name": "x", "value": "{{item}}"}]
    assert tasks["add-all"]["depends"] == "(square.Succeeded || square.Skipped)"
    assert tasks["add-all"]["arguments"]["parameters"][0]["value"] == \
        "{{tasks.square.outputs.parameters.sq}}"


def test_mapped_results_are_written_as_items_and_decoded_by_the_collector():
    doc = compile(cp.fanout, "argo")
    square = _template(doc, "square")
    assert "sq:item=/tmp/mlflowlet/results/sq" in square["container"]["args"]
    assert "x:json={{inputs.parameters.x}}" in square["container"]["args"]
    assert square["outputs"]["parameters"] == [  # an empty fan-out is Skipped: [] flows on
        {"name": "sq", "valueFrom": {"default": "[]", "path": "/tmp/mlflowlet/results/sq"}}]
    add_all = _template(doc, "add-all")["container"]["args"]
    assert "values:items={{inputs.parameters.values}}" in add_all
    items = _template(doc, "items")["container"]["args"]
    assert "items:items=/tmp/mlflowlet/results/items__items" in items
    assert argo_schema_errors(doc) == []


def test_conditions_become_when_and_the_exit_handler_on_exit():
    doc = compile(cp.gated, "argo")
    assert _tasks(doc)["deploy"]["when"] == \
        "{{tasks.train.outputs.parameters.accuracy__if}} >= {{workflow.parameters.threshold}}"
    assert "accuracy:when=/tmp/mlflowlet/results/accuracy__if" in \
        _template(doc, "train")["container"]["args"]
    assert doc["spec"]["onExit"] == "report"
    assert "{{workflow.status}}" in _template(doc, "report")["container"]["args"]
    either = _tasks(compile(cp.either, "argo"))["deploy"]["when"]
    assert " || " in either


def test_schedule_compiles_to_a_cron_workflow_and_kind_to_a_template():
    cron = compile(cp.diamond, "argo", schedule="0 3 * * *")
    assert cron["kind"] == "CronWorkflow" and cron["spec"]["schedules"] == ["0 3 * * *"]
    assert cron["metadata"]["name"] == "diamond"
    assert argo_schema_errors(cron) == []
    tmpl = compile(cp.diamond, "argo", kind="WorkflowTemplate")
    assert tmpl["kind"] == "WorkflowTemplate" and argo_schema_errors(tmpl) == []


def test_pipeline_params_compile_in_as_defaults():
    doc = compile(cp.diamond, "argo", params={"rows": 9})
    assert doc["spec"]["arguments"]["parameters"][0] == {"name": "rows", "value": "9"}


def test_unknown_target_lists_the_available_ones():
    with pytest.raises(UnknownBackendError, match="available: argo, kfp"):
        compile(cp.diamond, "airflow")
    assert available() == ["argo", "kfp"]


def test_unknown_option_is_named():
    with pytest.raises(CompileError, match="unknown compile option"):
        compile(cp.diamond, "argo", retries=3)


def test_secret_value_instead_of_a_reference_is_refused():
    with pytest.raises(CompileError, match="secret reference"):
        compile(cp.secured, "argo", secrets={"DB_PASSWORD": "hunter2"})


@pytest.mark.parametrize(("pipe", "message"), [
    (cp.clashing, "both become 'make-a'"),
    (cp.opaque_param, "'thing' has type 'Opaque'"),
    (cp.artifact_collect, "collects artifact 'part'"),
])
def test_pipelines_a_target_cannot_carry_fail_with_the_reason(pipe, message):
    with pytest.raises(CompileError, match=message):
        compile(pipe, "argo")


def test_missing_image_is_named():
    from mlflowlet.pipelines import pipeline

    @pipeline
    def no_image():
        cp.make(rows=1)

    with pytest.raises(CompileError, match="no container image"):
        compile(no_image, "argo")
    assert compile(no_image, "argo", image="repo/x:1")["kind"] == "Workflow"


def test_output_file_is_written(tmp_path):
    out = tmp_path / "sub" / "wf.yaml"
    doc = compile(cp.diamond, "argo", output=out)
    assert yaml.safe_load(out.read_text()) == doc


def test_cache_max_age_is_the_memoize_max_age():
    import express_pipelines as ep

    doc = compile(ep.stale, "argo")
    assert _template(doc, "fresh")["memoize"]["maxAge"] == "10s"
    assert argo_schema_errors(doc, ("4.1.2",)) == [] and validate_argo(doc, ep.stale.dag) == []
    plain = compile(cp.secured, "argo", **SECURED)  # cached without an age: the long default
    assert _template(plain, "secret-user")["memoize"]["maxAge"] == "720h"
    from mlflowlet.compilers.argo import go_duration

    assert [go_duration(s) for s in (10, 1.5, 3600.0)] == ["10s", "1.5s", "3600s"]
