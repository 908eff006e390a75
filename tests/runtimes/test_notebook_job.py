"""A notebook (or script) as a Kubernetes job: converted at build time, built once, run.

Images are built by the FAKE docker of ``tests/fake_builders.py`` (no container engine here);
the Job runs on the FAKE cluster of ``_k8s_fakes`` whose kubelet executes the container's command
for real, with the built context's ``files/`` folder standing in for the image's ``/mlflowlet``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

kubernetes_validate = pytest.importorskip("kubernetes_validate")

from _k8s_fakes import FakeBatchV1Api, FakeCluster, FakeCoreV1Api  # noqa: E402

from mlflowlet import get_run_db, new_runner  # noqa: E402
from mlflowlet.errors import ConfigError  # noqa: E402

IMAGE = "registry.example/team/train:1"


def notebook(path: Path, cells: list[tuple[str, list[str], str]]) -> Path:
    """Write an nbformat-4 notebook: (cell type, tags, source) per cell."""
    path.write_text(json.dumps({
        "cells": [{"cell_type": kind, "metadata": {"tags": tags} if tags else {},
                   "source": source.splitlines(keepends=True),
                   **({"outputs": [], "execution_count": None} if kind == "code" else {})}
                  for kind, tags, source in cells],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


TRAIN = [
    ("markdown", [], "# Training"),
    ("code", [], "%matplotlib inline\nimport json"),
    ("code", ["parameters"], "p1 = 1\nlr = 0.5"),
    ("code", [], "from mlflowlet import get_or_create_ctx\n"
                 "context = get_or_create_ctx('train')\n"
                 "context.log_result('accuracy', p1 * lr)\n"
                 "context.log_artifact('model.txt', body=json.dumps([p1, lr]).encode())"),
]


@pytest.fixture
def nb(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return notebook(tmp_path / "train.ipynb", TRAIN)


def test_notebook_job_builds_once_and_its_dry_run_runs_the_converted_script(nb, fake_docker):
    runner = new_runner(kind="job", command="train.ipynb")
    first = runner.build_image(image=IMAGE, requirements=["pandas>=2"])
    assert first.built and not first.reused and runner.image == IMAGE
    script = Path(first.context_dir) / "files" / "train.py"
    assert "p1 = _mlflowlet_context.get_param('p1', p1)" in script.read_text()
    assert "COPY files/ /mlflowlet/" in Path(first.dockerfile).read_text()
    again = runner.build_image(image=IMAGE, requirements=["pandas>=2"])
    assert again.reused and not again.built and len(fake_docker.builds) == 1
    assert "./files/train.py" in fake_docker.built_files(IMAGE)

    job = runner.apply(lambda m: m["metadata"]["labels"].update(team="ml")).run(
        params={"p1": 4}, dry_run=True)
    kubernetes_validate.validate(job, "1.30", strict=True)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == IMAGE and job["metadata"]["labels"]["team"] == "ml"
    assert container["command"] == ["python", "-m", "mlflowlet.entrypoint", "--script",
                                    "train.py"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert json.loads(env["MLFLOWLET_EXEC_CONFIG"])["spec"]["params"] == {"p1": 4}

    changed = runner.build_image(image=IMAGE, requirements=["pandas>=2", "pyarrow"])
    assert changed.built and len(fake_docker.builds) == 2  # other inputs: built again
    forced = runner.build_image(image=IMAGE, requirements=["pandas>=2", "pyarrow"], force=True)
    assert forced.built and len(fake_docker.builds) == 3


def test_notebook_job_runs_on_the_fake_cluster_with_its_params(nb, fake_docker):
    built = new_runner(kind="job", command="train.ipynb").build_image(image=IMAGE)
    cluster = FakeCluster(workdir=str(Path(built.context_dir) / "files"), kubelet=True)
    runner = new_runner(kind="job", command="train.ipynb", batch_api=FakeBatchV1Api(cluster),
                        core_api=FakeCoreV1Api(cluster), poll_interval=0.01)
    runner.build_image(image=IMAGE)  # the same inputs: reused, not built again
    assert len(fake_docker.builds) == 1
    run = runner.run(params={"p1": 4}, watch=False)
    assert run.state == "completed", run.status.error
    assert run.status.results == {"accuracy": 2.0}
    stored = get_run_db().read_run(run.uid, run.metadata.project)
    assert stored["spec"]["params"] == {"p1": 4, "lr": 0.5}  # the notebook's default recorded


def test_with_code_and_requirements_build_on_the_first_run_only(tmp_path, monkeypatch,
                                                                fake_docker):
    monkeypatch.chdir(tmp_path)
    code = "def train(context, p1: int = 1):\n    context.log_result('double', p1 * 2)\n"
    cluster = FakeCluster(workdir=str(tmp_path), kubelet=True)
    runner = new_runner(kind="job", image=IMAGE, batch_api=FakeBatchV1Api(cluster),
                        core_api=FakeCoreV1Api(cluster), poll_interval=0.01)
    runner.with_code(body=code).with_requirements(["numpy"])
    assert runner.command == "handler.py" and fake_docker.builds == []
    cluster.workdir = str(tmp_path / "mlflowlet-build" / "registry-example-team-train-1")
    first = runner.run(handler="train", params={"p1": 3}, watch=False)
    assert first.state == "completed" and first.status.results == {"double": 6}
    second = runner.run(handler="train", params={"p1": 5}, watch=False)
    assert second.status.results == {"double": 10}
    assert len(fake_docker.builds) == 1  # built once, for the first run
    assert runner.deploy().reused


def test_a_script_command_is_copied_into_the_image(tmp_path, monkeypatch, fake_docker):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text("print('hi')\n")
    runner = new_runner(kind="job", command="src/train.py")
    result = runner.build_image(image=IMAGE)
    assert (Path(result.context_dir) / "files" / "src" / "train.py").read_text() == \
        "print('hi')\n"
    job = runner.run(dry_run=True)
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "python", "src/train.py"]


@pytest.mark.parametrize("command, match", [("/abs/train.ipynb", "relative to this folder"),
                                            ("missing.ipynb", "does not exist here")])
def test_build_refuses_code_it_cannot_copy(tmp_path, monkeypatch, command, match):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=match):
        new_runner(kind="job", command=command).build_image(image=IMAGE, dry_run=True)


def test_mlflowlet_image_is_the_default_job_image(monkeypatch):
    monkeypatch.setenv("MLFLOWLET_IMAGE", "registry.example/team/base:3")
    job = new_runner(kind="job", command="training.py").run(handler="train", dry_run=True)
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "registry.example/team/base:3"
