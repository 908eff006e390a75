"""What the custom-resource runtimes share (MPIJob, SparkApplication): one workload per run.

A subclass sets ``group``, ``version`` and ``plural`` and implements ``_workload_manifest``,
``_state_of`` and ``_list_pods``; the API calls, one-run-per-iteration and the dry-run rule live
here once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ..errors import ConfigError
from ..model import RunObject
from . import _k8s
from .base import Runtime
from .kubejob import KubeJobRuntime, _api_client


class CustomWorkloadRuntime(KubeJobRuntime):
    """A :class:`KubeJobRuntime` whose workload is a custom resource (one per run or iteration).

    Args:
        command: a file in the image holding the handler.
        custom_api: a ``kubernetes.client.CustomObjectsApi`` (default: from the kube config).
        **options: the options of :class:`~mlflowlet.runtimes.kubejob.KubeJobRuntime`.
    """

    group = version = plural = ""

    def __init__(self, command: str = "", custom_api: Any = None, **options: Any) -> None:
        super().__init__(command, **options)
        self._custom_api = custom_api

    @property
    def custom_api(self) -> Any:
        """The ``CustomObjectsApi`` the workloads are created with."""
        if self._custom_api is None:
            self._custom_api = _k8s.client().CustomObjectsApi(_api_client())
        return self._custom_api

    def _execute_many(
        self, runs: Iterable[RunObject], handler: Any, db: Any, parallel: int
    ) -> Iterator[RunObject]:
        """One workload per iteration (``parallel`` at once)."""
        return Runtime._execute_many(self, runs, handler, db, parallel)

    @staticmethod
    def _default_parallel() -> int:
        return 1

    def _dry_iterations(self, run: RunObject) -> list[dict]:
        raise ConfigError(
            f"dry_run with hyper-parameters: a {self.workload_kind} runs one "
            "iteration; dry-run the task without hyper-parameters to see its "
            "manifest"
        )

    def _create_workload(self, manifest: dict, **kw: Any) -> Any:
        return self.custom_api.create_namespaced_custom_object(
            self.group, self.version, self.namespace, self.plural, manifest, **kw
        )

    def _workload_state(self, name: str) -> tuple[str, str]:
        obj = self.custom_api.get_namespaced_custom_object(
            self.group, self.version, self.namespace, self.plural, name
        )
        return self._state_of(obj.get("status") or {}, name)

    def _state_of(self, status: dict, name: str) -> tuple[str, str]:
        """Return ``('succeeded' | 'failed' | '', reason)`` from the resource's ``status``."""
        raise NotImplementedError

    def _delete_workload(self, name: str, namespace: str, **kw: Any) -> Any:
        return self.custom_api.delete_namespaced_custom_object(
            self.group, self.version, namespace, self.plural, name, **kw
        )
