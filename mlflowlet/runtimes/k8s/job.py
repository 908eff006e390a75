"""The Kubernetes job runtime: each run is a ``batch/v1`` Job running the mlflowlet entrypoint.

``new_runner(kind='job', image='repo/img:tag', command='training.py')`` or
``new_runner(command='job://repo/img:tag#training.py')``. Hyper-parameters become one Indexed
Job (``completionMode: Indexed``): pod ``i`` runs iteration ``i + 1`` (the entrypoint reads
``JOB_COMPLETION_INDEX``). What all Kubernetes runtimes share is in :mod:`.base`.

Reference: https://kubernetes.io/docs/concepts/workloads/controllers/job/#completion-mode
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError
from ...model import RunObject
from . import manifests
from .base import NAMESPACE_KEY, WORKLOAD_KEY, KubeRuntime
from .client import Workload
from .manifests import SPEC_FILE

if TYPE_CHECKING:
    from ...db.base import RunDB

__all__ = ["JOB", "KubeJobRuntime", "job_state"]


def job_state(job: Any, name: str) -> tuple[str, str]:
    """Return ``('succeeded' | 'failed' | '', reason)`` from a ``V1Job``'s conditions."""
    for cond in (job.status.conditions or []) if job.status else []:
        if cond.status != "True":
            continue
        if cond.type == "Complete":
            return "succeeded", ""
        if cond.type == "Failed":
            deadline = job.spec.active_deadline_seconds
            if cond.reason == "DeadlineExceeded":
                return "failed", (
                    f"the Job {name} ran past its deadline of {deadline} s "
                    "(activeDeadlineSeconds, from the run's timeout)"
                )
            return "failed", f"the Job {name} failed: {cond.reason}: {cond.message or ''}"
    return "", ""


JOB = Workload("Job", "batch/v1", "", "main", "job-name={name}", job_state)


DEFAULT_SWEEP_PARALLELISM = 10


