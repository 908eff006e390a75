"""Helpers shared by the compiler tests: official schemas, strict protobuf parsing, lookups."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import yaml

SCHEMAS = Path(__file__).parent / "argo_schemas"
ARGO_VERSIONS = {"4.1.2": "argo-workflows-schema.json",
                 "3.7.18": "argo-workflows-schema-v3.7.18.json"}


def _strict(definitions: dict[str, Any]) -> dict[str, Any]:
    """A copy where IntOrString takes ints too and objects listing properties reject others."""
    defs = copy.deepcopy(definitions)
    defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = {
        "anyOf": [{"type": "string"}, {"type": "integer"}]}
    for definition in defs.values():
        if isinstance(definition, dict) and "properties" in definition:
            definition.setdefault("additionalProperties", False)
    return defs


@functools.cache
def argo_validator(version: str, kind: str) -> Any:
    import jsonschema

    schema = json.loads((SCHEMAS / ARGO_VERSIONS[version]).read_text())
    root = {"$ref": f"#/definitions/io.argoproj.workflow.v1alpha1.{kind}",
            "definitions": _strict(schema["definitions"])}
    return jsonschema.Draft202012Validator(root)


def argo_schema_errors(doc: dict[str, Any], versions: tuple[str, ...] = tuple(ARGO_VERSIONS)
                       ) -> list[str]:
    """Every schema error of ``doc`` against the strict official schemas of ``versions``."""
    out = []
    for version in versions:
        validator = argo_validator(version, doc["kind"])
        for err in validator.iter_errors(doc):
            path = "/".join(str(p) for p in err.absolute_path)
            out.append(f"argo {version}: {path}: {err.message[:200]}")
    return out


def kfp_docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def kfp_strict_errors(text: str, tmp_path: Path) -> list[str]:
    """Parse the IR strictly into PipelineSpec (and PlatformSpec) and load it as a component."""
    from google.protobuf import json_format
    from kfp import components
    from kfp.pipeline_spec import pipeline_spec_pb2

    out = []
    docs = kfp_docs(text)
    try:
        json_format.ParseDict(docs[0], pipeline_spec_pb2.PipelineSpec(),
                              ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        out.append(f"PipelineSpec: {exc}")
    if len(docs) > 1:
        try:
            json_format.ParseDict(docs[1], pipeline_spec_pb2.PlatformSpec(),
                                  ignore_unknown_fields=False)
        except json_format.ParseError as exc:
            out.append(f"PlatformSpec: {exc}")
    path = tmp_path / "loaded.yaml"
    path.write_text(text)
    comp = components.load_component_from_file(str(path))
    if comp.pipeline_spec.pipeline_info.name != docs[0]["pipelineInfo"]["name"]:
        out.append("load_component_from_file gave another pipeline")
    return out


def argo_args(doc: dict[str, Any], name: str) -> list[str]:
    """Return the container args of the compiled Argo template ``name`` (exactly one)."""
    [tpl] = [t for t in doc["spec"]["templates"] if t["name"] == name]
    return list(tpl["container"]["args"])
