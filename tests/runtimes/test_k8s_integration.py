"""A tracked Job and an Indexed-Job sweep on a real cluster, recorded end to end (#20).

Runs only when ``KUBECONFIG`` is set (no cluster can run on the development machines). It then
needs what the README's "Running on a real cluster" checklist lists, named by:

* ``MLFLOWLET_TEST_IMAGE``: an image holding mlflowlet and ``examples/training.py`` in its working
  directory (``python examples/k8s_job.py --build --push`` makes one; tag it for your registry);
* ``MLFLOWLET_TEST_DBPATH``: an ``mlflowlet server`` URL reachable from the pods and from here
  (its API token, if any, in ``MLFLOWLET_API_TOKEN``);
* ``MLFLOWLET_TEST_ARTIFACT_PATH``: a shared artifact path the pods write to (``s3://...``);
* ``MLFLOWLET_TEST_NS`` (optional, default ``default``): the namespace.

With ``KUBECONFIG`` set and one of them missing the tests fail, naming it: a skip would hide an
integration run that checked nothing.
"""

from __future__ import annotations

import os

import pytest

NEEDED = ("MLFLOWLET_TEST_IMAGE", "MLFLOWLET_TEST_DBPATH", "MLFLOWLET_TEST_ARTIFACT_PATH")
ENV = {name: os.environ.get(name, "") for name in (*NEEDED, "MLFLOWLET_TEST_NS",
                                                   "MLFLOWLET_API_TOKEN")}  # before the cleanup
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not os.environ.get("KUBECONFIG"),
                       reason="KUBECONFIG is not set: no Kubernetes cluster to run against"),
]


@pytest.fixture
def cluster_env(monkeypatch):
    missing = [name for name in NEEDED if not ENV[name]]
    if missing:
        pytest.fail(f"KUBECONFIG is set: also set {', '.join(missing)} (see this module's doc)")
    if ENV["MLFLOWLET_API_TOKEN"]:
        monkeypatch.setenv("MLFLOWLET_API_TOKEN", ENV["MLFLOWLET_API_TOKEN"])
    monkeypatch.setenv("MLFLOWLET_DBPATH", ENV["MLFLOWLET_TEST_DBPATH"])
    from mlflowlet import get_run_db

    return get_run_db()


def _runner():
    from mlflowlet.runtimes.kubejob import KubeJobRuntime

    return KubeJobRuntime("training.py", image=ENV["MLFLOWLET_TEST_IMAGE"],
                          namespace=ENV["MLFLOWLET_TEST_NS"] or "default", poll_interval=1,
                          start_timeout=600, dbpath=ENV["MLFLOWLET_TEST_DBPATH"])


def test_real_cluster_tracked_job_records_results_and_artifacts(cluster_env):
    from mlflowlet import new_task

    task = new_task(name="it-job", params={"p1": 4}).with_secrets("inline", {"ACCESS_KEY": "k1"})
    run = _runner().run(task, handler="my_job", artifact_path=ENV["MLFLOWLET_TEST_ARTIFACT_PATH"],
                        raise_on_error=False)
    assert run.state == "completed", run.error
    stored = cluster_env.read_run(run.uid, run.metadata.project)
    assert stored["status"]["state"] == "completed"
    assert stored["status"]["results"] == {"accuracy": 8, "loss": 12}
    uris = {a["key"]: a["uri"] for a in stored["status"]["artifacts"]}
    assert uris["model.txt"].startswith(ENV["MLFLOWLET_TEST_ARTIFACT_PATH"].rstrip("/"))
    assert run.artifact("model.txt").get() == b"abc is 123"  # written by the pod, read here
    log = cluster_env.get_log(run.uid, run.metadata.project).decode()
    assert "access key is set: True" in log and "k1" not in log


def test_real_cluster_indexed_job_sweep_selects_the_best(cluster_env):
    from mlflowlet import new_task

    task = new_task(name="it-sweep").with_hyper_params({"p1": [1, 2, 3]}, selector="max.accuracy",
                                                       parallel=2)
    run = _runner().run(task, handler="my_job", artifact_path=ENV["MLFLOWLET_TEST_ARTIFACT_PATH"],
                        raise_on_error=False)
    assert run.state == "completed", run.error
    assert run.results["best_iteration"] == 3 and run.results["accuracy"] == 6
    children = [r for r in cluster_env.list_runs(iter=True, name="it-sweep")
                if r["metadata"].get("parent_uid") == run.uid
                or r["spec"].get("parent_uid") == run.uid]
    assert sorted((c["metadata"]["iteration"], c["status"]["state"]) for c in children) == [
        (1, "completed"), (2, "completed"), (3, "completed")]
    assert [row[0] for row in run.status.iterations[1:]] == [1, 2, 3]