class KubeJobRuntime(KubeRuntime):
    """Runs each run as a Kubernetes Job (hyper-parameter sweeps as one Indexed Job).

    A sweep's Indexed Job runs ``parallel`` pods at once (the task's ``parallel``, else
    ``sweep_parallelism``); each pod's ``activeDeadlineSeconds`` is the run's ``timeout``; a
    task's ``max_errors`` becomes ``maxFailedIndexes``; the spec is mounted from a ConfigMap.

    Args:
        command: as for :class:`~mlflowlet.runtimes.k8s.base.KubeRuntime`.
        sweep_parallelism: pods of a sweep at once when the task does not say (default 10).
        **options: the options of :class:`~mlflowlet.runtimes.k8s.base.KubeRuntime`
            (``image``, ``namespace``, ``ttl_seconds_after_finished``, ``backoff_limit``,
            ``start_timeout``, ``poll_interval``, ``dbpath``, ``working_dir``, ``batch_api``,
            ``core_api``, ``k8s_version``).
    """

    kind = "job"
    workload = JOB

    def __init__(
        self, command: str = "", sweep_parallelism: int = DEFAULT_SWEEP_PARALLELISM, **options: Any
    ) -> None:
        super().__init__(command, **options)
        if (
            isinstance(sweep_parallelism, bool)
            or not isinstance(sweep_parallelism, int)
            or (sweep_parallelism < 1)
        ):
            raise ConfigError(
                f"sweep_parallelism={sweep_parallelism!r} must be a whole number >= 1"
            )
        self.sweep_parallelism = sweep_parallelism

    def _dry_iterations(self, run: RunObject) -> list[dict]:
        from ...hyper import SweepOptions

        combos = SweepOptions.of(run.spec).expand()
        return [{**run.spec.params, **combo} for combo in combos]

    def _execute_many(
        self, runs: Iterable[RunObject], handler: Any, db: RunDB, parallel: int
    ) -> Iterator[RunObject]:
        """Run every iteration as one pod of a single Indexed Job."""
        children = list(runs)
        if children:
            yield from self._workload(children, db, indexed=True, parallel=parallel)

    def _default_parallel(self) -> int:  # type: ignore[override]
        return self.sweep_parallelism  # not all at once: a 12,000-pod burst helps no one

    def _run_iterations(self, parent: RunObject, handler: Any, db: RunDB) -> RunObject:
        # the parent names the Indexed Job too, so aborting the parent deletes it
        parent.metadata.annotations.update(
            {NAMESPACE_KEY: self.namespace, WORKLOAD_KEY: self.workload_name(parent)}
        )
        return super()._run_iterations(parent, handler, db)

    def _workload_manifest(
        self,
        run: RunObject,
        name: str,
        env: list[dict[str, Any]],
        labels: dict[str, str],
        iterations: list[dict] | None,
        parallel: int,
    ) -> dict:
        timeout = int(run.spec.timeout) if run.spec.timeout else None
        if iterations is None:
            ctr = manifests.container(self.pod, "main", self.image, self.entry_command(run), env)
            return manifests.job_manifest(
                name,
                self.namespace,
                labels,
                manifests.pod_template(self.pod, labels, [ctr]),
                ttl_seconds_after_finished=self.ttl_seconds_after_finished,
                backoff_limit=self.backoff_limit,
                deadline=timeout,
            )
        volume, mount = manifests.spec_volume(f"{name}-spec")
        command = [*self._sweep_command(run), "--spec", f"{mount['mountPath']}/{SPEC_FILE}"]
        ctr = manifests.container(self.pod, "main", self.image, command, env, mounts=[mount])
        count, errors = len(iterations), run.spec.max_errors
        # the run's timeout is each iteration's (a pod's deadline), not the whole sweep's
        template = manifests.pod_template(
            self.pod, labels, [ctr], deadline=timeout, volumes=[volume]
        )
        return manifests.job_manifest(
            name,
            self.namespace,
            labels,
            template,
            ttl_seconds_after_finished=self.ttl_seconds_after_finished,
            backoff_limit=self.backoff_limit,
            completions=count,
            parallelism=min(parallel, count) if parallel and parallel > 0 else count,
            max_failed_indexes=max(errors - 1, 0) if errors is not None else None,
        )

    def _sweep_command(self, run: RunObject) -> list[str]:
        """Return the entrypoint command (a script too: each pod runs one iteration)."""
        command = self.entry_command(run)
        if command[:3] == ["python", "-m", "mlflowlet.entrypoint"]:
            return command
        script, *args = command[1:]
        if args:
            raise ConfigError(
                f"command {self.command!r}: a sweep runs the script through the entrypoint, one "
                "iteration per pod, which passes no arguments; read them as params instead"
            )
        return ["python", "-m", "mlflowlet.entrypoint", "--script", script]

    def _check_created(self, manifest: dict, created: Any) -> None:
        """Refuse an Indexed Job whose ``backoffLimitPerIndex`` the API server dropped.

        Kubernetes 1.28 has the field behind an alpha gate (off by default), and older
        servers do not know it: they drop it silently, so a failed iteration would fail the
        whole Job instead of only itself
        (https://kubernetes.io/docs/reference/command-line-tools-reference/feature-gates/).
        """
        wanted = (manifest.get("spec") or {}).get("backoffLimitPerIndex")
        spec = getattr(created, "spec", None)
        if wanted is None or spec is None or spec.backoff_limit_per_index is not None:
            return
        self._delete(manifest["metadata"]["name"])
        raise ConfigError(
            "the cluster dropped the Indexed Job's backoffLimitPerIndex (Kubernetes < 1.29, or "
            "the JobBackoffLimitPerIndex feature gate off), so one failed iteration would end "
            "the sweep; the Job was deleted: run on Kubernetes 1.29 or later (or enable the "
            "gate)"
        )
