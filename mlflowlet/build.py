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

import base64
import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, RunError

__all__ = ["BUILDERS", "BuildResult", "build_image", "dockerfile_text", "find_builder"]

BUILDERS = ("docker", "podman", "buildah", "kaniko")
KANIKO_IMAGE = "gcr.io/kaniko-project/executor:v1.23.2"
_CONFIGMAP_LIMIT = 1024 * 1024  # a ConfigMap holds at most 1 MiB
_SRC = "/mlflowlet"  # the image's working directory: handler files live here


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

    Returns:
        A :class:`BuildResult` (``built=False`` for a dry run).

    Raises:
        ConfigError: an invalid image reference or input, or no builder available.
        RunError: the builder failed.
    """
    from .runtimes import _k8s

    _k8s.check_image(image)
    _k8s.check_image(base_image, "base_image")
    if builder is not None and builder not in BUILDERS:
        raise ConfigError(f"builder {builder!r} is not one of {', '.join(BUILDERS)}")
    files = _context_files(base_image, requirements, inline_code, source, commands, with_mlflowlet)
    folder = Path(context_dir or Path("mlflowlet-build") / _k8s.dns_name(image)).absolute()
    digest = _write_context(folder, files)
    dockerfile = str(folder / "Dockerfile")
    result = BuildResult(image, str(folder), dockerfile, digest)
    if dry_run:
        return result
    chosen, looked = find_builder(builder)
    if chosen is None:
        raise ConfigError(
            f"no image builder is available ({'; '.join(looked)}); the Dockerfile is at "
            f"{dockerfile}: build it yourself, or install one of {', '.join(BUILDERS[:3])}"
        )
    if chosen == "kaniko":
        manifests = kaniko_manifests(image, folder, namespace, registry_secret, push)
        _run_kaniko(manifests, namespace, batch_api, core_api, timeout, poll_interval)
        return BuildResult(image, str(folder), dockerfile, digest, "kaniko", True, push, manifests)
    _run(_build_argv(chosen, image, folder), timeout, chosen)
    if push:
        _run([chosen, "push", image], timeout, chosen)
    return BuildResult(image, str(folder), dockerfile, digest, chosen, True, push)


# the context ---------------------------------------------------------------------------------
def dockerfile_text(
    base_image: str,
    has_requirements: bool,
    source: str | None,
    has_code: bool,
    commands: list[str],
    with_mlflowlet: bool,
) -> str:
    """Return the Dockerfile for these inputs (pure: same inputs, same text)."""
    lines = [
        "# generated by mlflowlet build_image: change its inputs, not this file",
        f"FROM {base_image}",
        "ENV PYTHONUNBUFFERED=1",
        f"WORKDIR {_SRC}",
    ]
    if with_mlflowlet:
        lines += [
            "COPY _mlflowlet/ /opt/mlflowlet-src/",
            "RUN pip install --no-cache-dir /opt/mlflowlet-src && rm -rf /opt/mlflowlet-src",
        ]
    if has_requirements:
        lines += [
            f"COPY requirements.txt {_SRC}/requirements.txt",
            f"RUN pip install --no-cache-dir -r {_SRC}/requirements.txt",
        ]
    lines += _source_lines(source)
    if has_code:
        lines.append(f"COPY handler.py {_SRC}/handler.py")
    lines += [f"RUN {cmd}" for cmd in commands]
    return "\n".join(lines) + "\n"


def _source_lines(source: str | None) -> list[str]:
    if not source:
        return []
    if "://" not in source:
        return [f"ADD source.tar.gz {_SRC}/"] if _is_tarball(source) else [f"COPY source/ {_SRC}/"]
    url, _, ref = source.partition("#")
    if url.startswith("https://") and _is_tarball(url):
        return [
            f"ADD {url} /tmp/source.tar.gz",
            f"RUN tar -xzf /tmp/source.tar.gz -C {_SRC} && rm /tmp/source.tar.gz",
        ]
    branch = f"--branch {ref} " if ref else ""
    return [
        "RUN apt-get update && apt-get install -y --no-install-recommends git "
        "&& rm -rf /var/lib/apt/lists/*",
        f"RUN git clone --depth 1 {branch}{url.removeprefix('git+')} /tmp/source "
        f"&& cp -a /tmp/source/. {_SRC}/ && rm -rf /tmp/source",
    ]


def _is_tarball(path: str) -> bool:
    return path.endswith((".tar.gz", ".tgz", ".tar"))


def _context_files(
    base_image: str,
    requirements: Any,
    inline_code: str | None,
    source: str | None,
    commands: Any,
    with_mlflowlet: bool,
) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    reqs = _requirements(requirements)
    if reqs:
        files["requirements.txt"] = reqs.encode()
    if inline_code:
        files["handler.py"] = inline_code.encode()
    if source and "://" not in source:
        path = Path(source)
        if _is_tarball(source) and path.is_file():
            files["source.tar.gz"] = path.read_bytes()
        elif path.is_dir():
            for item in sorted(path.rglob("*")):
                if item.is_file() and "__pycache__" not in item.parts and ".git" not in item.parts:
                    files[f"source/{item.relative_to(path).as_posix()}"] = item.read_bytes()
        else:
            raise ConfigError(
                f"source {source!r} is neither a folder, a tarball nor a git:// / https:// URL"
            )
    elif source and not source.startswith(("git://", "https://", "git+https://", "git+ssh://")):
        raise ConfigError(
            f"source {source!r}: use a local folder, a tarball, or a git:// or "
            "https:// repository URL"
        )
    if with_mlflowlet:
        files.update(_mlflowlet_files())
    cmds = [commands] if isinstance(commands, str) else list(commands or [])
    files["Dockerfile"] = dockerfile_text(
        base_image, bool(reqs), source, bool(inline_code), cmds, with_mlflowlet
    ).encode()
    return files


def _requirements(requirements: Any) -> str:
    if not requirements:
        return ""
    if isinstance(requirements, (str, os.PathLike)):
        path = Path(requirements)
        if not path.is_file():
            raise ConfigError(
                f"requirements file {str(path)!r} does not exist; give a path or "
                "a list such as ['scikit-learn>=1.4']"
            )
        return path.read_text(encoding="utf-8")
    return "".join(f"{req}\n" for req in requirements)


def _mlflowlet_files() -> dict[str, bytes]:
    """Return mlflowlet's package files and a minimal pyproject (pip installs it and its deps)."""
    from importlib.metadata import requires

    from . import __version__

    root = Path(__file__).parent
    files = {}
    for item in sorted(root.rglob("*")):
        if item.is_file() and "__pycache__" not in item.parts and item.suffix != ".pyc":
            files[f"_mlflowlet/mlflowlet/{item.relative_to(root).as_posix()}"] = item.read_bytes()
    deps = sorted(r for r in (requires("mlflowlet") or []) if "extra ==" not in r)
    listed = ", ".join(f'"{d}"' for d in deps)
    files["_mlflowlet/pyproject.toml"] = (
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        f'\n[project]\nname = "mlflowlet"\nversion = "{__version__}"\ndependencies = [{listed}]\n'
        '\n[tool.setuptools.packages.find]\ninclude = ["mlflowlet*"]\n'
        '\n[tool.setuptools.package-data]\n"*" = ["*", "*/*"]\n'
    ).encode()
    return files


