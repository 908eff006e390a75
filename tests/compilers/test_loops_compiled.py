"""Maps over sub-pipelines and nested maps compiled: KFP ParallelFor groups, Argo DAG templates.

Each compiles to the engine's own loop construct, passes strict validation, and the compiled
run (``--check``) agrees with the local run; what a target cannot carry is refused.
"""

import loop_pipelines as lp
import pytest
import yaml
from compiler_checks import argo_schema_errors, kfp_docs, kfp_strict_errors

from mlflowlet.compilers import compile, compile_text
from mlflowlet.compilers._validate import validate_argo, validate_kfp
from mlflowlet.compilers.check import check
from mlflowlet.errors import CompileError


def _argo(pipe):
    doc = compile(pipe, "argo")
    assert argo_schema_errors(doc, ("4.1.2",)) == []
    assert argo_schema_errors(compile(pipe, "argo", argo_version="3"), ("3.7.18",)) == []
    assert validate_argo(doc, pipe.dag) == []
    return {t["name"]: t for t in doc["spec"]["templates"]}


def _kfp(pipe, tmp_path):
    text = compile_text(pipe, "kfp")
    assert kfp_strict_errors(text, tmp_path) == []
    spec = kfp_docs(text)[0]
    assert validate_kfp(spec, pipe.dag) == []
    return spec


def _tasks(template):
    return {t["name"]: t for t in template["dag"]["tasks"]}


def test_argo_runs_the_body_as_one_dag_template_per_item():
    templates = _argo(lp.static)
    main = _tasks(templates["main"])
    assert set(main) == {"shout", "body-loop-1"}
    loop = main["body-loop-1"]  # parallel=2: a wrapper bounds the items running at once
    assert loop["template"] == "body-loop-1-for" and "shout" in loop["depends"]
    wrapper = templates["body-loop-1-for"]
    assert wrapper["parallelism"] == 2
    fan = _tasks(wrapper)["body-loop-1"]
    assert fan["template"] == "body-loop-1" and len(fan["withItems"]) == 2
    body = templates["body-loop-1"]
    assert [p["name"] for p in body["inputs"]["parameters"]] == ["item"]
    steps = _tasks(body)
    assert set(steps) == {"concat", "shout-2"}  # no fan-out of their own: the loop fans out
    assert "withItems" not in steps["concat"] and "withParam" not in steps["concat"]
    assert steps["shout-2"]["depends"] == "concat.Succeeded"  # the same item's concat only
    values = {p["name"]: p["value"] for p in steps["concat"]["arguments"]["parameters"]}
    assert values == {"a": "{{inputs.parameters.item}}", "b": "{{inputs.parameters.item}}"}


def test_argo_passes_outside_results_and_result_items_into_the_body():
    templates = _argo(lp.over_result)
    loop = _tasks(templates["main"])["with-suffix-loop-1"]
    assert loop["withParam"] == "{{tasks.rows.outputs.parameters.return__items}}"
    args = {p["name"]: p["value"] for p in loop["arguments"]["parameters"]}
    assert args == {"item": "{{item}}", "ext-1": "{{tasks.suffix.outputs.parameters.return}}"}
    assert set(loop["depends"].split(" && ")) == {"rows.Succeeded", "suffix.Succeeded"}
    concat = _tasks(templates["with-suffix-loop-1"])["concat"]
    values = {p["name"]: p["value"] for p in concat["arguments"]["parameters"]}
    assert values["b"] == "{{inputs.parameters.ext-1}}"


def test_argo_nests_the_inner_loop_in_the_outer_body():
    templates = _argo(lp.nested)
    outer = templates["inner-loop-1"]
    assert set(_tasks(outer)) == {"shout", "pair-loop-2"}
    inner = _tasks(outer)["pair-loop-2"]
    assert inner["withParam"] == "{{workflow.parameters.letters}}"
    assert templates["inner-loop-1-for"]["parallelism"] == 1
    pair = _tasks(templates["pair-loop-2"])["pair"]
    values = {p["name"]: p["value"] for p in pair["arguments"]["parameters"]}
    assert values == {"inner": "{{inputs.parameters.item}}", "outer": "{{inputs.parameters.ext-1}}"}


