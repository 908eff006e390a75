"""Pure builders of the Kubernetes manifests a run becomes: container, pod, Job, Secret, ConfigMap.

Each builder takes plain inputs (names, a :class:`~.options.PodOptions`, the entry command) and
returns the dict the API server receives, built with the official client's models (so a missing
required field fails here) and serialised by the client itself. Nothing here calls an API or
reads the clock: the same inputs give the same manifest, and the tests keep golden YAML of them
(``tests/runtimes/golden``; regenerate with ``MLFLOWLET_REGENERATE=1``). The custom resources of
the operators (MPIJob, SparkApplication) are built in :mod:`.crds`.

Reference: https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/job-v1/
"""

from __future__ import annotations

import json
from typing import Any

from ...errors import ConfigError
from ...model import RunObject
from .checks import MANAGED_BY, client, dns_name
from .options import PodOptions

CONFIG_MAP_LIMIT = 1024 * 1024


def to_model(cls: Any, data: Any, where: str) -> Any:
    """Build a client model from a model, or a dict in camelCase or snake_case keys."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a dict or {cls.__name__}, got {type(data).__name__}")
    inverse = {v: k for k, v in cls.attribute_map.items()}
    kwargs = {}
    for key, value in data.items():
        attr = inverse.get(key, key)
        if attr not in cls.attribute_map:
            raise ConfigError(
                f"{where}: unknown field {key!r}; known: {', '.join(sorted(inverse))}"
            )
        kwargs[attr] = value
    try:
        return cls(**kwargs)  # type: ignore[arg-type]
    except ValueError as exc:  # the client's own checks: a required field missing, a bad enum
        raise ConfigError(f"{where}: {exc}".replace("`", "")) from None


def serialize(obj: Any) -> Any:
    """Return a model (or a structure of models) as the plain dict the API server receives."""
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(obj)


# the run in the pod ----------------------------------------------------------------------------
# labels of the workloads mlflowlet owns (and the pod selectors of the controllers)
RESERVED_LABELS = (
    "mlflowlet.io/",
    "app.kubernetes.io/managed-by",
    "batch.kubernetes.io/",
    "controller-uid",
    "job-name",
    "training.kubeflow.org/",
    "spark-role",
    "sparkoperator.k8s.io/",
)
LABELS_ANNOTATION = "mlflowlet.io/labels"
SPEC_DIR, SPEC_FILE = "/etc/mlflowlet", "spec.json"  # where a sweep's pods read the spec


def run_labels(run: RunObject, mask: Any = None) -> dict[str, str]:
    """Return the labels every object of a run carries: mlflowlet's, and the run's sanitised.

    The run's labels are recorded exactly; on Kubernetes objects each key and value is made
    valid (``owner: Jane Doe`` becomes ``owner: Jane-Doe``; the API server refuses the first),
    and :func:`run_annotations` keeps the exact ones. Keys of mlflowlet and of the controllers'
    pod selectors are not the run's to set.

    Args:
        run: the prepared run.
        mask: a secrets store whose values are masked in the labels first (or None).
    """
    from ..._k8s_labels import sanitise_labels

    own = {k: _masked(v, mask) for k, v in run.metadata.labels.items()}
    return {
        **sanitise_labels(own, RESERVED_LABELS),
        **MANAGED_BY,
        "mlflowlet.io/uid": run.uid[:63],
        "mlflowlet.io/name": dns_name(run.metadata.name),
        "mlflowlet.io/project": dns_name(run.metadata.project),
    }


def run_annotations(run: RunObject, labels: dict[str, str], mask: Any = None) -> dict[str, str]:
    """Return ``{'mlflowlet.io/labels': exact JSON}`` when a run label was changed or dropped."""
    own = {k: _masked(str(v), mask) for k, v in run.metadata.labels.items()}
    if all(labels.get(k) == v for k, v in own.items()):
        return {}
    return {LABELS_ANNOTATION: json.dumps(own, sort_keys=True, separators=(",", ":"))}


def _masked(value: Any, mask: Any) -> str:
    return mask.mask(str(value)) if mask is not None else str(value)


def spec_json(
    run: RunObject, with_secrets: bool, iterations: list[dict] | None, mask: Any = None
) -> str:
    """Return the run spec a pod runs (``MLFLOWLET_EXEC_CONFIG``), as compact sorted JSON.

    Args:
        run: the prepared run.
        with_secrets: the pod gets the run's secret values (as one inline source whose values
            arrive in ``MLFLOWLET_EXEC_SECRETS``).
        iterations: the exact params of each iteration (an Indexed Job: every pod expands the
            same list), or None.
        mask: a secrets store whose values are masked in the labels (they are recorded
            masked anyway, and a manifest must not hold a secret).
    """
    from ...secrets import SecretsStore

    data = run.to_dict()
    data.pop("status", None)
    labels = data["metadata"].get("labels") or {}
    data["metadata"]["labels"] = {k: _masked(v, mask) for k, v in labels.items()}
    spec = data["spec"]
    secret_keys: list[str] = []
    for src in run.spec.secret_sources:  # the pod gets every value as one inline source
        secret_keys += list(SecretsStore.from_sources([src]).keys())
    spec["secret_sources"] = (
        [{"kind": "inline", "source": None, "keys": sorted(set(secret_keys))}]
        if with_secrets
        else []
    )
    if iterations is not None:
        names = list(dict.fromkeys(k for it in iterations for k in it))
        spec.update(
            params={},
            param_file="",
            strategy="list",
            max_iterations=None,
            hyper_params={k: [it.get(k) for it in iterations] for k in names},
        )
        data["metadata"]["iteration"] = 0
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def env_vars(
    spec: str | None, db_url: str, secret: str, keys: list[str], opts: PodOptions
) -> list[dict[str, Any]]:
    """Return the container's ``env``: the spec, the DB, secret references, the plain ones.

    Args:
        spec: the run spec JSON (:func:`spec_json`), or None when a ConfigMap holds it.
        db_url: the run DB the pod records into (``''``: none; the pod reports in its log).
        secret: the run's Secret holding ``keys`` (each read through ``secretKeyRef``).
        keys: the keys of that Secret.
        opts: the runtime's pod options (its own secret references and plain variables).
    """
    env: list[dict[str, Any]] = [{"name": "PYTHONUNBUFFERED", "value": "1"}]
    if spec is not None:
        env.insert(0, {"name": "MLFLOWLET_EXEC_CONFIG", "value": spec})
    if db_url:
        env.append({"name": "MLFLOWLET_DBPATH", "value": db_url})
    refs = {**{k: (secret, k) for k in keys}, **opts.secret_refs}
    for name, (sec, key) in sorted(refs.items()):
        env.append({"name": name, "valueFrom": {"secretKeyRef": {"key": key, "name": sec}}})
    env += [{"name": k, "value": v} for k, v in sorted(opts.env.items())]
    return env


# the pod ---------------------------------------------------------------------------------------
def container(
    opts: PodOptions,
    name: str,
    image: str,
    command: list[str],
    env: list[dict[str, Any]] | None,
    *,
    resources: bool = True,
    report: bool = True,
    mounts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Return a container of the pod.

    Args:
        opts: the pod options (resources, ``envFrom`` Secrets, volume mounts, working dir).
        name: the container's name.
        image: its image.
        command: what it runs.
        env: its environment (:func:`env_vars`), or None.
        resources: give it the options' limits and requests (an MPI launcher gets none).
        report: it reports the run: its log is the termination message on error.
        mounts: volume mounts besides the options' (the spec's ConfigMap).
    """
    k8s = client()
    limits = resources and (opts.limits or opts.requests)
    return serialize(
        k8s.V1Container(
            name=name,
            image=image,
            command=list(command),
            env=env or None,
            resources=k8s.V1ResourceRequirements(
                limits=dict(opts.limits) or None, requests=dict(opts.requests) or None
            )
            if limits
            else None,
            working_dir=opts.working_dir or None,
            env_from=[{"secretRef": {"name": n}} for n in opts.env_from] or None,
            volume_mounts=[m for _, m in opts.volumes] + list(mounts or []) or None,
            termination_message_policy="FallbackToLogsOnError" if report else None,
            image_pull_policy=opts.pull_policy(image),
            security_context=dict(opts.container_security) or None,
        )
    )