def _write_context(folder: Path, files: dict[str, bytes]) -> str:
    if folder.exists():
        shutil.rmtree(folder)  # a stale file from an earlier build must not leak in
    digest = hashlib.sha256()
    for rel in sorted(files):
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(files[rel])
        digest.update(rel.encode() + b"\0" + hashlib.sha256(files[rel]).digest())
    return "sha256:" + digest.hexdigest()


def context_tarball(folder: Path) -> bytes:
    """Return the context as a reproducible ``.tar.gz`` (sorted, zero mtimes, no owners)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for item in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = tarfile.TarInfo(item.relative_to(folder).as_posix())
            data = item.read_bytes()
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


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


# kaniko ----------------------------------------------------------------------------------------
def kaniko_manifests(
    image: str,
    folder: Path,
    namespace: str = "default",
    registry_secret: str = "",
    push: bool = False,
) -> list[dict]:
    """Return ``[ConfigMap with the context, kaniko Job]``, validated.

    Raises:
        ConfigError: the context is over a ConfigMap's 1 MiB, or a manifest is invalid.
    """
    from .runtimes import _k8s

    k8s = _k8s.client()
    tarball = context_tarball(Path(folder))
    if len(tarball) > _CONFIGMAP_LIMIT:
        raise ConfigError(
            f"the build context is {len(tarball)} bytes compressed; a ConfigMap holds at most "
            "1 MiB: use a local builder, or pass source= as a git URL"
        )
    name = _k8s.dns_name(
        "build", _k8s.dns_name(image, max_len=40), hashlib.sha256(tarball).hexdigest()[:8]
    )
    labels = {**_k8s.MANAGED_BY, "mlflowlet.io/build": name}
    config = k8s.V1ConfigMap(
        api_version="v1",
        kind="ConfigMap",
        binary_data={"context.tar.gz": base64.b64encode(tarball).decode()},
        metadata=k8s.V1ObjectMeta(name=name, namespace=namespace, labels=labels),
    )
    args = [
        "--dockerfile=Dockerfile",
        "--context=tar:///workspace/context.tar.gz",
        f"--destination={image}",
        "--reproducible",
    ]
    if not push:
        args.append("--no-push")
    mounts = [k8s.V1VolumeMount(name="context", mount_path="/workspace", read_only=True)]
    volumes = [k8s.V1Volume(name="context", config_map=k8s.V1ConfigMapVolumeSource(name=name))]
    if registry_secret:
        _k8s.check_dns_label(registry_secret, "registry_secret")
        mounts.append(
            k8s.V1VolumeMount(name="registry", mount_path="/kaniko/.docker", read_only=True)
        )
        volumes.append(
            k8s.V1Volume(
                name="registry",
                secret=k8s.V1SecretVolumeSource(
                    secret_name=registry_secret,
                    items=[k8s.V1KeyToPath(key=".dockerconfigjson", path="config.json")],
                ),
            )
        )
    container = k8s.V1Container(name="kaniko", image=KANIKO_IMAGE, args=args, volume_mounts=mounts)
    job = k8s.V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=k8s.V1ObjectMeta(name=name, namespace=namespace, labels=labels),
        spec=k8s.V1JobSpec(
            backoff_limit=0,
            ttl_seconds_after_finished=3600,
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=labels),
                spec=k8s.V1PodSpec(containers=[container], volumes=volumes, restart_policy="Never"),
            ),
        ),
    )
    return [_k8s.validate(_k8s.serialize(obj)) for obj in (config, job)]


def _run_kaniko(
    manifests: list[dict], namespace: str, batch: Any, core: Any, timeout: float, poll: float
) -> None:
    from .runtimes import _k8s
    from .runtimes.kubejob import _api_client

    if batch is None or core is None:
        api = _api_client()
        batch = batch or _k8s.client().BatchV1Api(api)
        core = core or _k8s.client().CoreV1Api(api)
    config, job = manifests
    name = job["metadata"]["name"]
    try:
        core.create_namespaced_config_map(namespace, config)
        batch.create_namespaced_job(namespace, job)
    except Exception as exc:
        reason = _k8s.api_error(exc) if hasattr(exc, "status") else str(exc)
        raise RunError(f"submitting the kaniko Job {name} failed: {reason}") from None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = batch.read_namespaced_job_status(name, namespace).status
        for cond in (status.conditions or []) if status else []:
            if cond.status == "True" and cond.type == "Complete":
                return
            if cond.status == "True" and cond.type == "Failed":
                pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={name}")
                problem = next((p for p in map(_k8s.pod_problem, pods.items) if p), "")
                raise RunError(
                    f"the kaniko Job {name} failed: {problem or cond.reason}; see "
                    f"`kubectl logs -n {namespace} job/{name}`"
                )
        time.sleep(poll)
    raise RunError(f"the kaniko Job {name} did not finish within {timeout:g} s")
