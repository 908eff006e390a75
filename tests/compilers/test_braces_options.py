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
        ({"env": {"MSG": TAG}}, r"env\['MSG'\]"),
        ({"steps": {"echo": {"env": {"MSG": "a" + TAG}}}}, r"steps\['echo'\].env\['MSG'\]"),
        ({"steps": {"echo": {"node_selector": {"pool": TAG}}}}, r"node_selector\['pool'\]"),
        ({"service_account": "sa-" + TAG}, "service_account"),
        ({"namespace": TAG}, "namespace"),
        ({"schedule": TAG + " * * * *"}, "schedule"),
    ],
)
def test_an_option_holding_braces_the_engine_substitutes_is_refused(target, options, where):
    with pytest.raises(CompileError, match=where + r"=.* holds '\{\{', which Argo"):
        compile(ep.braced, target, **options)


def test_kfp_refuses_a_pod_annotation_holding_braces_and_argo_keeps_it_as_metadata():
    with pytest.raises(CompileError, match=r"annotations\['note'\]=.* holds '\{\{'"):
        compile(ep.braced, "kfp", annotations={"note": TAG})
    doc = compile(ep.braced, "argo", annotations={"note": TAG})  # workflow metadata: kept as is
    assert doc["metadata"]["annotations"]["note"] == TAG


def test_options_without_braces_are_written_as_given():
    text = compile_text(ep.braced, "argo", env={"MSG": "{a} {b}"}, service_account="runner")
    assert "{a} {b}" in text and "serviceAccountName: runner" in text