def pod_spec(
    opts: PodOptions,
    containers: list[dict[str, Any]],
    restart_policy: str | None = "Never",
    deadline: int | None = None,
    volumes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Return a ``PodSpec``: the containers with the options' scheduling and volumes.

    Args:
        opts: the pod options.
        containers: the containers (:func:`container`).
        restart_policy: the pod's ``restartPolicy`` (None: the operator sets it).
        deadline: the pod's ``activeDeadlineSeconds`` (each pod's own timeout), or None.
        volumes: volumes besides the options' (the spec's ConfigMap).
    """
    k8s = client()
    return serialize(
        k8s.V1PodSpec(
            containers=containers,
            restart_policy=restart_policy,
            active_deadline_seconds=deadline,
            service_account_name=opts.service_account or None,
            node_selector=dict(opts.node_selector) or None,
            tolerations=list(opts.tolerations) or None,
            volumes=[v for v, _ in opts.volumes] + list(volumes or []) or None,
            image_pull_secrets=[{"name": n} for n in opts.image_pull_secrets] or None,
            security_context=dict(opts.pod_security) or None,
        )
    )


def pod_template(
    opts: PodOptions,
    labels: dict[str, str],
    containers: list[dict[str, Any]],
    restart_policy: str | None = "Never",
    **spec: Any,
) -> dict[str, Any]:
    """Return a ``PodTemplateSpec``: labels, and :func:`pod_spec` (``spec``: its keywords)."""
    return {
        "metadata": {"labels": dict(labels)},
        "spec": pod_spec(opts, containers, restart_policy, **spec),
    }


def spec_volume(config_map: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``(volume, mount)`` of the ConfigMap holding a sweep's spec at :data:`SPEC_DIR`."""
    volume = {"name": "mlflowlet-spec", "configMap": {"name": config_map}}
    return volume, {"name": "mlflowlet-spec", "mountPath": SPEC_DIR, "readOnly": True}


