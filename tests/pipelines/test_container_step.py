"""``container_step`` run locally: a subprocess when the tool exists, else ``skipped``."""

import sys

import pytest

import mlflowlet
import mlflowlet.pipelines
from mlflowlet import container_step, pipeline, step
from mlflowlet.errors import StepDefinitionError

count = container_step(
    "count",
    "busybox:1.36",
    ["sh", "-c"],
    ["printf '%s' \"{{inputs.text}}\" | wc -w > {{outputs.words}}; "
     "printf '%s' \"{{inputs.text}}\" > {{outputs.echo}}; echo counted; echo note >&2"],
    inputs=["text"],
    outputs={"words": int, "echo": "str"},
)

shout = container_step(
    "shout",
    "python:3.12-slim",
    ["python3", "-c", "import sys; open(sys.argv[2], 'w').write(sys.argv[1].upper())"],
    ["{{inputs.s}}", "{{outputs.up}}"],
    inputs={"s": "default"},
    outputs=["up"],
)

missing = container_step("missing", "jq:1", ["mlflowlet-no-such-tool"], ["{{outputs.o}}"],
                         outputs=["o"])


@step
def double(n: int) -> int:
    return n * 2


@pipeline
def words(text: str = "a b c"):
    c = count(text=text)
    double(n=c.results["words"])
    shout(s=c.results["echo"])


@pipeline
def gone():
    m = missing()
    double.with_options(name="after")(n=m.results["o"])
    shout()


def test_container_step_is_exported_like_step():
    assert mlflowlet.container_step is mlflowlet.pipelines.container_step is container_step
    assert "container_step" in mlflowlet.__all__ and "container_step" in mlflowlet.pipelines.__all__


def test_a_container_step_runs_its_command_and_records_the_run(dbdir):
    run = words.run(text="one two three four")
    assert run.state == "completed"
    c = run.steps["count"]
    assert c.state == "completed"
    assert c.spec.params == {"text": "one two three four"}
    assert c.status.results == {"words": 4, "echo": "one two three four"}
    assert c.logs().strip().splitlines() == ["counted", "note"]  # stdout, then stderr
    assert run.steps["double"].status.results == {"return": 8}  # the typed output downstream
    assert run.steps["shout"].status.results == {"up": "ONE TWO THREE FOUR"}
    assert c.spec.handler.startswith("container:count#")


def test_an_input_default_reaches_the_command(dbdir):
    @pipeline
    def alone():
        shout()

    assert alone.run().steps["shout"].status.results == {"up": "DEFAULT"}


def test_a_missing_tool_skips_the_step_and_what_needs_it(dbdir):
    run = gone.run()
    steps = run.run.status.steps
    assert run.steps["missing"].state == "skipped"
    assert steps["missing"]["reason"].startswith("tool not found here")
    assert "'mlflowlet-no-such-tool'" in steps["missing"]["reason"]
    assert run.steps["after"].state == "skipped"
    assert steps["after"]["reason"] == "upstream step 'missing' was skipped"
    assert run.steps["shout"].state == "completed"  # independent of it
    assert run.state == "completed"
    stored = run.steps["missing"]._db.read_run(run.steps["missing"].uid)
    assert stored["status"]["state"] == "skipped"


def test_a_missing_tool_outside_a_pipeline_is_a_skipped_run(dbdir):
    result = missing()
    assert result.state == "skipped"
    assert result.metadata.annotations["reason"].startswith("tool not found here")


@pytest.mark.parametrize(("script", "words"), [
    ("exit 3", "exited with code 3"),
    ("true", "wrote no file for output 'n'"),
    ("echo many > {{outputs.n}}", "declared int but its file holds 'many\\n'"),
])
def test_a_failing_command_is_an_error(dbdir, script, words):
    bad = container_step("bad", "busybox", ["sh", "-c", script + " # {{outputs.n}}"],
                         outputs={"n": int})
    result = bad(raise_on_error=False)
    assert result.state == "error"
    assert words in result.status.error


def test_outputs_are_read_as_kfp_reads_them(dbdir):
    typed = container_step(
        "typed", "busybox", ["sh", "-c"],
        ["echo 2.5 > {{outputs.f}}; echo True > {{outputs.b}}; echo 7 > {{outputs.i}}; "
         "echo x > {{outputs.s}}"],
        outputs={"f": float, "b": bool, "i": "int", "s": str})
    assert typed().status.results == {"f": 2.5, "b": True, "i": 7, "s": "x\n"}


def test_inputs_reach_the_command_as_text(dbdir):
    echo = container_step("echo", "python", [sys.executable, "-c"],
                          ["import sys; open(sys.argv[1], 'w').write(repr(sys.argv[2:]))",
                           "{{outputs.argv}}", "{{inputs.a}}", "{{inputs.b}}", "{{inputs.c}}"],
                          inputs=["a", "b", "c"], outputs=["argv"])
    result = echo(a="x y", b=3, c={"k": True})
    assert result.status.results["argv"] == repr(["x y", "3", '{"k": true}'])


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"args": ["{{inputs.nope}} {{outputs.o}}"]}, "undeclared inputs/outputs ['nope']"),
    ({"args": ["echo"]}, "outputs ['o'] appear in no {{outputs.NAME}} placeholder"),
    ({"args": ["{{workflow.name}} {{outputs.o}}"]}, "placeholder other than"),
    ({"args": ["{{outputs.o}}"], "outputs": {"o": list}}, "'list' is not one of"),
    ({"args": ["{{outputs.o}}"], "inputs": ["bad-name"]}, "must be a Python identifier"),
    ({"args": ["{{outputs.o}}"], "command": []}, "command must be a non-empty list"),
])
def test_a_bad_definition_names_the_step_and_the_problem(kwargs, words):
    options = {"command": ["sh", "-c"], "outputs": ["o"], **kwargs}
    with pytest.raises(StepDefinitionError, match="container_step\\('c'\\)") as info:
        container_step("c", "busybox", **options)
    assert words in str(info.value)


def test_a_missing_input_is_an_error(dbdir):
    result = count(raise_on_error=False)
    assert result.state == "error" and "missing a value for parameter 'text'" in result.status.error


def test_map_and_hyper_params_are_refused():
    with pytest.raises(StepDefinitionError, match="container step 'count': .map"):
        count.map([1, 2], item_param="text")
    with pytest.raises(StepDefinitionError, match="with_hyper_params"):
        count.with_hyper_params({"text": ["a", "b"]})


@pipeline
def gone_body(n: int):
    m = missing()
    double(n=n).after(m)


@pipeline
def gone_in_a_map():
    gone_body.map(items=[{"n": 1}, {"n": 2}], n=mlflowlet.item.n)
    double.with_options(name="outside")(n=3)


def test_a_missing_tool_in_a_loop_body_skips_the_step_and_the_rest_of_the_item(dbdir):
    run = gone_in_a_map.run()
    steps = run.run.status.steps
    assert run.steps["missing"].state == "skipped"  # never an error, never completed
    assert steps["missing"]["reason"].startswith("tool not found here")
    assert run.steps["double"].state == "skipped"
    assert run.steps["outside"].state == "completed"
    assert run.state == "completed"
