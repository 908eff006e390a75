"""What ``build --source`` copies, the same digest for the same inputs, the Python floor, and the
official runtime image. Builds go through the FAKE docker of ``tests/fake_builders.py``."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from mlflowlet.build import RUNTIME_IMAGE, build_image, build_runtime_image
from mlflowlet.cli import main
from mlflowlet.errors import ConfigError

IMAGE = "registry.example:5000/team/train:1.0"


def _project(root: Path) -> Path:
    """A project folder as a user has it: code, a venv, a run DB, artifacts, git."""
    for rel, body in {"train.py": "def train(context): pass\n", "lib/util.py": "X = 1\n",
                      "run.sh": "#!/bin/sh\necho hi\n", ".git/HEAD": "ref: main\n",
                      ".venv/pyvenv.cfg": "home = /usr\n", ".venv/lib/big.so": "x" * 50_000,
                      "mlflowlet.db": "sqlite", "artifacts/r1/model.pkl": "m" * 20_000,
                      "data/raw.csv": "a,b\n", ".gitignore": "data/\n"}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    (root / "run.sh").chmod(0o755)
    return root


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_build_source_dot_copies_only_the_code_and_stays_the_same(tmp_path, monkeypatch):
    project = _project(tmp_path / "proj")
    monkeypatch.chdir(project)
    results = [build_image(IMAGE, source=".", with_mlflowlet=False, dry_run=True)
               for _ in range(3)]
    assert len({r.digest for r in results}) == 1  # no growth from earlier builds
    ctx = Path(results[-1].context_dir)
    assert ctx.is_relative_to(project / "mlflowlet-build")
    copied = sorted(p.relative_to(ctx / "source").as_posix()
                    for p in (ctx / "source").rglob("*") if p.is_file())
    assert copied == [".gitignore", "lib/util.py", "run.sh", "train.py"]
    assert os.access(ctx / "source" / "run.sh", os.X_OK)  # modes survive the copy
    assert _size(ctx) < 2_000


def test_a_custom_context_dir_inside_the_source_is_not_copied_into_itself(tmp_path):
    project = _project(tmp_path / "proj")
    first = build_image(IMAGE, source=str(project), with_mlflowlet=False, dry_run=True,
                        context_dir=str(project / "out"))
    second = build_image(IMAGE, source=str(project), with_mlflowlet=False, dry_run=True,
                         context_dir=str(project / "out"))
    assert first.digest == second.digest
    assert not (project / "out" / "source" / "out").exists()


def test_same_inputs_same_digest_whatever_the_order_and_times(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, names in ((a, ["x.py", "y.py", "z/w.py"]), (b, ["z/w.py", "y.py", "x.py"])):
        for name in names:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(name)
    os.utime(b / "x.py", (1, 1))
    one = build_image(IMAGE, source=str(a), with_mlflowlet=False, dry_run=True,
                      context_dir=str(tmp_path / "c1"))
    two = build_image(IMAGE, source=str(b), with_mlflowlet=False, dry_run=True,
                      context_dir=str(tmp_path / "c2"))
    assert one.digest == two.digest
    (b / "x.py").chmod(0o755)  # an executable bit is part of what is built
    three = build_image(IMAGE, source=str(b), with_mlflowlet=False, dry_run=True,
                        context_dir=str(tmp_path / "c3"))
    assert three.digest != one.digest


@pytest.mark.parametrize("base", ["python:3.6", "python:3.9-slim", "python:2.7.18",
                                  "docker.io/library/python:3.8-bookworm", "pypy:3.9",
                                  "python:2", "ghcr.io/astral-sh/uv:python3.9-bookworm",
                                  "nvcr.io/team/torch:24.01-py3.8",
                                  "python:3.9@sha256:" + "a" * 64])
def test_a_base_image_with_python_older_than_3_10_is_refused(base):
    with pytest.raises(ConfigError, match=r"needs Python >= 3\.10"):
        build_image(IMAGE, base_image=base, with_mlflowlet=False, dry_run=True)


@pytest.mark.parametrize("base", ["python:3.10", "python:3.11-slim", "python:3", "python",
                                  "python:latest", "ubuntu:22.04", "nvidia/cuda:12.2.0-base",
                                  "localhost:5000/python:3.12"])
def test_base_images_with_a_new_enough_or_unknown_python_pass(tmp_path, base):
    result = build_image(IMAGE, base_image=base, with_mlflowlet=False, dry_run=True,
                         context_dir=str(tmp_path / "c"))
    assert f"FROM {base}" in Path(result.dockerfile).read_text()


def test_runtime_image_context_is_the_packaged_dockerfile(tmp_path):
    result = build_runtime_image(dry_run=True, context_dir=str(tmp_path / "rt"))
    ctx = Path(result.context_dir)
    shipped = Path(__file__).parents[1] / "mlflowlet" / "docker" / "Dockerfile"
    assert (ctx / "Dockerfile").read_text() == shipped.read_text()
    text = shipped.read_text()
    assert "ARG BASE_IMAGE=python:3.11-slim" in text and "ARG MLFLOWLET_EXTRAS=s3,pandas" in text
    pyproject = (ctx / "pyproject.toml").read_text()
    assert re.search(r'^s3 = \["boto3', pyproject, re.M)
    assert re.search(r'^dependencies = \[.*"typer>=0\.12"', pyproject, re.M)
    assert (ctx / "mlflowlet" / "entrypoint.py").is_file() and (ctx / "README.md").is_file()
    assert result.image == RUNTIME_IMAGE


def test_runtime_image_extras_and_base_are_set_in_the_dockerfile(tmp_path):
    result = build_runtime_image("repo/rt:1", base_image="python:3.12-slim", extras=["s3"],
                                 dry_run=True, context_dir=str(tmp_path / "rt"))
    text = Path(result.dockerfile).read_text()
    assert "ARG BASE_IMAGE=python:3.12-slim" in text and "ARG MLFLOWLET_EXTRAS=s3\n" in text
    with pytest.raises(ConfigError, match="unknown mlflowlet extra"):
        build_runtime_image("repo/rt:1", extras=["s4"], dry_run=True)


def test_cli_builds_the_runtime_image_with_the_fake_docker(fake_docker, tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main(["build", "--runtime-image", "registry.example/ml/runtime:1",
              "--context-dir", str(tmp_path / "rt")])
    assert done.value.code in (0, None)
    out = capsys.readouterr().out
    assert "export MLFLOWLET_IMAGE=registry.example/ml/runtime:1" in out
    (call,) = fake_docker.builds
    assert call.startswith("docker build -t registry.example/ml/runtime:1 -f ")
    files = fake_docker.built_files("registry.example/ml/runtime:1")
    assert {"./Dockerfile", "./pyproject.toml", "./README.md", "./mlflowlet/entrypoint.py"} <= \
        set(files)


def test_cli_runtime_image_refuses_user_code_options(capsys):
    with pytest.raises(SystemExit) as done:
        main(["build", "--runtime-image", "--source", "."])
    assert done.value.code == 2 and "--runtime-image builds the official image" in \
        capsys.readouterr().err
