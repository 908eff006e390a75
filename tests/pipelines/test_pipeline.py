import json
import subprocess
import sys
import textwrap

import pytest

from mlflowlet import DataItem, collect, condition, pipeline, step
from mlflowlet.errors import ParameterError, PipelineError, StepDefinitionError
from mlflowlet.pipelines import Pipeline, PipelineParam


@step(outputs=["dataset"])
def prep(context, rows: int = 100):
    context.log_artifact("dataset", body=b"x" * rows)


@step(outputs=["model"])
def train(context, dataset: DataItem, lr: float = 0.1):
    context.log_result("accuracy", lr)
    context.log_artifact("model", body=b"m")


@step
def evaluate(context, model: DataItem, threshold: float = 0.5) -> float:
    return threshold


@step
def needs(context, a: int, b: int = 1) -> int:
    return a + b


@step
def listing(context, n: int = 3) -> list:
    return list(range(n))


@pipeline(name="train-eval")
def train_eval(rows: int = 100, lr: float = 0.1):
    """Prepare, train, evaluate."""
    data = prep(rows=rows)
    model = train(dataset=data.outputs["dataset"], lr=lr)
    evaluate(model=model.outputs["model"], threshold=0.7)


def test_pipeline_params_are_typed_placeholders():
    assert isinstance(train_eval, Pipeline) and train_eval.name == "train-eval"
    rows, lr = train_eval.params
    assert isinstance(rows, PipelineParam) and (rows.name, rows.type, rows.default) == (
        "rows", "int", 100)
    assert lr.type == "float" and not lr.required
    assert train_eval.describe()["params"] == [
        {"name": "rows", "type": "int", "required": False, "default": 100},
        {"name": "lr", "type": "float", "required": False, "default": 0.1}]


def test_trace_records_arguments_as_references_params_and_literals():
    nodes = train_eval.describe()["nodes"]
    assert [n["name"] for n in nodes] == ["prep", "train", "evaluate"]
    args = {n["name"]: n["arguments"] for n in nodes}
    assert args["prep"] == {"rows": {"kind": "param", "name": "rows"}}
    assert args["train"]["dataset"] == {"kind": "artifact", "node": "prep", "output": "dataset"}
    assert args["evaluate"]["threshold"] == {"kind": "value", "value": 0.7}


def test_a_step_used_twice_gets_unique_node_names():
    @pipeline
    def twice():
        a = needs(a=1)
        needs(a=a.results["return"])
        needs(a=2).after(a)

    assert [n.name for n in twice.dag.nodes] == ["needs", "needs-2", "needs-3"]


def test_with_options_overrides_per_call():
    @pipeline
    def opts():
        prep.with_options(image="special:1", retries=3, name="prep-big")(rows=5)

    node = opts.dag.node("prep-big")
    assert node.spec.image == "special:1" and node.spec.retries == 3
    assert prep.spec.image == "" and prep.spec.retries == 0


def test_undeclared_output_names_the_declared_ones_and_call_site():
    @pipeline
    def bad():
        data = prep()
        train(dataset=data.outputs["datset"])

    with pytest.raises(PipelineError) as err:
        bad.validate()
    text = str(err.value)
    assert "'datset'" in text and "['dataset']" in text and f"{__file__}:" in text


def test_reference_to_a_parameter_the_step_lacks():
    @pipeline
    def bad():
        data = prep()
        evaluate(model=data.outputs["dataset"], data=data.outputs["dataset"])

    with pytest.raises(PipelineError, match=r"passed to 'data'.*'evaluate'.*\['model', "):
        bad.validate()


def test_required_step_parameter_left_unbound():
    @pipeline
    def bad():
        needs(b=2)

    with pytest.raises(PipelineError, match=r"missing required parameter\(s\) \['a'\]"):
        bad.validate()


def test_pipeline_param_without_default_needs_a_value_at_run_time():
    @pipeline
    def required(a: int):
        needs(a=a)

    required.validate()  # tracing needs no value
    with pytest.raises(ParameterError, match=r"needs a value for parameter 'a'.*-p a="):
        required.run()


def test_unknown_and_uncoercible_run_params():
    with pytest.raises(ParameterError, match=r"no parameter\(s\) \['rowz'\]"):
        train_eval.run(rowz=3)
    with pytest.raises(ParameterError, match="'rows'.*int"):
        train_eval.run(rows="many")


def test_run_params_from_strings_are_coerced():
    assert train_eval.resolve_params({"rows": "5", "lr": "0.5"}) == {"rows": 5, "lr": 0.5}


def test_reference_used_as_a_bool_explains_condition():
    @pipeline
    def bad():
        t = train(dataset=prep().outputs["dataset"])
        if t.results["accuracy"] > 0.5:
            evaluate(model=t.outputs["model"])

    with pytest.raises(PipelineError, match="with condition"):
        bad.validate()


def test_positional_arguments_bind_in_signature_order():
    @pipeline
    def positional():
        needs(4, 5)

    assert positional.dag.node("needs").arguments == {"a": 4, "b": 5}


def test_literal_is_coerced_at_trace_time_and_bad_literal_fails():
    @pipeline
    def ok():
        needs(a="3")

    assert ok.dag.node("needs").arguments["a"] == 3

    @pipeline
    def bad():
        needs(a=object())

    with pytest.raises(PipelineError, match="JSON values"):
        bad.validate()


