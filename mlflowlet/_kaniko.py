"""kaniko: build an image inside the cluster (a Job), for machines without a container engine.

The build context travels in a ConfigMap (at most 1 MiB compressed) as a reproducible tarball;
registry credentials come from a named ``kubernetes.io/dockerconfigjson`` Secret, never inline.
The Job has a deadline (the build's ``timeout``) and resources, owns its ConfigMap (Kubernetes
deletes it with the Job), and the ConfigMap is deleted as soon as the build ended, whatever the
outcome. A pushed image's name with its digest comes back as the pod's termination message
(kaniko's ``--image-name-with-digest-file=/dev/termination-log``).

References: https://github.com/GoogleContainerTools/kaniko#flag---image-name-with-digest-file,
https://kubernetes.io/docs/concepts/architecture/garbage-collection/#owners-dependents
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import time
from pathlib import Path
from typing import Any

from ._buildctx import context_tarball
from .errors import ConfigError, RunError

__all__ = ["KANIKO_IMAGE", "KANIKO_RESOURCES", "kaniko_manifests", "run_kaniko"]

KANIKO_IMAGE = "gcr.io/kaniko-project/executor:v1.23.2"
_CONFIGMAP_LIMIT = 1024 * 1024  # a ConfigMap holds at most 1 MiB
# kaniko unpacks the base image and snapshots the filesystem: memory-hungry, single-threaded
KANIKO_RESOURCES = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "4Gi"}}
DIGEST_FILE = "/dev/termination-log"


def kaniko_manifests(  # noqa: PLR0913 - one keyword per build setting
    image: str,
    folder: Path,
    namespace: str = "default",
    registry_secret: str = "",
    push: bool = False,
    timeout: float = 1800.0,
    resources: dict[str, dict[str, str]] | None = None,
) -> list[dict]:
    """Return ``[ConfigMap with the context, kaniko Job]``, validated.

    Args:
        image: the image to build.
        folder: the build context.
        namespace: the namespace of the Job.
        registry_secret: a ``kubernetes.io/dockerconfigjson`` Secret to push with.
        push: push the image (and report its digest).
        timeout: the Job's ``activeDeadlineSeconds``.
        resources: the kaniko container's requests and limits (default
            :data:`KANIKO_RESOURCES`).

    Raises:
        ConfigError: the context is over a ConfigMap's 1 MiB, or a manifest is invalid.
    """
    from .runtimes.k8s import checks as _k8s
    from .runtimes.k8s.manifests import serialize

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
    args += [f"--image-name-with-digest-file={DIGEST_FILE}"] if push else ["--no-push"]
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
    container = k8s.V1Container(
        name="kaniko",
        image=KANIKO_IMAGE,
        args=args,
        volume_mounts=mounts,
        resources=k8s.V1ResourceRequirements(**(resources or KANIKO_RESOURCES)),
    )
    job = k8s.V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=k8s.V1ObjectMeta(name=name, namespace=namespace, labels=labels),
        spec=k8s.V1JobSpec(
            backoff_limit=0,
            ttl_seconds_after_finished=3600,
            active_deadline_seconds=max(int(timeout), 1),
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=labels),
                spec=k8s.V1PodSpec(containers=[container], volumes=volumes, restart_policy="Never"),
            ),
        ),
    )
    return [_k8s.validate(serialize(obj)) for obj in (config, job)]


def run_kaniko(
    manifests: list[dict], namespace: str, batch: Any, core: Any, timeout: float, poll: float
) -> str:
    """Create the ConfigMap and Job of :func:`kaniko_manifests` and wait for the Job to end.

    Returns:
        The pushed image by digest (``repo@sha256:...``) when kaniko reported it, else ``''``.

    Raises:
        RunError: the API refused them, the Job failed (naming the pod's problem), or it did not
            finish within ``timeout`` seconds (the Job is deleted then).
    """
    from .runtimes.k8s import checks as _k8s
    from .runtimes.k8s.client import api_client, owner_reference
    from .runtimes.k8s.pods import api_error

    if batch is None or core is None:
        api = api_client()
        batch = batch or _k8s.client().BatchV1Api(api)
        core = core or _k8s.client().CoreV1Api(api)
    config, job = manifests
    name = job["metadata"]["name"]
    try:
        core.create_namespaced_config_map(namespace, config)
        try:
            created = batch.create_namespaced_job(namespace, job)
        except Exception:
            _delete(core.delete_namespaced_config_map, name, namespace)
            raise
    except Exception as exc:
        reason = api_error(exc) if hasattr(exc, "status") else str(exc)
        raise RunError(f"submitting the kaniko Job {name} failed: {reason}") from None
    owner = owner_reference(job, created)
    if owner is not None:  # deleted with the Job, should the clean-up below not run
        with contextlib.suppress(Exception):
            patch = {"metadata": {"ownerReferences": [owner]}}
            core.patch_namespaced_config_map(name, namespace, patch)
    try:
        return _wait(batch, core, name, namespace, timeout, poll)
    finally:  # the context is not needed once the build ended, however it ended
        _delete(core.delete_namespaced_config_map, name, namespace)


def _wait(batch: Any, core: Any, name: str, namespace: str, timeout: float, poll: float) -> str:
    from .runtimes.k8s.pods import pod_problem, terminated

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = batch.read_namespaced_job_status(name, namespace).status
        for cond in (status.conditions or []) if status else []:
            if cond.status != "True" or cond.type not in ("Complete", "Failed"):
                continue
            pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items
            if cond.type == "Complete":
                messages = [getattr(terminated(p, "kaniko"), "message", "") for p in pods]
                return next((m.strip() for m in messages if m and "@sha256:" in m), "")
            problem = next((p for p in map(pod_problem, pods) if p), "")
            raise RunError(
                f"the kaniko Job {name} failed: {problem or cond.reason}; see "
                f"`kubectl logs -n {namespace} job/{name}`"
            )
        time.sleep(poll)
    _delete(batch.delete_namespaced_job, name, namespace, propagation_policy="Background")
    raise RunError(f"the kaniko Job {name} did not finish within {timeout:g} s (deleted)")


def _delete(call: Any, name: str, namespace: str, **kw: Any) -> None:
    with contextlib.suppress(Exception):  # best effort: gone already, or no rights to delete
        call(name, namespace, **kw)
