"""``context.workflow`` compiled: the engines' placeholders at the step's entrypoint arguments."""

import pytest
import workflow_pipelines as wp
from compiler_checks import argo_schema_errors, kfp_strict_errors

from mlflowlet.compilers import compile, compile_text
from mlflowlet.compilers._validate import validate_argo, validate_kfp
from mlflowlet.compilers._workflow import CHECK_UID
from mlflowlet.compilers.check import check


def _template(doc, name):
    return next(t for t in doc["spec"]["templates"] if t["name"] == name)


def _flags(args):
    return [args[i + 1] for i, a in enumerate(args) if a == "--param"]


def test_argo_passes_the_workflow_placeholders():
    doc = compile(wp.info, "argo")
    assert argo_schema_errors(doc) == [] and validate_argo(doc, wp.info.dag) == []
    who = _template(doc, "who")
    assert _flags(who["container"]["args"]) == [
        "x:json=2",
        "workflow__param__lr:float={{inputs.parameters.workflow__param__lr}}",
        "workflow__param__tag:str={{inputs.parameters.workflow__param__tag}}",
        "workflow__name:str={{workflow.name}}",
        "workflow__uid:str={{workflow.uid}}",
        "workflow__created:str={{workflow.creationTimestamp}}",
        "workflow__attempt:int=0",  # no retryStrategy: Argo has no {{retries}} there
        "workflow__duration:float={{workflow.duration}}",
        "workflow__target:str=argo",
    ]
    task = next(t for t in _template(doc, "main")["dag"]["tasks"] if t["name"] == "who")
    assert task["arguments"]["parameters"] == [
        {"name": "workflow__param__lr", "value": "{{workflow.parameters.lr}}"},
        {"name": "workflow__param__tag", "value": "{{workflow.parameters.tag}}"}]
    assert not any("workflow__" in a for a in _template(doc, "plain")["container"]["args"])
    retried = compile(wp.retried, "argo")
    assert validate_argo(retried, wp.retried.dag) == []
    assert "workflow__attempt:int={{retries}}" in _flags(
        _template(retried, "flaky")["container"]["args"])


def test_argo_validation_refuses_retries_without_a_retry_strategy():
    doc = compile(wp.retried, "argo")
    once = _template(doc, "once")
    once["container"]["args"] = [a.replace("attempt:int=0", "attempt:int={{retries}}")
                                 for a in once["container"]["args"]]
    assert validate_argo(doc, wp.retried.dag) == [
        "template 'once': {{retries}} does not resolve"]


def test_kfp_passes_the_pipeline_job_placeholders(tmp_path):
    from kfp import dsl

    assert kfp_strict_errors(compile_text(wp.info, "kfp"), tmp_path) == []
    spec = compile(wp.info, "kfp")
    assert validate_kfp(spec, wp.info.dag) == []
    args = spec["deploymentSpec"]["executors"]["exec-who"]["container"]["args"]
    assert _flags(args) == [
        "x:json=2",
        "workflow__param__lr:float={{$.inputs.parameters['workflow__param__lr']}}",
        "workflow__param__tag:str={{$.inputs.parameters['workflow__param__tag']}}",
        f"workflow__name:str={dsl.PIPELINE_JOB_NAME_PLACEHOLDER}",
        f"workflow__uid:str={dsl.PIPELINE_JOB_ID_PLACEHOLDER}",
        f"workflow__created:str={dsl.PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER}",
        "workflow__target:str=kfp",  # no attempt: KFP v2 has no placeholder for it
    ]
    assert spec["root"]["dag"]["tasks"]["who"]["inputs"]["parameters"] == {
        "workflow__param__lr": {"componentInputParameter": "lr"},
        "workflow__param__tag": {"componentInputParameter": "tag"}}


@pytest.mark.slow
@pytest.mark.parametrize("target", ["argo", "kfp"])
def test_compiled_steps_read_the_engines_workflow(target):
    report = check(wp.info, target, params={"lr": 0.7}, ignore_results={"who": wp.DIFFERS})
    assert report.ok, report.summary()
    who = next(p for p in report.pods if p.node == "who")
    assert who.results["params"] == {"lr": 0.7, "tag": "t"}
    assert who.results["target"] == target
    assert who.results["created"].endswith("Z")
    if target == "argo":
        assert (who.results["name"], who.results["uid"]) == ("info-check", CHECK_UID)


@pytest.mark.slow
def test_argo_attempts_match_the_local_run():
    report = check(wp.retried, "argo")
    assert report.ok, report.summary()
    got = {p.node: (p.results["attempt"], p.attempts) for p in report.pods}
    assert got == {"flaky": (2, 2), "once": (1, 1)}


@pytest.mark.slow
@pytest.mark.parametrize("target", ["argo", "kfp"])
def test_a_loop_body_step_reads_the_workflow_locally_and_compiled(dbdir, target):
    local = wp.in_body.run(lr=0.7)
    assert local.state == "completed"
    found = local.steps["who"]._db.list_runs(uid=local.steps["who"].uid, iter=True, sort=False)
    items = [r["status"]["results"] for r in found if r["metadata"]["iteration"] > 0]
    assert sorted(r["x"] for r in items) == [1, 2]
    assert all(r["params"] == {"lr": 0.7, "tag": "t"} and r["uid"] == local.uid for r in items)
    report = check(wp.in_body, target, params={"lr": 0.7}, ignore_results={"who": wp.DIFFERS})
    assert report.ok, report.summary()
