"""``context.workflow``: the pipeline run a step runs in (name, uid, attempt, parameters, time).

A step reads it as ``context.workflow``; it is ``None`` outside a pipeline. Where it comes from:

==============  =========================  ================================  ====================
field           local run                  Argo                              KFP v2
==============  =========================  ================================  ====================
``name``        the pipeline's name        ``{{workflow.name}}``             ``PIPELINE_JOB_NAME``
``uid``         the pipeline run's uid     ``{{workflow.uid}}``              ``PIPELINE_JOB_ID``
``attempt``     1, 2... (retries + 1)      ``{{retries}}`` + 1               not carried (raises)
``parameters``  the pipeline's params      ``{{workflow.parameters.X}}``     pipeline inputs
``created``     the pipeline run's start   ``{{workflow.creationTimestamp}}``  ``CREATE_TIME_UTC``
``duration``    seconds since its start    ``{{workflow.duration}}``         not carried (raises)
==============  =========================  ================================  ====================

``attempt`` counts from 1 on every target (the first try is 1, as the local ``attempt`` label);
KFP v2 has no placeholder for a task's retry count, so there reading ``attempt`` raises an error
naming the target rather than returning a guess; so does ``duration`` (the seconds the pipeline
run has taken when the step starts: locally from the run's start time, on Argo the controller's
``{{workflow.duration}}``). ``created`` is the engine's text (RFC 3339 in
UTC; locally ISO 8601 with ``+00:00``).

Compiled, only steps whose function reads ``.workflow`` (found in its code when decorated)
receive these values: entrypoint parameters under :data:`PREFIX` whose text the engine fills in
(``--param workflow__name:str={{workflow.name}}``, ``--param workflow__param__lr:float=...``),
which :func:`take_workflow` moves from the run's params to its ``context.workflow``.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

# where the run spec keeps it (an extra field of RunSpec)
SPEC_FIELD = "workflow"
# entrypoint parameters that carry it (``workflow__name``, ``workflow__param__lr``...)
PREFIX = "workflow__"


@dataclass(frozen=True)
class WorkflowInfo:
    """The pipeline run a step runs in (see the module docstring).

    Attributes:
        name: the workflow's (pipeline run's) name.
        uid: its unique id.
        parameters: the pipeline's parameters, by name.
        created: when it was created, as text (RFC 3339 / ISO 8601, UTC).
        duration: seconds it had run when the step started (raises on KFP).
        target: ``local``, ``argo`` or ``kfp``: where the values came from.
    """

    name: str
    uid: str
    parameters: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    target: str = "local"
    _attempt: int | None = None
    _duration: float | None = None

    @property
    def attempt(self) -> int:
        """The attempt of the step: 1 the first time, 2 on the first retry...

        Raises:
            ConfigError: on KFP v2, which passes no retry count to a container.
        """
        if self._attempt is None:
            raise ConfigError(
                f"context.workflow.attempt: {self.target} passes no attempt number to a step "
                "(KFP v2 has no placeholder for a task's retry count); compile for Argo, or "
                "do not depend on it"
            )
        return self._attempt

    @property
    def duration(self) -> float:
        """Seconds the pipeline run had taken when the step (this attempt) started.

        Raises:
            ConfigError: on KFP v2, which passes no run duration to a container.
        """
        if self._duration is None:
            raise ConfigError(
                f"context.workflow.duration: {self.target} passes no run duration to a step "
                "(KFP v2 has no placeholder for it); compile for Argo, or do not depend on it"
            )
        return self._duration

    @classmethod
    def from_spec(cls, data: dict[str, Any] | None) -> WorkflowInfo | None:
        """Return the info a run spec holds (None when the run is not in a pipeline)."""
        if not data:
            return None
        return cls(
            str(data.get("name", "")),
            str(data.get("uid", "")),
            dict(data.get("parameters") or {}),
            str(data.get("created", "")),
            str(data.get("target", "local")),
            data.get("attempt"),
            data.get("duration"),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as the run spec keeps them."""
        return {
            "name": self.name,
            "uid": self.uid,
            "attempt": self._attempt,
            "parameters": dict(self.parameters),
            "created": self.created,
            "target": self.target,
            "duration": self._duration,
        }


def reads_workflow(fn: Any) -> bool:
    """Whether ``fn``'s code (nested functions included) reads an attribute named ``workflow``."""
    code = getattr(getattr(fn, "__wrapped__", fn), "__code__", None)

    def walk(c: types.CodeType) -> bool:
        if "workflow" in c.co_names:
            return True
        return any(walk(k) for k in c.co_consts if isinstance(k, types.CodeType))

    return code is not None and walk(code)


def take_workflow(run: Any) -> None:
    """Move the :data:`PREFIX` parameters of ``run`` (from the engine) into its ``workflow``.

    ``workflow__attempt`` is the engine's retry count (Argo ``{{retries}}``: 0 first), so the
    attempt is one more; without it (KFP) the attempt is unknown.
    """
    params = run.spec.params
    data = {k[len(PREFIX) :]: params.pop(k) for k in [k for k in params if k.startswith(PREFIX)]}
    if not data:
        return
    retries = data.pop("attempt", None)
    duration = data.pop("duration", None)
    info = WorkflowInfo(
        str(data.pop("name", "")),
        str(data.pop("uid", "")),
        {k[len("param__") :]: v for k, v in data.items() if k.startswith("param__")},
        str(data.get("created", "")),
        str(data.get("target", "")),
        None if retries is None else int(retries) + 1,
        None if duration is None else float(duration),
    )
    run.spec.model_extra[SPEC_FIELD] = info.to_dict()
