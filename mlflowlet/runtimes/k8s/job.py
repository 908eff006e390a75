"""The Kubernetes job runtime: each run is a ``batch/v1`` Job running the mlflowlet entrypoint.

``new_runner(kind='job', image='repo/img:tag', command='training.py')`` or
``new_runner(command='job://repo/img:tag#training.py')``. Hyper-parameters become one Indexed
Job (``completionMode: Indexed``): pod ``i`` runs iteration ``i + 1`` (the entrypoint reads
``JOB_COMPLETION_INDEX``). What all Kubernetes runtimes share is in :mod:`.base`.

Reference: https://kubernetes.io/docs/concepts/workloads/controllers/job/#completion-mode
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ...model import RunObject
from . import manifests
from .base import NAMESPACE_KEY, WORKLOAD_KEY, KubeRuntime
from .client import Workload

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


class KubeJobRuntime(KubeRuntime):
    """Runs each run as a Kubernetes Job (hyper-parameter sweeps as one Indexed Job).

    Takes the options of :class:`~mlflowlet.runtimes.k8s.base.KubeRuntime`: ``command``,
    ``image``, ``namespace``, ``ttl_seconds_after_finished``, ``backoff_limit``,
    ``start_timeout``, ``poll_interval``, ``dbpath``, ``working_dir``, ``batch_api``,
    ``core_api``, ``k8s_version``.
    """

    kind = "job"
    workload = JOB

    def _dry_iterations(self, run: RunObject) -> list[dict]:
        from ... import hyper

        spec = run.spec
        combos = hyper.expand_iterations(
            spec.hyper_params or None,
            spec.strategy or None,
            spec.param_file or None,
            spec.max_iterations,
            spec.seed,
        )
        return [{**spec.params, **combo} for combo in combos]

    def _execute_many(
        self, runs: Iterable[RunObject], handler: Any, db: Any, parallel: int
    ) -> Iterator[RunObject]:
        """Run every iteration as one pod of a single Indexed Job."""
        children = list(runs)
        if children:
            yield from self._workload(children, db, indexed=True, parallel=parallel)

    @staticmethod
    def _default_parallel() -> int:
        return 0  # all iterations at once, as far as the cluster schedules them

    def _run_iterations(self, parent: RunObject, handler: Any, db: Any) -> RunObject:
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
        ctr = manifests.container(self.pod, "main", self.image, self.entry_command(run), env)
        template = manifests.pod_template(self.pod, labels, [ctr])
        count = len(iterations) if iterations is not None else None
        return manifests.job_manifest(
            name,
            self.namespace,
            labels,
            template,
            ttl_seconds_after_finished=self.ttl_seconds_after_finished,
            backoff_limit=self.backoff_limit,
            deadline=int(run.spec.timeout) if run.spec.timeout else None,
            completions=count,
            parallelism=min(parallel, count) if count and parallel and parallel > 0 else count,
        )
