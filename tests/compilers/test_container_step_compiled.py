"""``container_step`` compiled: a KFP container component and an Argo container template."""

import container_pipelines as cp
import pytest
from compiler_checks import argo_schema_errors, kfp_strict_errors

from mlflowlet import condition, container_step, pipeline
from mlflowlet.compilers import compile, compile_text
from mlflowlet.compilers._validate import validate_argo, validate_kfp
from mlflowlet.compilers.check import check
from mlflowlet.errors import CompileError, PipelineError

TARGETS = ["argo", "kfp"]


def _template(doc, name):
    return next(t for t in doc["spec"]["templates"] if t["name"] == name)


def test_argo_runs_the_container_and_reads_outputs_from_files():
    doc = compile(cp.containers, "argo")
    assert argo_schema_errors(doc) == [] and validate_argo(doc, cp.containers.dag) == []
    tpl = _template(doc, "count")
    assert tpl["container"]["image"] == "busybox:1.36"
    assert tpl["container"]["command"] == ["sh", "-c"]
    assert tpl["container"]["args"] == [
        "printf '%s' \"{{inputs.parameters.text}}\" | wc -w > /tmp/mlflowlet-output-words; "
        "printf '%s-%s' \"{{inputs.parameters.text}}\" \"end\" > /tmp/mlflowlet-output-label; "
        "echo counted; echo note >&2"]
    assert tpl["inputs"] == {"parameters": [{"name": "text"}]}
    assert tpl["outputs"] == {"parameters": [
        {"name": "label", "valueFrom": {"path": "/tmp/mlflowlet-output-label"}},
        {"name": "words", "valueFrom": {"path": "/tmp/mlflowlet-output-words"}}]}
    shout = _template(doc, "shout")["container"]
    assert shout["command"] == [
        "python3", "-c", "import sys; open(sys.argv[2], 'w').write(sys.argv[1].upper())"]
    assert shout["args"] == ["{{inputs.parameters.s}}", "/tmp/mlflowlet-output-up"]
    task = next(t for t in _template(doc, "main")["dag"]["tasks"] if t["name"] == "shout")
    assert task["arguments"]["parameters"] == [
        {"name": "s", "value": "{{tasks.count.outputs.parameters.label}}"}]
    # a Python step reads the output as its declared type, not as JSON
    args = _template(doc, "double")["container"]["args"]
    assert "n:int={{inputs.parameters.n}}" in args


def test_kfp_builds_a_container_component_with_typed_output_paths(tmp_path):
    text = compile_text(cp.containers, "kfp")
    assert kfp_strict_errors(text, tmp_path) == []
    spec = compile(cp.containers, "kfp")
    assert validate_kfp(spec, cp.containers.dag) == []
    comp = spec["components"]["comp-count"]
    assert comp["outputDefinitions"] == {"parameters": {
        "label": {"parameterType": "STRING"}, "words": {"parameterType": "NUMBER_INTEGER"}}}
    assert comp["inputDefinitions"] == {"parameters": {"text": {"parameterType": "STRING"}}}
    container = spec["deploymentSpec"]["executors"]["exec-count"]["container"]
    assert container["image"] == "busybox:1.36" and container["command"] == ["sh", "-c"]
    assert container["args"] == [
        "printf '%s' \"{{$.inputs.parameters['text']}}\" | wc -w > "
        "{{$.outputs.parameters['words'].output_file}}; printf '%s-%s' "
        "\"{{$.inputs.parameters['text']}}\" \"end\" > "
        "{{$.outputs.parameters['label'].output_file}}; echo counted; echo note >&2"]
    shout = spec["deploymentSpec"]["executors"]["exec-shout"]["container"]
    assert shout["args"] == ["{{$.inputs.parameters['s']}}",
                             "{{$.outputs.parameters['up'].output_file}}"]
    assert spec["root"]["dag"]["tasks"]["shout"]["inputs"]["parameters"]["s"] == {
        "taskOutputParameter": {"outputParameterKey": "label", "producerTask": "count"}}
    double = spec["components"]["comp-double"]["inputDefinitions"]["parameters"]["n"]
    assert double == {"parameterType": "NUMBER_INTEGER"}


def test_a_container_step_needs_no_mlflowlet_in_its_image(recwarn):
    compile(cp.containers, "argo")
    bare = [w for w in recwarn if "bare base image" in str(w.message)]
    assert all("'count'" not in str(w.message) for w in bare)


@pytest.mark.parametrize("target", TARGETS)
def test_a_python_steps_result_into_a_container_step_is_refused(target):
    @pipeline(image=cp.IMAGE)
    def mixed():
        g = cp.greet(name="x")
        cp.shout(s=g.results["return"])

    with pytest.raises(CompileError, match="input 's' is a result of Python step 'greet'"):
        compile(mixed, target)


@pytest.mark.parametrize("target", TARGETS)
def test_a_condition_on_a_container_output_is_refused(target):
    @pipeline(image=cp.IMAGE)
    def gated():
        c = cp.count(text="a")
        with condition(c.results["words"] > 1):
            cp.double(n=2)

    with pytest.raises(CompileError, match="container step 'count'.*a condition reads output"):
        compile(gated, target)


@pytest.mark.parametrize("target", TARGETS)
def test_an_undeclared_output_read_downstream_is_refused(target):
    @pipeline(image=cp.IMAGE)
    def typo():
        c = cp.count(text="a")
        cp.double(n=c.results["wrods"])

    with pytest.raises(CompileError, match="'count'.*reads output 'wrods', which it"):
        compile(typo, target)


@pytest.mark.parametrize("target", TARGETS)
def test_a_container_output_as_pipeline_output_is_refused(target):
    @pipeline(image=cp.IMAGE)
    def out():
        return {"n": cp.count(text="a").results["words"]}

    with pytest.raises(CompileError, match="'count'.*pipeline output 'n' is its output 'words'"):
        compile(out, target)


def test_a_missing_required_input_is_refused_when_tracing():
    plain = container_step("needs", "busybox", ["sh", "-c", "echo {{inputs.x}}"], inputs=["x"])

    @pipeline(image=cp.IMAGE)
    def needs():
        plain()

    with pytest.raises(PipelineError, match="step 'needs' is missing required parameter"):
        compile(needs, "argo")


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_compiled_container_steps_match_the_local_run(target):
    report = check(cp.containers, target, params={"text": "one two"})
    assert report.ok, report.summary()
    assert report.states == {"count": "completed", "double": "completed", "shout": "completed"}
    count = next(p for p in report.pods if p.node == "count")
    assert count.results == {"words": 2, "label": "one two-end"}
    assert count.stdout == "counted\n" and count.stderr == "note\n"
