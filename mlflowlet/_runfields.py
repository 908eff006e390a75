"""The fields of a run record: its metadata, spec and status (pydantic models), and its states.

Part of :mod:`mlflowlet.model`, which re-exports every name here; the run DB stores these as JSON.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

RUN_STATES = ("created", "pending", "running", "completed", "error", "aborted", "skipped")
TERMINAL_STATES = ("completed", "error", "aborted", "skipped")


def now_iso() -> str:
    """Return the current UTC time as an ISO 8601 string."""
    return datetime.now(timezone.utc).isoformat()


def new_uid() -> str:
    """Return a new run uid (32 hex characters)."""
    return uuid.uuid4().hex


class _Model(BaseModel):
    # NaN and infinities stay floats in JSON-mode dumps (pydantic's default turns them to null)
    model_config = ConfigDict(
        extra="allow", validate_assignment=False, ser_json_inf_nan="constants"
    )


class RunMetadata(_Model):
    """Who and what a run is: uid, name, project, iteration, labels."""

    uid: str = ""
    name: str = ""
    project: str = ""
    iteration: int = 0
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    tag: str = ""
    owner: str = ""


class RunSpec(_Model):
    """What a run runs with."""

    handler: str = ""
    command: str = ""
    mode: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, str] = Field(default_factory=dict)
    outputs: list[str] = Field(default_factory=list)
    secret_sources: list[dict[str, Any]] = Field(default_factory=list)
    hyper_params: dict[str, Any] = Field(default_factory=dict)
    param_file: str = ""
    selector: str = ""
    strategy: str = ""
    max_iterations: int | None = None
    max_errors: int | None = None
    stop_condition: str = ""
    parallel: int | None = None
    seed: int | None = None
    artifact_path: str = ""
    timeout: float | None = None
    strict: bool = True
    parent_uid: str = ""
    pipeline_uid: str = ""


class RunStatus(_Model):
    """What happened: state, results, artifacts, iterations, error and timings."""

    state: str = "created"
    results: dict[str, Any] = Field(default_factory=dict)
    artifacts: list[dict[str, Any]] = Field(default_factory=list)
    metrics: dict[str, Any] = Field(default_factory=dict)
    iterations: list[list[Any]] = Field(default_factory=list)
    error: str = ""
    start_time: str = ""
    end_time: str = ""
    last_update: str = ""
    host: str = ""
    python_version: str = ""
    code_hash: str = ""
    git: dict[str, str] = Field(default_factory=dict)
    exit_code: int | None = None
    process: dict[str, Any] = Field(default_factory=dict)  # owner: host, pid, started, boot
    heartbeat: str = ""  # the owner's last write (see mlflowlet/_owner.py)


def dump_sharing(run: Any, shared: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    """Return ``run.model_dump(mode="json")`` with shared spec extras not dumped again.

    ``shared`` maps a spec extra field to ``(value, jsonable)``: a value never changed again and
    its JSON-safe form (as ``model_dump(mode="json")`` gives it), made once and put in every
    dump as it is (callers must not change it; a run DB may encode it once, ``db._json.share``)
    while the field still holds that very value.
    """
    extra = run.spec.model_extra or {}
    live = {k: j for k, (v, j) in shared.items() if extra.get(k) is v}
    data: dict[str, Any] = run.model_dump(
        mode="json", exclude={"spec": set(live)} if live else None
    )
    if not live:
        return data
    spec, order = data["spec"], [*type(run.spec).model_fields, *extra]
    data["spec"] = {k: live[k] if k in live else spec[k] for k in order if k in spec or k in live}
    return data
