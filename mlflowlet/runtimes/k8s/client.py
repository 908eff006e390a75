"""The Kubernetes API calls of the runtimes: submit, read state, list pods, read logs, delete.

:class:`KubeClient` wraps the official client's ``BatchV1Api``, ``CoreV1Api`` and
``CustomObjectsApi`` (made from the kube config on first use, or given, e.g. the tests' fakes)
for one namespace. A :class:`Workload` says how one kind of workload (a Job, an MPIJob, a
SparkApplication) is created, read, deleted and which pods hold its runs, so the runtimes and the
watcher call one client whatever they submit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...errors import ConfigError, MissingDependencyError
from .checks import client as k8s_client


@dataclass(frozen=True)
class Workload:
    """How one workload kind is handled through the API.

    Attributes:
        kind: ``Job``, ``MPIJob`` or ``SparkApplication``.
        api_version: its ``apiVersion`` (``batch/v1``, ``kubeflow.org/v2beta1``, ...).
        plural: the custom resource's plural (``''`` for a Job).
        container: the container whose log and termination message carry the run.
        selector: the label selector of the pods holding runs (``{name}``: the workload's).
        state: ``(the object read back, its name) -> ('succeeded' | 'failed' | '', reason)``.
    """

    kind: str
    api_version: str
    plural: str
    container: str
    selector: str
    state: Callable[[Any, str], tuple[str, str]]

    @property
    def custom(self) -> bool:
        """Whether this is a custom resource (read through ``CustomObjectsApi``)."""
        return bool(self.plural)


def api_client() -> Any:
    """Return an ``ApiClient`` from ``KUBECONFIG`` (or ``~/.kube/config``), else in-cluster."""
    try:
        from kubernetes import config
    except ImportError:
        raise MissingDependencyError("kubernetes", "k8s") from None
    try:
        return config.new_client_from_config()
    except Exception as kube_exc:
        try:
            config.load_incluster_config()
            return k8s_client().ApiClient()
        except Exception:
            raise ConfigError(
                f"no Kubernetes cluster is configured ({kube_exc}); set KUBECONFIG, or run "
                "inside a cluster, or pass batch_api=/core_api="
            ) from None


def owner_reference(manifest: dict, created: Any) -> dict[str, Any] | None:
    """Return an ``ownerReference`` to the object ``created`` from ``manifest`` (None: no uid)."""
    meta = _meta(created)
    if not meta.get("uid"):
        return None
    return {
        "apiVersion": manifest["apiVersion"],
        "kind": manifest["kind"],
        "name": meta.get("name"),
        "uid": meta.get("uid"),
    }


def _meta(obj: Any) -> dict:
    if isinstance(obj, dict):
        return obj.get("metadata") or {}
    meta = getattr(obj, "metadata", None)
    return {"name": getattr(meta, "name", None), "uid": getattr(meta, "uid", None)}


class KubeClient:
    """The API calls for workloads in one namespace.

    Args:
        namespace: where the workloads live.
        batch_api: a ``kubernetes.client.BatchV1Api`` (default: from the kube config).
        core_api: a ``kubernetes.client.CoreV1Api`` (default: from the kube config).
        custom_api: a ``kubernetes.client.CustomObjectsApi`` (default: from the kube config).
    """

    def __init__(
        self, namespace: str, batch_api: Any = None, core_api: Any = None, custom_api: Any = None
    ) -> None:
        self.namespace = namespace
        self._batch, self._core, self._custom = batch_api, core_api, custom_api

    @property
    def batch(self) -> Any:
        """The ``BatchV1Api`` (from the kube config on first use)."""
        if self._batch is None:
            self._batch = k8s_client().BatchV1Api(api_client())
        return self._batch

    @property
    def core(self) -> Any:
        """The ``CoreV1Api`` for Secrets, ConfigMaps, pods, logs and events."""
        if self._core is None:
            self._core = k8s_client().CoreV1Api(api_client())
        return self._core

    @property
    def custom(self) -> Any:
        """The ``CustomObjectsApi`` for the operators' resources."""
        if self._custom is None:
            self._custom = k8s_client().CustomObjectsApi(api_client())
        return self._custom

    # creating ---------------------------------------------------------------------------------
    def create(self, workload: Workload, manifest: dict, **kw: Any) -> Any:
        """Create the workload object ``manifest`` (``kw``: e.g. ``dry_run='All'``)."""
        if workload.custom:
            group, version = workload.api_version.split("/")
            return self.custom.create_namespaced_custom_object(
                group, version, self.namespace, workload.plural, manifest, **kw
            )
        return self.batch.create_namespaced_job(self.namespace, manifest, **kw)

    def submit(self, workload: Workload, manifests: list[dict]) -> Any:
        """Create ``[Secret?, ConfigMap?, workload]``; return the workload as created.

        The workload then owns the Secret and ConfigMap (Kubernetes deletes them with it,
        https://kubernetes.io/docs/concepts/architecture/garbage-collection/#owners-dependents).
        When the workload cannot be created, the Secret and ConfigMap created for it are deleted
        again before the error propagates: nothing is left behind.
        """
        *parts, body = manifests
        made: list[dict] = []
        try:
            for part in parts:
                self._create_part(part)
                made.append(part)
            created = self.create(workload, body)
        except Exception:
            for part in made:
                self._delete_part(part)
            raise
        owner = owner_reference(body, created)
        for part in parts if owner is not None else []:
            patch = {"metadata": {"ownerReferences": [owner]}}
            name = part["metadata"]["name"]
            if part["kind"] == "Secret":
                self.core.patch_namespaced_secret(name, self.namespace, patch)
            else:
                self.core.patch_namespaced_config_map(name, self.namespace, patch)
        return created

    def _create_part(self, part: dict, **kw: Any) -> Any:
        if part["kind"] == "Secret":
            return self.core.create_namespaced_secret(self.namespace, part, **kw)
        return self.core.create_namespaced_config_map(self.namespace, part, **kw)

    def _delete_part(self, part: dict) -> None:
        name = part["metadata"]["name"]
        call = (
            self.core.delete_namespaced_secret
            if part["kind"] == "Secret"
            else self.core.delete_namespaced_config_map
        )
        with contextlib.suppress(Exception):  # best effort: the creation error is reported
            call(name, self.namespace)

    def dry_run(self, workload: Workload, manifests: list[dict]) -> Any:
        """Ask the API server to validate ``manifests`` (strict fields); return its answer."""
        *parts, body = manifests
        for part in parts:
            self._create_part(part, dry_run="All", field_validation="Strict")
        out = self.create(workload, body, dry_run="All", field_validation="Strict")
        return k8s_client().ApiClient().sanitize_for_serialization(out)

    # reading ----------------------------------------------------------------------------------
    def state(self, workload: Workload, name: str) -> tuple[str, str]:
        """Return ``('succeeded' | 'failed' | '', reason)`` of the workload ``name``."""
        if workload.custom:
            group, version = workload.api_version.split("/")
            obj = self.custom.get_namespaced_custom_object(
                group, version, self.namespace, workload.plural, name
            )
        else:
            obj = self.batch.read_namespaced_job_status(name, self.namespace)
        return workload.state(obj, name)

    def pods(self, workload: Workload, name: str) -> list[Any]:
        """Return the workload's run-holding pods, sorted by name."""
        pods = self.core.list_namespaced_pod(
            self.namespace, label_selector=workload.selector.format(name=name)
        ).items
        return sorted(pods, key=lambda p: p.metadata.name)

    def log_stream(self, pod: str, container: str) -> Any:
        """Return the followed log of ``container`` in ``pod`` (an iterable of byte chunks)."""
        return self.core.read_namespaced_pod_log(
            pod, self.namespace, container=container, follow=True, _preload_content=False
        )

    # deleting ---------------------------------------------------------------------------------
    def delete(self, workload: Workload, name: str) -> None:
        """Delete the workload ``name`` (its pods with it), its Secret and spec ConfigMap.

        Gone already is fine.
        """
        if workload.custom:
            group, version = workload.api_version.split("/")

            def delete_workload(target: str, namespace: str, **kw: Any) -> Any:
                return self.custom.delete_namespaced_custom_object(
                    group, version, namespace, workload.plural, target, **kw
                )
        else:
            delete_workload = self.batch.delete_namespaced_job
        for call, target in (
            (delete_workload, name),
            (self.core.delete_namespaced_secret, f"{name}-secrets"),
            (self.core.delete_namespaced_config_map, f"{name}-spec"),
        ):
            try:
                call(target, self.namespace, propagation_policy="Background")
            except Exception as exc:
                if getattr(exc, "status", None) != 404:  # already gone is fine
                    raise
