"""Jobs and Indexed-Job sweeps as a real cluster runs them (#20), each fix with the rule it follows.

No cluster runs here: each test checks the manifest (or the submit/watch logic, against the
synthesised-response fakes of ``_k8s_fakes``) against the Kubernetes documentation or API
reference cited in its docstring.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("kubernetes_validate")

from _crd import validate  # noqa: E402
from _k8s_fakes import FakeBatchV1Api, FakeCluster, FakeCoreV1Api, model  # noqa: E402

from mlflowlet import get_run_db, new_task  # noqa: E402
from mlflowlet.errors import ConfigError  # noqa: E402
from mlflowlet.runtimes.kubejob import KubeJobRuntime  # noqa: E402


def _sweep(values, runtime=None, timeout=90, **hyper):
    rt = runtime or KubeJobRuntime("training.py", image="repo/img:tag")
    task = new_task(name="sweep").with_hyper_params({"p1": list(values)}, **hyper)
    job = rt.run(task, handler="train", dry_run=True, timeout=timeout)
    return rt, job


def test_a_12000_iteration_sweep_mounts_its_spec_from_a_config_map():
    """One env string is at most MAX_ARG_STRLEN (128 KiB) on Linux, or execve fails with E2BIG
    (https://man7.org/linux/man-pages/man2/execve.2.html, "Limits on size of arguments and
    environment"); a ConfigMap holds up to 1 MiB
    (https://kubernetes.io/docs/concepts/configuration/configmap/#motivation)."""
    rt, job = _sweep([f"shard-{i:05d}" for i in range(12_000)])
    ctr = job["spec"]["template"]["spec"]["containers"][0]
    assert max(len(e.get("value") or "") for e in ctr["env"]) < 1024
    (config_map,) = [m for m in rt.last_manifests if m["kind"] == "ConfigMap"]
    text = config_map["data"]["spec.json"]
    assert len(text) > 128 * 1024  # what used to be one environment variable
    assert json.loads(text)["spec"]["hyper_params"]["p1"][-1] == "shard-11999"
    volume = job["spec"]["template"]["spec"]["volumes"][0]
    assert volume == {"name": "mlflowlet-spec",
                      "configMap": {"name": config_map["metadata"]["name"]}}
    assert ctr["volumeMounts"] == [{"mountPath": "/etc/mlflowlet", "name": "mlflowlet-spec",
                                    "readOnly": True}]
    validate(config_map)
    validate(job)


def test_a_sweep_spec_over_a_config_maps_mib_is_refused_naming_the_limit():
    """A ConfigMap's data is at most 1 MiB
    (https://kubernetes.io/docs/concepts/configuration/configmap/#motivation)."""
    with pytest.raises(ConfigError, match="over the 1 MiB a ConfigMap holds"):
        _sweep([f"{i:0>100}" for i in range(12_000)])


def test_a_sweeps_timeout_is_each_pods_deadline_not_the_whole_jobs():
    """Job ``activeDeadlineSeconds`` "applies to the duration of the job, no matter how many
    Pods are created"; a pod's own ``activeDeadlineSeconds`` bounds that pod
    (https://kubernetes.io/docs/concepts/workloads/controllers/job/#job-termination-and-cleanup)."""
    _, job = _sweep([1, 2, 3], timeout=45)
    assert "activeDeadlineSeconds" not in job["spec"]
    assert job["spec"]["template"]["spec"]["activeDeadlineSeconds"] == 45


def test_a_sweep_starts_ten_pods_at_once_unless_told():
    """``parallelism`` is "the maximum desired number of pods the job should run at any given
    time" (https://kubernetes.io/docs/concepts/workloads/controllers/job/#controlling-parallelism):
    all 500 at once was a burst no cluster wants."""
    _, job = _sweep(range(500))
    assert job["spec"]["parallelism"] == 10
    _, job = _sweep(range(500), parallel=3)
    assert job["spec"]["parallelism"] == 3
    wide = KubeJobRuntime("training.py", image="repo/img:tag", sweep_parallelism=25)
    assert wide._default_parallel() == 25
    with pytest.raises(ConfigError, match="sweep_parallelism=0"):
        KubeJobRuntime("training.py", image="repo/img:tag", sweep_parallelism=0)


def test_max_errors_becomes_max_failed_indexes():
    """"When the number of failed indexes exceeds the maxFailedIndexes, the Job controller
    triggers termination of all remaining running Pods"
    (https://kubernetes.io/docs/concepts/workloads/controllers/job/#backoff-limit-per-index);
    a sweep stops once ``max_errors`` iterations failed, so the limit is ``max_errors - 1``."""
    _, job = _sweep(range(8), max_errors=3)
    assert job["spec"]["maxFailedIndexes"] == 2 and job["spec"]["backoffLimitPerIndex"] == 0
    _, once = _sweep(range(8), max_errors=1)
    assert once["spec"]["maxFailedIndexes"] == 0
    _, unlimited = _sweep(range(8))
    assert "maxFailedIndexes" not in unlimited["spec"]
    validate(job)


def test_backoff_limit_is_explicit_beside_the_per_index_limit():
    """JobSpec.backoffLimit "Defaults to 6, unless backoffLimitPerIndex (only Indexed Job) is
    specified" (https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/job-v1/);
    a cluster that drops backoffLimitPerIndex would then allow 6 retries the watcher does not
    expect. Explicit: iterations x (per-index retries + 1), never binding when honoured."""
    rt = KubeJobRuntime("training.py", image="repo/img:tag", backoff_limit=2)
    _, job = _sweep(range(5), runtime=rt)
    assert (job["spec"]["backoffLimitPerIndex"], job["spec"]["backoffLimit"]) == (2, 15)


class _DroppingBatch(FakeBatchV1Api):
    """An API server without the JobBackoffLimitPerIndex feature: it drops the field."""

    def create_namespaced_job(self, namespace, body, **kw):
        body = {**body, "spec": {k: v for k, v in body["spec"].items()
                                 if k not in ("backoffLimitPerIndex", "maxFailedIndexes")}}
        self.cluster.jobs[body["metadata"]["name"]] = (body, kw)
        return model({**body, "metadata": {**body["metadata"], "uid": "u"}}, "V1Job")


def test_a_cluster_that_drops_backoff_limit_per_index_is_refused_and_the_job_deleted():
    """The JobBackoffLimitPerIndex gate is alpha (off) in 1.28 and beta (on) from 1.29
    (https://kubernetes.io/docs/reference/command-line-tools-reference/feature-gates/); an
    API server drops fields it does not serve, so the created Job is read back."""
    cluster = FakeCluster()
    rt = KubeJobRuntime("training.py", image="repo/img:tag", poll_interval=0.01,
                        batch_api=_DroppingBatch(cluster), core_api=FakeCoreV1Api(cluster))
    run = rt.run(new_task().with_hyper_params({"p1": [1, 2]}), handler="train", watch=False,
                 raise_on_error=False)
    assert run.state == "error"
    children = [r for r in get_run_db().list_runs(iter=True) if r["metadata"]["iteration"]]
    assert {c["status"]["state"] for c in children} == {"error"}
    assert "dropped the Indexed Job's backoffLimitPerIndex" in children[0]["status"]["error"]
    (name,) = cluster.jobs
    assert ("Job", name, "Background") in cluster.deleted


def test_a_refused_workload_leaves_no_secret_or_config_map_behind():
    """The Secret and ConfigMap are owned by the Job they were made for
    (https://kubernetes.io/docs/concepts/architecture/garbage-collection/#owners-dependents);
    when the Job cannot be created there is no owner, so they are deleted at once."""
    from kubernetes.client.exceptions import ApiException

    class Refusing(FakeBatchV1Api):
        def create_namespaced_job(self, namespace, body, **kw):
            raise ApiException(status=422, reason="Unprocessable Entity")

    cluster = FakeCluster()
    rt = KubeJobRuntime("training.py", image="repo/img:tag", batch_api=Refusing(cluster),
                        core_api=FakeCoreV1Api(cluster))
    task = new_task().with_secrets("inline", {"K": "v4lue"}).with_hyper_params({"p1": [1, 2]})
    run = rt.run(task, handler="train", watch=False, raise_on_error=False)
    assert run.state == "error"
    name = rt.workload_name(run)
    assert set(cluster.secrets) == {f"{name}-secrets"} and set(cluster.config_maps) == {
        f"{name}-spec"}
    deleted = {(kind, n) for kind, n, _ in cluster.deleted}
    assert deleted == {("Secret", f"{name}-secrets"), ("ConfigMap", f"{name}-spec")}


def test_submitted_secret_and_config_map_are_owned_by_the_job(tmp_path):
    """Owner references make Kubernetes delete them with the Job
    (https://kubernetes.io/docs/concepts/overview/working-with-objects/owners-dependents/)."""
    (tmp_path / "training.py").write_text("def train(context, p1=1):\n    return p1\n")
    cluster = FakeCluster(workdir=tmp_path, kubelet=True)
    rt = KubeJobRuntime("training.py", image="repo/img:tag", poll_interval=0.01,
                        batch_api=FakeBatchV1Api(cluster), core_api=FakeCoreV1Api(cluster))
    task = new_task().with_secrets("inline", {"K": "v"}).with_hyper_params({"p1": [1, 2]})
    run = rt.run(task, handler="train", watch=False)
    assert run.state == "completed", run.error
    name = rt.workload_name(run)
    owners = {n: body["metadata"]["ownerReferences"][0]["name"] for n, body in cluster.patches}
    assert owners == {f"{name}-secrets": name, f"{name}-spec": name}


def test_run_labels_become_valid_pod_labels_and_the_exact_ones_an_annotation():
    """Label values are at most 63 characters of ``[A-Za-z0-9_.-]``, starting and ending
    alphanumeric (https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/
    #syntax-and-character-set): ``owner: Jane Doe`` is refused by the API server."""
    rt = KubeJobRuntime("training.py", image="repo/img:tag")
    task = new_task(labels={"owner": "Jane Doe", "team.io/x": "ml", "Team Name/y": "a b",
                            "job-name": "mine", "mlflowlet.io/uid": "forged",
                            "token": "s3cr3t-v"})
    task = task.with_secrets("inline", {"T": "s3cr3t-v"})
    job = rt.run(task, handler="train", dry_run=True)
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels["owner"] == "Jane-Doe" and labels["team.io/x"] == "ml"
    assert labels["team-name/y"] == "a-b"
    assert "job-name" not in labels and labels["mlflowlet.io/uid"] != "forged"
    exact = json.loads(job["metadata"]["annotations"]["mlflowlet.io/labels"])
    assert exact["owner"] == "Jane Doe" and exact["token"] == "***"
    assert "s3cr3t-v" not in json.dumps(job)
    validate(job)


def test_a_label_written_into_the_manifest_is_checked_naming_it():
    """The same label syntax (labels doc above), for a label an ``apply()`` edit writes."""
    rt = KubeJobRuntime("training.py", image="repo/img:tag").apply(
        lambda m: m["spec"]["template"]["metadata"]["labels"].update(owner="Jane Doe"))
    with pytest.raises(ConfigError, match=r"spec\.template\.labels: label owner='Jane Doe' is not "
                                          r"a valid label value.*'Jane-Doe'"):
        rt.run(handler="train", dry_run=True)
    bad_key = KubeJobRuntime("training.py", image="repo/img:tag").apply(
        lambda m: m["metadata"]["labels"].update({"my label": "x"}))
    with pytest.raises(ConfigError, match="label key 'my label' is not valid"):
        bad_key.run(handler="train", dry_run=True)


# images and pod security ------------------------------------------------------------------------
_RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                       "persistentVolumeClaim", "projected", "secret"}


def restricted_violations(pod_spec: dict) -> list[str]:
    """What breaks the Pod Security Standard "restricted" profile, rule by rule
    (https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted)."""
    pod_ctx = pod_spec.get("securityContext") or {}
    found = [f"volume {v['name']}" for v in pod_spec.get("volumes") or []
             if not set(v) - {"name"} <= _RESTRICTED_VOLUMES]
    for ctr in pod_spec["containers"]:
        ctx = ctr.get("securityContext") or {}
        if not (ctx.get("runAsNonRoot") or pod_ctx.get("runAsNonRoot")):
            found.append(f"{ctr['name']}: runAsNonRoot")
        if 0 in (ctx.get("runAsUser"), pod_ctx.get("runAsUser")):
            found.append(f"{ctr['name']}: runAsUser 0")
        if ctx.get("allowPrivilegeEscalation") is not False:
            found.append(f"{ctr['name']}: allowPrivilegeEscalation")
        caps = ctx.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []) or set(caps.get("add") or []) - {
                "NET_BIND_SERVICE"}:
            found.append(f"{ctr['name']}: capabilities")
        profile = (ctx.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}).get("type")
        if profile not in ("RuntimeDefault", "Localhost"):
            found.append(f"{ctr['name']}: seccompProfile")
        if ctx.get("privileged"):
            found.append(f"{ctr['name']}: privileged")
    return found


