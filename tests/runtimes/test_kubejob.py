"""The Kubernetes job runtime: schema-valid manifests, and submit/watch/logs against API fakes.

No cluster runs here: manifests are validated against the official OpenAPI schemas
(kubernetes-validate, strict), and the submit/watch/log logic runs against the synthesised-response
fakes of ``_k8s_fakes`` (real kubernetes model objects). The fake kubelet runs the Job's container
command for real, so the entrypoint, the spec in the env and the Secret round-trip are exercised.
``test_real_cluster_*`` runs only when KUBECONFIG is set.
"""

from __future__ import annotations

import json
import os
import textwrap

import pytest

kubernetes_validate = pytest.importorskip("kubernetes_validate")

from _k8s_fakes import (  # noqa: E402
    FakeBatchV1Api,
    FakeCluster,
    FakeCoreV1Api,
    event,
    pod_json,
)

from mlflowlet import get_run_db, new_runner, new_task  # noqa: E402
from mlflowlet.errors import ConfigError, RunError  # noqa: E402
from mlflowlet.runtimes.kubejob import KubeJobRuntime  # noqa: E402

K8S = "1.30"
TRAINING = textwrap.dedent(
    """
    def train(context, p1: int = 1):
        print(f"training with p1={p1} token={context.get_secret('TOKEN')}")
        context.log_result("accuracy", p1 * 10)
        return {"loss": 1.0 / p1}

    def boom(context):
        raise ValueError("bad data in shard 3")
    """
)


def _runtime(cluster, **kw):
    kw.setdefault("poll_interval", 0.01)
    return KubeJobRuntime("training.py", image="repo/img:tag", batch_api=FakeBatchV1Api(cluster),
                          core_api=FakeCoreV1Api(cluster), **kw)


@pytest.fixture
def script(tmp_path):
    (tmp_path / "training.py").write_text(TRAINING)
    return tmp_path