# workloads -------------------------------------------------------------------------------------
def job_manifest(
    name: str,
    namespace: str,
    labels: dict[str, str],
    template: dict[str, Any],
    *,
    ttl_seconds_after_finished: int | None,
    backoff_limit: int,
    deadline: int | None = None,
    completions: int | None = None,
    parallelism: int | None = None,
    max_failed_indexes: int | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Return a ``batch/v1`` Job; with ``completions`` an Indexed Job (one pod per iteration).

    Args:
        name: the Job's name.
        namespace: its namespace.
        labels: its labels.
        template: its pod template (:func:`pod_template`).
        ttl_seconds_after_finished: when Kubernetes removes the finished Job (None: never).
        backoff_limit: pod retries (per index for an Indexed Job).
        deadline: ``activeDeadlineSeconds``, or None.
        completions: the number of iterations (an Indexed Job), or None.
        parallelism: pods at once for an Indexed Job.
        max_failed_indexes: failed iterations the Indexed Job tolerates before it ends the
            rest (a sweep's ``max_errors - 1``), or None.
        annotations: the Job's annotations.

    An Indexed Job retries each index alone (``backoffLimitPerIndex``); its ``backoffLimit`` is
    set too, to the most failures that can give, because a cluster without the per-index
    feature (Kubernetes < 1.29, or its gate off) drops that field and would fall back to a
    ``backoffLimit`` of 6 (JobSpec: "Defaults to 6, unless backoffLimitPerIndex is specified";
    https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/job-v1/#JobSpec).
    """
    k8s = client()
    spec = k8s.V1JobSpec(
        template=template,
        ttl_seconds_after_finished=ttl_seconds_after_finished,
        active_deadline_seconds=deadline,
    )
    if completions is not None:
        spec.completion_mode, spec.completions = "Indexed", completions
        spec.parallelism = parallelism or completions
        spec.backoff_limit_per_index = backoff_limit  # one failed iteration fails alone
        spec.backoff_limit = completions * (backoff_limit + 1)
        spec.max_failed_indexes = max_failed_indexes
    else:
        spec.backoff_limit = backoff_limit
    meta = k8s.V1ObjectMeta(
        name=name, namespace=namespace, labels=dict(labels), annotations=annotations or None
    )
    job = k8s.V1Job(api_version="batch/v1", kind="Job", spec=spec, metadata=meta)
    return serialize(job)


def config_map_manifest(name: str, namespace: str, data: dict[str, str], labels: dict) -> dict:
    """Return a ConfigMap manifest holding ``data`` (at most 1 MiB in all).

    Raises:
        ConfigError: the data is over a ConfigMap's 1 MiB
            (https://kubernetes.io/docs/concepts/configuration/configmap/#motivation).
    """
    size = sum(len(k) + len(v.encode()) for k, v in data.items())
    if size > CONFIG_MAP_LIMIT:
        raise ConfigError(
            f"ConfigMap {name}: {size:,} bytes is over the 1 MiB a ConfigMap holds; a sweep's "
            "spec lists every iteration: sweep fewer iterations per run, or use param_file="
        )
    k8s = client()
    config = k8s.V1ConfigMap(
        api_version="v1",
        kind="ConfigMap",
        metadata=k8s.V1ObjectMeta(name=name, namespace=namespace, labels=labels),
        data=dict(data),
    )
    return serialize(config)


def secret_manifest(name: str, namespace: str, values: dict[str, str], labels: dict) -> dict:
    """Return an Opaque Secret manifest holding ``values`` (as ``stringData``)."""
    k8s = client()
    secret = k8s.V1Secret(
        api_version="v1",
        kind="Secret",
        type="Opaque",
        metadata=k8s.V1ObjectMeta(name=name, namespace=namespace, labels=labels),
        string_data=dict(values),
    )
    return serialize(secret)


def redact(manifest: dict) -> dict:
    """Return a copy of a Secret manifest with every value replaced by ``<redacted>``."""
    out = {k: v for k, v in manifest.items() if k not in ("data", "stringData")}
    for field in ("data", "stringData"):
        if manifest.get(field):
            out[field] = {key: "<redacted>" for key in manifest[field]}
    return out
