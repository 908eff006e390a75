"""The image builders :func:`mlflowlet.build.build_image` runs: docker, podman, buildah.

Each is found by asking the tool whether it can build here (a client with no engine does not
count); kaniko, which builds in the cluster, is :mod:`mlflowlet._kaniko`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from .errors import RunError

BUILDERS = ("docker", "podman", "buildah", "kaniko")


def _push(builder: str, image: str, folder: Path, timeout: float) -> str:
    """Push ``image``; return it by digest (``repo@sha256:...``) when the registry said it.

    A tag can be pushed again with other content; a digest names one image, so runners use
    it. docker/podman record it in the image's ``RepoDigests`` after a push; ``buildah push
    --digestfile`` writes it to a file.
    """
    name = image.rsplit("@", 1)[0]
    name = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
    if builder == "buildah":
        digest_file = folder.parent / f".{folder.name}.digest"
        _run([builder, "push", "--digestfile", str(digest_file), image], timeout, builder)
        found = digest_file.read_text(encoding="utf-8").strip() if digest_file.is_file() else ""
        return f"{name}@{found}" if found.startswith("sha256:") else ""
    _run([builder, "push", image], timeout, builder)
    proc = subprocess.run(
        [builder, "image", "inspect", "--format", "{{json .RepoDigests}}", image],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    try:
        refs = json.loads(proc.stdout or "[]") if proc.returncode == 0 else []
    except ValueError:
        refs = []
    return next((r for r in refs or [] if r.startswith(f"{name}@sha256:")), "")


def find_builder(wanted: str | None = None) -> tuple[str | None, list[str]]:
    """Return the first usable builder (or ``wanted``'s availability) and what was looked at."""
    looked, names = [], [wanted] if wanted else list(BUILDERS)
    for name in names:
        ok, why = _kaniko_usable() if name == "kaniko" else _local_usable(name)
        looked.append(f"{name}: {why}")
        if ok:
            return name, looked
    return None, looked


def _local_usable(name: str) -> tuple[bool, str]:
    path = shutil.which(name)
    if path is None:
        return False, "not on PATH"
    probe = [path, "version"] if name == "buildah" else [path, "info"]
    try:
        proc = subprocess.run(
            probe, capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"`{name} {probe[1]}` failed ({exc})"
    if proc.returncode != 0:
        first = (proc.stderr or proc.stdout).strip().splitlines()[:1] or ["no output"]
        return False, f"`{name} {probe[1]}` failed: {first[0][:120]}"
    return True, f"usable ({path})"


def _kaniko_usable() -> tuple[bool, str]:
    if os.environ.get("KUBECONFIG") or os.environ.get("KUBERNETES_SERVICE_HOST"):
        return True, "a Kubernetes config is set"
    if (Path.home() / ".kube" / "config").is_file():
        return True, "~/.kube/config exists"
    return False, "no Kubernetes config (KUBECONFIG unset, no ~/.kube/config, not in a cluster)"


def _build_argv(builder: str, image: str, folder: Path) -> list[str]:
    verb = "bud" if builder == "buildah" else "build"
    return [builder, verb, "-t", image, "-f", str(folder / "Dockerfile"), str(folder)]


def _run(argv: list[str], timeout: float, builder: str) -> None:
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise RunError(f"{builder} did not finish within {timeout:g} s: {' '.join(argv)}") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RunError(f"`{' '.join(argv[:2])}` failed (exit code {proc.returncode}): {tail[0]}")
