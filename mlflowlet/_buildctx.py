"""Build contexts: the files :mod:`mlflowlet.build` hands to a builder, the same bytes every time.

A context is a mapping ``relative path -> bytes`` (plus which files are executable), written in
sorted order with no timestamps; its digest hashes names, modes and contents, so the same inputs
give the same digest wherever and however often they are built. A local ``source`` folder is
copied as :func:`mlflowlet._ignore.walk_source` selects (``.dockerignore``, else ``.gitignore``;
never ``.git``, virtual environments, the run DB, artifacts or earlier build folders).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

SRC = "/mlflowlet"  # the image's working directory: handler files live here
MIN_PYTHON = (3, 10)
RUNTIME_EXTRAS = ("s3", "pandas")  # what a step may need beyond the base install
_PYTHON_IMAGES = ("python", "pypy")
_SSH_PORT = 2222  # mpi-operator's base image (Makefile BASE_IMAGE_SSH_PORT)


@dataclass(frozen=True)
class Preset:
    """A base image set up for one kind of runtime (see :data:`PRESETS`).

    Attributes:
        base_image: the ``FROM`` image.
        setup: Dockerfile lines right after ``FROM`` (as root: system packages, users).
        finish: Dockerfile lines at the end (e.g. back to the image's own user).
        pip: how pip is run in this image.
    """

    base_image: str
    setup: tuple[str, ...] = ()
    finish: tuple[str, ...] = ()
    pip: str = "pip"


PRESETS: dict[str, Preset] = {
    # mpi-operator v0.8.2 build/base/Dockerfile + openmpi.Dockerfile: openmpi-bin, an sshd on
    # port 2222 that a non-root mpiuser can run (sshd_config of its own), host keys not checked
    # (the operator mounts the keys), on a Python image mlflowlet runs in.
    "mpi": Preset(
        "python:3.11-slim-bookworm",
        setup=(
            "RUN apt-get update && apt-get install -y --no-install-recommends openmpi-bin "
            "openssh-server openssh-client && rm -rf /var/lib/apt/lists/*",
            "RUN mkdir -p /var/run/sshd"
            ' && sed -i "s/[ #]\\(.*StrictHostKeyChecking \\).*/ \\1no/g" /etc/ssh/ssh_config'
            ' && echo "    UserKnownHostsFile /dev/null" >> /etc/ssh/ssh_config'
            f' && echo "    Port {_SSH_PORT}" >> /etc/ssh/ssh_config'
            ' && sed -i "s/#\\(StrictModes \\).*/\\1no/g" /etc/ssh/sshd_config'
            f' && echo "Port {_SSH_PORT}" >> /etc/ssh/sshd_config',
            "RUN useradd -m -u 1000 mpiuser"
            " && printf 'PidFile /home/mpiuser/sshd.pid\\nHostKey /home/mpiuser/.ssh/id_rsa"
            f"\\nStrictModes no\\nPort {_SSH_PORT}\\n' > /home/mpiuser/.sshd_config"
            " && chown mpiuser /home/mpiuser/.sshd_config",
        ),
    ),
    # apache/spark-docker 3.5.5/scala2.12-java17-python3-ubuntu: Ubuntu 22.04, so Python 3.10
    # (the java11 images are Ubuntu 20.04 with Python 3.8, older than mlflowlet supports); it
    # keeps /opt/entrypoint.sh and runs as the spark user. The driver's main file is put at
    # /opt/mlflowlet/spark_main.py (SparkRuntime's DEFAULT_MAIN_FILE).
    "spark": Preset(
        "apache/spark:3.5.5-scala2.12-java17-python3-ubuntu",
        setup=("USER root",),
        finish=(
            "RUN mkdir -p /opt/mlflowlet && cp \"$(python3 -c 'import importlib.util as u; "
            'print(u.find_spec("mlflowlet.runtimes._spark_main").origin)\')" '
            "/opt/mlflowlet/spark_main.py",
            "USER spark",
        ),
        pip="python3 -m pip",
    ),
}


def preset(name: str | None) -> Preset | None:
    """Return the preset ``name`` (None for None).

    Raises:
        ConfigError: an unknown name (the known ones are listed).
    """
    if name is None:
        return None
    if name not in PRESETS:
        raise ConfigError(f"preset {name!r} is not one of {', '.join(sorted(PRESETS))}")
    return PRESETS[name]


_PY_IN_TAG = re.compile(r"(?:^|[-_.])(?:python|py)-?(\d)\.?(\d{1,2})(?![\d])")


@dataclass
class Context:
    """The files of a build context (``Dockerfile`` among them) and their modes."""

    files: dict[str, bytes] = field(default_factory=dict)
    executable: set[str] = field(default_factory=set)

    def digest(self) -> str:
        """Return ``sha256:...`` over the sorted names, modes and contents."""
        digest = hashlib.sha256()
        for rel in sorted(self.files):
            mode = b"x" if rel in self.executable else b"-"
            digest.update(rel.encode() + b"\0" + mode + hashlib.sha256(self.files[rel]).digest())
        return "sha256:" + digest.hexdigest()

    def write(self, folder: Path) -> str:
        """Write the context to ``folder`` (replacing what was there); return its digest."""
        if folder.exists():
            shutil.rmtree(folder)  # a stale file from an earlier build must not leak in
        for rel in sorted(self.files):
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.files[rel])
            target.chmod(0o755 if rel in self.executable else 0o644)
        return self.digest()


def check_base_image(base_image: str) -> str:
    """Refuse a base image whose tag names a Python older than 3.10 (mlflowlet needs 3.10+).

    Raises:
        ConfigError: e.g. ``python:3.9-slim``, ``pypy:3.8``, ``...:python3.7-bookworm``.
    """
    ref = base_image.split("@", 1)[0]
    name, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "")
    found = None
    if name.rsplit("/", 1)[-1] in _PYTHON_IMAGES and tag:
        lead = re.match(r"^(\d+)(?:\.(\d+))?", tag)
        if lead:
            found = (int(lead[1]), int(lead[2]) if lead[2] else None)
    if found is None and tag:
        named = _PY_IN_TAG.search(tag)
        if named:
            found = (int(named[1]), int(named[2]))
    if found is not None and (found[0], found[1] or 99) < MIN_PYTHON:
        shown = f"{found[0]}.{found[1]}" if found[1] is not None else str(found[0])
        raise ConfigError(
            f"base_image {base_image!r} has Python {shown}; mlflowlet needs Python "
            f">= {MIN_PYTHON[0]}.{MIN_PYTHON[1]}: use e.g. 'python:3.11-slim'"
        )
    return base_image


def dockerfile_text(
    base_image: str,
    has_requirements: bool,
    source: str | None,
    has_code: bool,
    commands: list[str],
    with_mlflowlet: bool,
    has_files: bool = False,
    image_preset: Preset | None = None,
) -> str:
    """Return the Dockerfile for these inputs (pure: same inputs, same text)."""
    setup = image_preset or Preset(base_image)
    lines = [
        "# generated by mlflowlet build_image: change its inputs, not this file",
        f"FROM {base_image}",
        *setup.setup,
        "ENV PYTHONUNBUFFERED=1",
        f"WORKDIR {SRC}",
    ]
    if with_mlflowlet:
        lines += [
            "COPY _mlflowlet/ /opt/mlflowlet-src/",
            f"RUN {setup.pip} install --no-cache-dir /opt/mlflowlet-src && rm -rf "
            "/opt/mlflowlet-src",
        ]
    if has_requirements:
        lines += [
            f"COPY requirements.txt {SRC}/requirements.txt",
            f"RUN {setup.pip} install --no-cache-dir -r {SRC}/requirements.txt",
        ]
    lines += _source_lines(source)
    if has_code:
        lines.append(f"COPY handler.py {SRC}/handler.py")
    if has_files:
        lines.append(f"COPY files/ {SRC}/")
    lines += [f"RUN {cmd}" for cmd in commands]
    lines += setup.finish
    return "\n".join(lines) + "\n"


def _source_lines(source: str | None) -> list[str]:
    if not source:
        return []
    if "://" not in source:
        return [f"ADD source.tar.gz {SRC}/"] if is_tarball(source) else [f"COPY source/ {SRC}/"]
    url, _, ref = source.partition("#")
    if url.startswith("https://") and is_tarball(url):
        return [
            f"ADD {url} /tmp/source.tar.gz",
            f"RUN tar -xzf /tmp/source.tar.gz -C {SRC} && rm /tmp/source.tar.gz",
        ]
    branch = f"--branch {ref} " if ref else ""
    return [
        "RUN apt-get update && apt-get install -y --no-install-recommends git "
        "&& rm -rf /var/lib/apt/lists/*",
        f"RUN git clone --depth 1 {branch}{url.removeprefix('git+')} /tmp/source "
        f"&& cp -a /tmp/source/. {SRC}/ && rm -rf /tmp/source",
    ]


def is_tarball(path: str) -> bool:
    """Return whether ``path`` names a tarball by its suffix."""
    return path.endswith((".tar.gz", ".tgz", ".tar"))


def image_context(
    base_image: str,
    requirements: Any,
    inline_code: str | None,
    source: str | None,
    commands: Any,
    with_mlflowlet: bool,
    skip: set[Path] | None = None,
    files: dict[str, str | bytes] | None = None,
    image_preset: Preset | None = None,
) -> Context:
    """Return the context of :func:`mlflowlet.build.build_image` (see its arguments)."""
    ctx = Context()
    for rel, body in sorted((files or {}).items()):
        clean = Path(rel).as_posix()
        if clean.startswith(("/", "../")) or "/../" in clean or clean in ("", "."):
            raise ConfigError(f"files: {rel!r} must be a relative path inside the image's {SRC}")
        ctx.files[f"files/{clean}"] = body.encode() if isinstance(body, str) else bytes(body)
    reqs = requirements_text(requirements)
    if reqs:
        ctx.files["requirements.txt"] = reqs.encode()
    if inline_code:
        ctx.files["handler.py"] = inline_code.encode()
    if source and "://" not in source:
        _add_local_source(ctx, Path(source), skip or set())
    elif source and not source.startswith(("git://", "https://", "git+https://", "git+ssh://")):
        raise ConfigError(
            f"source {source!r}: use a local folder, a tarball, or a git:// or "
            "https:// repository URL"
        )
    if with_mlflowlet:
        ctx.files.update(
            {f"_mlflowlet/{rel}": data for rel, data in mlflowlet_files(readme=False).items()}
        )
    cmds = [commands] if isinstance(commands, str) else list(commands or [])
    ctx.files["Dockerfile"] = dockerfile_text(
        base_image,
        bool(reqs),
        source,
        bool(inline_code),
        cmds,
        with_mlflowlet,
        bool(files),
        image_preset,
    ).encode()
    return ctx


def _add_local_source(ctx: Context, path: Path, skip: set[Path]) -> None:
    from ._ignore import walk_source

    if is_tarball(str(path)) and path.is_file():
        ctx.files["source.tar.gz"] = path.read_bytes()
    elif path.is_dir():
        for rel, item in walk_source(path, skip):
            ctx.files[f"source/{rel}"] = item.read_bytes()
            if os.access(item, os.X_OK):
                ctx.executable.add(f"source/{rel}")
    else:
        raise ConfigError(
            f"source {str(path)!r} is neither a folder, a tarball nor a git:// / https:// URL"
        )


def requirements_text(requirements: Any) -> str:
    """Return pip requirements as file text: from a list, or read from a file path."""
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


def mlflowlet_files(readme: bool = True) -> dict[str, bytes]:
    """Return this mlflowlet's package files and a pyproject pip installs it (and extras) from."""
    from importlib.metadata import metadata, requires

    from ._version import __version__

    root = Path(__file__).parent
    files = {}
    for item in sorted(root.rglob("*")):
        if item.is_file() and "__pycache__" not in item.parts and item.suffix != ".pyc":
            files[f"mlflowlet/{item.relative_to(root).as_posix()}"] = item.read_bytes()
    deps: list[str] = []
    extras: dict[str, list[str]] = {}
    for req in requires("mlflowlet") or []:
        spec, _, marker = req.partition(";")
        found = re.search(r"""extra\s*==\s*["']([^"']+)["']""", marker)
        if found is None:
            deps.append(req.strip())
        elif "extra" not in spec and " and " not in marker and " or " not in marker:
            extras.setdefault(found[1], []).append(spec.strip())

    def listed(items: list[str]) -> str:
        return "[" + ", ".join(f'"{d}"' for d in sorted(items)) + "]"

    optional = "".join(f"{name} = {listed(reqs)}\n" for name, reqs in sorted(extras.items()))
    files["pyproject.toml"] = (
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        f'\n[project]\nname = "mlflowlet"\nversion = "{__version__}"\n'
        f"{'readme = ' + chr(34) + 'README.md' + chr(34) + chr(10) if readme else ''}"
        f"dependencies = {listed(deps)}\n"
        f"\n[project.optional-dependencies]\n{optional}"
        '\n[tool.setuptools.packages.find]\ninclude = ["mlflowlet*"]\n'
        '\n[tool.setuptools.package-data]\n"*" = ["*", "*/*"]\n'
    ).encode()
    if readme:
        text = metadata("mlflowlet").get_payload() or "# mlflowlet\n"  # type: ignore[attr-defined]
        files["README.md"] = str(text).encode()
    return files


def runtime_context(base_image: str, extras: tuple[str, ...]) -> Context:
    """Return the context of the official runtime image: its Dockerfile, mlflowlet, a pyproject.

    The Dockerfile is the package's ``docker/Dockerfile`` as it is, with ``BASE_IMAGE`` and
    ``MLFLOWLET_EXTRAS`` defaults set when they differ.
    """
    text = (Path(__file__).parent / "docker" / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^ARG BASE_IMAGE=.*$", f"ARG BASE_IMAGE={base_image}", text)
    text = re.sub(
        r"(?m)^ARG MLFLOWLET_EXTRAS=.*$", f"ARG MLFLOWLET_EXTRAS={','.join(extras)}", text
    )
    ctx = Context(files=mlflowlet_files(readme=True))
    ctx.files["Dockerfile"] = text.encode()
    return ctx


def context_tarball(folder: Path) -> bytes:
    """Return the context as a reproducible ``.tar.gz`` (sorted, zero mtimes, no owners)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for item in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = tarfile.TarInfo(item.relative_to(folder).as_posix())
            data = item.read_bytes()
            executable = os.access(item, os.X_OK)
            info.size, info.mtime, info.mode = len(data), 0, 0o755 if executable else 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)
