"""What travels to the Dask workers: the pickled handler, and the task that runs one run there.

Kept apart from :mod:`mlflowlet.runtimes.dask` so a worker imports only this (and the local
runtime), never the caller's connection and waiting machinery.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from collections.abc import Callable, Iterable
from types import CodeType
from typing import TYPE_CHECKING, Any, cast

from .._text import log_bytes
from ..errors import ConfigError
from ..model import RunObject, now_iso

if TYPE_CHECKING:
    from ..db.base import RunDB

_pickle_lock = threading.Lock()
_handlers: dict[str, Any] = {}  # payload digest -> unpickled handler, per worker process
_active_lock = threading.Lock()
_active: dict[int, list[bool]] = {}  # runs in this worker process -> [overlapped another]
_SHARED_FDS = (
    "mlflowlet: other runs ran in this Dask worker process at the same time (threads_per_worker "
    "> 1): fd-level output written meanwhile (C code, child processes, os.write) carries no "
    "thread and went to the run that started first, this one or another; run one thread per "
    "worker to keep each run's apart\n"
)


# caller side ------------------------------------------------------------------------------------
def pickle_handler(fn: Any) -> bytes:
    """Pickle a handler for the workers; user modules go by value, so workers need not import them.

    Raises:
        ConfigError: the handler (or something it uses) cannot be pickled; the message names it.
    """
    import cloudpickle

    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    by_value = module is not None and module.__name__ != "__main__" and not _installed(module)
    shipped = (fn, origin(fn))
    with _pickle_lock:
        try:
            if by_value:
                cloudpickle.register_pickle_by_value(module)
            try:
                return cloudpickle.dumps(shipped)
            finally:
                if by_value:
                    cloudpickle.unregister_pickle_by_value(module)
        except Exception as exc:
            error = exc
        if by_value:  # a module global that cannot travel: the workers may import the module
            try:
                return cloudpickle.dumps(shipped)
            except Exception:
                pass
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    raise ConfigError(
        f"handler {name!r} cannot be pickled to ship it to Dask: "
        f"{unpicklable_part(fn) or 'it'} cannot be pickled ({type(error).__name__}: {error}); "
        "create that object inside the handler, or pass what it needs as params"
    )


def origin(fn: Callable[..., Any]) -> dict[str, Any]:
    """Return where ``fn`` comes from, as the caller sees it: its file, code hash and git facts.

    A function shipped by value reaches a worker with its file name replaced (cloudpickle's
    ``<dynamic-code>``) and maybe without its source: there its code hash (of the bytecode) and
    git facts (of the worker's working directory) would differ from the same run's in-process.
    """
    import inspect

    from .._binding import code_hash
    from .._provenance import git_info, source_dir

    code = getattr(inspect.unwrap(fn), "__code__", None)
    return {
        "file": code.co_filename if code is not None else "",
        "code_hash": code_hash(fn),
        "git": git_info(source_dir(fn)),
    }


def _installed(module: Any) -> bool:
    """Whether ``module`` comes from the standard library, site-packages or mlflowlet itself."""
    import sysconfig

    filename = getattr(module, "__file__", None)
    if not filename or module.__name__.split(".")[0] == "mlflowlet":
        return True
    path = os.path.abspath(filename)
    roots = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    if any(path.startswith(os.path.abspath(root) + os.sep) for root in roots):
        return True
    return any(part in ("site-packages", "dist-packages") for part in path.split(os.sep))


def unpicklable_part(fn: Any) -> str:
    """Name the closure variable, global or parameter default of ``fn`` that cannot be pickled."""
    import inspect

    import cloudpickle

    code = getattr(fn, "__code__", None)
    if code is None:
        return f"the {type(fn).__name__} object"
    parts: list[tuple[str, Any]] = []
    for name, cell in zip(code.co_freevars, fn.__closure__ or (), strict=False):
        try:
            parts.append((f"closure variable {name!r}", cell.cell_contents))
        except ValueError:  # an empty cell
            continue
    names, stack = set(), [code]
    while stack:  # globals used by the function and by the functions nested in it
        current = stack.pop()
        names.update(current.co_names)
        stack.extend(c for c in current.co_consts if hasattr(c, "co_names"))
    parts += [(f"global {n!r}", fn.__globals__[n]) for n in sorted(names) if n in fn.__globals__]
    parts += [
        (f"the default of parameter {p.name!r}", p.default)
        for p in inspect.signature(fn).parameters.values()
        if p.default is not p.empty
    ]
    for label, value in parts:
        try:
            cloudpickle.dumps(value)
        except Exception:
            return f"{label} ({type(value).__module__}.{type(value).__qualname__})"
    return ""


# worker side ------------------------------------------------------------------------------------
class MemoryDB:
    """What a worker's context commits to when the caller stores the run: kept in memory."""

    artifact_root = ""

    def __init__(self) -> None:
        self.run: dict[str, Any] | None = None
        self.artifacts: list[dict[str, Any]] = []
        self.metrics: list[tuple] = []
        self.log = bytearray()

    def commit_run(
        self, run: dict, artifacts: Iterable = (), metrics: Iterable = (), log: bytes = b""
    ) -> None:
        """Keep the latest run record (secret values already masked) and accumulate the rest."""
        self.run = run
        self.artifacts.extend(artifacts)
        self.metrics.extend(metrics)
        self.log += log

    def read_artifact(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Resolve ``store://`` inputs through the worker's own run DB (``MLFLOWLET_DBPATH``)."""
        from ..db import get_run_db

        return get_run_db().read_artifact(*args, **kwargs)


class _Stamped:
    """The worker's run DB, each record stamped with the caller's view of the handler."""

    def __init__(self, db: RunDB | MemoryDB, facts: dict[str, Any]) -> None:
        self._db: Any = db
        self._facts = facts

    def stamp(self, run: dict[str, Any]) -> dict[str, Any]:
        """Return ``run`` with the caller's code hash and git facts."""
        status = run.setdefault("status", {})
        status["code_hash"], status["git"] = self._facts["code_hash"], dict(self._facts["git"])
        return run

    def commit_run(self, run: dict, *args: Any, **kwargs: Any) -> None:
        """Commit the stamped record (see ``RunDB.commit_run``)."""
        self._db.commit_run(self.stamp(run), *args, **kwargs)

    def store_run(self, run: dict, *args: Any, **kwargs: Any) -> None:
        """Store the stamped record (see ``RunDB.store_run``)."""
        self._db.store_run(self.stamp(run), *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def _refile(code: CodeType, filename: str) -> CodeType:
    """Return ``code`` (and the code nested in it) named after ``filename`` again."""
    consts = tuple(_refile(c, filename) if hasattr(c, "co_filename") else c for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def _load_handler(payload: bytes) -> tuple[Any, dict[str, Any]]:
    digest = hashlib.sha256(payload).hexdigest()
    found = _handlers.get(digest)
    if found is None:  # unpickle once per worker: later iterations reuse it
        import cloudpickle

        found = fn, facts = cloudpickle.loads(payload)
        code = getattr(fn, "__code__", None)
        if code is not None and code.co_filename.startswith("<") and facts["file"]:
            try:  # tracebacks name the handler's file (and quote it where the worker has it)
                fn.__code__ = _refile(code, facts["file"])
            except (TypeError, ValueError):  # a code object that cannot be replaced
                pass
        if len(_handlers) >= 64:
            _handlers.clear()
        _handlers[digest] = found
    return found


def run_task(payload: bytes, run_json: str, db_url: str) -> dict[str, Any]:
    """Run one run on a Dask worker through the local runtime; return its record.

    Args:
        payload: the cloudpickled handler.
        run_json: the run as JSON (inline secret values included: they never reach a DB).
        db_url: a run DB the worker writes to itself; empty to return everything to the caller.

    Returns:
        ``run`` (the run dict), ``artifacts``, ``metrics`` (rows), ``log`` (bytes) and
        ``stored`` (whether the worker already wrote the run to ``db_url``).
    """
    from ..context import Context
    from .local import call_handler

    run = RunObject.model_validate_json(run_json)
    try:
        from distributed import get_worker

        run.metadata.annotations["dask.worker"] = get_worker().address
    except (ImportError, ValueError):  # called outside a worker
        pass
    memory = MemoryDB()
    try:
        fn, facts = _load_handler(payload)
    except BaseException as exc:  # a module the worker cannot import, a broken pickle
        where = run.metadata.annotations.get("dask.worker", "the Dask worker")
        run.status.state, run.status.end_time = "error", now_iso()
        run.status.error = (
            f"cannot load the handler on {where}: {type(exc).__name__}: {exc} "
            "(install the modules it imports on the workers)"
        )
        log = log_bytes(run.status.error + "\n")
        return {"run": run.to_dict(), "artifacts": [], "metrics": [], "log": log, "stored": False}
    db: Any = memory
    if db_url:
        from ..db import get_run_db

        db = get_run_db(db_url)
    with _active_lock:  # runs overlapping in one process share fds 1 and 2 (see _fdcapture)
        for flag in _active.values():
            flag[0] = True
        overlapped = _active[id(memory)] = [bool(_active)]
    stamped = _Stamped(db, facts)  # the caller's code hash and git facts, as in-process
    ctx = Context(run, cast("RunDB", stamped))
    try:
        call_handler(ctx, lambda: fn)
    except KeyboardInterrupt:  # raised by code in this worker thread (the handler, or an abort
        pass  # asked elsewhere), never a signal: the run is recorded aborted, the worker lives on
    finally:
        with _active_lock:
            _active.pop(id(memory), None)
    if overlapped[0]:  # the log says where its fd-level output may have gone
        note = log_bytes(_SHARED_FDS)
        if db_url:
            db.store_log(run.uid, run.metadata.project, note)
        else:
            memory.log += note
    return {
        "run": memory.run or stamped.stamp(ctx.to_run_object().to_dict()),
        "artifacts": memory.artifacts,
        "metrics": memory.metrics,
        "log": bytes(memory.log),
        "stored": bool(db_url),
    }
