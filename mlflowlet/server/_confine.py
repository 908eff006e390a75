"""Confinement: what a request names (project, uid, artifact path, key, input) stays in a root.

Checks are made on resolved real paths (``os.path.realpath``: symlinks and ``..`` followed), so
a symlink planted under the root cannot lead out of it. Remote roots (``s3://bucket/prefix``)
are compared as normalised URL prefixes.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable
from functools import partial
from typing import Any

from ..errors import OutsideRootError


def _is_url(path: str) -> bool:
    scheme = path.split("://", 1)[0] if "://" in path else ""
    return bool(scheme) and scheme != "file"


def _local(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


def inside(root: str, path: str) -> bool:
    """Return True when ``path`` (resolved) is ``root`` or under it."""
    if _is_url(root) or _is_url(path):
        if not (_is_url(root) and _is_url(path)):
            return False
        scheme, rest = path.split("://", 1)
        rscheme, rrest = root.split("://", 1)
        norm, base = posixpath.normpath("/" + rest), posixpath.normpath("/" + rrest)
        return scheme == rscheme and (norm == base or norm.startswith(base.rstrip("/") + "/"))
    base = os.path.realpath(_local(root))
    full = os.path.realpath(_local(path))
    return full == base or full.startswith(base.rstrip(os.sep) + os.sep)


def check_name(field: str, value: str, root: str) -> None:
    """Refuse a name that is not one plain path segment (slashes, ``..``, NUL)."""
    if value in (".", "..") or any(c in value for c in ("/", "\\", "\x00")):
        raise OutsideRootError(field, value, root)


def confine_run(run: Any, root: str) -> str:
    """Check every place a served run would write or read, and pin its artifact path.

    Args:
        run: the request's ``RunObject`` (uid, project and name already defaulted).
        root: the configured artifact root.

    Returns:
        The run's artifact directory (set on ``run.spec.artifact_path``).

    Raises:
        OutsideRootError: the project, uid, artifact path, an input or a file secret source
            leads outside ``root``.
    """
    meta, spec = run.metadata, run.spec
    check_name("metadata.project", meta.project, root)
    check_name("metadata.uid", meta.uid, root)
    default = f"{root.rstrip('/')}/{meta.project}/{meta.uid}"
    wanted = spec.artifact_path or default
    wanted = wanted.replace("{{run.uid}}", meta.uid).replace("{{run.project}}", meta.project)
    if not _is_url(wanted) and not os.path.isabs(_local(wanted)):
        wanted = os.path.join(_local(root), wanted)  # relative: under the root, not the cwd
    if not inside(root, wanted):
        raise OutsideRootError("spec.artifact_path", spec.artifact_path or wanted, root)
    for field, path, put in _reads(spec):  # remote URLs and store:// refs read no server file
        if _is_url(path):
            continue
        full = _absolute(path, root)
        if not inside(root, full):
            raise OutsideRootError(field, path, root)
        put(full)  # read where it was checked (a relative path is under the root, not the cwd)
    spec.artifact_path = wanted
    return wanted


def _absolute(path: str, root: str) -> str:
    local = _local(path)
    return local if os.path.isabs(local) else os.path.join(_local(root), local)


def _reads(spec: Any) -> list[tuple[str, str, Callable[[str], None]]]:
    """Return ``(field, path, setter)`` for every file a run spec makes the server read."""
    out: list[tuple[str, str, Callable[[str], None]]] = [
        (f"spec.inputs.{key}", str(url), partial(spec.inputs.__setitem__, key))
        for key, url in (spec.inputs or {}).items()
    ]
    if spec.param_file:
        out.append(("spec.param_file", spec.param_file, partial(setattr, spec, "param_file")))
    for n, src in enumerate(spec.secret_sources or []):
        if isinstance(src, dict) and src.get("kind") == "file":
            field = f"spec.secret_sources[{n}].source"
            out.append((field, str(src.get("source", "")), partial(src.__setitem__, "source")))
    return out
