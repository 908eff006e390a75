import dataclasses
import inspect
import json
import pickle
import threading
from pathlib import Path

import pytest

from mlflowlet import Context, DataItem, get_run_db
from mlflowlet.errors import ParameterError, PipelineError, RunError, StepDefinitionError
from mlflowlet.pipelines import Step, step

CALLS: list[str] = []


@step
def plain(context, x: int, y: float = 2.5, name: str = "a") -> float:
    """Add two numbers."""
    return x + y


@step(name="prepare", outputs=["data"], image="repo/img:1", resources={"cpu": "1", "gpu": 1},
      retries=2, retry_delay=0.5, timeout=30, cache=True, labels={"team": "ml"})
def prep(ctx: Context, rows: int = 10, src: DataItem = None):
    ctx.log_artifact("data", body=b"x" * rows)


@step(outputs=["model"])
def returns_bytes(context):
    return b"\x00\x01weights"


@step(outputs=["report"])
def returns_dict(context, n: int = 2):
    return {"n": n, "items": list(range(n))}


@step(outputs=["text"])
def returns_str(context):
    return "hello"


@step(outputs=["frame"])
def returns_frame(context):
    import pandas as pd

    return pd.DataFrame({"a": [1, 2, 3]})


class Weights:
    def __init__(self, w):
        self.w = w


@step(outputs=["obj"])
def returns_object(context):
    return Weights([1, 2])


@step(outputs=["first", "second"])
def returns_tuple(context):
    return "one", {"two": 2}


@step(outputs=["lock"])
def returns_lock(context):
    return threading.Lock()


@step(outputs=["model"])
def forgets_output(context):
    context.log_result("accuracy", 0.5)


@step(outputs=["model"])
def logs_and_returns_results(context):
    context.log_artifact("model", body=b"m")
    return {"accuracy": 0.8}


@step(retries=2)
def flaky(context, fail_times: int = 2):
    CALLS.append("flaky")
    if CALLS.count("flaky") <= fail_times:
        raise RuntimeError(f"attempt {CALLS.count('flaky')} fails")
    return "ok"


@step
def reads(context, data: DataItem) -> int:
    return len(data.get())


@step
def sweep(context, lr: float = 0.1):
    context.log_result("accuracy", 1 - abs(lr - 0.2))


def test_step_without_and_with_parentheses_keeps_signature_and_doc():
    assert isinstance(plain, Step) and isinstance(prep, Step)
    assert plain.__name__ == "plain" and plain.__doc__ == "Add two numbers."
    assert list(inspect.signature(plain).parameters) == ["context", "x", "y", "name"]
    assert plain.fn(None, 1, 2) == 3  # the raw function


def test_spec_infers_params_and_context_by_name_or_annotation():
    spec = plain.spec
    assert spec.context_param == "context"
    assert [(p.name, p.type, p.required, p.default) for p in spec.params] == [
        ("x", "int", True, None), ("y", "float", False, 2.5), ("name", "str", False, "a")]
    assert spec.returns == "float"
    assert spec.handler == f"{__name__}:plain"
    assert spec.source.startswith(__file__)
    p = prep.spec
    assert p.context_param == "ctx" and [x.name for x in p.params] == ["rows", "src"]
    assert p.param("src").dataitem and not p.param("rows").dataitem


