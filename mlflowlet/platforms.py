"""Mount helpers for ``.apply(fn)``: volumes for KFP tasks and Kubernetes jobs, as in MLRun.

Each helper returns a function that adds one volume and its mount to what it is applied to:

* a KFP ``PipelineTask`` (``mlrun_op(...).apply(mount_pvc(...))``), through ``kfp-kubernetes``
  (the pipeline's Kubernetes platform spec);
* a Job / MPIJob manifest (``new_runner(kind='job', ...).apply(mount_pvc(...))``): every pod
  template's containers get the mount;
* a runtime with ``with_volume`` (the job runtimes), directly.

The seed's ``mount_v3io()`` mounted Iguazio's v3io fabric (vendor-specific) at ``/User``; on any
cluster the same thing is a PersistentVolumeClaim: ``mount_pvc('users-claim', '/User')``.
KFP v2's platform spec has no hostPath volume, so ``mount_hostpath`` works for Kubernetes jobs
and refuses a KFP task, saying what to use instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from .errors import ConfigError, MissingDependencyError

__all__ = ["mount_configmap", "mount_hostpath", "mount_pvc", "mount_secret"]

Modifier = Callable[[Any], Any]


def _kubernetes() -> Any:
    try:
        from kfp import kubernetes
    except ImportError:
        raise MissingDependencyError("kfp-kubernetes", "kfp") from None
    return kubernetes


def _is_kfp_task(target: Any) -> bool:
    return type(target).__name__ == "PipelineTask" and hasattr(target, "platform_config")


def _pod_specs(node: Any) -> Iterator[dict]:
    """Yield every pod spec (a dict with ``containers``) inside a manifest."""
    if isinstance(node, dict):
        if isinstance(node.get("containers"), list):
            yield node
            return
        for value in node.values():
            yield from _pod_specs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _pod_specs(value)


def _apply(
    target: Any, volume: dict, mount_path: str, kfp: Callable[[Any], Any], sub_path: str = ""
) -> Any:
    """Add ``volume`` mounted at ``mount_path`` to a KFP task, a manifest or a runtime."""
    if not mount_path.startswith("/"):
        raise ConfigError(f"mount path {mount_path!r} must be absolute (start with '/')")
    if _is_kfp_task(target):
        kfp(target)
        return target
    mount = {
        "name": volume["name"],
        "mountPath": mount_path,
        **({"subPath": sub_path} if sub_path else {}),
    }
    if isinstance(target, dict):
        specs = list(_pod_specs(target))
        if not specs:
            raise ConfigError(f"cannot mount {volume['name']!r}: the manifest has no pod spec")
        for spec in specs:
            vols = spec.setdefault("volumes", [])
            if not any(v.get("name") == volume["name"] for v in vols):
                vols.append(dict(volume))
            for container in spec["containers"]:
                container.setdefault("volumeMounts", []).append(dict(mount))
        return target
    if hasattr(target, "with_volume"):
        target.with_volume(volume, mount)
        return target
    raise ConfigError(
        f"cannot mount a volume on a {type(target).__name__}: apply the helper to a KFP task "
        "(mlrun_op(...).apply(...)) or a Kubernetes runtime (new_runner(kind='job').apply(...))"
    )


def mount_pvc(
    pvc_name: str | None = None,
    volume_name: str = "pipeline",
    volume_mount_path: str = "/mnt/pipeline",
    sub_path: str = "",
) -> Modifier:
    """Mount the PersistentVolumeClaim ``pvc_name`` at ``volume_mount_path``.

    Args:
        pvc_name: the claim (default: ``MLFLOWLET_PVC_MOUNT=<claim>:<mount path>``).
        volume_name: the volume's name in the pod.
        volume_mount_path: where it is mounted in the container.
        sub_path: a folder of the volume to mount instead of its root.

    Raises:
        ConfigError: no claim given and ``MLFLOWLET_PVC_MOUNT`` unset or malformed.
    """
    if not pvc_name:
        spec = os.environ.get("MLFLOWLET_PVC_MOUNT", "")
        claim, sep, path = spec.partition(":")
        if not (claim and sep and path):
            raise ConfigError(
                "mount_pvc needs the claim: mount_pvc('claim-name', 'pipeline', '/mnt/pipeline'),"
                f" or MLFLOWLET_PVC_MOUNT=<claim>:<mount path> (it is {spec!r})"
            )
        pvc_name, volume_mount_path = claim, path
    claim_name, mount_path = pvc_name, volume_mount_path
    volume = {"name": volume_name, "persistentVolumeClaim": {"claimName": claim_name}}

    def _mount_pvc(target: Any) -> Any:
        return _apply(
            target,
            volume,
            mount_path,
            lambda t: _kubernetes().mount_pvc(t, claim_name, mount_path, sub_path=sub_path),
            sub_path,
        )

    return _mount_pvc


def mount_secret(
    secret_name: str, mount_path: str, volume_name: str = "secret", items: Any = None
) -> Modifier:
    """Mount the Kubernetes Secret ``secret_name`` as files (one per key) at ``mount_path``.

    Raises:
        ConfigError: ``items`` given for a KFP task (KFP v2 mounts every key).
    """
    source: dict[str, Any] = {"secretName": secret_name}
    if items:
        source["items"] = list(items)
    volume = {"name": volume_name, "secret": source}

    def _mount_secret(target: Any) -> Any:
        if items and _is_kfp_task(target):
            raise ConfigError(
                f"mount_secret({secret_name!r}, items=...): KFP v2 mounts every key of the "
                "Secret; drop items= (or mount a Secret holding only those keys)"
            )
        return _apply(
            target,
            volume,
            mount_path,
            lambda t: _kubernetes().use_secret_as_volume(t, secret_name, mount_path),
        )

    return _mount_secret


def mount_configmap(
    configmap_name: str, mount_path: str, volume_name: str = "configmap", items: Any = None
) -> Modifier:
    """Mount the ConfigMap ``configmap_name`` as files (one per key) at ``mount_path``.

    Raises:
        ConfigError: ``items`` given for a KFP task (KFP v2 mounts every key).
    """
    source: dict[str, Any] = {"name": configmap_name}
    if items:
        source["items"] = list(items)
    volume = {"name": volume_name, "configMap": source}

    def _mount_configmap(target: Any) -> Any:
        if items and _is_kfp_task(target):
            raise ConfigError(
                f"mount_configmap({configmap_name!r}, items=...): KFP v2 mounts every key of "
                "the ConfigMap; drop items= (or mount a ConfigMap holding only those keys)"
            )
        return _apply(
            target,
            volume,
            mount_path,
            lambda t: _kubernetes().use_config_map_as_volume(t, configmap_name, mount_path),
        )

    return _mount_configmap


def mount_hostpath(host_path: str, mount_path: str, volume_name: str = "hostpath") -> Modifier:
    """Mount the node's folder ``host_path`` at ``mount_path`` (Kubernetes jobs only).

    Raises:
        ConfigError: applied to a KFP task: KFP v2 has no hostPath volume.
    """
    volume = {"name": volume_name, "hostPath": {"path": host_path, "type": ""}}

    def _refuse(task: Any) -> None:
        raise ConfigError(
            f"mount_hostpath({host_path!r}): KFP v2 cannot mount a host path (its Kubernetes "
            "platform spec has no hostPath volume); create a PersistentVolume with that "
            "hostPath and a claim bound to it, then use mount_pvc('claim', mount_path)"
        )

    def _mount_hostpath(target: Any) -> Any:
        return _apply(target, volume, mount_path, _refuse)

    return _mount_hostpath
