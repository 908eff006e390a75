"""The operators' CRD schemas (strict, whole: ``scripts/crd_schema.py``) and a validator for them.

``validate(manifest)`` checks a manifest as the API server would with ``fieldValidation=Strict``:
built-in kinds against the official OpenAPI schema (kubernetes-validate, strict), MPIJob and
SparkApplication against their operator's CRD schema, with an MPIJob's pod templates also checked
as ``v1/PodTemplate``.
"""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path

SCHEMAS = Path(__file__).parents[1] / "schemas"
K8S = "1.30"
FILES = {"MPIJob": "mpijob-v2beta1.crd.json.gz",
         "SparkApplication": "sparkapplication-v1beta2.crd.json.gz"}


@functools.cache
def schema(kind: str) -> dict:
    """The strict JSON schema of ``kind`` (MPIJob or SparkApplication)."""
    return json.loads(gzip.decompress((SCHEMAS / FILES[kind]).read_bytes()))


def validate(manifest: dict, version: str = K8S) -> dict:
    """Validate ``manifest``; return it (raises jsonschema / kubernetes-validate errors)."""
    import jsonschema
    import kubernetes_validate

    kind = manifest["kind"]
    if kind not in FILES:
        kubernetes_validate.validate(manifest, version, strict=True)
        return manifest
    jsonschema.validate(manifest, schema(kind))
    for role, spec in (manifest["spec"].get("mpiReplicaSpecs") or {}).items():
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "PodTemplate",
                                      "metadata": {"name": role.lower()},
                                      "template": spec["template"]}, version, strict=True)
    return manifest