def test_reference_nested_in_a_list_is_refused():
    @pipeline
    def bad():
        lst = listing()
        needs(a=[lst.results["return"]])

    with pytest.raises(PipelineError, match="inside a list or dict"):
        bad.validate()


def test_mapped_reference_needs_collect_and_collect_needs_a_map():
    @pipeline
    def no_collect():
        m = needs.map(items=[1, 2], item_param="a")
        needs(a=m.results["return"])

    with pytest.raises(PipelineError, match="collect"):
        no_collect.validate()

    @pipeline
    def bad_collect():
        n = needs(a=1)
        needs(a=collect(n.results["return"]))

    with pytest.raises(PipelineError, match="not mapped"):
        bad_collect.validate()


def test_map_item_param_must_exist():
    @pipeline
    def bad():
        needs.map(items=[1, 2], item_param="zzz")

    with pytest.raises(PipelineError, match="item_param='zzz'"):
        bad.validate()


def test_hyper_step_without_selector_cannot_feed_outputs():
    @pipeline
    def bad():
        t = train.with_hyper_params({"lr": [0.1, 0.2]})(dataset=prep().outputs["dataset"])
        evaluate(model=t.outputs["model"])

    with pytest.raises(PipelineError, match="selector"):
        bad.validate()


def test_condition_outside_a_pipeline_and_with_a_non_comparison():
    with pytest.raises(PipelineError, match="inside a @pipeline"):
        with condition(None):
            pass

    @pipeline
    def bad():
        t = train(dataset=prep().outputs["dataset"])
        with condition(t.results["accuracy"]):
            evaluate(model=t.outputs["model"])

    with pytest.raises(PipelineError, match="comparison"):
        bad.validate()


def test_pipeline_param_named_like_a_run_option_is_refused():
    def clash(cache: bool = False):
        pass

    with pytest.raises(StepDefinitionError, match="'cache'.*rename"):
        pipeline(clash)


def test_exit_handler_needs_a_state_parameter():
    @step
    def no_state(context, x: int = 1):
        pass

    with pytest.raises(StepDefinitionError, match="'state'"):
        pipeline(on_exit=no_state)(lambda: None)


def test_tracing_is_lazy_and_cached():
    traced = []

    @pipeline
    def lazy():
        traced.append(1)
        needs(a=1)

    assert traced == []
    assert lazy.dag is lazy.dag and traced == [1]


def test_describe_is_json_and_stable():
    first = json.dumps(train_eval.describe(), sort_keys=True)
    train_eval.describe()["nodes"].clear()  # a copy each time
    assert json.dumps(train_eval.describe(), sort_keys=True) == first


def test_networkx_loads_only_when_a_pipeline_is_traced(tmp_path):
    code = textwrap.dedent("""
        import sys
        import mlflowlet
        from mlflowlet import step, pipeline, condition, collect
        assert "networkx" not in sys.modules, "import"

        @step
        def one(context, a: int = 1):
            return a

        @pipeline
        def pipe(a: int = 2):
            one(a=a)

        assert "networkx" not in sys.modules, "define"
        pipe.describe()
        assert "networkx" in sys.modules, "trace"
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                         cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_a_pipeline_run_inside_another_pipeline_is_refused():
    train_eval.validate()

    @pipeline
    def outer():
        train_eval.run()

    with pytest.raises(PipelineError, match="inside another pipeline"):
        outer.validate()


def test_cycle_error_names_the_pipeline_function_and_its_file_line():
    @pipeline
    def looped():
        a = needs(a=1)
        b = needs(a=2)
        a.after(b)
        b.after(a)

    with pytest.raises(PipelineError) as err:
        looped.validate()
    text = str(err.value)
    assert text.startswith(f"@pipeline {looped.fn.__qualname__} ({__file__}:")
    assert "cycle: needs" in text and "\n" not in text


def test_missing_pipeline_param_names_the_file_and_line():
    @pipeline
    def required_here(a: int):
        needs(a=a)

    with pytest.raises(ParameterError, match=rf"'required-here' \({__file__}:\d+\) needs a value"):
        required_here.run()


@step(outputs=["dataset"])
def api_prep(context, rows: int = 100):
    import pandas as pd

    context.log_dataset("dataset", pd.DataFrame({"x": list(range(rows))}))


@step(outputs=["model"], retries=2)
def api_train(context, dataset: DataItem, lr: float = 0.1):
    acc = len(dataset.as_df()) / 100 + lr
    context.log_result("accuracy", acc)
    context.log_artifact("model", body=b"weights", local_path="model.pkl")


@step
def api_evaluate(context, model: DataItem, threshold: float = 0.5) -> float:
    return float(len(model.get()) > threshold)


@pipeline(name="train-eval")
def api_train_eval(rows: int = 100, lr: float = 0.1):
    data = api_prep(rows=rows)
    model = api_train(dataset=data.outputs["dataset"], lr=lr)
    api_evaluate(model=model.outputs["model"], threshold=0.7)


def test_the_issue_api_example_runs_as_written():
    run = api_train_eval.run(rows=50)
    assert run.state == "completed"
    assert run.steps["api_train"].results["accuracy"] == pytest.approx(0.6)
    model = next(a for a in run.steps["api_train"].status.artifacts if a["key"] == "model")
    assert model["uri"].endswith("model.pkl") and model["format"] == "pkl"
    assert {(r["output"], r["consumer_param"]) for r in run.lineage()} == {
        ("dataset", "dataset"), ("model", "model")}