def test_with_security_context_meets_the_restricted_pod_security_standard():
    """Each rule of the "restricted" profile (link in ``restricted_violations``); without the
    call a pod breaks several, so a namespace enforcing it refuses the pods."""
    from mlflowlet.runtimes.mpijob import MPIJobRuntime

    plain = KubeJobRuntime("training.py", image="repo/img:tag").with_volume("/s", empty_dir=True)
    pod = plain.run(handler="train", dry_run=True)["spec"]["template"]["spec"]
    assert restricted_violations(pod)
    secure = KubeJobRuntime("training.py", image="repo/img:tag").with_volume("/s", empty_dir=True)
    job = secure.with_security_context().run(handler="train", dry_run=True)
    assert restricted_violations(job["spec"]["template"]["spec"]) == []
    validate(job)
    mpi = MPIJobRuntime("hvd.py", image="repo/hvd:1").with_security_context(run_as_user=2000)
    mpijob = mpi.run(handler="train", dry_run=True)
    for role, replica in mpijob["spec"]["mpiReplicaSpecs"].items():
        assert restricted_violations(replica["template"]["spec"]) == [], role
    with pytest.raises(ConfigError, match="run_as_user=0 must be an int >= 1"):
        secure.with_security_context(run_as_user=0)
    with pytest.raises(ConfigError, match="seccomp='Unconfined'"):
        secure.with_security_context(seccomp="Unconfined")


