"""build_image: a deterministic context, builder discovery, local builders, kaniko manifests."""

from __future__ import annotations

import base64
import gzip
import io
import os
import sys
import tarfile
from pathlib import Path

import pytest
from fake_builders import write_tool

from mlflowlet.build import build_image, context_tarball, kaniko_manifests
from mlflowlet.errors import ConfigError, RunError

sys.path.insert(0, str(Path(__file__).parent / "runtimes"))  # the shared Kubernetes API fakes

IMAGE = "registry.example:5000/team/train:1.0"


def test_dry_run_writes_a_deterministic_context(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text("def train(): pass\n")
    kw = dict(requirements=["scikit-learn>=1.4", "pandas"], inline_code="def h(): pass\n",
              source=str(src), commands=["echo ready"], dry_run=True)
    first = build_image(IMAGE, context_dir=str(tmp_path / "a"), **kw)
    second = build_image(IMAGE, context_dir=str(tmp_path / "b"), **kw)
    assert first.digest == second.digest and not first.built
    text = Path(first.dockerfile).read_text()
    assert text == Path(second.dockerfile).read_text()
    lines = text.splitlines()
    assert lines[1] == "FROM python:3.11-slim"
    assert "RUN pip install --no-cache-dir -r /mlflowlet/requirements.txt" in lines
    assert "COPY source/ /mlflowlet/" in lines and lines[-1] == "RUN echo ready"
    ctx = Path(first.context_dir)
    assert (ctx / "requirements.txt").read_text() == "scikit-learn>=1.4\npandas\n"
    assert (ctx / "source" / "train.py").is_file() and (ctx / "handler.py").is_file()
    assert (ctx / "_mlflowlet" / "mlflowlet" / "entrypoint.py").is_file()
    assert "pydantic" in (ctx / "_mlflowlet" / "pyproject.toml").read_text()
    changed = build_image(IMAGE, context_dir=str(tmp_path / "c"), **{**kw, "commands": ["true"]})
    assert changed.digest != first.digest


@pytest.mark.parametrize("source, expected", [
    ("git://example.org/team/repo.git#v1.2",
     "RUN git clone --depth 1 --branch v1.2 git://example.org/team/repo.git /tmp/source"),
    ("https://example.org/team/repo", "RUN git clone --depth 1 https://example.org/team/repo "),
    ("https://example.org/src.tar.gz", "ADD https://example.org/src.tar.gz /tmp/source.tar.gz"),
])
def test_remote_sources_are_recorded_in_the_dockerfile(tmp_path, source, expected):
    result = build_image(IMAGE, source=source, with_mlflowlet=False, dry_run=True,
                         context_dir=str(tmp_path / "ctx"))
    assert expected in Path(result.dockerfile).read_text()


def test_a_local_tarball_source_is_added(tmp_path):
    tar = tmp_path / "code.tar.gz"
    tar.write_bytes(gzip.compress(b"not really a tar"))
    result = build_image(IMAGE, source=str(tar), with_mlflowlet=False, dry_run=True,
                         context_dir=str(tmp_path / "ctx"))
    assert "ADD source.tar.gz /mlflowlet/" in Path(result.dockerfile).read_text()
    assert (Path(result.context_dir) / "source.tar.gz").read_bytes() == tar.read_bytes()


@pytest.mark.parametrize("kwargs, match", [
    ({"image": "Team/Train:1"}, "not a valid image reference"),
    ({"image": IMAGE, "base_image": "python::3"}, "base_image"),
    ({"image": IMAGE, "source": "ftp://host/x"}, "source 'ftp://host/x'"),
    ({"image": IMAGE, "source": "no/such/dir"}, "neither a folder"),
    ({"image": IMAGE, "requirements": "missing.txt"}, "requirements file"),
    ({"image": IMAGE, "builder": "kubectl"}, "builder 'kubectl'"),
])
def test_bad_build_input_is_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        build_image(dry_run=True, with_mlflowlet=False, **kwargs)


def test_no_builder_lists_what_was_looked_for_and_the_dockerfile(bare_path, tmp_path):
    write_tool(bare_path, "docker", 'echo "Cannot connect to the Docker daemon" >&2; exit 1')
    with pytest.raises(ConfigError) as err:
        build_image(IMAGE, with_mlflowlet=False, context_dir=str(tmp_path / "ctx"))
    text = str(err.value)
    assert "docker: `docker info` failed: Cannot connect to the Docker daemon" in text
    assert "podman: not on PATH" in text and "buildah: not on PATH" in text
    assert "kaniko: no Kubernetes config" in text
    assert str(tmp_path / "ctx" / "Dockerfile") in text
    assert (tmp_path / "ctx" / "Dockerfile").is_file()


def test_podman_builds_and_pushes_when_docker_has_no_engine(bare_path, tmp_path):
    write_tool(bare_path, "docker", "exit 1")
    write_tool(bare_path, "podman", "exit 0")
    result = build_image(IMAGE, with_mlflowlet=False, push=True, context_dir=str(tmp_path / "c"))
    assert (result.builder, result.built, result.pushed) == ("podman", True, True)
    calls = (bare_path / "calls.log").read_text().splitlines()
    ctx = tmp_path / "c"
    assert calls[-2:] == [f"podman build -t {IMAGE} -f {ctx}/Dockerfile {ctx}",
                          f"podman push {IMAGE}"]


def test_a_failing_build_is_a_run_error(bare_path, tmp_path):
    write_tool(bare_path, "buildah",
               'case "$1" in version) exit 0;; esac; echo "step 3 failed" >&2; exit 2')
    with pytest.raises(RunError, match=r"`buildah bud` failed \(exit code 2\): step 3 failed"):
        build_image(IMAGE, with_mlflowlet=False, builder="buildah",
                    context_dir=str(tmp_path / "c"))


def test_kaniko_manifests_are_valid_and_carry_the_context(tmp_path):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    result = build_image(IMAGE, requirements=["numpy"], dry_run=True,
                         context_dir=str(tmp_path / "c"))
    config, job = kaniko_manifests(IMAGE, Path(result.context_dir), "builds", "regcred", True)
    for manifest in (config, job):
        kubernetes_validate.validate(manifest, "1.30", strict=True)
    raw = base64.b64decode(config["binaryData"]["context.tar.gz"])
    assert raw == context_tarball(Path(result.context_dir))  # reproducible bytes
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        assert "Dockerfile" in tar.getnames() and "requirements.txt" in tar.getnames()
    pod = job["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert f"--destination={IMAGE}" in args and "--no-push" not in args
    assert pod["volumes"][1]["secret"] == {
        "secretName": "regcred", "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}
    assert job["metadata"]["namespace"] == "builds" and pod["restartPolicy"] == "Never"


def test_kaniko_refuses_a_context_over_a_configmap(tmp_path):
    pytest.importorskip("kubernetes")
    src = tmp_path / "big"
    src.mkdir()
    (src / "blob.bin").write_bytes(os.urandom(1_200_000))
    result = build_image(IMAGE, source=str(src), with_mlflowlet=False, dry_run=True,
                         context_dir=str(tmp_path / "c"))
    with pytest.raises(ConfigError, match="at most 1 MiB"):
        kaniko_manifests(IMAGE, Path(result.context_dir))


def test_kaniko_build_submits_and_waits(tmp_path, monkeypatch):
    pytest.importorskip("kubernetes")
    from _k8s_fakes import FakeBatchV1Api, FakeCluster, FakeCoreV1Api

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    cluster = FakeCluster(final={"type": "Complete", "status": "True"})
    cluster.tick = 1  # the build Job shows as complete at once
    result = build_image(IMAGE, with_mlflowlet=False, builder="kaniko", push=True,
                         context_dir=str(tmp_path / "c"), batch_api=FakeBatchV1Api(cluster),
                         core_api=FakeCoreV1Api(cluster), poll_interval=0.01)
    assert (result.builder, result.built) == ("kaniko", True)
    (name,) = cluster.jobs
    assert name in cluster.config_maps and name.startswith("build-")


def test_cli_build_dry_run(tmp_path, capsys):
    from mlflowlet.cli import main

    with pytest.raises(SystemExit) as done:
        main(["build", IMAGE, "-r", "numpy", "--no-with-mlflowlet", "--dry-run",
              "--context-dir", str(tmp_path / "ctx")])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert f"dockerfile: {tmp_path / 'ctx' / 'Dockerfile'}" in out and "not built" in out
