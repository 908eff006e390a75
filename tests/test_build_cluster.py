"""Images that fit the runtime and builds that clean up after themselves (#20).

The ``mpi`` and ``spark`` presets of ``build_image`` against the images their operators expect,
the example's build holding its script, and the kaniko Job's deadline, resources, owner and
clean-up (against the synthesised-response fakes of ``tests/runtimes/_k8s_fakes.py``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent / "runtimes"))  # the shared Kubernetes API fakes

from mlflowlet.build import PRESETS, build_image, kaniko_manifests
from mlflowlet.errors import ConfigError, RunError

IMAGE = "registry.example:5000/team/train:1.0"
DIGEST = "sha256:" + "e" * 64


def _dockerfile(tmp_path, **kw) -> str:
    result = build_image(IMAGE, dry_run=True, context_dir=str(tmp_path / "ctx"), **kw)
    return Path(result.dockerfile).read_text()


def test_the_mpi_preset_has_open_mpi_and_sshd_as_the_operators_base_image(tmp_path):
    """mpi-operator v0.8.2 ``build/base/Dockerfile`` (openssh-server/-client, sshd on port 2222,
    StrictHostKeyChecking off, UserKnownHostsFile /dev/null, StrictModes no, ``mpiuser`` with its
    own sshd_config) and ``build/base/openmpi.Dockerfile`` (``openmpi-bin``); a bare Python image
    has no mpirun and no sshd, so the launcher and the workers could not start."""
    text = _dockerfile(tmp_path, preset="mpi")
    assert text.splitlines()[1] == "FROM python:3.11-slim-bookworm"
    for needed in ("openmpi-bin", "openssh-server", "openssh-client", "mkdir -p /var/run/sshd",
                   "UserKnownHostsFile /dev/null", "StrictHostKeyChecking", "Port 2222",
                   "useradd -m -u 1000 mpiuser", "HostKey /home/mpiuser/.ssh/id_rsa",
                   "StrictModes no"):
        assert needed in text, needed
    assert text.index("openmpi-bin") < text.index("pip install")  # system packages first


def test_an_mpijob_runner_builds_on_the_mpi_preset(tmp_path, monkeypatch):
    from mlflowlet import new_runner

    monkeypatch.chdir(tmp_path)
    (tmp_path / "hvd.py").write_text("def train(context):\n    pass\n")
    runner = new_runner(kind="mpijob", command="hvd.py", image=IMAGE)
    result = runner.build_image(dry_run=True, context_dir=str(tmp_path / "ctx"))
    text = Path(result.dockerfile).read_text()
    assert "FROM python:3.11-slim-bookworm" in text and "openmpi-bin" in text
    assert (tmp_path / "ctx" / "files" / "hvd.py").is_file()
    own = runner.build_image(dry_run=True, base_image="ghcr.io/team/mpi:1",
                             context_dir=str(tmp_path / "own"))
    assert "FROM ghcr.io/team/mpi:1" in Path(own.dockerfile).read_text()


def test_the_spark_preset_is_the_official_image_with_a_supported_python(tmp_path):
    """apache/spark-docker ``3.5.5/scala2.12-java17-python3-ubuntu/Dockerfile``: FROM the java17
    Ubuntu 22.04 image (Python 3.10; the java11 ones are Ubuntu 20.04 with Python 3.8, below
    mlflowlet's 3.10), runs as ``spark`` with ``/opt/entrypoint.sh`` as its entrypoint, which
    this build keeps. The driver's main file is copied to SparkRuntime's DEFAULT_MAIN_FILE."""
    from mlflowlet.runtimes.spark import DEFAULT_MAIN_FILE

    text = _dockerfile(tmp_path, preset="spark")
    lines = text.splitlines()
    assert lines[1] == "FROM apache/spark:3.5.5-scala2.12-java17-python3-ubuntu"
    assert lines[2] == "USER root" and lines[-1] == "USER spark"
    assert "ENTRYPOINT" not in text and "python3 -m pip install" in text
    copy = next(ln for ln in lines if "spark_main.py" in ln)[len("RUN "):]
    target = DEFAULT_MAIN_FILE[len("local://"):]
    assert target == "/opt/mlflowlet/spark_main.py" and target in copy
    # the RUN line itself, run here against this installation
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "python3"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    script = copy.replace("/opt/mlflowlet", str(tmp_path / "opt"))
    subprocess.run(["sh", "-c", script], check=True, timeout=60,
                   env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    import mlflowlet.runtimes._spark_main as main

    assert (tmp_path / "opt" / "spark_main.py").read_bytes() == Path(main.__file__).read_bytes()


def test_a_preset_builds_with_a_builder(fake_docker, tmp_path):
    for name in sorted(PRESETS):
        result = build_image(IMAGE, preset=name, context_dir=str(tmp_path / name))
        assert result.built, name
    with pytest.raises(ConfigError, match="preset 'cuda' is not one of mpi, spark"):
        build_image(IMAGE, preset="cuda", dry_run=True, context_dir=str(tmp_path / "x"))


def test_the_k8s_job_example_builds_an_image_holding_its_script(tmp_path, examples_dir):
    """The example's image must hold ``training.py`` where the Job runs it (the working
    directory): ``--code`` put it at ``handler.py``, so the Job found no ``training.py``."""
    example = examples_dir / "k8s_job.py"
    docstring = example.read_text().split('"""')[1]
    assert "--code" not in docstring
    proc = subprocess.run([sys.executable, "k8s_job.py", "--build", "--dry-run"],
                          cwd=examples_dir, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    context = Path(re.search(r"context: (\S+)", proc.stdout)[1])
    assert (context / "files" / "training.py").read_text() == (
        examples_dir / "training.py").read_text()
    assert "COPY files/ /mlflowlet/" in (context / "Dockerfile").read_text()


# kaniko ------------------------------------------------------------------------------------------
def _kaniko_parts(tmp_path, push=True, **kw):
    pytest.importorskip("kubernetes")
    result = build_image(IMAGE, with_mlflowlet=False, dry_run=True,
                         context_dir=str(tmp_path / "ctx"))
    return kaniko_manifests(IMAGE, Path(result.context_dir), "builds", "", push, **kw)


def test_the_kaniko_job_has_a_deadline_resources_and_reports_the_digest(tmp_path):
    """A Job without ``activeDeadlineSeconds`` runs until it ends
    (https://kubernetes.io/docs/concepts/workloads/controllers/job/#job-termination-and-cleanup);
    kaniko's ``--image-name-with-digest-file`` writes the pushed image's name with its digest
    (https://github.com/GoogleContainerTools/kaniko#flag---image-name-with-digest-file), which in
    ``/dev/termination-log`` becomes the pod's termination message."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    config, job = _kaniko_parts(tmp_path, timeout=900)
    for manifest in (config, job):
        kubernetes_validate.validate(manifest, "1.30", strict=True)
    assert job["spec"]["activeDeadlineSeconds"] == 900
    ctr = job["spec"]["template"]["spec"]["containers"][0]
    assert ctr["resources"] == {"limits": {"memory": "4Gi"},
                                "requests": {"cpu": "500m", "memory": "1Gi"}}
    assert "--image-name-with-digest-file=/dev/termination-log" in ctr["args"]
    _, local = _kaniko_parts(tmp_path, push=False)
    assert "--no-push" in local["spec"]["template"]["spec"]["containers"][0]["args"]


def _kaniko_cluster(final, message=""):
    from _k8s_fakes import FakeCluster, pod_json

    term = {"exitCode": 0 if final == "Complete" else 1, "reason": "Completed",
            "message": message} if final else None
    frames = [[pod_json("build-pod", "Succeeded" if final == "Complete" else "Failed",
                        terminated=term, container="kaniko")]] if final else [[]]
    cluster = FakeCluster(frames=frames,
                          final={"type": final, "status": "True"} if final else None)
    cluster.tick = 1
    return cluster


def _kaniko_build(tmp_path, cluster, batch=None, **kw):
    from _k8s_fakes import FakeBatchV1Api, FakeCoreV1Api

    return build_image(IMAGE, with_mlflowlet=False, builder="kaniko", push=True,
                       context_dir=str(tmp_path / "c"), batch_api=batch or FakeBatchV1Api(cluster),
                       core_api=FakeCoreV1Api(cluster), poll_interval=0.01, **kw)


def test_a_kaniko_build_is_pinned_by_digest_and_cleans_up_its_context(tmp_path, monkeypatch):
    """The context ConfigMap is owned by the Job (deleted with it by the garbage collector,
    https://kubernetes.io/docs/concepts/architecture/garbage-collection/#owners-dependents) and
    deleted as soon as the build ended; a runner then runs the image by digest."""
    pytest.importorskip("kubernetes")
    from mlflowlet import new_runner

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    repo = IMAGE.rsplit(":", 1)[0]
    cluster = _kaniko_cluster("Complete", f"{repo}@{DIGEST}\n")
    from _k8s_fakes import FakeBatchV1Api, FakeCoreV1Api

    (tmp_path / "training.py").write_text("def train(context):\n    pass\n")
    monkeypatch.chdir(tmp_path)
    runner = new_runner(kind="job", command="training.py", image=IMAGE)
    result = runner.build_image(builder="kaniko", push=True, context_dir=str(tmp_path / "c"),
                                batch_api=FakeBatchV1Api(cluster), core_api=FakeCoreV1Api(cluster),
                                poll_interval=0.01)
    assert result.image_ref == f"{repo}@{DIGEST}" and runner.image == result.image_ref
    (name,) = cluster.jobs
    owner = dict(cluster.patches)[name]["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("Job", name)
    assert ("ConfigMap", name, None) in cluster.deleted
    job = runner.run(handler="train", dry_run=True)
    ctr = job["spec"]["template"]["spec"]["containers"][0]
    assert ctr["image"] == f"{repo}@{DIGEST}" and "imagePullPolicy" not in ctr


def test_a_failed_kaniko_build_deletes_its_context(tmp_path, monkeypatch):
    pytest.importorskip("kubernetes")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    cluster = _kaniko_cluster("Failed")
    with pytest.raises(RunError, match="the kaniko Job build-.* failed"):
        _kaniko_build(tmp_path, cluster)
    (name,) = cluster.jobs
    assert ("ConfigMap", name, None) in cluster.deleted


def test_a_kaniko_build_past_its_timeout_deletes_the_job_and_its_context(tmp_path, monkeypatch):
    pytest.importorskip("kubernetes")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    cluster = _kaniko_cluster(None)
    with pytest.raises(RunError, match=r"did not finish within 0\.05 s \(deleted\)"):
        _kaniko_build(tmp_path, cluster, timeout=0.05)
    (name,) = cluster.jobs
    assert {("Job", name, "Background"), ("ConfigMap", name, None)} <= set(cluster.deleted)


def test_a_refused_kaniko_job_leaves_no_config_map(tmp_path, monkeypatch):
    pytest.importorskip("kubernetes")
    from _k8s_fakes import FakeBatchV1Api
    from kubernetes.client.exceptions import ApiException

    class Refusing(FakeBatchV1Api):
        def create_namespaced_job(self, namespace, body, **kw):
            raise ApiException(status=403, reason="Forbidden")

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    cluster = _kaniko_cluster(None)
    with pytest.raises(RunError, match="403 Forbidden"):
        _kaniko_build(tmp_path, cluster, batch=Refusing(cluster))
    (name,) = cluster.config_maps
    assert cluster.deleted == [("ConfigMap", name, None)]
