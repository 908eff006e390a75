"""Runtimes and :func:`new_runner`: the command URL picks the runtime through a lazy registry.

Built-ins are dotted paths, imported only when used; third-party runtimes register through the
``mlflowlet.runtimes`` entry-point group (name = kind, value = ``module:Class``).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from ..errors import UnknownBackendError
from .base import Runtime

__all__ = [
    "Runtime",
    "abort_run",
    "new_function",
    "new_runner",
    "register_runtime",
    "runtime_kinds",
]

_BUILTIN: dict[str, str] = {
    "local": "mlflowlet.runtimes.local:LocalRuntime",
    "subprocess": "mlflowlet.runtimes.subprocess:SubprocessRuntime",
    "dask": "mlflowlet.runtimes.dask:DaskRuntime",
    "remote": "mlflowlet.runtimes.remote:RemoteRuntime",
    "job": "mlflowlet.runtimes.kubejob:KubeJobRuntime",
    "mpijob": "mlflowlet.runtimes.mpijob:MPIJobRuntime",
    "spark": "mlflowlet.runtimes.spark:SparkRuntime",
}
_SCHEMES: dict[str, str] = {
    "local": "local",
    "dask": "dask",
    "http": "remote",
    "https": "remote",
    "job": "job",
    "mpijob": "mpijob",
    "spark": "spark",
}
_registered: dict[str, Any] = {}


def register_runtime(kind: str, target: Any, scheme: str | None = None) -> None:
    """Register a runtime class (or ``'module:Class'``) under ``kind`` (and a URL ``scheme``)."""
    _registered[kind] = target
    if scheme:
        _SCHEMES[scheme] = kind


def _entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group="mlflowlet.runtimes")}


def runtime_kinds() -> list[str]:
    """Every runtime kind available (built-in, registered, entry points)."""
    return sorted({*_BUILTIN, *_registered, *_entry_points()})


def _load(kind: str) -> type[Runtime]:
    target = _registered.get(kind) or _BUILTIN.get(kind)
    if target is None:
        eps = _entry_points()
        if kind not in eps:
            raise UnknownBackendError("runtime kind", kind, runtime_kinds())
        return eps[kind].load()
    if isinstance(target, str):
        module, _, cls = target.partition(":")
        try:
            return getattr(import_module(module), cls)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("mlflowlet"):
                raise UnknownBackendError(
                    "runtime kind (not available in this version)", kind, runtime_kinds()
                ) from None
            raise
    return target


def kind_for_command(command: str) -> str:
    """Pick a runtime kind from a command URL: ``''``/``module:fn`` local, ``x.py`` subprocess..."""
    if "://" in command:
        scheme = command.split("://", 1)[0]
        if scheme not in _SCHEMES:
            raise UnknownBackendError(
                "runtime URL scheme", scheme + "://", [s + "://" for s in _SCHEMES]
            )
        return _SCHEMES[scheme]
    first = command.split(" ", 1)[0]
    if first.endswith(".py") or " " in command.strip():
        return "subprocess"
    return "local"


def new_runner(
    command: str = "", runtime: Any = None, kind: str | None = None, **options: Any
) -> Runtime:
    """Return a runtime for ``command``.

    Args:
        command: ``''`` (local, pass ``handler=`` to ``run``), ``'module:function'`` (local),
            ``'training.py'`` (subprocess), ``'dask://'``, ``'http://host:port'``,
            ``'job://image#training.py'``.
        runtime: a dict of runtime options (MLRun style), merged into ``options``.
        kind: force a runtime kind (``local``, ``subprocess``, ``dask``, ``job``, ...).
        **options: runtime options (``handler``, ``image``, ``mode``, ``timeout``, ...).

    Returns:
        The runtime; call ``.run(task, ...)`` on it.
    """
    if isinstance(runtime, dict):
        options = {**runtime, **options}
        kind = kind or runtime.get("kind")
        options.pop("kind", None)
    kind = kind or kind_for_command(command or "")
    return _load(kind)(command, **options)


new_function = new_runner


def abort_run(run: Any, db: Any = None, **options: Any) -> Any:
    """Abort ``run`` where it runs, as the run DB knows it; see ``RunObject.abort``.

    Kubernetes kinds (``job``, ``mpijob``, ``spark``) delete the workload. A run in a process
    (local, subprocess, a tracked script) is signalled on its host (SIGINT) and ends ``aborted``
    there; elsewhere, or with its process gone, it is marked ``aborted`` (``timeout=`` bounds the
    wait for a signalled process, default 10 s).

    Raises:
        ConfigError: the run already ended.
        NotFoundError: the DB does not know the run.
    """
    from ..errors import ConfigError
    from ..model import TERMINAL_STATES, RunObject

    if db is None:
        from ..db import get_run_db

        db = get_run_db()
    meta = run.metadata
    stored = RunObject.model_validate(db.read_run(meta.uid, meta.project, meta.iteration))
    stored._db_url = run._db_url
    stored._record_in(db)
    if stored.state in TERMINAL_STATES:
        raise ConfigError(
            f"run {stored.metadata.name!r} ({stored.uid}) already ended ({stored.state}); "
            "there is nothing to abort"
        )
    timeout = options.pop("timeout", None)
    kind = stored.metadata.labels.get("kind", "local")
    try:
        for_run = getattr(_load(kind), "for_run", None)
    except UnknownBackendError:  # a kind this install lacks: its process may still be reachable
        for_run = None
    if for_run is not None:
        return for_run(stored, **options).abort(stored, db)
    from ._abort import abort_process_run

    return abort_process_run(stored, db, timeout)
