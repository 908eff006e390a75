"""Compile options, checked once and shared by every target."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .._pickled import CREDENTIAL_NAME
from ..errors import CompileError, ConfigError

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: env var names whose value is a credential (refused in ``env``: the YAML would hold it)
_STEP_KEYS = ("env", "secrets", "node_selector")
KINDS = ("Workflow", "WorkflowTemplate")


@dataclass(frozen=True)
class CompileOptions:
    """Options of :func:`mlflowlet.compile` (the keywords after ``image``).

    Attributes:
        image: default image of every step (a step's own ``image`` wins).
        params: pipeline parameter defaults to compile in (``{'rows': 100}``).
        env: environment variables of every container, written into the YAML as they are: a
            name that says credential (``*SECRET*``, ``*PASSWORD*``, ``*TOKEN*``, ``*API_KEY*``,
            ...) with a value is refused (give it in ``secrets``).
        secrets: env var → ``(secret name, key)`` of a Kubernetes secret, set in every container
            (accepted as ``'name:key'`` or ``{'name': ..., 'key': ...}``); never a value.
        dbpath: ``MLFLOWLET_DBPATH`` of every step: a run DB the pods reach by URL (a
            ``mlflowlet server``, or PostgreSQL); a local path is refused (see
            :mod:`._tracking`). Without it nothing is recorded (a ``TrackingWarning``).
        artifact_path: ``MLFLOWLET_ARTIFACT_PATH`` of every step (``s3://bucket/prefix``):
            where the pods write artifacts; required with ``dbpath``.
        token_secret: the Kubernetes secret (``'name:key'``) holding the mlflowlet server's API
            token, set in every container as ``MLFLOWLET_API_TOKEN`` (a reference).
        tracking: ``False`` compiles an untracked pipeline on purpose (no warning).
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
            follows where they differ (the memoization cache ConfigMap reference, a
            ``CronWorkflow``'s ``schedule`` (3.5) or ``schedules`` (3.6+)).
        artifact_repository_ref: ``(config map, key)`` of the Argo artifact repository the
            workflow's artifacts go to (``artifactRepositoryRef``), given as ``'name:key'``;
            empty: the namespace's or controller's default repository, which must exist.
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
    artifact_path: str = ""
    token_secret: tuple[str, str] | None = None
    tracking: bool = True
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
    artifact_repository_ref: tuple[str, str] | None = None
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


def no_tags(text: str, where: str) -> str:
    """Return ``text`` written into a compiled template, unless it holds ``{{`` (refused).

    Argo substitutes ``{{...}}`` anywhere in a template (env, node selectors...), and KFP's
    backend passes its specs to its driver as Argo arguments: the pods would get another text.

    Raises:
        CompileError: names ``where`` and the fix.
    """
    if "{{" in text:
        raise CompileError(
            f"{where} holds '{{{{', which Argo (and KFP's backend, on Argo) "  # no value shown
            "substitutes in the compiled workflow; pass a value without it (a pipeline "
            "parameter crosses exactly)"
        )
    return text


def _env(value: object, where: str) -> dict[str, str]:
    """Plain env values, written into the YAML as they are: a credential's name is refused."""
    env = _str_dict(value, where)
    for name, text in env.items():
        if CREDENTIAL_NAME.search(name) and text:  # first: the refusal below shows the value
            raise CompileError(
                f"{where}[{name!r}]: refused: a credential's value would be written into the "
                f"compiled YAML in plain text; pass it as a Kubernetes secret reference, e.g. "
                f"secrets={{{name!r}: 'secret-name:key'}}"
            )
        no_tags(text, f"{where}[{name!r}]")
    return env


def _labels(value: Any, where: str) -> dict[str, str]:
    """Labels written into the manifest as given: each must be a valid Kubernetes label."""
    from .._k8s_labels import check_label

    labels = _str_dict(value, where)
    for key, text in labels.items():
        try:
            check_label(key, text, where)
        except ConfigError as exc:
            raise CompileError(str(exc)) from None
    return labels


def _annotations(value: Any, where: str) -> dict[str, str]:
    """Annotations: any text, under a valid key (the same syntax as a label key)."""
    from .._k8s_labels import label_key_ok

    out = _str_dict(value, where)
    for key in out:
        if not label_key_ok(key):
            raise CompileError(
                f"{where}: key {key!r} is not valid: [prefix/]name with a name of at most 63 "
                "letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
            )
    return out


def _argo_version(value: Any) -> str:
    text = str(value or "4")
    if text.split(".")[0] not in ("3", "4"):
        raise CompileError(f"argo_version={value!r}: use '4' (Argo 4.x) or '3' (Argo 3.5-3.7)")
    return text


def _repository_ref(value: Any) -> tuple[str, str] | None:
    if not value:
        return None
    if isinstance(value, dict):
        value = (value.get("configMap") or value.get("config_map") or "", value.get("key") or "")
    elif isinstance(value, str):
        value = tuple(value.partition(":")[::2])
    if not isinstance(value, (tuple, list)) or len(value) != 2 or not all(value):
        raise CompileError(
            f"artifact_repository_ref={value!r}: give 'configmap-name:key' (the ConfigMap "
            "holding the artifact repository and the key in it)"
        )
    return str(value[0]), str(value[1])


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
            "env": _env(opts.get("env"), f"steps[{name!r}].env"),
            "secrets": _secrets(opts.get("secrets"), f"steps[{name!r}].secrets"),
            "node_selector": _str_dict(opts.get("node_selector"), f"steps[{name!r}].node_selector"),
        }
        for key, text in steps[name]["node_selector"].items():
            no_tags(text, f"steps[{name!r}].node_selector[{key!r}]")
    for key in ("service_account", "namespace", "schedule", "dbpath", "artifact_path"):
        no_tags(str(options.get(key) or ""), key)
    for key in ("parallelism", "active_deadline_seconds", "ttl_seconds"):
        value = options.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise CompileError(f"{key} must be a positive integer, got {value!r}")
    from ._tracking import check_tracking, secret_ref

    dbpath, artifact_path = options.get("dbpath") or "", options.get("artifact_path") or ""
    token_secret = secret_ref(options.get("token_secret"), "token_secret")
    tracking = options.get("tracking", True) is not False
    check_tracking(dbpath, artifact_path, token_secret, tracking)
    return CompileOptions(
        image=image or "",
        params=dict(options.get("params") or {}),
        env=_env(options.get("env"), "env"),
        secrets=_secrets(options.get("secrets"), "secrets"),
        dbpath=dbpath,
        artifact_path=artifact_path,
        token_secret=token_secret,
        tracking=tracking,
        service_account=options.get("service_account") or "",
        labels=_labels(options.get("labels"), "labels"),
        annotations=_annotations(options.get("annotations"), "annotations"),
        namespace=options.get("namespace") or "",
        kind=kind,
        schedule=options.get("schedule") or "",
        parallelism=options.get("parallelism"),
        active_deadline_seconds=options.get("active_deadline_seconds"),
        ttl_seconds=options.get("ttl_seconds"),
        pod_gc=options.get("pod_gc") or "",
        cache=options.get("cache"),
        steps=steps,
        argo_version=_argo_version(options.get("argo_version")),
        artifact_repository_ref=_repository_ref(options.get("artifact_repository_ref")),
        image_has_mlflowlet=bool(options.get("image_has_mlflowlet")),
        pipeline_name=pipeline_name,
    )