def test_a_mutable_tag_is_pulled_always_and_a_digest_keeps_kubernetes_default():
    """"If you would like to always force a pull, you can ... set the imagePullPolicy of the
    container to Always"; without it a node keeps the image it has for a tag pushed again, while
    a digest names one image (https://kubernetes.io/docs/concepts/containers/images/
    #image-pull-policy)."""
    tagged = KubeJobRuntime("t.py", image="repo/img:1.0").run(handler="f", dry_run=True)
    assert tagged["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "Always"
    pinned = KubeJobRuntime("t.py", image="repo/img@sha256:" + "b" * 64)
    ctr = pinned.run(handler="f", dry_run=True)["spec"]["template"]["spec"]["containers"][0]
    assert "imagePullPolicy" not in ctr
    chosen = KubeJobRuntime("t.py", image="repo/img:1.0").with_image_pull_policy("IfNotPresent")
    ctr = chosen.run(handler="f", dry_run=True)["spec"]["template"]["spec"]["containers"][0]
    assert ctr["imagePullPolicy"] == "IfNotPresent"
    with pytest.raises(ConfigError, match="image_pull_policy 'always'"):
        chosen.with_image_pull_policy("always")


def test_image_pull_secrets_reach_every_pod():
    """``imagePullSecrets`` on the pod spec (https://kubernetes.io/docs/concepts/containers/
    images/#specifying-imagepullsecrets-on-a-pod)."""
    from mlflowlet.runtimes.mpijob import MPIJobRuntime

    rt = KubeJobRuntime("t.py", image="repo/img:1").with_image_pull_secrets("regcred", "regcred")
    job = rt.run(handler="f", dry_run=True)
    assert job["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    mpi = MPIJobRuntime("hvd.py", image="repo/hvd:1").with_image_pull_secrets("regcred")
    mpijob = mpi.run(handler="f", dry_run=True)
    for replica in mpijob["spec"]["mpiReplicaSpecs"].values():
        assert replica["template"]["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    with pytest.raises(ConfigError, match="image pull secret 'Reg Cred'"):
        rt.with_image_pull_secrets("Reg Cred")


class _TerminationOnlyCluster(FakeCluster):
    """A pod whose log cannot be read: its outcome is only in its termination message."""

    def next_pods(self):
        from _k8s_fakes import pod_json

        from mlflowlet._termlog import compact_record

        self.tick += 1
        (name, (body, _)), = self.jobs.items()
        env = body["spec"]["template"]["spec"]["containers"][0]["env"]
        meta = json.loads(next(e["value"] for e in env if e["name"] == "MLFLOWLET_EXEC_CONFIG"))[
            "metadata"]
        results = {"accuracy": 0.91, **{f"note_{i}": "n" * 50 for i in range(100)}}
        record = {"metadata": meta, "status": {"state": "completed", "results": results}}
        term = {"exitCode": 0, "reason": "Completed", "message": compact_record(record)}
        return model({"items": [pod_json(f"{name}-0", "Succeeded", terminated=term, job=name)]},
                     "V1PodList")


def test_the_outcome_comes_back_through_the_termination_message_when_the_log_is_lost():
    """The termination message holds at most 4096 bytes and the log fallback only 2048 bytes or
    80 lines, on failure only (https://kubernetes.io/docs/tasks/debug/debug-application/
    determine-reason-pod-failure/#customizing-the-termination-message): the entrypoint writes a
    compact record there, and the runtime stores it, naming what did not fit."""
    cluster = _TerminationOnlyCluster()

    class LostLogs(FakeCoreV1Api):
        def read_namespaced_pod_log(self, *args, **kw):
            raise RuntimeError("log rotated away")

    rt = KubeJobRuntime("training.py", image="repo/img:tag", poll_interval=0.01,
                        batch_api=FakeBatchV1Api(cluster), core_api=LostLogs(cluster))
    run = rt.run(handler="train", watch=False)
    assert run.state == "completed", run.error
    stored = get_run_db().read_run(run.uid, run.metadata.project)
    assert stored["status"]["results"]["accuracy"] == 0.91
    assert "note_0" not in stored["status"]["results"]
    assert "results: more than the 4 KiB" in stored["metadata"]["annotations"][
        "mlflowlet.io/truncated"]
    assert stored["spec"]["handler"] == "train"  # the rest of the record is the submitted run
