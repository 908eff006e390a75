"""``build_image``: a deterministic Dockerfile and build context, built by whatever builder exists.

The context holds the Dockerfile, mlflowlet itself (so the image runs the same version's
entrypoint), ``requirements.txt``, the inline handler code and the ``source`` (a local folder or
tarball copied in; a ``git://`` / ``https://`` repository, or an https tarball, fetched by the
build itself). Same inputs, same bytes: files are written in sorted order with no timestamps, and
:attr:`BuildResult.digest` hashes them.

Builders, in order: ``docker``, ``podman`` (each only when ``<tool> info`` answers: a client with
no engine does not count), ``buildah``, then a kaniko Job on Kubernetes (when a kube config
exists; the context travels in a ConfigMap, registry credentials come from a named
``kubernetes.io/dockerconfigjson`` Secret, never inline). With none available the error lists
what was looked for and where the Dockerfile was written; ``dry_run=True`` stops there on purpose.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._buildctx import (
    RUNTIME_EXTRAS,
    Context,
    check_base_image,
    context_tarball,
    dockerfile_text,
    image_context,
    runtime_context,
)
from ._kaniko import kaniko_manifests, run_kaniko
from ._version import __version__
from .errors import ConfigError, RunError

__all__ = [
    "BUILDERS",
    "RUNTIME_IMAGE",
    "BuildResult",
    "build_image",
    "build_pipeline_image",
    "build_runtime_image",
    "context_tarball",
    "dockerfile_text",
    "find_builder",
    "kaniko_manifests",
]

BUILDERS = ("docker", "podman", "buildah", "kaniko")
RUNTIME_IMAGE = f"mlflowlet/mlflowlet:{__version__}"  # built from mlflowlet/docker/Dockerfile


@dataclass(frozen=True)
class BuildResult:
    """What :func:`build_image` did."""

    image: str
    context_dir: str
    dockerfile: str
    digest: str
    builder: str = ""
    built: bool = False
    pushed: bool = False
    manifests: list[dict] = field(default_factory=list)
    reused: bool = False  # ``reuse=True`` and this context was built as this image before


def build_image(
    image: str,
    base_image: str = "python:3.11-slim",
    requirements: Any = None,
    inline_code: str | None = None,
    source: str | None = None,
    commands: Any = None,
    with_mlflowlet: bool = True,
    builder: str | None = None,
    push: bool = False,
    *,
    context_dir: str | None = None,
    dry_run: bool = False,
    namespace: str = "default",
    registry_secret: str = "",
    timeout: float = 1800.0,
    batch_api: Any = None,
    core_api: Any = None,
    poll_interval: float = 2.0,
    files: dict[str, str | bytes] | None = None,
    reuse: bool = False,
) -> BuildResult:
    """Write a Dockerfile and build context for ``image``, then build (and push) it.

    Args:
        image: the reference to build, e.g. ``'ghcr.io/team/train:1.0'``.
        base_image: the ``FROM`` image.
        requirements: pip requirements: a list, or the path of a requirements file.
        inline_code: Python source written as ``/mlflowlet/handler.py`` in the image.
        source: a local folder, a ``.tar``/``.tar.gz``/``.tgz`` file, or a ``git://`` /
            ``https://`` repository URL (``#ref`` picks a branch or tag), put in ``/mlflowlet``.
        commands: extra shell commands (``RUN`` lines), in order.
        with_mlflowlet: install this mlflowlet (copied from the running installation).
        builder: ``'docker'``, ``'podman'``, ``'buildah'`` or ``'kaniko'`` (default: the first
            available).
        push: push the image after building it.
        context_dir: where the context is written (default ``./mlflowlet-build/<image>``).
        dry_run: write the Dockerfile and context, build nothing.
        namespace: the namespace of the kaniko Job.
        registry_secret: a ``kubernetes.io/dockerconfigjson`` Secret kaniko pushes with.
        timeout: seconds the build may take.
        batch_api: a ``BatchV1Api`` for kaniko (default: from the kube config).
        core_api: a ``CoreV1Api`` for kaniko (default: from the kube config).
        poll_interval: seconds between kaniko Job status polls.
        files: more files for ``/mlflowlet``: relative path in the image → text or bytes.
        reuse: when this same context was already built as ``image`` (from this context
            folder), build nothing and return ``reused=True``.

    Returns:
        A :class:`BuildResult` (``built=False`` for a dry run or a reused build).

    Raises:
        ConfigError: an invalid image reference or input, or no builder available.
        RunError: the builder failed.
    """
    from .runtimes import _k8s

    _k8s.check_image(image)
    check_base_image(_k8s.check_image(base_image, "base_image"))
    if builder is not None and builder not in BUILDERS:
        raise ConfigError(f"builder {builder!r} is not one of {', '.join(BUILDERS)}")
    folder = _context_folder(image, context_dir)
    ctx = image_context(
        base_image,
        requirements,
        inline_code,
        source,
        commands,
        with_mlflowlet,
        skip={folder},
        files=files,
    )
    kaniko = dict(
        namespace=namespace,
        registry_secret=registry_secret,
        timeout=timeout,
        batch_api=batch_api,
        core_api=core_api,
        poll_interval=poll_interval,
    )
    return _build(ctx, image, folder, builder, push, dry_run, kaniko, reuse)


def build_runtime_image(
    image: str = RUNTIME_IMAGE,
    base_image: str = "python:3.11-slim",
    extras: tuple[str, ...] | list[str] = RUNTIME_EXTRAS,
    builder: str | None = None,
    push: bool = False,
    *,
    context_dir: str | None = None,
    dry_run: bool = False,
    **kaniko: Any,
) -> BuildResult:
    """Build the official runtime image (``mlflowlet/docker/Dockerfile``) from this installation.

    Args:
        image: the reference to build (default :data:`RUNTIME_IMAGE`; tag it for your registry
            and set ``MLFLOWLET_IMAGE`` to it).
        base_image: the ``FROM`` image (Python 3.10 or newer).
        extras: the mlflowlet extras installed in it (default ``s3``, ``pandas``).
        builder: as in :func:`build_image`.
        push: push the image after building it.
        context_dir: where the context is written (default ``./mlflowlet-build/<image>``).
        dry_run: write the context only.
        **kaniko: ``namespace``, ``registry_secret``, ``timeout``, ``batch_api``, ``core_api``,
            ``poll_interval`` as in :func:`build_image`.

    Returns:
        A :class:`BuildResult`.
    """
    from .runtimes import _k8s

    _k8s.check_image(image)
    check_base_image(_k8s.check_image(base_image, "base_image"))
    if builder is not None and builder not in BUILDERS:
        raise ConfigError(f"builder {builder!r} is not one of {', '.join(BUILDERS)}")
    from importlib.metadata import metadata

    known = set(metadata("mlflowlet").get_all("Provides-Extra") or [])
    unknown = sorted(set(extras) - known)
    if unknown:
        raise ConfigError(f"unknown mlflowlet extra(s) {unknown}; known: {sorted(known)}")
    ctx = runtime_context(base_image, tuple(extras))
    folder = _context_folder(image, context_dir)
    return _build(ctx, image, folder, builder, push, dry_run, kaniko)


def _context_folder(image: str, context_dir: str | None) -> Path:
    from .runtimes import _k8s

    return Path(context_dir or Path("mlflowlet-build") / _k8s.dns_name(image)).absolute()


def _build(
    ctx: Context,
    image: str,
    folder: Path,
    builder: str | None,
    push: bool,
    dry_run: bool,
    kaniko: dict[str, Any],
    reuse: bool = False,
) -> BuildResult:
    """Write ``ctx`` to ``folder`` and build it with the first available (or named) builder."""
    stamp = folder.parent / f".{folder.name}.built"  # what the last build of this folder was
    dockerfile = str(folder / "Dockerfile")
    digest = ctx.digest()
    if reuse and not dry_run and stamp.is_file():
        last = json.loads(stamp.read_text(encoding="utf-8"))
        same = last.get("digest") == digest and last.get("image") == image
        if same and (last.get("pushed") or not push):
            return BuildResult(
                image,
                str(folder),
                dockerfile,
                digest,
                last.get("builder", ""),
                reused=True,
                pushed=bool(last.get("pushed")),
            )
    stamp.unlink(missing_ok=True)
    ctx.write(folder)
    result = BuildResult(image, str(folder), dockerfile, digest)
    if dry_run:
        return result
    result = _run_builder(folder, image, digest, builder, push, kaniko)
    stamp.write_text(
        json.dumps(
            {"digest": digest, "image": image, "builder": result.builder, "pushed": result.pushed}
        ),
        encoding="utf-8",
    )
    return result


def _run_builder(
    folder: Path, image: str, digest: str, builder: str | None, push: bool, kaniko: dict[str, Any]
) -> BuildResult:
    dockerfile = str(folder / "Dockerfile")
    chosen, looked = find_builder(builder)
    if chosen is None:
        raise ConfigError(
            f"no image builder is available ({'; '.join(looked)}); the Dockerfile is at "
            f"{dockerfile}: build it yourself, or install one of {', '.join(BUILDERS[:3])}"
        )
    timeout = float(kaniko.get("timeout", 1800.0))
    if chosen == "kaniko":
        namespace = kaniko.get("namespace") or "default"
        manifests = kaniko_manifests(
            image, folder, namespace, kaniko.get("registry_secret", ""), push
        )
        run_kaniko(
            manifests,
            namespace,
            kaniko.get("batch_api"),
            kaniko.get("core_api"),
            timeout,
            float(kaniko.get("poll_interval", 2.0)),
        )
        return BuildResult(image, str(folder), dockerfile, digest, "kaniko", True, push, manifests)
    _run(_build_argv(chosen, image, folder), timeout, chosen)
    if push:
        _run([chosen, "push", image], timeout, chosen)
    return BuildResult(image, str(folder), dockerfile, digest, chosen, True, push)


# builders --------------------------------------------------------------------------------------
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


# a pipeline's code -----------------------------------------------------------------------------
def build_pipeline_image(
    pipe: Any,
    image: str,
    requirements: Any = None,
    base_image: str = "python:3.11-slim",
    builder: str | None = None,
    push: bool = False,
    *,
    context_dir: str | None = None,
    dry_run: bool = False,
    **kaniko: Any,
) -> BuildResult:
    """Build an image holding this mlflowlet and the code of ``pipe``'s steps, to compile against.

    The folder the steps' modules are imported from is copied to ``/mlflowlet`` (the working
    directory the compiled containers start in), as :func:`build_image` copies a ``source``.

    Args:
        pipe: the ``@pipeline``.
        image: the reference to build (and then compile with).
        requirements: pip requirements the steps need: a list or a requirements file.
        base_image: the ``FROM`` image (Python 3.10 or newer).
        builder: as in :func:`build_image`.
        push: push the image after building it (a cluster pulls it from the registry).
        context_dir: where the context is written.
        dry_run: write the context only.
        **kaniko: the kaniko options of :func:`build_image`.

    Raises:
        ConfigError: the steps come from more than one folder, or a build input is invalid.
    """
    from .compilers.check import _pythonpath

    roots = [r for r in _pythonpath(pipe) if not _installed(r)]
    if len(roots) > 1:
        raise ConfigError(
            f"the steps of {pipe.dag.name!r} are imported from {len(roots)} folders "
            f"({', '.join(roots)}); --build copies one: put the modules under one folder"
        )
    return build_image(
        image,
        base_image=base_image,
        requirements=requirements,
        source=roots[0] if roots else None,
        builder=builder,
        push=push,
        context_dir=context_dir,
        dry_run=dry_run,
        **kaniko,
    )


def _installed(folder: str) -> bool:
    """Return whether ``folder`` is an installed packages folder (steps there come from pip)."""
    import sysconfig

    parts = Path(folder).parts
    return (
        "site-packages" in parts
        or "dist-packages" in parts
        or folder
        in {
            sysconfig.get_paths()["purelib"],
            sysconfig.get_paths()["platlib"],
        }
    )