# manifests --------------------------------------------------------------------------------------
def test_job_manifest_with_every_setting_is_schema_valid():
    rt = new_runner(command="job://ghcr.io/team/train:1.0#training.py", namespace="ml",
                    ttl_seconds_after_finished=600, backoff_limit=2)
    rt.with_limits(cpu="2", memory="4Gi", gpus=1).with_requests(cpu="500m", memory="1Gi")
    rt.set_env("MODE", "fast").with_node_selector(pool="gpu")
    rt.with_tolerations({"key": "gpu", "operator": "Exists", "effect": "NoSchedule"})
    rt.with_volume("/data", pvc="datasets", read_only=True).with_service_account("trainer")
    rt.with_secret_env("s3-creds").apply(lambda m: m["metadata"]["labels"].update(team="a"))
    job = rt.run(new_task(params={"p1": 3}), handler="train", dry_run=True, timeout=120)
    assert kubernetes_validate.validate(job, K8S, strict=True)
    spec = job["spec"]
    assert (spec["backoffLimit"], spec["ttlSecondsAfterFinished"]) == (2, 600)
    assert spec["activeDeadlineSeconds"] == 120
    assert job["metadata"]["namespace"] == "ml" and job["metadata"]["labels"]["team"] == "a"
    pod = spec["template"]["spec"]
    ctr = pod["containers"][0]
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == "trainer"
    assert ctr["image"] == "ghcr.io/team/train:1.0"
    assert ctr["command"] == ["python", "-m", "mlflowlet.entrypoint"]
    assert ctr["resources"]["limits"] == {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"}
    assert ctr["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
    env = {e["name"]: e.get("value") for e in ctr["env"]}
    spec_in_env = json.loads(env["MLFLOWLET_EXEC_CONFIG"])
    assert spec_in_env["spec"]["params"] == {"p1": 3}
    assert spec_in_env["spec"]["handler"] == "train" and env["MODE"] == "fast"
    assert rt.last_manifests == [job]  # no secrets: no Secret


def test_secrets_become_a_secret_and_never_reach_the_job_manifest():
    rt = KubeJobRuntime("training.py", image="repo/img:tag")
    task = new_task().with_secrets("inline", {"TOKEN": "s3cr3t-value"})
    job = rt.run(task, handler="train", dry_run=True)
    assert "s3cr3t-value" not in json.dumps(job)
    secret, shown_job = rt.last_manifests
    assert shown_job is job
    assert secret["kind"] == "Secret" and secret["stringData"] == {
        "MLFLOWLET_EXEC_SECRETS": "<redacted>"}
    ref = next(e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
               if e["name"] == "MLFLOWLET_EXEC_SECRETS")
    assert ref["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
    assert kubernetes_validate.validate(secret, K8S, strict=True)


def test_hyper_params_become_one_indexed_job():
    rt = KubeJobRuntime("training.py", image="repo/img:tag")
    task = new_task().with_hyper_params({"p1": [1, 2, 3, 4]}, selector="max.accuracy", parallel=2)
    job = rt.run(task, handler="train", dry_run=True)
    kubernetes_validate.validate(job, K8S, strict=True)
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 4, 2)
    assert spec["backoffLimitPerIndex"] == 0 and "backoffLimit" not in spec
    env = {e["name"]: e.get("value") for e in spec["template"]["spec"]["containers"][0]["env"]}
    shipped = json.loads(env["MLFLOWLET_EXEC_CONFIG"])["spec"]
    assert shipped["hyper_params"] == {"p1": [1, 2, 3, 4]} and shipped["strategy"] == "list"


def test_an_override_that_breaks_the_schema_names_the_field_path():
    rt = KubeJobRuntime("training.py", image="repo/img:tag")
    rt.apply(lambda m: m["spec"].__setitem__("backoffLimit", "three"))
    with pytest.raises(ConfigError, match=r"spec\.backoffLimit"):
        rt.run(handler="train", dry_run=True)
    rt = KubeJobRuntime("training.py", image="repo/img:tag")
    rt.apply(lambda m: m["spec"]["template"]["spec"]["containers"][0].update(gpu=1))
    with pytest.raises(ConfigError, match=r"spec\.template\.spec\.containers\.0.*gpu"):
        rt.run(handler="train", dry_run=True)


def test_what_the_schema_lets_through_is_still_refused():
    def always(m):
        m["spec"]["template"]["spec"]["restartPolicy"] = "Always"

    with pytest.raises(ConfigError, match="restartPolicy.*'Never' or 'OnFailure'"):
        KubeJobRuntime("t.py", image="repo/img:tag").apply(always).run(handler="f", dry_run=True)

    def big(m):
        m["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "lots"}}

    with pytest.raises(ConfigError, match="limits.cpu 'lots' is not a resource quantity"):
        KubeJobRuntime("t.py", image="repo/img:tag").apply(big).run(handler="f", dry_run=True)
    with pytest.raises(ConfigError, match="DNS-1123"):
        KubeJobRuntime("t.py", image="repo/img:tag").apply(
            lambda m: m["metadata"].update(name="Bad_Name")).run(handler="f", dry_run=True)
    with pytest.raises(ConfigError, match="memory '-1Gi' is not a resource quantity"):
        KubeJobRuntime("t.py", image="repo/img:tag").with_limits(memory="-1Gi")


@pytest.mark.parametrize("image", ["Repo/Img:tag", "repo/img:", "repo//img", "img:tag@sha256:12",
                                   "-repo/img", ""])
def test_an_invalid_image_reference_is_refused(image):
    with pytest.raises(ConfigError, match="image"):
        KubeJobRuntime("t.py", image=image).run(handler="f", dry_run=True)


@pytest.mark.parametrize("image", ["python:3.11-slim", "localhost:5000/a/b-c_d.e:v1",
                                   "ghcr.io/team/train@sha256:" + "a" * 64, "[::1]:5000/img"])
def test_valid_image_references_are_accepted(image):
    assert KubeJobRuntime("t.py", image=image).image == image


def test_gpus_must_be_a_count():
    with pytest.raises(ConfigError, match="gpus=1.5"):
        KubeJobRuntime("t.py", image="repo/img:tag").with_limits(gpus=1.5)


# submit, watch, logs (the fakes) ----------------------------------------------------------------
def test_job_run_completes_and_results_come_from_the_pod_log(script):
    cluster = FakeCluster(workdir=script, kubelet=True)
    rt = _runtime(cluster)
    task = new_task(params={"p1": 4}).with_secrets("inline", {"TOKEN": "tok-123456"})
    run = rt.run(task, handler="train", watch=False)
    assert run.state == "completed", run.status.error
    assert run.status.results == {"accuracy": 40, "loss": 0.25}
    db = get_run_db()
    stored = db.read_run(run.uid, run.metadata.project)
    assert stored["status"]["state"] == "completed"
    log = db.get_log(run.uid, run.metadata.project).decode()
    assert "training with p1=4 token=***" in log  # the pod read it; the log masks it
    assert "tok-123456" not in json.dumps(stored) and "MLFLOWLET_RUN_JSON" not in log
    (secret_name, secret), = cluster.secrets.items()
    assert json.loads(secret["stringData"]["MLFLOWLET_EXEC_SECRETS"]) == {"TOKEN": "tok-123456"}
    job_name = next(iter(cluster.jobs))
    owner = cluster.patches[0][1]["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Job", job_name, "uid-of-" + job_name)
    assert cluster.log_calls[0][1:] == ("main", True)  # followed the main container


def test_indexed_job_runs_each_iteration_in_its_own_pod(script):
    cluster = FakeCluster(workdir=script, kubelet=True)
    task = new_task().with_hyper_params({"p1": [1, 2, 5]}, selector="max.accuracy")
    run = _runtime(cluster).run(task, handler="train", watch=False)
    assert run.state == "completed", run.status.error
    assert run.status.results["best_iteration"] == 3 and run.status.results["accuracy"] == 50
    (body, _), = cluster.jobs.values()
    assert body["spec"]["completions"] == 3
    rows = run.status.iterations
    assert [r[0] for r in rows[1:]] == [1, 2, 3]
    log = get_run_db().get_log(run.uid, run.metadata.project).decode()
    assert "[iter 2] training with p1=2" in log


def test_a_failing_handler_is_a_run_error_with_the_traceback(script):
    cluster = FakeCluster(workdir=script, kubelet=True)
    run = _runtime(cluster).run(handler="boom", watch=False, raise_on_error=False)
    assert run.state == "error"
    assert "ValueError: bad data in shard 3" in run.status.error


def test_oom_killed_pod_is_a_clear_run_error():
    frames = [[pod_json("j-0", "Pending")],
              [pod_json("j-0", "Failed", terminated={"exitCode": 137, "reason": "OOMKilled"})]]
    cluster = FakeCluster(frames=frames, final={"type": "Failed", "status": "True",
                                                "reason": "BackoffLimitExceeded"})
    with pytest.raises(RunError, match="ran out of memory.*OOMKilled.*with_limits"):
        _runtime(cluster).run(handler="train", watch=False)


def test_image_pull_failure_fails_fast_and_deletes_the_job():
    waiting = {"reason": "ErrImagePull", "message": "manifest unknown"}
    cluster = FakeCluster(frames=[[pod_json("j-0", "Pending", waiting=waiting)]])
    run = _runtime(cluster, start_timeout=60).run(handler="train", watch=False,
                                                  raise_on_error=False)
    assert run.state == "error"
    assert "image cannot be pulled (ErrImagePull, image 'repo/img:tag'): manifest unknown" \
        in run.status.error
    assert ("Job", next(iter(cluster.jobs)), "Background") in cluster.deleted


def test_deadline_exceeded_is_reported_with_the_timeout():
    cluster = FakeCluster(frames=[[pod_json("j-0", "Running")]],
                          final={"type": "Failed", "status": "True", "reason": "DeadlineExceeded"})
    cluster.frames = cluster.frames * 2  # the condition shows once the pod was seen running
    run = _runtime(cluster).run(handler="train", watch=False, raise_on_error=False, timeout=30)
    assert run.state == "error"
    assert "ran past its deadline of 30 s" in run.status.error


def test_a_job_that_never_starts_times_out_with_the_pods_last_event():
    events = [event("j-0", "Scheduled", "old", "2024-01-01T00:00:00Z"),
              event("j-0", "FailedScheduling", "0/3 nodes are available: 3 Insufficient "
                    "nvidia.com/gpu", "2024-01-01T00:05:00Z")]
    cluster = FakeCluster(frames=[[pod_json("j-0", "Pending")]], events=events)
    run = _runtime(cluster, start_timeout=0.05).run(handler="train", watch=False,
                                                     raise_on_error=False)
    assert run.state == "error"
    assert "did not start within 0.05 s" in run.status.error
    assert "FailedScheduling: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu" \
        in run.status.error
    assert get_run_db().read_run(run.uid, run.metadata.project)["status"]["state"] == "error"


def test_submit_refused_by_the_api_is_a_run_error():
    from kubernetes.client.exceptions import ApiException

    class Refusing(FakeBatchV1Api):
        def create_namespaced_job(self, namespace, body, **kw):
            exc = ApiException(status=403, reason="Forbidden")
            exc.body = json.dumps({"message": 'jobs.batch is forbidden: User "x" cannot create'})
            raise exc

    cluster = FakeCluster()
    rt = KubeJobRuntime("t.py", image="repo/img:tag", batch_api=Refusing(cluster),
                        core_api=FakeCoreV1Api(cluster))
    with pytest.raises(RunError, match="403 Forbidden: jobs.batch is forbidden"):
        rt.run(handler="train", watch=False)


def test_abort_deletes_the_job_and_marks_the_run_aborted():
    cluster = FakeCluster(frames=[[pod_json("j-0", "Running")]])
    rt = _runtime(cluster)
    run = rt._prepare(None, "train", "", "", None, None, "", None)
    get_run_db().store_run(run.to_dict(), run.uid, run.metadata.project)
    rt.abort(run)
    name = rt.workload_name(run)
    assert ("Job", name, "Background") in cluster.deleted
    assert ("Secret", f"{name}-secrets", "Background") in cluster.deleted
    assert get_run_db().read_run(run.uid, run.metadata.project)["status"]["state"] == "aborted"


def test_cli_dry_run_prints_the_manifest(script, capsys):
    import yaml

    from mlflowlet.cli import main

    with pytest.raises(SystemExit) as done:
        main(["run", "--kind", "job", "--image", "repo/img:tag", "training.py", "--handler",
              "train", "-p", "p1=2", "--dry-run"])
    assert done.value.code == 0
    (job,) = list(yaml.safe_load_all(capsys.readouterr().out))
    assert job["kind"] == "Job" and kubernetes_validate.validate(job, K8S, strict=True)


# a real cluster ---------------------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.skipif(not os.environ.get("KUBECONFIG"),
                    reason="KUBECONFIG is not set: no Kubernetes cluster to run against")
def test_real_cluster_dry_run_then_run(tmp_path):
    image = os.environ.get("MLFLOWLET_TEST_IMAGE")
    if not image:
        pytest.fail("KUBECONFIG is set: set MLFLOWLET_TEST_IMAGE to an image with mlflowlet")
    rt = KubeJobRuntime("", image=image, namespace=os.environ.get("MLFLOWLET_TEST_NS", "default"),
                        poll_interval=1, start_timeout=300)
    answer = rt.run(handler="mlflowlet.hyper:table_to_csv", dry_run="server")
    assert answer["kind"] == "Job"
    run = rt.run(handler="json:dumps", params={"obj": 1}, raise_on_error=False)
    assert run.state == "completed", run.error
    assert run.results["return"] == "1"


def test_example_k8s_job_dry_run_prints_valid_manifests():
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    example = Path(__file__).parents[2] / "examples" / "k8s_job.py"
    proc = subprocess.run([sys.executable, str(example)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    secret, job = yaml.safe_load_all(proc.stdout)
    assert secret["stringData"] == {"MLFLOWLET_EXEC_SECRETS": "<redacted>"}
    assert "not-a-real-key" not in proc.stdout
    assert job["spec"]["completions"] == 3
    kubernetes_validate.validate(job, K8S, strict=True)


def test_run_abort_of_a_running_job_deletes_it_and_the_watch_ends_aborted():
    from mlflowlet.model import RunObject

    cluster = FakeCluster(frames=[[pod_json("j-0", "Running")]])
    aborted = []

    class AbortingCore(FakeCoreV1Api):  # aborts the run (read back from the DB) while it runs
        def list_namespaced_pod(self, namespace, label_selector=""):
            if not aborted:
                runs = get_run_db().list_runs()
                (stored,) = [r for r in runs if r["status"]["state"] == "pending"]
                run = RunObject.model_validate(stored)
                aborted.append(run.abort(batch_api=FakeBatchV1Api(cluster), core_api=self))
            return super().list_namespaced_pod(namespace, label_selector)

    rt = KubeJobRuntime("training.py", image="repo/img:tag", namespace="ml", poll_interval=0.01,
                        batch_api=FakeBatchV1Api(cluster), core_api=AbortingCore(cluster))
    run = rt.run(handler="train", watch=False)
    assert aborted[0].state == "aborted" and run.state == "aborted", run.error
    assert run.metadata.annotations["mlflowlet.io/namespace"] == "ml"
    assert ("Job", rt.workload_name(run), "Background") in cluster.deleted
    assert get_run_db().read_run(run.uid, run.metadata.project)["status"]["state"] == "aborted"


def test_run_abort_of_a_finished_run_says_why_not():
    run = new_runner().run(handler=lambda: 1)
    run.status.state = "running"  # what the DB holds decides
    with pytest.raises(ConfigError, match=r"already ended \(completed\)"):
        run.abort()


def test_with_tolerations_accepts_a_list():
    rt = KubeJobRuntime("t.py", image="repo/img:tag").with_tolerations(
        [{"key": "gpu", "operator": "Exists"}], {"key": "spot", "operator": "Exists"})
    spec = rt.run(handler="train", dry_run=True)["spec"]["template"]["spec"]
    assert [t["key"] for t in spec["tolerations"]] == ["gpu", "spot"]


def test_with_volume_takes_a_whole_volume_and_its_mount_path():
    rt = KubeJobRuntime("t.py", image="repo/img:tag").with_volume(
        {"name": "scratch", "emptyDir": {"medium": "Memory"}}, "/scratch")
    manifest = rt.run(handler="train", dry_run=True)  # validated against the schema
    pod = manifest["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": "scratch", "emptyDir": {"medium": "Memory"}}]
    assert pod["containers"][0]["volumeMounts"] == [{"name": "scratch", "mountPath": "/scratch"}]
