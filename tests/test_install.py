"""The base install works: a wheel of this checkout in a fresh virtual environment, with only the
base dependencies, gives a working ``mlflowlet`` command; commands needing an extra name it.

Offline and fast: the wheel is built by pip from a copy of the sources (PEP 517, setuptools, no
build isolation), installed with pip into a fresh ``venv``, and the base dependencies, with what
they need in turn (markers evaluated), are copied from this environment's installed
distributions: exactly what ``pip install mlflowlet`` would resolve, without the network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from importlib.metadata import Distribution, distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parents[1]
pytestmark = pytest.mark.slow


def _closure(requirements: list[str]) -> list[Distribution]:
    """The installed distributions ``requirements`` need, transitively (no extras of ours)."""
    seen: dict[str, Distribution] = {}
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        dist = distribution(req.name)
        assert dist.version in req.specifier or not req.specifier, (req, dist.version)
        seen[name] = dist
        todo += [Requirement(r) for r in dist.requires or []]
        for extra in req.extras:  # e.g. a dependency's own extra
            todo += [Requirement(r) for r in dist.requires or []
                     if Requirement(r).marker and Requirement(r).marker.evaluate({"extra": extra})]
    return list(seen.values())


def _copy_into(dist: Distribution, site: Path) -> None:
    for rel in dist.files or []:
        source = Path(dist.locate_file(rel))
        if rel.parts[0] in ("..",) or not source.is_file():
            continue  # console scripts live in bin/: the fresh venv needs none of theirs
        target = site / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    """A fresh venv with this checkout's wheel and the base dependencies only."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "mlflowlet", src / "mlflowlet",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"),
                    str(src)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp / "dist").glob("mlflowlet-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True, timeout=300)
    site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip())
    base = [r for r in distribution("mlflowlet").requires or [] if "extra ==" not in r]
    for dist in _closure(base):
        _copy_into(dist, site)
    return venv


def _run(venv: Path, *argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOWLET_", "PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}/usr/bin:/bin"
    return subprocess.run(list(argv), cwd=cwd or venv, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_fresh_venv_has_only_the_base_install(fresh):
    proc = _run(fresh, str(fresh / "bin" / "python"), "-c",
                "import mlflowlet, typer, rich, pydantic, sys; print(mlflowlet.__file__)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(str(fresh)) and sysconfig.get_paths()["purelib"] not in \
        proc.stdout
    for extra_module in ("kfp", "hera", "distributed", "fastapi", "boto3", "pandas"):
        gone = _run(fresh, str(fresh / "bin" / "python"), "-c", f"import {extra_module}")
        assert gone.returncode != 0, f"{extra_module} leaked into the fresh venv"


def test_mlflowlet_help_works_after_a_plain_install(fresh):
    proc = _run(fresh, str(fresh / "bin" / "mlflowlet"), "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage: mlflowlet" in proc.stdout and "compile" in proc.stdout
    assert _run(fresh, str(fresh / "bin" / "mlflowlet"), "version").stdout.strip() == \
        f"mlflowlet {distribution('mlflowlet').version}"


def test_a_tracked_run_works_with_the_base_install(fresh, tmp_path):
    (tmp_path / "h.py").write_text("def h(context, p1: int = 1):\n    return p1 * 2\n")
    proc = _run(fresh, str(fresh / "bin" / "mlflowlet"), "run", "h.py:h", "-p", "p1=21",
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "return=42" in proc.stdout


@pytest.mark.parametrize("argv, extra", [
    (["compile", "pipe.py:pipe", "--target", "kfp", "--image", "repo/img:1"], "kfp"),
    (["compile", "pipe.py:pipe", "--target", "argo", "--image", "repo/img:1"], "argo"),
    (["run", "dask://", "--handler", "pipe.py:prep"], "dask"),
    (["server", "--port", "0"], "server"),
    (["run", "--kind", "job", "--image", "repo/img:1", "--dry-run", "pipe.py",
      "--handler", "prep"], "k8s"),
])
def test_a_command_whose_extra_is_missing_names_it(fresh, tmp_path, argv, extra):
    (tmp_path / "pipe.py").write_text(
        "from mlflowlet import pipeline, step\n\n"
        "@step\ndef prep(context, rows: int = 1):\n    return rows\n\n"
        "@pipeline(name='p')\ndef pipe(rows: int = 2):\n    prep(rows=rows)\n")
    proc = _run(fresh, str(fresh / "bin" / "mlflowlet"), *argv, cwd=tmp_path)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert f"pip install 'mlflowlet[{extra}]'" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
