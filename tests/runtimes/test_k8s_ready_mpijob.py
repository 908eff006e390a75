"""MPIJobs as the MPI operator runs them (#20), each fix with the upstream source it follows.

Sources are mpi-operator v0.8.2 (``git show v0.8.2:<path>`` in github.com/kubeflow/mpi-operator)
and Open MPI's mpirun(1); manifests are validated against the whole MPIJob CRD of that release.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("kubernetes_validate")
pytest.importorskip("jsonschema")

from _crd import validate  # noqa: E402

from mlflowlet import get_run_db, new_task  # noqa: E402
from mlflowlet.entrypoint import RUN_JSON_MARKER  # noqa: E402
from mlflowlet.errors import ConfigError  # noqa: E402
from mlflowlet.runtimes.mpijob import MPIJobRuntime  # noqa: E402


def _mpijob(command="hvd.py", handler="train", **kw):
    rt = MPIJobRuntime(command, image="repo/hvd:1", **kw)
    return rt, rt.run(new_task(name="hvd"), handler=handler, dry_run=True)


def test_the_launcher_waits_for_ready_workers():
    """``launcherCreationPolicy: WaitForWorkersReady`` "makes Launcher creation postponed until
    all workers are in ready state so that the Launcher does not fail trying to connect to
    worker" (types.go lines 162-165; mpi_job_controller.go line 678 creates the launcher only
    then). Without it the launcher's mpirun raced the workers' sshd."""
    _, job = _mpijob()
    assert job["spec"]["launcherCreationPolicy"] == "WaitForWorkersReady"
    validate(job)


def test_restart_policy_is_set_per_replica_not_in_the_pod_templates():
    """"Restart policy in pod template overridden by restart policy in replica spec"
    (mpi_job_controller.go lines 1638-1645: a warning event; types.go lines 354-361)."""
    _, job = _mpijob()
    for role, replica in job["spec"]["mpiReplicaSpecs"].items():
        assert replica["restartPolicy"] == "Never", role
        assert "restartPolicy" not in replica["template"]["spec"], role


def _rank(tmp_path, command, rank):
    env = {**os.environ, "OMPI_COMM_WORLD_RANK": str(rank),
           "MLFLOWLET_DBPATH": str(tmp_path / f"db{rank}")}
    spec = {"metadata": {"name": "hvd", "uid": "u1", "project": "p"},
            "spec": {"command": "hvd.py"}}
    env["MLFLOWLET_EXEC_CONFIG"] = json.dumps(spec)
    argv = [sys.executable if a == "python" else a for a in command]
    return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)


def test_a_script_runs_through_the_entrypoint_so_only_rank_zero_records_it(tmp_path):
    """Every rank ran ``python hvd.py``, so each recorded a run of its own and none reported
    back; through the entrypoint only rank 0 records (``mpi_rank()``) and prints the record."""
    (tmp_path / "hvd.py").write_text(textwrap.dedent("""
        import os
        from mlflowlet import get_or_create_ctx
        ctx = get_or_create_ctx("hvd")
        ctx.log_result("rank_seen", int(os.environ["OMPI_COMM_WORLD_RANK"]))
    """))
    rt = MPIJobRuntime("hvd.py", image="repo/hvd:1")
    job = rt.run(new_task(name="hvd"), dry_run=True)
    command = job["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]["containers"][0][
        "command"]
    rank_command = command[command.index("python"):]
    assert rank_command == ["python", "-m", "mlflowlet.entrypoint", "--script", "hvd.py"]
    other = _rank(tmp_path, rank_command, 1)
    assert other.returncode == 0, other.stderr
    assert RUN_JSON_MARKER not in other.stdout and not (tmp_path / "db1").exists()
    zero = _rank(tmp_path, rank_command, 0)
    assert zero.returncode == 0, zero.stderr
    assert zero.stdout.strip().splitlines()[-1].startswith(RUN_JSON_MARKER)
    assert get_run_db(str(tmp_path / "db0")).read_run("u1", "p")["status"]["results"] == {
        "rank_seen": 0}


def test_a_script_with_arguments_is_refused_naming_why():
    with pytest.raises(ConfigError, match="passes no arguments; read them as params"):
        _mpijob(command="hvd.py --epochs 3", handler=None)


def test_whole_secrets_reach_every_rank_through_mpirun_x(tmp_path):
    """A rank on a worker is started by sshd and gets only what ``mpirun -x`` exports (Open MPI
    mpirun(1), https://docs.open-mpi.org/en/v5.0.x/man-openmpi/man1/mpirun.1.html); an
    ``envFrom`` Secret's keys are known only in the pod, where a Secret volume holds one file
    per key (https://kubernetes.io/docs/concepts/configuration/secret/#using-secrets-as-files-from-a-pod).
    The launcher's shell runs for real here, with the Secret's files and a stand-in mpirun."""
    rt = MPIJobRuntime("hvd.py", image="repo/hvd:1").with_secret_env("s3-creds")
    task = new_task(name="hvd").with_secrets("inline", {"TOKEN": "t0k"})
    job = rt.run(task, handler="train", dry_run=True)
    validate(job)
    launcher = job["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]
    ctr = launcher["containers"][0]
    assert launcher["volumes"] == [{"name": "env-s3-creds", "secret": {"secretName": "s3-creds"}}]
    assert ctr["volumeMounts"] == [{"mountPath": "/etc/mlflowlet/env/s3-creds",
                                    "name": "env-s3-creds", "readOnly": True}]
    assert ctr["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
    secret_dir = tmp_path / "etc/mlflowlet/env/s3-creds"
    secret_dir.mkdir(parents=True)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        (secret_dir / key).write_text("value")
    (secret_dir / "..data").mkdir()  # the kubelet's atomic-writer folder is not a key
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "mpirun"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    command = [a.replace("/etc/mlflowlet", str(tmp_path / "etc/mlflowlet")) for a in ctr["command"]]
    out = subprocess.run(command, env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
                         capture_output=True, text=True, timeout=30, check=True).stdout.split("\n")
    exported = {out[i + 1] for i, arg in enumerate(out) if arg == "-x"}
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOWLET_EXEC_CONFIG",
            "MLFLOWLET_EXEC_SECRETS"} <= exported
    assert "..data" not in exported
    assert out[out.index("python"):out.index("python") + 3] == ["python", "-m",
                                                                "mlflowlet.entrypoint"]


def test_non_root_pods_use_the_operators_non_root_sshd_and_key_path():
    """mpi-operator's non-root example runs ``sshd -De -f /home/mpiuser/.sshd_config`` as uid
    1000 with ``sshAuthMountPath: /home/mpiuser/.ssh`` (examples/v2beta1/pi/pi.yaml;
    build/base/Dockerfile creates ``mpiuser`` and that sshd_config)."""
    rt = MPIJobRuntime("hvd.py", image="repo/hvd:1").with_security_context()
    job = rt.run(new_task(name="hvd"), handler="train", dry_run=True)
    validate(job)
    assert job["spec"]["sshAuthMountPath"] == "/home/mpiuser/.ssh"
    worker = job["spec"]["mpiReplicaSpecs"]["Worker"]["template"]["spec"]
    assert worker["containers"][0]["command"] == ["/usr/sbin/sshd", "-De", "-f",
                                                  "/home/mpiuser/.sshd_config"]
    assert worker["securityContext"]["runAsUser"] == 1000
    launcher = job["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]["containers"][0]
    assert "--allow-run-as-root" not in launcher["command"]
