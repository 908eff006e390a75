"""The MPIJob runtime: a Kubeflow ``MPIJob`` (``kubeflow.org/v2beta1``) for Horovod / MPI training.

The launcher pod runs ``mpirun -np <workers x slots> ... python -m mlflowlet.entrypoint``,
forwarding the run spec and every secret (``secretKeyRef`` and whole ``envFrom`` Secrets) to every
rank with ``-x``; the worker pods run ``sshd`` for mpirun to reach them, so a rank's environment is
only what ``-x`` exports. Every rank runs the handler (or the script, through the entrypoint); only
rank 0 records the run (the entrypoint reads ``OMPI_COMM_WORLD_RANK``), and its
``MLFLOWLET_RUN_JSON`` line reaches the launcher's log, which this runtime follows. The operator
creates the launcher once every worker is ready (``launcherCreationPolicy: WaitForWorkersReady``)
and sets each pod's restart policy from its replica's. Needs the MPI operator (v0.5 or later) in
the cluster. Hyper-parameter iterations run as one MPIJob each.

References (mpi-operator v0.8.2): ``pkg/apis/kubeflow/v2beta1/types.go`` (LauncherCreationPolicy,
lines 155-166 and 194-197; SSHAuthMountPath 189-192), ``pkg/controller/mpi_job_controller.go``
(the launcher waits for ready workers, line 678; "Restart policy in pod template overridden by
restart policy in replica spec", lines 1638-1645), ``examples/v2beta1/pi/pi.yaml`` (non-root).
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
ENV_DIR = "/etc/mlflowlet/env"  # where the launcher sees each envFrom Secret's keys as files
ROOT_SSHD = ["/usr/sbin/sshd", "-De"]
USER_SSHD = ["/usr/sbin/sshd", "-De", "-f", "/home/mpiuser/.sshd_config"]  # mpi-operator's base


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
        worker_command: what the workers run (default ``/usr/sbin/sshd -De``; with
            :meth:`with_security_context`, mpi-operator's non-root ``sshd -De -f
            /home/mpiuser/.sshd_config``, as its base image and the ``mpi`` build preset have).
        clean_pod_policy: ``Running`` (default), ``All`` or ``None``: which pods to delete at
            the end.
        custom_api: a ``kubernetes.client.CustomObjectsApi`` (default: from the kube config).
        **options: the options of :class:`~mlflowlet.runtimes.k8s.base.KubeRuntime`.

    ``with_limits`` and ``with_requests`` apply to the workers (GPUs too); the launcher only
    starts mpirun.
    """

    kind = "mpijob"
    workload = MPIJOB
    build_preset = "mpi"

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
        self._worker_command = list(worker_command or [])
        self.clean_pod_policy = clean_pod_policy

    @property
    def worker_command(self) -> list[str]:
        """What the workers run: ``sshd`` (as root, or as mpi-operator's non-root ``mpiuser``)."""
        if self._worker_command:
            return list(self._worker_command)
        return USER_SSHD if self.pod.pod_security else ROOT_SSHD

    def launcher_command(self, run: RunObject, env_names: list[str]) -> list[str]:
        """Return the launcher's command: ``mpirun``, exporting each name to every rank.

        A rank on a worker is started by ``sshd``, so it has only the variables ``-x`` exports
        (Open MPI mpirun(1): "-x <env>: Export the specified environment variables to the
        remote nodes before executing the program"). The keys of a whole Secret
        (``with_secret_env(secret)``) are known only in the pod: the launcher mounts each such
        Secret and exports its keys (file names) with ``-x`` too.
        """
        forward = [x for name in env_names for x in ("-x", name)]
        mpirun = [
            "mpirun",
            *([] if self.pod.pod_security else ["--allow-run-as-root"]),
            "-np",
            str(self.replicas * self.slots_per_worker),
            "-bind-to",
            "none",
            "-map-by",
            "slot",
            *forward,
            *self.mpi_args,
            *self._rank_command(run),
        ]
        if not self.pod.env_from:
            return mpirun
        dirs = " ".join(f"{ENV_DIR}/{name}/*" for name in self.pod.env_from)
        script = (
            f'for f in {dirs}; do [ -e "$f" ] && set -- -x "${{f##*/}}" "$@"; done; '
            'exec mpirun "$@"'
        )
        return ["/bin/sh", "-c", script, "mpirun", *mpirun[1:]]

    def _rank_command(self, run: RunObject) -> list[str]:
        """Return what every rank runs: the entrypoint (a script too: only rank 0 records)."""
        command = self.entry_command(run)
        if command[:3] == ["python", "-m", "mlflowlet.entrypoint"]:
            return command
        script, *args = command[1:]
        if args:
            raise ConfigError(
                f"command {self.command!r}: an MPIJob runs the script through the entrypoint on "
                "every rank (only rank 0 records it), which passes no arguments; read them as "
                "params instead"
            )
        return ["python", "-m", "mlflowlet.entrypoint", "--script", script]

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
        volumes: list[dict[str, Any]] = []
        mounts: list[dict[str, Any]] = []
        for secret in self.pod.env_from:
            volume = f"env-{secret}"[:63].rstrip("-")
            volumes.append({"name": volume, "secret": {"secretName": secret}})
            mounts.append({"name": volume, "mountPath": f"{ENV_DIR}/{secret}", "readOnly": True})
        # the launcher only runs mpirun: no GPUs, no big limits
        launcher = manifests.container(
            self.pod, "main", self.image, command, env, resources=False, mounts=mounts
        )
        worker = manifests.container(
            self.pod, "main", self.image, self.worker_command, None, report=False
        )
        return crds.mpijob_manifest(
            name,
            self.namespace,
            labels,
            launcher=manifests.pod_template(self.pod, labels, [launcher], None, volumes=volumes),
            worker=manifests.pod_template(self.pod, labels, [worker], None),
            replicas=self.replicas,
            slots_per_worker=self.slots_per_worker,
            run_policy=crds.mpi_run_policy(
                self.clean_pod_policy,
                self.backoff_limit,
                self.ttl_seconds_after_finished,
                int(run.spec.timeout) if run.spec.timeout else None,
            ),
            ssh_auth_mount_path="/home/mpiuser/.ssh" if self.pod.pod_security else "",
        )
