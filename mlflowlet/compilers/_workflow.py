"""``context.workflow`` compiled: the engine fills in the workflow's name, uid, attempt and time.

A step whose function reads ``.workflow`` (``StepSpec.uses_workflow``) gets, as entrypoint
parameters under ``workflow__`` (see :mod:`mlflowlet._ctx_workflow`):

* ``workflow__name``: Argo ``{{workflow.name}}``, KFP ``dsl.PIPELINE_JOB_NAME_PLACEHOLDER``;
* ``workflow__uid``: Argo ``{{workflow.uid}}``, KFP ``dsl.PIPELINE_JOB_ID_PLACEHOLDER``;
* ``workflow__created``: Argo ``{{workflow.creationTimestamp}}``, KFP
  ``dsl.PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER``;
* ``workflow__duration``: Argo ``{{workflow.duration}}`` (seconds, ``%f``); KFP: not carried;
* ``workflow__attempt``: Argo ``{{retries}}`` (``0`` without retries); KFP: not carried, so
  ``context.workflow.attempt`` raises there;
* ``workflow__param__X``: Argo ``{{workflow.parameters.X}}``, KFP the pipeline input ``X``.

Argo defines ``{{retries}}`` only in a template with a ``retryStrategy``
(``validateNonLeaf``/``resolveAllVariables`` in ``workflow/validate``), so a step without
retries passes ``0`` (its only attempt). KFP v2 has no placeholder for a task's retry count.
"""

from __future__ import annotations

from typing import Any

from .._ctx_workflow import PREFIX
from ._plan import Slot, Source, StepPlan

RETRIES_MARK = "\x00retries\x00"  # --check: replaced by each attempt's retry count
CHECK_UID = "00000000-0000-0000-0000-00000000c4ec"  # --check: the workflow's uid


def add_workflow(plan: StepPlan, node: Any, params: dict[str, tuple[str, Any, bool]]) -> None:
    """Give a step that reads ``context.workflow`` the pipeline's parameters as inputs."""
    if not node.spec.uses_workflow or node.spec.container is not None:
        return
    plan.workflow = True
    for name, (typ, _default, _required) in params.items():
        key = f"{PREFIX}param__{name}"
        plan.params[key] = Source("param", name=name)
        plan.param_types[key] = typ


def workflow_args(target: str, retries: int) -> list[list[str | Slot]]:
    """Return the ``--param workflow__...`` arguments of ``target`` (see the module doc)."""
    if target == "kfp":
        from kfp import dsl

        values = {
            "name": dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            "uid": dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            "created": dsl.PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER,
            "target": "kfp",
        }
    else:
        values = {
            "name": "{{workflow.name}}",
            "uid": "{{workflow.uid}}",
            "created": "{{workflow.creationTimestamp}}",
            "attempt": "{{retries}}" if retries else "0",
            "duration": "{{workflow.duration}}",
            "target": "argo",
        }
    out: list[list[str | Slot]] = []
    for key, value in values.items():
        typ = {"attempt": "int", "duration": "float"}.get(key, "str")
        out += [["--param"], [f"{PREFIX}{key}:{typ}={value}"]]
    return out


def workflow_scope(doc: dict[str, Any]) -> dict[str, str]:
    """Return the ``{{workflow.*}}`` values of a ``--check`` run of an Argo document.

    The name is the document's ``name`` or its ``generateName`` plus ``check``; the uid is
    :data:`CHECK_UID`; the creation time is now (RFC 3339, UTC, whole seconds, as Argo).
    """
    from datetime import datetime, timezone

    meta = doc.get("metadata", {})
    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "workflow.name": meta.get("name") or f"{meta.get('generateName', 'workflow-')}check",
        "workflow.uid": CHECK_UID,
        "workflow.creationTimestamp": created,
    }


def kfp_create_time(spec: dict[str, Any]) -> dict[str, Any]:
    """Return ``spec`` with KFP's job creation time placeholder filled in (``--check`` only).

    KFP's backend fills ``{{$.pipeline_job_create_time_utc}}``; ``kfp.local`` does not know it.
    """
    import json
    from datetime import datetime, timezone

    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = json.dumps(spec).replace("{{$.pipeline_job_create_time_utc}}", created)
    return dict(json.loads(text))
