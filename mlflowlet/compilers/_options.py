"""Compile options, checked once and shared by every target."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import CompileError

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_STEP_KEYS = ("env", "secrets", "node_selector")
KINDS = ("Workflow", "WorkflowTemplate")


@dataclass(frozen=True)
class CompileOptions:
    """Options of :func:`mlflowlet.compile` (the keywords after ``image``).

    Attributes:
        image: default image of every step (a step's own ``image`` wins).
        params: pipeline parameter defaults to compile in (``{'rows': 100}``).
        env: environment variables of every container.
        secrets: env var → ``(secret name, key)`` of a Kubernetes secret, set in every container
            (accepted as ``'name:key'`` or ``{'name': ..., 'key': ...}``); never a value.
        dbpath: ``MLFLOWLET_DBPATH`` of every step (e.g. the URL of a mlflowlet server).
        service_account: the pods' service account.
        labels: labels of the workflow / pipeline run pods.
        annotations: annotations of the workflow / pods.
        namespace: the Argo workflow's namespace.
        kind: ``Workflow`` or ``WorkflowTemplate`` (Argo).
        schedule: a cron expression: Argo compiles a ``CronWorkflow``; KFP keeps it for submit.
        parallelism: pods running at once (Argo ``spec.parallelism``).
        active_deadline_seconds: limit of the whole workflow (Argo).
        ttl_seconds: delete the finished workflow after this long (Argo ``ttlStrategy``).
        pod_gc: Argo ``podGC`` strategy, e.g. ``OnPodSuccess``.
        cache: default caching of steps whose ``cache`` is None.
        argo_version: ``'4'`` (default) or ``'3'``: the Argo release whose schema the output
            follows where they differ (only the memoization cache ConfigMap reference).
        steps: per step name: ``env``, ``secrets``, ``node_selector``.
        image_has_mlflowlet: every step's image has mlflowlet, even a bare base image name
            (silences the compile-time warning).
        pipeline_name: filled in by :func:`mlflowlet.compile`.
    """

    image: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, tuple[str, str]] = field(default_factory=dict)
    dbpath: str = ""
    service_account: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    namespace: str = ""
    kind: str = "Workflow"
    schedule: str = ""
    parallelism: int | None = None
    active_deadline_seconds: int | None = None
    ttl_seconds: int | None = None
    pod_gc: str = ""
    cache: bool | None = None
    argo_version: str = "4"
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    image_has_mlflowlet: bool = False
    pipeline_name: str = ""

    def step(self, name: str) -> dict[str, Any]:
        """Return the per-step options of ``name`` (empty when none)."""
        return self.steps.get(name, {})


def _secrets(value: Any, where: str) -> dict[str, tuple[str, str]]:
    if not value:
        return {}
    if not isinstance(value, dict):
        raise CompileError(f"{where} must map env var names to 'secret-name:key'")
    out: dict[str, tuple[str, str]] = {}
    for env, ref in value.items():
        if not isinstance(env, str) or not _ENV_NAME.match(env):
            raise CompileError(f"{where}: {env!r} is not an environment variable name")
        if isinstance(ref, dict):
            name, key = ref.get("name", ""), ref.get("key", "")
        elif isinstance(ref, (tuple, list)) and len(ref) == 2:
            name, key = ref
        elif isinstance(ref, str) and ":" in ref:
            name, _, key = ref.partition(":")
        else:
            raise CompileError(
                f"{where}[{env!r}] must be a Kubernetes secret reference "
                "'secret-name:key' (values never go into a compiled pipeline)"
            )
        if not name or not key:
            raise CompileError(f"{where}[{env!r}]: give both the secret name and the key")
        out[env] = (str(name), str(key))
    return out


def _str_dict(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CompileError(f"{where} must be a dict, got {type(value).__name__}")
    return {str(k): str(v) for k, v in value.items()}


def make_options(image: str | None, pipeline_name: str, **options: Any) -> CompileOptions:
    """Check keyword options and return :class:`CompileOptions`.

    Raises:
        CompileError: an unknown option (lists the known ones) or a bad value.
    """
    known = set(CompileOptions.__dataclass_fields__) - {"image", "pipeline_name"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise CompileError(f"unknown compile option(s) {unknown}; options: {sorted(known)}")
    kind = options.get("kind") or "Workflow"
    if kind not in KINDS:
        raise CompileError(f"kind={kind!r}: use one of {list(KINDS)}")
    steps: dict[str, dict[str, Any]] = {}
    for name, opts in (options.get("steps") or {}).items():
        bad = sorted(set(opts) - set(_STEP_KEYS))
        if bad:
            raise CompileError(f"steps[{name!r}] has unknown option(s) {bad}; use {_STEP_KEYS}")
        steps[name] = {
            "env": _str_dict(opts.get("env"), f"steps[{name!r}].env"),
            "secrets": _secrets(opts.get("secrets"), f"steps[{name!r}].secrets"),
            "node_selector": _str_dict(opts.get("node_selector"), f"steps[{name!r}].node_selector"),
        }
    for key in ("parallelism", "active_deadline_seconds", "ttl_seconds"):
        value = options.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise CompileError(f"{key} must be a positive integer, got {value!r}")
    return CompileOptions(
        image=image or "",
        params=dict(options.get("params") or {}),
        env=_str_dict(options.get("env"), "env"),
        secrets=_secrets(options.get("secrets"), "secrets"),
        dbpath=options.get("dbpath") or "",
        service_account=options.get("service_account") or "",
        labels=_str_dict(options.get("labels"), "labels"),
        annotations=_str_dict(options.get("annotations"), "annotations"),
        namespace=options.get("namespace") or "",
        kind=kind,
        schedule=options.get("schedule") or "",
        parallelism=options.get("parallelism"),
        active_deadline_seconds=options.get("active_deadline_seconds"),
        ttl_seconds=options.get("ttl_seconds"),
        pod_gc=options.get("pod_gc") or "",
        cache=options.get("cache"),
        steps=steps,
        argo_version=str(options.get("argo_version") or "4"),
        image_has_mlflowlet=bool(options.get("image_has_mlflowlet")),
        pipeline_name=pipeline_name,
    )
