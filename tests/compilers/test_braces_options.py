"""No compile option writes a {{ into a template the engine substitutes (_options.no_tags)."""

import exact_pipelines as ep
import pytest

from mlflowlet.compilers import compile, compile_text
from mlflowlet.errors import CompileError

TAG = "{{workflow.name}}"


@pytest.mark.parametrize("target", ["argo", "kfp"])
@pytest.mark.parametrize(
    "options, where",
    [
        ({"env": {"MSG": TAG}}, r"^env\['MSG'\]"),
        ({"steps": {"echo": {"env": {"MSG": "a" + TAG}}}}, r"steps\['echo'\].env\['MSG'\]"),
        ({"steps": {"echo": {"node_selector": {"pool": TAG}}}}, r"node_selector\['pool'\]"),
        ({"service_account": "sa-" + TAG}, "service_account"),
        ({"namespace": TAG}, "namespace"),
        ({"schedule": TAG + " * * * *"}, "schedule"),
    ],
)
def test_an_option_holding_braces_the_engine_substitutes_is_refused(target, options, where):
    with pytest.raises(CompileError, match=where + r" holds '\{\{', which Argo"):
        compile(ep.braced, target, **options)


def test_a_credential_env_value_holding_braces_is_refused_without_showing_it():
    with pytest.raises(CompileError, match=r"^env\['HF_TOKEN'\]: refused: a credential") as err:
        compile(ep.braced, "argo", env={"HF_TOKEN": "hf-" + TAG})
    assert "hf-" not in str(err.value)


def test_kfp_refuses_a_pod_annotation_holding_braces_and_argo_keeps_it_as_metadata():
    with pytest.raises(CompileError, match=r"annotations\['note'\] holds '\{\{'"):
        compile(ep.braced, "kfp", annotations={"note": TAG})
    doc = compile(ep.braced, "argo", annotations={"note": TAG})  # workflow metadata: kept as is
    assert doc["metadata"]["annotations"]["note"] == TAG


def test_options_without_braces_are_written_as_given():
    text = compile_text(ep.braced, "argo", env={"MSG": "{a} {b}"}, service_account="runner")
    assert "{a} {b}" in text and "serviceAccountName: runner" in text


def test_a_str_list_parameter_crosses_each_engine_exactly_or_is_refused():
    from mlflowlet._wire import decode_param
    from mlflowlet.compilers._types import argo_value, kfp_value

    xs = [TAG, "a{", "mlflowlet:json:1", "plain"]
    text = argo_value(xs, "list[str]")
    assert "{{" not in text and decode_param("xs", "list[str]", text) == xs
    assert decode_param("d", "json", argo_value(xs)) == xs  # a bare list: its JSON as it is
    for item in (TAG, "mlflowlet:json:1"):  # KFP carries the list natively: read back unwired
        with pytest.raises(CompileError, match="pipeline parameter 'xs'"):
            kfp_value("xs", "list[str]", [item])
    assert kfp_value("xs", "list[str]", ["a{", "plain"]) == ["a{", "plain"]
