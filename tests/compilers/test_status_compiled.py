"""Status-conditioned steps compiled: Argo's enhanced ``depends``, refused on KFP, --check."""

import express_pipelines as ep
import pytest
from compiler_checks import argo_schema_errors

from mlflowlet.compilers import compile
from mlflowlet.compilers._validate import validate_argo
from mlflowlet.compilers.check import check
from mlflowlet.errors import CompileError


def _depends(doc):
    return {t["name"]: t.get("depends", "") for t in doc["spec"]["templates"][0]["dag"]["tasks"]}


def test_argo_depends_carries_each_status():
    doc = compile(ep.unhandled, "argo")
    assert argo_schema_errors(doc) == [] and validate_argo(doc, ep.unhandled.dag) == []
    assert _depends(doc) == {"risky": "", "ok": "risky.Succeeded",
                             "rescue": "(risky.Failed || risky.Errored)"}
    done = _depends(compile(ep.handled, "argo"))["cleanup"]
    assert done == ("(risky.Succeeded || risky.Failed || risky.Errored || risky.Skipped || "
                    "risky.Omitted)")


@pytest.mark.parametrize("pipe", [ep.handled, ep.unhandled])
def test_kfp_refuses_a_status_conditioned_step(pipe):
    with pytest.raises(CompileError, match=(
            r"^step 'rescue' \(.*\) runs after 'risky' on='failure': a status-conditioned step "
            r"cannot be expressed on KFP v2 .*use target='argo'")):
        compile(pipe, "kfp")


def test_kfp_keeps_on_success_as_an_ordering_edge():
    from mlflowlet.pipelines import pipeline

    @pipeline(image=ep.IMAGE)
    def chain():
        r = ep.risky()
        ep.say(message="x").after(r, on="success")

    tasks = compile(chain, "kfp")["root"]["dag"]["tasks"]
    assert tasks["say"]["dependentTasks"] == ["risky"]
    assert "triggerPolicy" not in tasks["say"]


@pytest.mark.slow
@pytest.mark.parametrize(("pipe", "fail", "state"), [
    (ep.handled, True, "Succeeded"), (ep.handled, False, "Succeeded"),
    (ep.unhandled, True, "Failed"), (ep.unhandled, False, "Succeeded"),
])
def test_argo_compiled_run_matches_the_local_run(pipe, fail, state, tmp_path):
    report = check(pipe, "argo", params={"fail": fail}, workdir=str(tmp_path))
    assert report.ok, report.summary()
    assert report.status == state


@pytest.mark.slow
def test_argo_exit_step_sees_a_handled_failure_as_completed(tmp_path):
    report = check(ep.handled_exit, "argo", params={"fail": True}, workdir=str(tmp_path))
    assert report.ok, report.summary()
    assert report.status == "Succeeded" and report.states["risky"] == "error"
    (exit_pod,) = [p for p in report.pods if p.node == "exit_op"]
    assert exit_pod.results["return"] == "m:completed"


@pytest.mark.slow
def test_check_compares_the_pipelines_final_state(tmp_path):
    from mlflowlet.compilers.check import CheckSession

    doc = compile(ep.unhandled, "argo")
    with CheckSession(ep.unhandled, doc, "argo", {"fail": True}, workdir=str(tmp_path)) as s:
        assert s.differences() == [] and s.report.status == "Failed"
        s.report.status = "Succeeded"
        assert "pipeline: local run error, compiled run completed (Succeeded)" in s.differences()


def test_argo_on_success_of_a_fan_out_accepts_one_over_no_items():
    tasks = compile(ep.gated_map_success, "argo")["spec"]["templates"][0]["dag"]["tasks"]
    say = next(t for t in tasks if t["name"] == "say")
    assert say["depends"] == "(risky.Succeeded || risky.Skipped)"  # Argo skips an empty fan-out
    assert say["when"] == "{{workflow.parameters.gate}} == true"  # ...and a false condition


@pytest.mark.slow
@pytest.mark.parametrize(("pipe", "params", "say"), [
    (ep.map_success, {"fails": []}, "completed"),
    (ep.map_success, {"fails": [False, True]}, "skipped"),
    (ep.gated_map_success, {"fails": [], "gate": True}, "completed"),
    (ep.gated_map_success, {"fails": [False], "gate": False}, "skipped"),
    (ep.map_rescue, {"fails": [False, True]}, None),
])
def test_argo_status_steps_after_a_fan_out_match_the_local_run(pipe, params, say, tmp_path):
    local = pipe.run(**params)
    if say is not None:
        assert local.steps["say"].state == say
    else:  # one failed item fails the map: the handler runs, the run completes
        assert local.steps["rescue"].state == "completed" and local.state == "completed"
    report = check(pipe, "argo", params=params, workdir=str(tmp_path))
    assert report.ok, report.summary()
