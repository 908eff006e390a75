"""kaniko: build an image inside the cluster (a Job), for machines without a container engine.

The build context travels in a ConfigMap (at most 1 MiB compressed) as a reproducible tarball;
registry credentials come from a named ``kubernetes.io/dockerconfigjson`` Secret, never inline.
"""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path
from typing import Any

from ._buildctx import context_tarball
from .errors import ConfigError, RunError

__all__ = ["KANIKO_IMAGE", "kaniko_manifests", "run_kaniko"]

KANIKO_IMAGE = "gcr.io/kaniko-project/executor:v1.23.2"
_CONFIGMAP_LIMIT = 1024 * 1024  # a ConfigMap holds at most 1 MiB


def kaniko_manifests(
    image: str,
    folder: Path,
    namespace: str = "default",
    registry_secret: str = "",
    push: bool = False,
) -> list[dict]:
    """Return ``[ConfigMap with the context, kaniko Job]``, validated.

    Raises:
        ConfigError: the context is over a ConfigMap's 1 MiB, or a manifest is invalid.
    """
    from .runtimes import _k8s

    k8s = _k8s.client()
    tarball = context_tarball(Path(folder))
    if len(tarball) > _CONFIGMAP_LIMIT:
        raise ConfigError(
            f"the build context is {len(tarball)} bytes compressed; a ConfigMap holds at most "
            "1 MiB: use a local builder, or pass source= as a git URL"
        )
    name = _k8s.dns_name(
        "build", _k8s.dns_name(image, max_len=40), hashlib.sha256(tarball).hexdigest()[:8]
    )
    labels = {**_k8s.MANAGED_BY, "mlflowlet.io/build": name}
    config = k8s.V1ConfigMap(
        api_version="v1",
        kind="ConfigMap",
        binary_data={"context.tar.gz": base64.b64encode(tarball).decode()},
        metadata=k8s.V1ObjectMeta(name=name, namespace=namespace, labels=labels),
    )
    args = [
        "--dockerfile=Dockerfile",
        "--context=tar:///workspace/context.tar.gz",
        f"--destination={image}",
        "--reproducible",
    ]
    if not push:
        args.append("--no-push")
    mounts = [k8s.V1VolumeMount(name="context", mount_path="/workspace", read_only=True)]
    volumes = [k8s.V1Volume(name="context", config_map=k8s.V1ConfigMapVolumeSource(name=name))]
    if registry_secret:
        _k8s.check_dns_label(registry_secret, "registry_secret")
        mounts.append(
            k8s.V1VolumeMount(name="registry", mount_path="/kaniko/.docker", read_only=True)
        )
        volumes.append(
            k8s.V1Volume(
                name="registry",
                secret=k8s.V1SecretVolumeSource(
                    secret_name=registry_secret,
                    items=[k8s.V1KeyToPath(key=".dockerconfigjson", path="config.json")],
                ),
            )
        )
    container = k8s.V1Container(name="kaniko", image=KANIKO_IMAGE, args=args, volume_mounts=mounts)
    job = k8s.V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=k8s.V1ObjectMeta(name=name, namespace=namespace, labels=labels),
        spec=k8s.V1JobSpec(
            backoff_limit=0,
            ttl_seconds_after_finished=3600,
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=labels),
                spec=k8s.V1PodSpec(containers=[container], volumes=volumes, restart_policy="Never"),
            ),
        ),
    )
    return [_k8s.validate(_k8s.serialize(obj)) for obj in (config, job)]


def run_kaniko(
    manifests: list[dict], namespace: str, batch: Any, core: Any, timeout: float, poll: float
) -> None:
    """Create the ConfigMap and Job of :func:`kaniko_manifests` and wait for the Job to end.

    Raises:
        RunError: the API refused them, the Job failed (naming the pod's problem), or it did not
            finish within ``timeout`` seconds.
    """
    from .runtimes import _k8s
    from .runtimes.kubejob import _api_client

    if batch is None or core is None:
        api = _api_client()
        batch = batch or _k8s.client().BatchV1Api(api)
        core = core or _k8s.client().CoreV1Api(api)
    config, job = manifests
    name = job["metadata"]["name"]
    try:
        core.create_namespaced_config_map(namespace, config)
        batch.create_namespaced_job(namespace, job)
    except Exception as exc:
        reason = _k8s.api_error(exc) if hasattr(exc, "status") else str(exc)
        raise RunError(f"submitting the kaniko Job {name} failed: {reason}") from None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = batch.read_namespaced_job_status(name, namespace).status
        for cond in (status.conditions or []) if status else []:
            if cond.status == "True" and cond.type == "Complete":
                return
            if cond.status == "True" and cond.type == "Failed":
                pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={name}")
                problem = next((p for p in map(_k8s.pod_problem, pods.items) if p), "")
                raise RunError(
                    f"the kaniko Job {name} failed: {problem or cond.reason}; see "
                    f"`kubectl logs -n {namespace} job/{name}`"
                )
        time.sleep(poll)
    raise RunError(f"the kaniko Job {name} did not finish within {timeout:g} s")
