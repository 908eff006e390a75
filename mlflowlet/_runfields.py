"""The fields of a run record: its metadata, spec and status (pydantic models), and its states.

Part of :mod:`mlflowlet.model`, which re-exports every name here; the run DB stores these as JSON.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

import pydantic.main
from pydantic import BaseModel, ConfigDict, Field

from ._rundump import factory_without_data, plain_dump

RUN_STATES = ("created", "pending", "running", "completed", "error", "aborted", "skipped")
TERMINAL_STATES = ("completed", "error", "aborted", "skipped")


def now_iso() -> str:
    """Return the current UTC time as an ISO 8601 string."""
    return datetime.now(timezone.utc).isoformat()


def new_uid() -> str:
    """Return a new run uid (32 hex characters)."""
    return uuid.uuid4().hex


# Validators and serializers are built on first use: a plain tracked run needs neither (records
# are made by blank() and dumped by plain_dump), which saves a fresh process the build and
# pydantic's plugin scan (issue 18). Only where pydantic builds a deferred model under a lock
# (pydantic#13438, in 2.14): before, threads using a model first at once could rebuild it
# concurrently and fail or validate with another model's validator (pydantic#13419), so there
# the models are built when defined, as they always were.
_DEFER = hasattr(pydantic.main, "_rebuild_lock")


class _Model(BaseModel):
    # NaN and infinities stay floats in JSON-mode dumps (pydantic's default turns them to null)
    model_config = ConfigDict(
        extra="allow", validate_assignment=False, ser_json_inf_nan="constants", defer_build=_DEFER
    )


_Blank = TypeVar("_Blank", bound=_Model)
_IMMUTABLE = (str, int, float, bool, type(None))
# record class -> (field name, its default factory or None, its default), or None when a field
# has a default blank() cannot copy (model_construct() makes that class's blanks)
_BLANKS: dict[type, list[tuple[str, Callable[[], Any] | None, Any]] | None] = {}


def blank(cls: type[_Blank]) -> _Blank:
    """Return ``cls()`` (every field its default) without building pydantic's validator."""
    if not _DEFER:  # built when defined: pydantic makes it
        return cls()
    plan = _BLANKS[cls] if cls in _BLANKS else _blank_plan(cls)
    if plan is None:
        return cls.model_construct()
    # what cls.model_construct(set(), **values) makes when every field is given by its name and
    # none has an alias, without its walk over each field's aliases (~2x faster)
    record = cls.__new__(cls)
    _set(
        record,
        "__dict__",
        {name: default if make is None else make() for name, make, default in plan},
    )
    _set(record, "__pydantic_fields_set__", set())
    _set(record, "__pydantic_extra__", {})  # extra="allow": no value left over
    _set(record, "__pydantic_private__", None)
    if cls.__pydantic_post_init__:
        record.model_post_init(None)  # the private attributes' defaults
    return record


_set = object.__setattr__  # as pydantic sets them: the models' own __setattr__ would validate


def _blank_plan(cls: type[_Model]) -> list[tuple[str, Callable[[], Any] | None, Any]] | None:
    _BLANKS[cls] = None
    if cls.__pydantic_root_model__ or cls.model_config.get("extra") != "allow":
        return None  # model_construct sets what these need differently
    plan: list[tuple[str, Callable[[], Any] | None, Any]] = []
    for name, field in cls.model_fields.items():
        if field.alias is not None or field.validation_alias is not None:
            return None
        make = factory_without_data(field)
        if make is not None:
            plan.append((name, make, None))
        elif field.default_factory is None and type(field.default) in _IMMUTABLE:
            plan.append((name, None, field.default))
        else:
            return None
    _BLANKS[cls] = plan
    return plan


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

    A record of plain values is dumped by :func:`~mlflowlet._rundump.plain_dump` (the same dict,
    without building pydantic's serializer: issue 18), any other by pydantic.

    ``shared`` maps a spec extra field to ``(value, jsonable)``: a value never changed again and
    its JSON-safe form (as ``model_dump(mode="json")`` gives it), made once and put in every
    dump as it is (callers must not change it; a run DB may encode it once, ``db._json.share``)
    while the field still holds that very value.
    """
    extra = run.spec.model_extra or {}
    live = {k: j for k, (v, j) in shared.items() if extra.get(k) is v}
    plain = plain_dump(run, {"spec": live} if live else None) if _DEFER else None
    if plain is not None:
        return plain
    data: dict[str, Any] = run.model_dump(
        mode="json", exclude={"spec": set(live)} if live else None
    )
    if not live:
        return data
    spec, order = data["spec"], [*type(run.spec).model_fields, *extra]
    data["spec"] = {k: live[k] if k in live else spec[k] for k in order if k in spec or k in live}
    return data
