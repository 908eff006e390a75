"""Kubernetes sweeps under faults, against the synthesised-response fakes of ``_k8s_fakes``.

Aborting a sweep's parent deletes its Indexed Job (and the sweep ends ``aborted``); a stop
condition met by a finished iteration deletes the Job's remaining pods.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("kubernetes_validate")

from _k8s_fakes import FakeBatchV1Api, FakeCluster, FakeCoreV1Api, model, pod_json  # noqa: E402

from mlflowlet import get_run_db, new_task  # noqa: E402
from mlflowlet.model import RunObject  # noqa: E402
from mlflowlet.runtimes import abort_run  # noqa: E402
from mlflowlet.runtimes.kubejob import KubeJobRuntime  # noqa: E402


class SweepCluster(FakeCluster):
    """Pods of the created Indexed Job: ``done`` indexes succeeded (reporting ``results``)."""

    def __init__(self, done=(), results=None):
        super().__init__()
        self.done, self.results = set(done), results or {}

    def next_pods(self):
        self.tick += 1
        (name, (body, _)), = self.jobs.items()
        env = body["spec"]["template"]["spec"]["containers"][0]["env"]
        spec = json.loads(next(e["value"] for e in env if e["name"] == "MLFLOWLET_EXEC_CONFIG"))
        meta = spec["metadata"]
        pods = []
        for index in range(body["spec"]["completions"]):
            pod = f"{name}-{index}"
            if index in self.done:
                record = {"metadata": {**meta, "iteration": index + 1},
                          "spec": {"params": {"p": index + 1}},
                          "status": {"state": "completed", "results": self.results}}
                term = {"exitCode": 0, "reason": "Completed",
                        "message": "MLFLOWLET_RUN_JSON=" + json.dumps(record)}
                pods.append(pod_json(pod, "Succeeded", index, terminated=term, job=name))
            else:
                pods.append(pod_json(pod, "Running", index, job=name))
        return model({"items": pods}, "V1PodList")


def _runtime(cluster, core=None):
    core = core or FakeCoreV1Api(cluster)
    return KubeJobRuntime("training.py", image="repo/img:tag", poll_interval=0.01,
                          batch_api=FakeBatchV1Api(cluster), core_api=core)


def test_aborting_a_sweep_parent_deletes_its_indexed_job():
    cluster = SweepCluster()
    aborted = []

    class AbortingCore(FakeCoreV1Api):  # another process aborts the parent while pods run
        def list_namespaced_pod(self, namespace, label_selector=""):
            if not aborted:
                (stored,) = get_run_db().list_runs(labels="kind=job")
                parent = RunObject.model_validate(stored)
                assert parent.metadata.iteration == 0 and parent.state == "running"
                aborted.append(abort_run(parent, batch_api=FakeBatchV1Api(cluster), core_api=self))
            return super().list_namespaced_pod(namespace, label_selector)

    rt = _runtime(cluster, AbortingCore(cluster))
    run = rt.run(new_task().with_hyper_params({"p": [1, 2, 3]}), handler="train", watch=False,
                 raise_on_error=False)
    (job,) = cluster.jobs
    assert job == rt.workload_name(run)
    assert ("Job", job, "Background") in cluster.deleted
    assert run.state == "aborted" and "3 iteration(s) aborted" in run.error
    states = {r["metadata"]["iteration"]: r["status"]["state"]
              for r in get_run_db().list_runs(iter=True)}
    assert states == {0: "aborted", 1: "aborted", 2: "aborted", 3: "aborted"}


def test_a_met_stop_condition_deletes_the_remaining_pods():
    cluster = SweepCluster(done={0}, results={"accuracy": 0.95})
    task = new_task().with_hyper_params({"p": [1, 2, 3]}, stop_condition="accuracy>=0.9")
    run = _runtime(cluster).run(task, handler="train", watch=False)
    (job,) = cluster.jobs
    assert ("Job", job, "Background") in cluster.deleted
    assert run.state == "completed", run.error
    assert run.results["stopped"] == "stop condition 'accuracy>=0.9' met at iteration 1"
    children = {r["metadata"]["iteration"]: r["status"]
                for r in get_run_db().list_runs(iter=True) if r["metadata"]["iteration"]}
    assert children[1]["state"] == "completed"
    for it in (2, 3):
        assert children[it]["state"] == "aborted"
        assert "was deleted with its other pods" in children[it]["error"]


def test_without_a_stop_condition_running_pods_are_left_alone():
    cluster = SweepCluster(done={0, 1, 2}, results={"accuracy": 0.95})
    run = _runtime(cluster).run(new_task().with_hyper_params({"p": [1, 2, 3]}),
                                handler="train", watch=False)
    assert run.state == "completed" and not [d for d in cluster.deleted if d[0] == "Job"]
