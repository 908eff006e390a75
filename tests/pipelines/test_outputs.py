"""A @pipeline function's return becomes the pipeline run's outputs (results and artifacts)."""

import pytest

from mlflowlet import collect, get_run_db, pipeline, step
from mlflowlet.errors import PipelineError
from mlflowlet.pipelines import condition


@step(outputs=["model"])
def fit(context, n: int = 2) -> dict:
    context.log_artifact("model", body=f"weights {n}".encode())
    return {"acc": n / 10, "tag": "1.10"}


@step
def double(num: int) -> int:
    return 2 * num


@step
def boom() -> int:
    raise ValueError("no")


@pipeline
def every_kind(n: int = 3):
    t = fit(n=n)
    d = double.map(items=[1, 2, 3], item_param="num")
    return {"acc": t.results["acc"], "tag": t.results["tag"], "model": t.outputs["model"],
            "doubles": collect(d.output), "n": n, "fixed": {"a": 0}}


def test_returned_values_become_the_pipeline_runs_results_and_artifacts():
    run = every_kind.run(n=4)
    assert run.state == "completed"
    results = run.run.status.results
    assert results == {"acc": 0.4, "tag": "1.10", "doubles": [2, 4, 6], "n": 4, "fixed": {"a": 0}}
    assert type(results["fixed"]["a"]) is int and results["tag"] == "1.10"
    (art,) = run.run.status.artifacts
    step_art = run.steps["fit"].status.artifacts[0]
    assert art["key"] == "model" and art["uri"] == step_art["uri"]  # a link: no bytes copied
    assert art["hash"] == step_art["hash"] and art["producer"]["uid"] == run.steps["fit"].uid
    assert run.outputs["model"].get() == b"weights 4" and run.outputs["doubles"] == [2, 4, 6]
    stored = get_run_db().read_run(run.uid)  # recorded, not only in memory
    assert stored["status"]["results"]["acc"] == 0.4
    assert [a["key"] for a in stored["status"]["artifacts"]] == ["model"]
    assert stored["spec"]["graph"]["outputs"]["model"] == {
        "kind": "artifact", "node": "fit", "output": "model"}


def test_a_single_return_value_is_output_return():
    @pipeline
    def single():
        return double(num=5).output

    assert single.run().run.status.results == {"return": 10}


def test_an_output_of_a_failed_step_fails_nothing_twice_and_is_absent():
    @pipeline
    def failing():
        return {"x": boom().output}

    run = failing.run()
    assert run.state == "error" and "boom" in run.error
    assert "x" not in run.run.status.results and run.outputs == {}


@pytest.mark.parametrize(("body", "words"), [
    (lambda: double(num=1), "is a whole step (double); return double.output"),
    (lambda: double.map(items=[1], item_param="num").output, "return collect("),
    (lambda: [double(num=1).output], "inside a list; return a dict of outputs"),
    (lambda: {"a b": 1}, "key 'a b'; output names are identifiers"),
    (lambda: {"x": object()}, "output 'x' is a object"),
    (lambda: double(num=1).output == 2, "is a condition"),
])
def test_what_cannot_be_an_output_is_refused_at_trace_time(body, words):
    @pipeline
    def bad():
        return body()

    with pytest.raises(PipelineError, match="@pipeline .*bad") as info:
        bad.validate()
    assert words in str(info.value)


def test_an_output_of_a_step_inside_a_condition_is_refused():
    @pipeline
    def gated(x: int = 1):
        with condition(double(num=x).output > 1):
            inner = double(num=x)
        return inner.output

    with pytest.raises(PipelineError, match="inside `with condition.*may have no value"):
        gated.validate()