def _components_with(spec, *names):
    """Return the KFP DAG components holding exactly the tasks ``names``."""
    return [
        c
        for c in spec["components"].values()
        if "dag" in c and set(c["dag"]["tasks"]) == set(names)
    ]


def test_kfp_runs_the_body_in_one_parallelfor_holding_its_tasks(tmp_path):
    spec = _kfp(lp.static, tmp_path)
    assert len(_components_with(spec, "concat", "shout-2")) == 1
    loop = next(t for t in spec["root"]["dag"]["tasks"].values() if "parameterIterator" in t)
    assert loop["iteratorPolicy"] == {"parallelismLimit": 2}
    assert loop["dependentTasks"] == ["shout"]  # concat.after(shout), inside the loop


def test_kfp_nests_the_inner_parallelfor(tmp_path):
    spec = _kfp(lp.nested, tmp_path)
    outer = next(t for t in spec["root"]["dag"]["tasks"].values() if "parameterIterator" in t)
    assert outer["iteratorPolicy"] == {"parallelismLimit": 1}
    body = spec["components"][outer["componentRef"]["name"]]["dag"]["tasks"]
    assert "shout" in body
    nested = next(t for t in body.values() if "parameterIterator" in t)
    assert "pair" in spec["components"][nested["componentRef"]["name"]]["dag"]["tasks"]


def test_argo_carries_a_bounded_maps_collected_results_out_of_its_loop_templates():
    templates = _argo(lp.bounded_collected)
    main = _tasks(templates["main"])
    count = main["count"]  # reads and waits for the loop task, not the step inside it
    assert count["depends"] == "(shout-loop.Succeeded || shout-loop.Skipped)"
    assert count["arguments"]["parameters"] == [
        {"name": "values", "value": "{{tasks.shout-loop.outputs.parameters.return}}"}
    ]
    wrapper, body = templates["shout-loop-for"], templates["shout-loop"]
    assert wrapper["outputs"]["parameters"] == [  # aggregated over the items; [] for none
        {
            "name": "return",
            "valueFrom": {
                "parameter": "{{tasks.shout-loop.outputs.parameters.return}}",
                "default": "[]",
            },
        }
    ]
    assert body["outputs"]["parameters"] == [
        {"name": "return", "valueFrom": {"parameter": "{{tasks.shout.outputs.parameters.return}}"}}
    ]
    compile(lp.bounded_collected, "kfp")  # KFP carries ParallelFor(parallelism=1) + Collected


def test_argo_refuses_a_step_ordered_after_a_bounded_map():
    with pytest.raises(CompileError, match=r"parallel=1 and suffix depends on it: Argo target"):
        compile(lp.bounded_ordered, "argo")


@pytest.mark.slow
@pytest.mark.parametrize("target", ["argo", "kfp"])
@pytest.mark.parametrize(
    "name", ["static", "over_result", "nested", "one_bad", "bounded_collected"]
)
def test_compiled_loops_match_the_local_run(name, target, tmp_path):
    pipe = getattr(lp, name)
    report = check(pipe, target, workdir=str(tmp_path))
    assert report.ok, report.summary()
    items = {}
    for pod in report.pods:
        items.setdefault(pod.node, []).append((pod.iteration, pod.results.get("return")))
    if name == "one_bad":  # the bad item fails its body, so the loop and the workflow
        assert report.status == "Failed" and report.states == {
            "picky": "error", "shout": "completed"}
        assert sorted(items["shout"]) == [(1, "OK")]
    elif name == "static":
        assert sorted(items["shout-2"]) == [(1, "12"), (2, "1020")]
    elif name == "bounded_collected":
        assert sorted(items["shout"]) == [(1, "A"), (2, "B")] and items["count"] == [(0, 2)]
    elif name == "over_result":
        assert sorted(items["shout"]) == [(1, "X!"), (2, "P!")]
    else:  # outer-major: (A, x) (A, y) (A, z) (B, x) ...
        want = [f"{o}{i}" for o in "AB" for i in "xyz"]
        assert sorted(items["pair"]) == list(enumerate(want, start=1))


