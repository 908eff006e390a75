"""The MPIJob runtime: a Kubeflow ``MPIJob`` (``kubeflow.org/v2beta1``) for Horovod / MPI training.

The launcher pod runs ``mpirun -np <workers x slots> ... python -m mlflowlet.entrypoint``,
forwarding the run spec (and the secret references) to every rank with ``-x``; the worker pods run
``sshd`` for mpirun to reach them. Every rank runs the handler; only rank 0 records the run (the
entrypoint reads ``OMPI_COMM_WORLD_RANK``), and its ``MLFLOWLET_RUN_JSON`` line reaches the
launcher's log, which this runtime follows. Needs the MPI operator installed in the cluster.
Hyper-parameter iterations run as one MPIJob each.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ...errors import ConfigError
from ...model import RunObject
from . import crds, manifests
from .base import KubeRuntime
from .client import Workload

__all__ = ["MPIJOB", "MPIJobRuntime", "mpijob_state"]

GROUP, VERSION, PLURAL = crds.MPI_API


def mpijob_state(obj: dict, name: str) -> tuple[str, str]:
    """Return ``('succeeded' | 'failed' | '', reason)`` from an MPIJob's status conditions."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "Succeeded":
            return "succeeded", ""
        if cond.get("type") == "Failed":
            return "failed", (
                f"the MPIJob {name} failed: {cond.get('reason', '')}: {cond.get('message', '')}"
            ).rstrip(": ")
    return "", ""


MPIJOB = Workload(
    "MPIJob",
    f"{GROUP}/{VERSION}",
    PLURAL,
    "main",
    "training.kubeflow.org/job-name={name},training.kubeflow.org/job-role=launcher",
    mpijob_state,
)


class MPIJobRuntime(KubeRuntime):
    """Runs each run as an MPIJob: one launcher and ``replicas`` workers.

    Args:
        command: a file in the image holding the handler (or ``'mpijob://image#file.py'``).
        replicas: worker pods.
        slots_per_worker: MPI processes per worker (usually its GPU count).
        mpi_args: extra ``mpirun`` arguments.
        worker_command: what the workers run (default ``/usr/sbin/sshd -De``).
        clean_pod_policy: ``Running`` (default), ``All`` or ``None``: which pods to delete at
            the end.
        custom_api: a ``kubernetes.client.CustomObjectsApi`` (default: from the kube config).
        **options: the options of :class:`~mlflowlet.runtimes.k8s.base.KubeRuntime`.

    ``with_limits`` and ``with_requests`` apply to the workers (GPUs too); the launcher only
    starts mpirun.
    """

    kind = "mpijob"
    workload = MPIJOB

    def __init__(
        self,
        command: str = "",
        replicas: int = 2,
        slots_per_worker: int = 1,
        mpi_args: Iterable[str] = (),
        worker_command: Iterable[str] | None = None,
        clean_pod_policy: str = "Running",
        custom_api: Any = None,
        **options: Any,
    ) -> None:
        super().__init__(command, custom_api=custom_api, **options)
        if int(replicas) < 1 or int(slots_per_worker) < 1:
            raise ConfigError(
                f"replicas ({replicas}) and slots_per_worker ({slots_per_worker}) "
                "must be at least 1"
            )
        if clean_pod_policy not in ("Running", "All", "None"):
            raise ConfigError(f"clean_pod_policy {clean_pod_policy!r}: use Running, All or None")
        self.replicas, self.slots_per_worker = int(replicas), int(slots_per_worker)
        self.mpi_args = list(mpi_args)
        self.worker_command = list(worker_command or ["/usr/sbin/sshd", "-De"])
        self.clean_pod_policy = clean_pod_policy

    def launcher_command(self, run: RunObject, env_names: list[str]) -> list[str]:
        """Return the launcher's ``mpirun`` command line."""
        forward = [x for name in env_names for x in ("-x", name)]
        return [
            "mpirun",
            "--allow-run-as-root",
            "-np",
            str(self.replicas * self.slots_per_worker),
            "-bind-to",
            "none",
            "-map-by",
            "slot",
            *forward,
            *self.mpi_args,
            *self.entry_command(run),
        ]

    def _workload_manifest(
        self,
        run: RunObject,
        name: str,
        env: list[dict[str, Any]],
        labels: dict[str, str],
        iterations: list[dict] | None,
        parallel: int,
    ) -> dict:
        if iterations is not None:
            raise ConfigError("an MPIJob runs one iteration; iterations run one MPIJob each")
        command = self.launcher_command(run, [e["name"] for e in env])
        # the launcher only runs mpirun: no GPUs, no big limits
        launcher = manifests.container(self.pod, "main", self.image, command, env, resources=False)
        worker = manifests.container(
            self.pod, "main", self.image, self.worker_command, None, report=False
        )
        return crds.mpijob_manifest(
            name,
            self.namespace,
            labels,
            launcher=manifests.pod_template(self.pod, labels, [launcher]),
            worker=manifests.pod_template(self.pod, labels, [worker]),
            replicas=self.replicas,
            slots_per_worker=self.slots_per_worker,
            run_policy=crds.mpi_run_policy(
                self.clean_pod_policy,
                self.backoff_limit,
                self.ttl_seconds_after_finished,
                int(run.spec.timeout) if run.spec.timeout else None,
            ),
        )