def test_spec_holds_options_and_is_immutable():
    spec = prep.spec
    assert (spec.name, spec.outputs, spec.image, spec.retries, spec.retry_delay, spec.timeout,
            spec.cache) == ("prepare", ("data",), "repo/img:1", 2, 0.5, 30.0, True)
    assert dict(spec.resources) == {"cpu": "1", "gpu": 1} and dict(spec.labels) == {"team": "ml"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.retries = 5
    with pytest.raises(TypeError):
        spec.labels["x"] = "y"
    json.dumps(spec.describe())  # plain data


def test_with_options_returns_a_copy():
    other = prep.with_options(image="other:2", retries=0)
    assert other.spec.image == "other:2" and other.spec.retries == 0
    assert prep.spec.image == "repo/img:1" and prep.spec.retries == 2
    assert other.fn is prep.fn


@pytest.mark.parametrize("options, words", [
    ({"resources": {"cpus": 1}}, "resources"),
    ({"retries": -1}, "retries"),
    ({"outputs": ["a", "a"]}, "declared twice"),
    ({"outputs": ["bad name"]}, "output name"),
    ({"timeout": 0}, "timeout"),
    ({"cache": "yes"}, "cache"),
])
def test_bad_option_names_function_file_and_line(options, words):
    def handler(context):
        pass

    with pytest.raises(StepDefinitionError) as err:
        step(**options)(handler)
    text = str(err.value)
    assert words in text and "handler" in text and f"{__file__}:" in text


def test_star_args_and_positional_only_fail_at_decoration():
    def star(*args):
        pass

    def posonly(a, /, b):
        pass

    for fn, name in ((star, "args"), (posonly, "a")):
        with pytest.raises(StepDefinitionError, match=rf"{fn.__name__} \(.*:\d+\).*'{name}'"):
            step(fn)


def test_step_called_outside_a_pipeline_is_one_tracked_run(dbdir):
    run = plain(x=1, y=2)
    assert run.state == "completed" and run.results == {"return": 3.0}
    stored = get_run_db().read_run(run.uid, project=run.metadata.project)
    assert stored["metadata"]["labels"]["step"] == "plain"
    assert stored["spec"]["params"] == {"x": 1, "y": 2, "name": "a"}  # defaults recorded
    assert stored["status"]["code_hash"]


def test_coerces_cli_strings_by_hint():
    assert plain(x="4", y="0.5").results == {"return": 4.5}


@pytest.mark.parametrize("fn, key, fmt, check", [
    (returns_bytes, "model", "bin", lambda b: b == b"\x00\x01weights"),
    (returns_dict, "report", "json", lambda b: json.loads(b) == {"n": 2, "items": [0, 1]}),
    (returns_str, "text", "txt", lambda b: b == b"hello"),
    (returns_object, "obj", "pkl", lambda b: pickle.loads(b).w == [1, 2]),
])
def test_return_value_becomes_the_declared_output(fn, key, fmt, check):
    run = fn()
    art = {a["key"]: a for a in run.status.artifacts}[key]
    assert art["format"] == fmt and check(Path(art["uri"]).read_bytes())
    assert run.results == {}  # consumed as the output, not logged as a result


def test_returned_dataframe_is_a_parquet_dataset():
    run = returns_frame()
    art = run.status.artifacts[0]
    assert art["kind"] == "dataset" and art["format"] == "parquet"
    assert run.artifact("frame").as_df()["a"].tolist() == [1, 2, 3]


def test_returned_tuple_fills_several_outputs_in_order():
    run = returns_tuple()
    arts = {a["key"]: Path(a["uri"]).read_bytes() for a in run.status.artifacts}
    assert arts == {"first": b"one", "second": json.dumps({"two": 2}, indent=2).encode()}


def test_unserializable_return_names_step_output_and_type():
    run = returns_lock(raise_on_error=False)
    assert run.state == "error"
    last = run.status.error.strip().splitlines()[-1]
    assert "returns_lock" in last and "'lock'" in last and "lock" in last.lower()


def test_declared_output_never_produced_fails_the_step():
    with pytest.raises(RunError, match=r"declared output\(s\) \['model'\] but never produced"):
        forgets_output()


def test_logged_output_and_returned_results_both_kept():
    run = logs_and_returns_results()
    assert run.results == {"accuracy": 0.8} and run.status.artifacts[0]["key"] == "model"


def test_dataitem_argument_binds_as_input(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"12345")
    run = reads(data=DataItem("data", str(path)))
    assert run.results == {"return": 5} and run.spec.inputs == {"data": str(path)}
    assert reads(data=str(path)).results == {"return": 5}


def test_retries_record_every_attempt_and_succeed():
    CALLS.clear()
    run = flaky(fail_times=2)
    assert run.state == "completed" and CALLS == ["flaky"] * 3
    db = get_run_db()
    attempts = db.list_runs(name="flaky", labels={"step": "flaky"})
    assert sorted(r["metadata"]["labels"]["attempt"] for r in attempts) == ["1", "2", "3"]
    assert {r["status"]["state"] for r in attempts} == {"error", "completed"}
    assert run.metadata.labels["retry_of"] != run.uid


def test_retries_exhausted_raise_with_the_last_error():
    CALLS.clear()
    with pytest.raises(RunError, match="attempt 3 fails"):
        flaky(fail_times=5)
    assert CALLS == ["flaky"] * 3


def test_hyper_params_outside_a_pipeline_select_the_best():
    run = sweep.with_hyper_params({"lr": [0.1, 0.2, 0.4]}, selector="max.accuracy")()
    assert run.results["best_iteration"] == 2 and run.results["accuracy"] == 1.0
    assert len(run.status.iterations) == 4  # header + 3


def test_hyper_param_naming_no_parameter_fails():
    with pytest.raises(StepDefinitionError, match="'depth'"):
        sweep.with_hyper_params({"depth": [1, 2]})


def test_unknown_argument_outside_a_pipeline_is_an_error():
    with pytest.raises(RunError, match=r"no parameter\(s\) \['z'\]"):
        plain(x=1, z=2)


def test_with_options_refuses_an_unknown_option_naming_the_function():
    with pytest.raises(StepDefinitionError, match=r"@step on prep \(.*:\d+\): with_options\(\) got "
                       r"unknown option\(s\) \['colour'\]; options: \['name'"):
        prep.with_options(colour="red")


def test_map_outside_a_pipeline_says_where_it_belongs():
    with pytest.raises(PipelineError, match=r"prepare.map\(\) fans out a step inside a @pipeline"):
        prep.map(items=[1], item_param="rows")


def test_hyper_params_holding_a_pipeline_param_are_refused_at_trace_time():
    from mlflowlet import pipeline, step
    from mlflowlet.errors import StepDefinitionError

    @step
    def fit(context, lr: float = 0.1):
        return lr

    @pipeline
    def sweep(lr: float = 0.1):
        fit.with_hyper_params({"lr": [0.01, lr]}, selector="max.return")()

    with pytest.raises(StepDefinitionError, match="holds a pipeline parameter"):
        sweep.describe()


@step(outputs=["model"])
def saves(context, n: int = 1):
    context.log_artifact("model", body=b"m" * n)
    return n


@step
def fails(context, lr: float = 0.1):
    raise ValueError(f"lr {lr} fails")


def test_a_step_called_outside_a_pipeline_records_where_it_is_told(dbdir, tmp_path):
    other = get_run_db(str(tmp_path / "other"))
    run = saves(n=2, project="proj-x", db=other, artifact_path=str(tmp_path / "arts"),
                labels={"owner": "me"})
    assert run.state == "completed" and run.metadata.project == "proj-x"
    stored = other.read_run(run.uid, project="proj-x")
    assert stored["metadata"]["labels"] == {"kind": "local", "step": "saves", "owner": "me"}
    assert stored["spec"]["params"] == {"n": 2}  # the run's options are no parameters
    (art,) = stored["status"]["artifacts"]
    assert art["uri"].startswith(str(tmp_path / "arts") + "/")
    assert get_run_db().list_runs(project="proj-x") == []  # nothing in the default run DB


def test_positional_arguments_bind_in_order_and_too_many_are_refused():
    assert plain(1, 3.0).results == {"return": 4.0}
    with pytest.raises(ParameterError) as err:
        plain(1, 2.0, "n", 4)
    assert str(err.value) == "step 'plain' takes 3 argument(s), got 4 positional"


def test_paths_given_to_a_data_item_parameter_are_inputs(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"123")
    for given in (path, str(path)):
        run = reads(data=given)
        assert run.results == {"return": 3} and run.spec.inputs == {"data": str(path)}
        assert run.spec.params == {}


def test_a_failed_step_returns_its_run_without_raise_on_error_and_the_error_carries_it():
    CALLS.clear()
    run = flaky(fail_times=5, raise_on_error=False)
    assert run.state == "error" and "attempt 3 fails" in run.status.error
    CALLS.clear()
    with pytest.raises(RunError) as err:
        flaky(fail_times=5)
    assert err.value.run.state == "error" and err.value.run.uid in str(err.value)


def test_hyper_params_outside_a_pipeline_keep_strategy_count_seed_and_max_errors():
    lrs = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]

    def drawn():
        run = sweep.with_hyper_params({"lr": lrs}, selector="max.accuracy", strategy="random",
                                      max_iterations=3, seed=7)()
        return [row[2] for row in run.status.iterations[1:]]

    first = drawn()
    assert len(first) == 3 and set(first) <= set(lrs) and drawn() == first
    assert first != lrs[:3]  # drawn at random (seeded), not the grid's first three
    failing = fails.with_hyper_params({"lr": [0.1, 0.2, 0.3]}, max_errors=1)(raise_on_error=False)
    assert failing.state == "error" and len(failing.status.iterations) == 2  # header + 1
    assert "stopped after 1 failed iteration(s) (max_errors)" in failing.status.error
