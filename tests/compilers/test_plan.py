"""The target-neutral compile plan: carried types, step arguments, container env and refusals.

Both compilers render :func:`mlflowlet.compilers._plan.make_plan`; these tests pin what the plan
says, so a wrong type or a lost flag fails here, before any YAML is rendered.
"""

from __future__ import annotations

import json
import re

import pytest
from compiler_pipelines import fanout, gated, hyper, secured

from mlflowlet.compilers._options import make_options
from mlflowlet.compilers._plan import EXEC_CONFIG_ENV, Slot, make_plan, value_type
from mlflowlet.errors import CompileError
from mlflowlet.pipelines import collect, condition, pipeline, step

IMAGE = "example.com/mlflowlet/steps:1.0"


@step
def produce() -> dict:
    return {"n": 1, "flag": True, "word": "a", "score": 0.5, "other": 1, "many": [1]}


@step
def half(x: int) -> float:
    return x / 2


@step
def twice(x: int) -> float:
    return x * 2.0


@step
def raw() -> bytes:
    return b""


@step
def consume(n: int, untyped, ints: list[int], floats: list, blob: bytes = b"") -> dict:
    return {}


@pipeline(image=IMAGE)
def typed():
    """Results read by typed and untyped consumers, a condition and two maps."""
    p = produce()
    h = half.map(items=p.results["many"], item_param="x")
    t = twice.map(items=p.results["many"], item_param="x")
    r = raw()
    with condition(((p.results["flag"] == True) & (p.results["word"] == "yes"))  # noqa: E712
                   | (p.results["score"] > 0.1)):
        consume(n=p.results["n"], untyped=p.results["other"], ints=collect(h.results["return"]),
                floats=collect(t.results["return"]), blob=r.results["return"])


def _plan(pipe, **options):
    return make_plan(pipe, make_options(None, pipe.name, **options))


@pytest.mark.parametrize(("hint", "default", "carried"), [
    ("int", None, "int"), ("List[int]", None, "list"), ("list[dict[str, int]]", None, "list"),
    ("Dict[str, int]", None, "dict"), ("Sequence[float]", None, "list"),
    ("Mapping[str, int]", None, "dict"), ("tuple", None, "list"), ("Tuple[int, int]", None, "list"),
    (" float ", None, "float"), ("", True, "bool"), ("", 3, "int"), ("Any", 2.5, "float"),
    ("object", [1], "list"), ("", {"a": 1}, "dict"), ("", None, "str"), ("", "x", "str"),
])
def test_value_type_maps_hints_and_defaults_to_a_carried_type(hint, default, carried):
    assert value_type(hint, default, "here") == carried


@pytest.mark.parametrize("hint", ["bytes", "numpy.ndarray", "Optional[int]", "list_of_things"])
def test_value_type_refuses_what_no_target_carries_naming_where(hint):
    expected = rf"^param 'p' has type '{re.escape(hint)}', which a compiled pipeline cannot carry"
    with pytest.raises(CompileError, match=expected + " as a parameter; use int"):
        value_type(hint, None, "param 'p'")


def test_result_types_come_from_consumers_conditions_maps_and_return_annotations():
    plan = _plan(typed)
    assert plan.step("produce").results == {  # typed consumer, untyped one, condition, map items
        "n": "int", "other": "str", "flag": "bool", "word": "str", "score": "float",
        "many": "list"}
    assert plan.step("half").results == {"return": "int"}  # collected into list[int]
    assert plan.step("twice").results == {"return": "float"}  # bare list: the annotation
    assert plan.step("raw").results == {"return": "str"}  # bytes: carried as text
    consume = plan.step("consume")
    assert consume.param_types == {"n": "int", "untyped": "str", "ints": "list",
                                   "floats": "list", "blob": "str"}
    assert consume.params["ints"].kind == "collect" and consume.params["ints"].node == "half"
    assert (consume.params["n"].kind, consume.params["n"].node, consume.params["n"].key) == (
        "result", "produce", "n")


def test_step_env_carries_the_run_spec_as_compact_sorted_json():
    plan = _plan(hyper, secrets={"TOKEN": "s:k"}, env={"B": "2"}, dbpath="http://db:8080",
                 steps={"train": {"secrets": {"DB": "d:p"}, "env": {"A": "1"}}})
    env = plan.step("train").env
    config = {"metadata": {"name": "train", "labels": {"mlflowlet/pipeline": "hyper",
                                                       "mlflowlet/step": "train"}},
              "spec": {"hyper_params": {"lr": [0.1, 0.2, 0.3]}, "selector": "max.accuracy",
                       "strategy": "grid", "secret_sources": [{"kind": "env",
                                                               "source": "DB,TOKEN"}]}}
    assert env == {"A": "1", "B": "2", "MLFLOWLET_DBPATH": "http://db:8080",
                   EXEC_CONFIG_ENV: json.dumps(config, sort_keys=True, separators=(",", ":"))}
    assert list(env) == sorted(env)
    assert plan.step("train").secrets == {"DB": ("d", "p"), "TOKEN": ("s", "k")}
    evaluate = json.loads(plan.step("evaluate").env[EXEC_CONFIG_ENV])
    assert "spec" in evaluate and "hyper_params" not in evaluate["spec"]  # the secret only
    assert "DB" not in plan.step("evaluate").secrets


