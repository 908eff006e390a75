"""The pipeline's final status, as an exit step receives it: :class:`PipelineTaskFinalStatus`.

An ``on_exit`` step declares a parameter annotated ``PipelineTaskFinalStatus`` (any name) to get
the whole final status, as KFP's ``dsl.PipelineTaskFinalStatus`` input. Where each field comes
from:

* ``state``: the local run's final state; Argo ``{{workflow.status}}``; KFP ``state``;
* ``pipeline_job_resource_name``: the local pipeline run's uid; Argo ``{{workflow.name}}``; KFP
  ``pipelineJobResourceName``;
* ``pipeline_task_name``: the pipeline's name; Argo ``{{workflow.name}}``; KFP
  ``pipelineTaskName`` (the exit handler group's task);
* ``error_code``: None locally and on Argo; KFP ``error.code``;
* ``error_message``: the local run's error; on Argo each failed node of
  ``{{workflow.failures}}`` (name, phase, message); KFP ``error.message``.

Only ``state`` means the same on every target: it is mlflowlet's final state (``completed`` or
``error``; an engine's ``SUCCEEDED`` / ``Succeeded`` is ``completed``, ``FAILED``, ``Failed``,
``Error``, ``CANCELLED`` are ``error``), as the exit step's ``state`` parameter. The other fields
are each engine's own values, never made up: a local run has no job resource name but its run
uid, Argo no error code, and a field the engine leaves out stays empty (``''`` / None).
``target`` says where the values came from.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from ._wire import engine_failures, engine_state
from .errors import ParameterError

__all__ = ["PipelineTaskFinalStatus", "engine_final_status", "exit_inputs", "final_status_params"]

ARGO_TEXT = (  # the entrypoint's --final-status text on Argo (failures: a quoted JSON list)
    '{"target": "argo", "status": "{{workflow.status}}", "name": "{{workflow.name}}", '
    '"failures": {{workflow.failures}} }'
)


@dataclass(frozen=True)
class PipelineTaskFinalStatus:
    """The final status of a pipeline, given to an exit step (see the module docstring).

    Attributes:
        state: ``completed`` or ``error`` (the same on every target).
        pipeline_job_resource_name: the engine's name of the pipeline run (locally its uid).
        pipeline_task_name: the engine's name of what ended (locally the pipeline's name).
        error_code: the engine's error code (KFP only), else None.
        error_message: why it failed (each engine's own text), None when it completed.
        target: ``local``, ``argo`` or ``kfp``: where the values came from.
    """

    state: str
    pipeline_job_resource_name: str = ""
    pipeline_task_name: str = ""
    error_code: int | None = None
    error_message: str | None = None
    target: str = "local"

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON object (how the run records the parameter)."""
        return asdict(self)


def final_status_params(spec: Any) -> list[str]:
    """Return the names of ``spec``'s parameters annotated :class:`PipelineTaskFinalStatus`."""
    from ._binding import _strip_optional

    return [p.name for p in spec.params if _strip_optional(p.hint) is PipelineTaskFinalStatus]


def engine_final_status(text: str) -> dict[str, Any]:
    """Return the final status an engine passed (``--final-status``) as a JSON object.

    ``text`` is KFP's ``PipelineTaskFinalStatus`` JSON (``state``, ``pipelineJobResourceName``,
    ``pipelineTaskName``, ``error``), or :data:`ARGO_TEXT` filled in by Argo.

    Raises:
        ValueError: ``text`` is not a JSON object.
    """
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"the final status is not a JSON object: {text[:80]}")
    if data.get("target") == "argo":
        state = engine_state(str(data.get("status", "")))
        nodes = data.get("failures")
        if isinstance(nodes, str):  # Argo >= 3.5 quotes the JSON once more
            nodes = json.loads(nodes)
        failed = [
            f"{n.get('displayName', '')} {n.get('phase', '')}"
            + (f": {n['message']}" if n.get("message") else "")
            for n in nodes or []
            if isinstance(n, dict)
        ]
        name = str(data.get("name", ""))
        return PipelineTaskFinalStatus(
            state,
            name,
            name,
            None,
            "; ".join(failed) if state != "completed" and failed else None,
            "argo",
        ).to_dict()
    error = data.get("error") or {}
    code = error.get("code")
    return PipelineTaskFinalStatus(
        engine_state(str(data.get("state", ""))),
        str(data.get("pipelineJobResourceName") or data.get("pipeline_job_resource_name") or ""),
        str(data.get("pipelineTaskName") or data.get("pipeline_task_name") or ""),
        int(code) if code is not None else None,
        error.get("message") or None,
        "kfp",
    ).to_dict()


def exit_inputs(args: Any, statuses: dict[str, str]) -> dict[str, Any]:
    """Return the exit step parameters the entrypoint's engine flags give.

    ``--state`` (``state``: ``completed`` / ``error``), ``--failures`` (``failures``: the
    failed steps' names) and ``--final-status KEY=TEXT`` (``statuses``: ``KEY``, a final status
    object as JSON).

    Raises:
        ParameterError: a final status or failures text that is not what the engine writes.
    """
    out: dict[str, Any] = {}
    if args.state is not None:
        out["state"] = engine_state(args.state)
    if args.failures is not None:
        out["failures"] = engine_failures(args.failures, args.failure_names)
    for key, text in statuses.items():
        try:
            out[key] = engine_final_status(text)
        except ValueError as exc:
            raise ParameterError(f"--final-status {key}: not a final status ({exc})") from None
    return out
