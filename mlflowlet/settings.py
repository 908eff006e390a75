"""Typed, frozen settings read lazily from ``MLFLOWLET_*`` environment variables.

Nothing is read at import; :func:`get_settings` reads the environment each time it is called
(a handful of ``os.environ`` lookups), so tests and child processes see changes at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

_PREFIX = "MLFLOWLET_"


@dataclass(frozen=True)
class Settings:
    """The effective configuration.

    Attributes:
        dbpath: run DB location: a directory (SQLite file ``mlflowlet.db`` inside), a ``.db``
            file, or an ``http(s)://`` server URL. Empty means the current directory.
        artifact_path: root for artifacts; empty means ``<db dir>/artifacts``.
        project: default project name.
        log_level: the context logger's level.
        api_token: bearer token for the mlflowlet server.
        exec_config: a JSON run spec handed to a child process by a runtime.
        flush_interval: seconds within which what a run logs reaches the run DB (a background
            thread flushes buffered writes; at most 1 s by default).
        heartbeat_timeout: seconds without a heartbeat after which a reader on another host
            takes a ``running`` run's process for dead and records the run as ``error``.
        max_log_bytes: the most of a run's output its stored log keeps: the first bytes, then
            a marker saying how much was left out, then the last 64 KiB.
        hash_algo: the hash recorded for new artifact versions: ``blake3`` (default) or
            ``sha256``. Versions keep the algorithm they were recorded with.
        no_forkserver: ``1`` starts every child of the subprocess runtime as a fresh interpreter
            (no warm worker forking sweep iterations).
        image: the default container image of compiled steps, ``mlrun_op`` tasks and Kubernetes
            jobs that name none (an image with mlflowlet installed).
    """

    dbpath: str = ""
    artifact_path: str = ""
    project: str = "default"
    log_level: str = "info"
    api_token: str = ""
    exec_config: str = ""
    flush_interval: float = 1.0
    heartbeat_timeout: float = 300.0
    max_log_bytes: int = 64 * 1024 * 1024
    hash_algo: str = "blake3"
    no_forkserver: str = ""
    image: str = ""

    def sources(self) -> dict[str, tuple[object, str]]:
        """Return each setting with where its value came from (env variable or default)."""
        out: dict[str, tuple[object, str]] = {}
        for f in fields(self):
            env = _PREFIX + f.name.upper()
            origin = env if env in os.environ else "default"
            out[f.name] = (getattr(self, f.name), origin)
        return out


# (field, its variable, its type) once: a run reads its settings several times
_VARIABLES = tuple((f.name, _PREFIX + f.name.upper(), f.type) for f in fields(Settings))
_DEFAULTS = Settings()  # frozen: shared whenever no variable is set


def get_settings() -> Settings:
    """Read the settings from the environment now."""
    env = os.environ
    kwargs: dict[str, object] = {}
    for name, variable, kind in _VARIABLES:
        raw = env.get(variable)
        if raw is None:
            continue
        if kind == "float":
            kwargs[name] = _seconds(variable, raw)
        else:
            kwargs[name] = int(raw) if kind == "int" else raw
    return Settings(**kwargs) if kwargs else _DEFAULTS  # type: ignore[arg-type]


_TYPES = {name: (variable, kind) for name, variable, kind in _VARIABLES}


def get_setting(name: str) -> str | int | float:
    """Read one setting from the environment now: ``get_settings().<name>``, reading one variable.

    Raises:
        KeyError: no setting is called ``name``.
    """
    variable, kind = _TYPES[name]
    raw = os.environ.get(variable)
    if raw is None:
        default: str | int | float = getattr(_DEFAULTS, name)
        return default
    if kind == "float":
        return _seconds(variable, raw)
    return int(raw) if kind == "int" else raw


def heartbeat_timing() -> tuple[float, float]:
    """Return ``(flush_interval, heartbeat_every)`` for a run's owner, read now.

    A quiet owner writes a heartbeat every quarter of ``heartbeat_timeout`` (at most 30 s, at
    least one flush interval), so readers on other hosts never take it for dead.
    """
    interval = float(get_setting("flush_interval"))
    return interval, max(interval, min(30.0, float(get_setting("heartbeat_timeout")) / 4))


def _seconds(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):  # NaN fails the comparison too
        from .errors import ConfigError

        raise ConfigError(f"{name}={raw!r} is not a positive number of seconds; e.g. {name}=1")
    return value