def test_the_golden_yaml_is_deterministic():
    assert compile_text(lp.nested, "argo") == compile_text(lp.nested, "argo")
    assert yaml.safe_load(compile_text(lp.nested, "kfp"))


@pytest.mark.slow
@pytest.mark.parametrize(("name", "status"), [("handled", "Succeeded"), ("half_handled", "Failed")])
def test_a_failure_a_body_handles_ends_the_workflow_as_locally(name, status, tmp_path):
    """Argo judges each item's body DAG by its leaves (``assessDAGPhase``); the local run too."""
    report = check(getattr(lp, name), "argo", workdir=str(tmp_path))
    assert report.ok, report.summary()
    assert report.status == status
    with pytest.raises(CompileError, match="status-conditioned step cannot be expressed on KFP"):
        compile(getattr(lp, name), "kfp")


def test_argo_compiles_a_condition_in_the_body_to_when_in_its_dag_template():
    templates = _argo(lp.conditional_body)
    loop = _tasks(templates["main"])["even-body-loop-1"]
    ext = {p["name"]: p["value"] for p in loop["arguments"]["parameters"]}["ext-1"]
    assert ext == "{{tasks.cap.outputs.parameters.return__if}}"  # cap's result, into the body
    steps = _tasks(templates["even-body-loop-1"])
    assert steps["half"]["when"] == "{{tasks.parity.outputs.parameters.return__if}} == 's:even'"
    assert steps["shout"]["when"] == (
        "{{tasks.parity.outputs.parameters.return__if}} == 's:even' && "
        "{{tasks.half.outputs.parameters.return__if}} < {{inputs.parameters.ext-1}}"
    )
    assert steps["shout-2"]["when"] == "'s:{{workflow.parameters.mode}}' == 's:loud'"
    assert "when" not in steps["parity"]


def test_kfp_compiles_a_condition_in_the_body_to_dsl_if_inside_the_parallelfor(tmp_path):
    spec = _kfp(lp.conditional_body, tmp_path)
    loop = next(t for t in spec["root"]["dag"]["tasks"].values() if "parameterIterator" in t)
    body = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
    groups = {n: t for n, t in body.items() if "triggerPolicy" in t}
    assert "parity" in body and len(groups) == 2  # half's block and shout-2's, per item
    conds = sorted(t["triggerPolicy"]["condition"] for t in groups.values())
    assert any("parity" in c and "even" in c for c in conds), conds
    comps = spec["components"]
    inner = [comps[t["componentRef"]["name"]]["dag"]["tasks"] for t in groups.values()]
    assert sorted(len(ts) for ts in inner) == [1, 2] and any("shout-2" in ts for ts in inner)
    half = next(ts for ts in inner if "half" in ts)  # the nested block: inside half's group
    nested = next(t for n, t in half.items() if n != "half")
    assert set(comps[nested["componentRef"]["name"]]["dag"]["tasks"]) == {"shout"}


@pytest.mark.parametrize("target", ["argo", "kfp"])
def test_a_condition_around_a_sub_pipeline_map_is_refused(target):
    name = "Argo" if target == "argo" else "KFP"
    with pytest.raises(CompileError, match=f"condition .*around.* {name} target"):
        compile(lp.condition_around_loop, target)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["argo", "kfp"])
@pytest.mark.parametrize("mode", ["loud", "quiet"])
def test_a_condition_in_the_body_runs_compiled_as_locally(target, mode, tmp_path):
    report = check(lp.conditional_body, target, params={"mode": mode}, workdir=str(tmp_path))
    assert report.ok, report.summary()
    items = {}
    for pod in report.pods:
        items.setdefault(pod.node, []).append((pod.iteration, pod.results.get("return")))
    assert sorted(items["half"]) == [(2, 1), (4, 2), (5, 3)]  # items 2, 4, 6: each its own
    assert sorted(items["shout"]) == [(2, "EVEN"), (4, "EVEN")]
    assert len(items.get("shout-2", [])) == (5 if mode == "loud" else 0)
