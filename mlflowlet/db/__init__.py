"""Run databases: :func:`get_run_db` opens the embedded SQLite DB or a server client."""

from __future__ import annotations

import os
import threading
from typing import cast

from .. import _process
from ..errors import UnknownBackendError
from .base import RunDB

__all__ = ["RunDB", "get_run_db", "register_db"]

DB_FILENAME = "mlflowlet.db"

_BACKENDS: dict[str, str] = {
    "http": "mlflowlet.db.http:HTTPRunDB",
    "https": "mlflowlet.db.http:HTTPRunDB",
    "postgresql": "mlflowlet.db.postgres:PostgresRunDB",
    "postgres": "mlflowlet.db.postgres:PostgresRunDB",
}
_cache: dict[tuple[int, str], RunDB] = {}
_cache_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # another thread may have held the lock at the fork; the child opens its own connections
    # (keys hold the pid), and never uses or closes the parent's (see sqlite.py)
    global _cache_lock
    _cache_lock = threading.Lock()


_process.at_fork(child=_after_fork_in_child)


@_process.on_reset
def _close_cached() -> None:
    """Close and forget every cached connection (``_process.reset()``)."""
    with _cache_lock:
        cached = list(_cache.values())
        _cache.clear()
    for db in cached:
        close = getattr(db, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # a connection already closed by its user
                pass


def register_db(scheme: str, target: str) -> None:
    """Register a run DB backend for a URL scheme (``'dotted.module:Class'``)."""
    _BACKENDS[scheme] = target


def resolve_db_path(url: str = "") -> str:
    """Turn a DB location (dir, ``.db`` file, ``sqlite:///path``) into the SQLite file path.

    ``sqlite:///x.db`` is relative and ``sqlite:////abs/x.db`` absolute, as in SQLAlchemy/MLflow.
    """
    if url.startswith("sqlite:///"):
        url = url[len("sqlite:///") :]
    elif url.startswith("file://"):
        url = url[len("file://") :]
    path = os.path.abspath(os.path.expanduser(url or "."))
    if path.endswith(".db") or os.path.isfile(path):
        return path
    return os.path.join(path, DB_FILENAME)


def get_run_db(url: str = "", cached: bool = True) -> RunDB:
    """Open the run DB at ``url``.

    Args:
        url: a directory (its ``mlflowlet.db`` is used), a ``.db`` file, ``sqlite:///path``, a
            ``postgresql://`` URL, or an ``http(s)://`` server URL. Empty means
            ``MLFLOWLET_DBPATH``, else the current directory.
        cached: reuse one connection per location in this process.

    Returns:
        The run DB (``.connect()`` returns it again, for MLRun-style code).
    """
    if not url:
        from ..settings import get_settings

        url = get_settings().dbpath
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme and scheme not in ("file", "sqlite"):
        if scheme not in _BACKENDS:
            raise UnknownBackendError("run DB scheme", scheme, ["file", "sqlite", *_BACKENDS])
        from importlib import import_module

        module, _, cls = _BACKENDS[scheme].partition(":")
        backend = getattr(import_module(module), cls)
        if not (cached and getattr(backend, "cacheable", False)):
            return cast(RunDB, backend(url))
        with _cache_lock:  # backends holding connections (PostgreSQL) are kept like SQLite's
            key = (os.getpid(), url)
            if key not in _cache or _cache[key].closed:
                _cache[key] = backend(url)
            return _cache[key]
    path = resolve_db_path(url)
    key = (os.getpid(), path)
    if cached and key in _cache and not _cache[key].closed:
        return _cache[key]
    from .sqlite import SQLiteRunDB

    with _cache_lock:
        if cached and key in _cache and not _cache[key].closed:  # a closed one is opened again
            return _cache[key]
        db = SQLiteRunDB(path)
        if cached:
            _cache[key] = db
    return db