def test_step_env_keeps_labels_timeout_and_the_sweep_limits_that_are_set():
    config = json.loads(_plan(secured).step("secret_user").env[EXEC_CONFIG_ENV])
    assert config["metadata"]["labels"]["team"] == "ml"
    assert config["spec"] == {"timeout": 600}

    @pipeline(image=IMAGE)
    def limited():
        half.with_hyper_params({"x": [1, 2, 3]}, strategy="random", max_iterations=2,
                               seed=7)()

    spec = json.loads(_plan(limited).step("half").env[EXEC_CONFIG_ENV])["spec"]
    assert spec == {"hyper_params": {"x": [1, 2, 3]}, "selector": "", "strategy": "random",
                    "max_iterations": 2, "seed": 7}


def test_args_list_literals_params_inputs_outputs_and_results_in_order():
    @pipeline(image=IMAGE)
    def literal():
        consume(n=1, untyped={"b": 1, "a": [2, 1]}, ints=[1], floats=[0.5])

    assert _plan(literal).step("consume").args() == [
        ["--handler"], ["test_plan:consume"],
        ["--param"], ["floats=[0.5]"], ["--param"], ["ints=[1]"], ["--param"], ["n=1"],
        ["--param"], ['untyped={"a": [2, 1], "b": 1}']]
    evaluate = _plan(hyper).step("evaluate").args()
    assert evaluate == [["--handler"], ["compiler_pipelines:evaluate"],
                        ["--param"], ["accuracy=", Slot("param", "accuracy")],
                        ["--input"], ["model=", Slot("in_artifact", "model"), "/"]]
    assert _plan(hyper).step("train").args()[-4:] == [
        ["--output"], ["model=", Slot("out_artifact", "model"), "/"],
        ["--result"], ["accuracy=", Slot("out_result", "accuracy")]]


def test_args_for_engines_collecting_json_flag_mapped_results_and_collected_params():
    plan = _plan(fanout)
    assert plan.step("square").args() == plan.step("square").args(json_collect=False)
    assert plan.step("square").args()[-2:] == [["--result"], ["sq=", Slot("out_result", "sq")]]
    assert plan.step("square").args(True)[-2:] == [["--result-json"],
                                                   ["sq=", Slot("out_result", "sq")]]
    assert plan.step("add_all").args(True)[2:] == [
        ["--param"], ["values=", Slot("param", "values")], ["--collected"], ["values"]]
    assert ["--collected"] not in plan.step("add_all").args()
    assert ["--collected"] not in plan.step("items").args(True)


def test_exit_handler_gets_the_state_and_pipeline_params_know_if_they_are_required():
    plan = _plan(gated)
    assert plan.exit_step.args() == [["--handler"], ["compiler_pipelines:report"],
                                     ["--state"], [Slot("param", "state")]]
    assert plan.step("report") is plan.exit_step
    assert plan.params == {"threshold": ("float", 0.5, False)}
    assert _plan(gated, params={"threshold": 0.9}).params == {"threshold": ("float", 0.9, False)}

    @pipeline(image=IMAGE)
    def needs(rows: int, label="x"):  # noqa: ANN001
        consume(n=rows, untyped=label, ints=[], floats=[])

    assert _plan(needs).params == {"rows": ("int", None, True), "label": ("str", "x", False)}
    assert _plan(needs, params={"rows": 3}).params["rows"] == ("int", 3, False)
    with pytest.raises(KeyError):
        plan.step("nope")


@pytest.mark.parametrize("reserved", ["main", "exit-handler"])
def test_a_step_named_like_the_workflows_own_templates_is_refused(reserved):
    @pipeline(image=IMAGE)
    def clash():
        raw.with_options(name=reserved)()

    with pytest.raises(CompileError, match=rf"^step name '{reserved}' is reserved for the "
                                           r"compiled workflow's own templates; rename the step"):
        _plan(clash)


def test_collecting_artifacts_of_a_map_is_refused_with_the_way_out():
    from compiler_pipelines import artifact_collect

    with pytest.raises(CompileError, match=r"collects artifact 'part' of mapped step 'shard'; "
                                           r"compiled pipelines collect results only: log a "
                                           r"result \(e\.g\. the artifact's URI or a score\)"):
        _plan(artifact_collect)
