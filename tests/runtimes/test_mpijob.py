"""The MPIJob runtime: a schema-valid MPIJob, the launcher's mpirun line, rank-0 recording."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

kubernetes_validate = pytest.importorskip("kubernetes_validate")
jsonschema = pytest.importorskip("jsonschema")

from _crd import validate  # noqa: E402
from _k8s_fakes import (  # noqa: E402
    FakeCluster,
    FakeCoreV1Api,
    FakeCustomObjectsApi,
    pod_json,
)

from mlflowlet import get_run_db, new_runner, new_task  # noqa: E402
from mlflowlet.entrypoint import RUN_JSON_MARKER  # noqa: E402
from mlflowlet.errors import ConfigError  # noqa: E402
from mlflowlet.runtimes.mpijob import MPIJobRuntime  # noqa: E402


def _check(manifest):
    validate(manifest)  # the whole MPIJob CRD of mpi-operator v0.8.2, strict


def test_mpijob_manifest_matches_the_crd_and_runs_mpirun():
    rt = new_runner(kind="mpijob", command="train_hvd.py", image="repo/hvd:1", replicas=2,
                    slots_per_worker=4, mpi_args=["-x", "NCCL_DEBUG=INFO"])
    rt.with_limits(cpu="8", memory="32Gi", gpus=4)
    task = new_task(params={"epochs": 2}).with_secrets("inline", {"KEY": "v4lue-secret"})
    mpijob = rt.run(task, handler="train", dry_run=True, timeout=600)
    _check(mpijob)
    assert "v4lue-secret" not in json.dumps(mpijob)
    spec = mpijob["spec"]
    assert spec["slotsPerWorker"] == 4 and spec["runPolicy"]["activeDeadlineSeconds"] == 600
    launcher = spec["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]["containers"][0]
    worker_spec = spec["mpiReplicaSpecs"]["Worker"]
    worker = worker_spec["template"]["spec"]["containers"][0]
    assert worker_spec["replicas"] == 2
    cmd = launcher["command"]
    assert cmd[:4] == ["mpirun", "--allow-run-as-root", "-np", "8"]
    assert cmd[-3:] == ["python", "-m", "mlflowlet.entrypoint"]
    forwarded = {cmd[i + 1] for i, x in enumerate(cmd) if x == "-x"}
    assert {"MLFLOWLET_EXEC_CONFIG", "MLFLOWLET_EXEC_SECRETS", "NCCL_DEBUG=INFO"} <= forwarded
    assert "resources" not in launcher  # GPUs go to the workers only
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert worker["command"] == ["/usr/sbin/sshd", "-De"]


def test_an_mpijob_override_that_breaks_a_pod_template_names_the_path():
    rt = MPIJobRuntime("t.py", image="repo/hvd:1")
    rt.apply(lambda m: m["spec"]["mpiReplicaSpecs"]["Worker"]["template"]["spec"].update(
        containers="sshd"))
    with pytest.raises(ConfigError, match=r"spec\.mpiReplicaSpecs\.Worker\.template\.spec"):
        rt.run(handler="train", dry_run=True)


def test_bad_mpijob_options_are_refused():
    with pytest.raises(ConfigError, match="replicas"):
        MPIJobRuntime("t.py", image="repo/hvd:1", replicas=0)
    with pytest.raises(ConfigError, match="one iteration"):
        MPIJobRuntime("t.py", image="repo/hvd:1").run(
            new_task().with_hyper_params({"a": [1, 2]}), handler="f", dry_run=True)


def _entrypoint(tmp_path, rank):
    (tmp_path / "hvd.py").write_text(textwrap.dedent("""
        import os
        def train(context):
            context.log_result("rank_seen", int(os.environ.get("OMPI_COMM_WORLD_RANK", -1)))
    """))
    spec = {"metadata": {"name": "hvd", "uid": "u1", "project": "p"},
            "spec": {"handler": "train", "command": "hvd.py"}}
    env = {**os.environ, "MLFLOWLET_EXEC_CONFIG": json.dumps(spec),
           "OMPI_COMM_WORLD_RANK": str(rank), "MLFLOWLET_DBPATH": str(tmp_path / "db")}
    return subprocess.run([sys.executable, "-m", "mlflowlet.entrypoint"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_only_rank_zero_records_the_run(tmp_path):
    other = _entrypoint(tmp_path, 1)
    assert other.returncode == 0, other.stderr
    assert RUN_JSON_MARKER not in other.stdout
    assert not (tmp_path / "db").exists()  # rank 1 wrote to a throwaway DB
    zero = _entrypoint(tmp_path, 0)
    assert zero.stdout.strip().splitlines()[-1].startswith(RUN_JSON_MARKER)
    stored = get_run_db(str(tmp_path / "db")).read_run("u1", "p")
    assert stored["status"]["results"] == {"rank_seen": 0}


class _LauncherRunningCustomApi(FakeCustomObjectsApi):
    """Runs the launcher's program as rank 0 would (mpirun itself is not here)."""

    def create_namespaced_custom_object(self, group, version, namespace, plural, body, **kw):
        launcher = body["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]
        ctr = launcher["containers"][0]
        env = {**os.environ, "OMPI_COMM_WORLD_RANK": "0"}
        env.pop("MLFLOWLET_DBPATH")
        env.update({e["name"]: e["value"] for e in ctr["env"] if "value" in e})
        argv = [sys.executable if a == "python" else a for a in ctr["command"][-3:]]
        proc = subprocess.run(argv, cwd=self.cluster.workdir, env=env, capture_output=True,
                              timeout=120)
        self.cluster.logs["hvd-launcher-x"] = b"rank 0 says hi\n" + proc.stdout + proc.stderr
        return super().create_namespaced_custom_object(group, version, namespace, plural, body)


def test_mpijob_watch_reads_the_launcher_log(tmp_path):
    (tmp_path / "hvd.py").write_text(textwrap.dedent("""
        import os
        def train(context):
            context.log_result("rank_seen", int(os.environ.get("OMPI_COMM_WORLD_RANK", -1)))
    """))
    cluster = FakeCluster(workdir=tmp_path,
                          frames=[[pod_json("hvd-launcher-x", "Running")],
                                  [pod_json("hvd-launcher-x", "Succeeded",
                                            terminated={"exitCode": 0, "reason": "Completed"})]])
    custom = _LauncherRunningCustomApi(cluster, [{}, {"conditions": [
        {"type": "Succeeded", "status": "True"}]}])
    rt = MPIJobRuntime("hvd.py", image="repo/hvd:1", poll_interval=0.01,
                       core_api=FakeCoreV1Api(cluster), custom_api=custom)
    run = rt.run(handler="train", watch=False)
    assert run.state == "completed" and run.status.results == {"rank_seen": 0}
    log = get_run_db().get_log(run.uid, run.metadata.project).decode()
    assert "rank 0 says hi" in log
    assert "training.kubeflow.org/job-role=launcher" in cluster.selector
    (group, version, plural, body), = cluster.custom.values()
    assert (group, version, plural) == ("kubeflow.org", "v2beta1", "mpijobs")
    _check(body)


def test_a_failed_mpijob_is_a_run_error():
    cluster = FakeCluster(frames=[[pod_json("l-0", "Pending")], [pod_json("l-0", "Pending")]])
    custom = FakeCustomObjectsApi(cluster, [{}, {"conditions": [
        {"type": "Failed", "status": "True", "reason": "MPIJobFailed",
         "message": "launcher pod failed"}]}])
    rt = MPIJobRuntime("hvd.py", image="repo/hvd:1", poll_interval=0.01,
                       core_api=FakeCoreV1Api(cluster), custom_api=custom)
    run = rt.run(handler="train", watch=False, raise_on_error=False)
    assert run.state == "error"
    assert "MPIJobFailed: launcher pod failed" in run.status.error


def test_example_prints_an_mpijob_and_a_spark_application(examples_dir):
    import subprocess
    import sys

    import yaml

    out = subprocess.run([sys.executable, "mpi_spark.py"], cwd=examples_dir, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert [(d["apiVersion"], d["kind"]) for d in docs] == [
        ("kubeflow.org/v2beta1", "MPIJob"), ("sparkoperator.k8s.io/v1beta2", "SparkApplication")]
    assert docs[0]["spec"]["mpiReplicaSpecs"]["Worker"]["replicas"] == 2
