"""FAKE image builders: stand-ins for the docker/podman/buildah command-line tools.

No container engine runs on the development machines or in CI, so every test that builds an
image goes through these fakes, and only these: each is a small ``/bin/sh`` script put on a
``PATH`` that holds nothing else. ``fake_docker`` answers ``docker info`` like a daemon that is
up, records every call in ``calls.log``, and for ``docker build`` checks what a real build would
need first (the Dockerfile exists, starts with a comment or ``FROM``/``ARG``, and every ``COPY``
source is in the context) and stores the context's file list in ``built/<image>.txt``. What the
image would hold is asserted on the Dockerfile and the context, not by running it.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

__all__ = ["FakeBuilder", "bare_path", "fake_docker", "write_tool"]

_DOCKER = r"""
case "$1" in
  info) echo "Server Version: fake"; exit 0;;
  build)
    shift; tag=""; file=""; dir=""
    while [ $# -gt 0 ]; do
      case "$1" in -t) tag="$2"; shift 2;; -f) file="$2"; shift 2;; *) dir="$1"; shift;; esac
    done
    [ -f "$file" ] || { echo "fake docker: no Dockerfile $file" >&2; exit 1; }
    first=$(grep -v '^#' "$file" | grep -v '^$' | head -n 1)
    case "$first" in
      FROM*|ARG*) ;;
      *) echo "fake docker: $file starts with $first" >&2; exit 1;;
    esac
    for src in $(sed -n 's/^COPY \([^ ]*\) .*/\1/p' "$file"); do
      [ -e "$dir/$src" ] || { echo "fake docker: COPY $src: not in the context" >&2; exit 1; }
    done
    mkdir -p "$FAKE_HOME/built"
    (cd "$dir" && find . -type f | sort) > "$FAKE_HOME/built/$(echo "$tag" | tr '/:' '__').txt"
    exit 0;;
  push) exit 0;;
esac
echo "fake docker: unknown command $1" >&2
exit 2
"""


def write_tool(folder: Path, name: str, body: str) -> Path:
    """Write an executable stand-in for a builder CLI that logs its arguments to calls.log."""
    path = folder / name
    path.write_text(f'#!/bin/sh\nFAKE_HOME="{folder}"\necho "{name} $*" >> {folder}/calls.log\n'
                    f"{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


class FakeBuilder:
    """The fake ``docker`` on ``PATH``: what it was asked to do."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @property
    def calls(self) -> list[str]:
        log = self.folder / "calls.log"
        return log.read_text().splitlines() if log.exists() else []

    @property
    def builds(self) -> list[str]:
        return [c for c in self.calls if c.startswith("docker build ")]

    def built_files(self, image: str) -> list[str]:
        """The context files of the last build of ``image`` (``./Dockerfile``, ...)."""
        name = image.replace("/", "_").replace(":", "_")
        return (self.folder / "built" / f"{name}.txt").read_text().splitlines()


@pytest.fixture
def bare_path(tmp_path, monkeypatch):
    """A PATH holding only the tools a test writes; no kube config anywhere."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    for name in ("docker", "podman", "buildah"):  # a real one here would be found first
        for where in ("/usr/bin", "/bin"):
            if Path(where, name).exists():
                pytest.skip(f"{where}/{name} exists: the fakes must be the only builders")
    for var in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return bin_dir


@pytest.fixture
def fake_docker(bare_path) -> FakeBuilder:
    """A FAKE ``docker`` (see the module docstring) as the only builder on PATH."""
    write_tool(bare_path, "docker", _DOCKER)
    return FakeBuilder(bare_path)
