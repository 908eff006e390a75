"""Where a run ran: host, owner, Python version and git commit (read cheaply, cached)."""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def host_facts() -> dict[str, str]:
    """Return ``host``, ``owner`` and ``python_version`` of this process."""
    owner = os.environ.get("USER") or os.environ.get("USERNAME") or ""
    if not owner:
        try:
            import getpass

            owner = getpass.getuser()
        except Exception:  # no passwd entry in some containers
            owner = str(os.getuid()) if hasattr(os, "getuid") else ""
    version = ".".join(str(part) for part in sys.version_info[:3])
    return {"host": _hostname(), "owner": owner, "python_version": version}


def _hostname() -> str:
    from ._owner import hostname  # os.uname: a tracked script need not import socket

    return hostname()


@lru_cache(maxsize=64)
def source_dir(handler: Any) -> str:
    """Return the directory of a handler's source file (the script's, or the working directory)."""
    import inspect  # a wrapped handler (functools.wraps) lives where the function it wraps does

    code = getattr(inspect.unwrap(handler) if handler is not None else None, "__code__", None)
    path = code.co_filename if code is not None else (sys.argv[0] if sys.argv else "")
    if not path or path.startswith("<"):
        return os.getcwd()
    return os.path.dirname(os.path.abspath(path))


def git_info(start: str) -> dict[str, str]:
    """Return ``repo`` (origin URL or path) and ``commit`` of the git checkout holding ``start``.

    Reads ``.git`` files directly (no ``git`` subprocess); empty when not in a checkout. A
    ``.git`` file (a ``git worktree`` checkout, a submodule) points at its git directory; a
    worktree's refs, packed refs and remotes are those of the repository it belongs to.
    """
    folder = os.path.abspath(start)
    while True:
        gitdir = _gitdir(os.path.join(folder, ".git"))
        if gitdir:
            break
        parent = os.path.dirname(folder)
        if parent == folder:
            return {}
        folder = parent
    common = gitdir
    try:
        with open(os.path.join(gitdir, "commondir")) as fh:  # a worktree's own git directory
            common = os.path.normpath(os.path.join(gitdir, fh.read().strip()))
    except OSError:
        pass
    try:
        with open(os.path.join(gitdir, "HEAD")) as fh:
            head = fh.read().strip()
        commit = head
        if head.startswith("ref: "):
            ref = head[5:]
            commit = _read_ref(gitdir, ref) or _read_ref(common, ref)
    except OSError:
        return {}
    return {"repo": _origin(common) or folder, "commit": commit}


def _gitdir(dotgit: str) -> str:
    """Return the git directory a checkout's ``.git`` is or points at (``gitdir: path``)."""
    import stat

    try:
        mode = os.stat(dotgit).st_mode  # one system call where there is no .git (most folders)
        if stat.S_ISDIR(mode):
            return dotgit
        with open(dotgit) as fh:
            line = fh.readline().strip()
    except OSError:
        return ""
    if not line.startswith("gitdir: "):
        return ""
    target = os.path.join(os.path.dirname(dotgit), line[len("gitdir: ") :])
    return os.path.normpath(target) if os.path.isdir(target) else ""


def _read_ref(gitdir: str, ref: str) -> str:
    path = os.path.join(gitdir, ref)
    if os.path.isfile(path):
        with open(path) as fh:
            return fh.read().strip()
    packed = os.path.join(gitdir, "packed-refs")
    if os.path.isfile(packed):
        with open(packed) as fh:
            for line in fh:
                parts = line.split()
                if len(parts) == 2 and parts[1] == ref:
                    return parts[0]
    return ""


def _origin(gitdir: str) -> str:
    try:
        with open(os.path.join(gitdir, "config")) as fh:
            lines = fh.read().splitlines()
    except OSError:
        return ""
    in_origin = False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("["):
            in_origin = stripped == '[remote "origin"]'
        elif in_origin and stripped.startswith("url"):
            return _without_credentials(stripped.split("=", 1)[1].strip())
    return ""


def _without_credentials(url: str) -> str:
    """Return a remote URL without its credentials (a token or password never reaches a record).

    ``https://user:token@host/...`` and ``https://token@host/...`` lose the user part; another
    scheme's user is kept without its password (``ssh://git@host``, ``git@host:team/repo``).
    """
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.partition("@")
    if not sep or not at or "/" in userinfo:
        return url
    if scheme.lower() in ("http", "https"):
        return f"{scheme}://{host}"
    return f"{scheme}://{userinfo.partition(':')[0]}@{host}"
