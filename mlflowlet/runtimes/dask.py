"""The Dask runtime: each run, and each hyper-parameter iteration, is one task on a Dask cluster.

``new_runner('dask://')`` starts (once per process) a ``distributed.LocalCluster`` on 127.0.0.1;
``'dask://host:8786'`` connects to a running scheduler; ``new_runner(kind='dask', cluster=c)``
uses any cluster object (``dask_kubernetes``, ``dask_jobqueue``, ...).

The handler travels as cloudpickle bytes that the task itself unpickles, so a handler whose module
the workers cannot import fails as a run error instead of crashing the workers. On the worker the
run goes through :class:`~mlflowlet.runtimes.local.LocalRuntime` with an in-memory run DB; the task
returns the run record (run dict, artifact records, metric rows, captured log) and the caller
stores it, so workers need no DB access (``worker_db=`` lets them write to a shared DB instead).
Every wait is bounded: a scheduler that cannot be reached, a cluster left without workers and a
run over its ``timeout`` all end as run errors that name the cause.
"""

from __future__ import annotations

import atexit
import itertools
import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .._text import log_bytes
from ..errors import ConfigError, MissingDependencyError, RunError
from ..model import RunObject, now_iso
from ._claim import Claim
from ._dask_stop import bounded, probe, stop_overdue, stop_tasks
from ._dask_task import pickle_handler, run_task
from .base import Runtime

if TYPE_CHECKING:
    from ..db.base import RunDB

__all__ = ["DaskRuntime", "parse_address"]

_POLL = 1.0  # seconds between health checks while nothing completes
_FETCH_TIMEOUT = 60.0  # bound on fetching finished results from the workers
_lock = threading.Lock()
_clients: dict[tuple, tuple[Any, Any]] = {}  # (pid, target) -> (Client, LocalCluster or None)


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise MissingDependencyError("dask[distributed]", "dask") from None
    return distributed


def parse_address(command: str) -> str:
    """Turn ``dask://``, ``dask://host:port`` or ``dask://tls://host:port`` into an address.

    An empty address means "the local cluster of this process"; a missing port is 8786.
    """
    rest = command.split("://", 1)[1] if command.startswith("dask://") else command
    rest = rest.strip().rstrip("/")
    if not rest:
        return ""
    scheme, _, hostport = rest.rpartition("://")
    if ":" not in hostport.rsplit("]", 1)[-1]:
        hostport += ":8786"
    return f"{scheme or 'tcp'}://{hostport}"


class DaskRuntime(Runtime):
    """Runs each run (and each hyper-parameter iteration) as a Dask task.

    Args:
        command: ``'dask://'`` (a local cluster shared by this process) or
            ``'dask://host:port'`` (an existing scheduler).
        cluster: a cluster object to use instead of ``command`` (anything ``Client`` accepts).
        client: an existing ``distributed.Client`` to submit through.
        n_workers: workers of the local cluster (``dask://`` only).
        threads_per_worker: threads per local worker (``dask://`` only).
        connect_timeout: seconds to reach the scheduler before the run fails.
        lost_timeout: seconds the scheduler may stay unreachable, or the cluster without
            workers, before the runs waiting on it fail.
        worker_db: ``False`` (workers return records, the caller stores them), ``True`` (workers
            write to the caller's run DB: a shared SQLite file or the mlflowlet server) or a run
            DB URL the workers write to.
        **options: common runtime options (``handler``, ...).
    """

    kind = "dask"

    def __init__(
        self,
        command: str = "",
        cluster: Any = None,
        client: Any = None,
        n_workers: int = 2,
        threads_per_worker: int = 1,
        connect_timeout: float = 10.0,
        lost_timeout: float = 60.0,
        worker_db: bool | str = False,
        **options: Any,
    ) -> None:
        super().__init__(command, **options)
        self.address = parse_address(command) if command else ""
        self.cluster = cluster
        self.n_workers, self.threads_per_worker = int(n_workers), int(threads_per_worker)
        self.connect_timeout, self.lost_timeout = float(connect_timeout), float(lost_timeout)
        self.worker_db = worker_db
        self._client, self._own_client = client, client is None
        self._shipped: tuple[Any, str, bytes] | None = None

    def __repr__(self) -> str:
        return f"<DaskRuntime {self._where()}>"

    # the cluster ------------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The ``distributed.Client`` runs are submitted through (connects on first use).

        Raises:
            RunError: the scheduler did not answer within ``connect_timeout``.
        """
        client = self._client
        if client is None or (self._own_client and client.status in ("closing", "closed")):
            client = self._client = self._connect()
        return client

    def close(self) -> None:
        """Close this process's client for the cluster (and the local cluster ``dask://`` started).

        Runtimes on the same cluster share that client; the next run connects again. A client
        given as ``client=`` is left open.
        """
        if not self._own_client:
            return
        with _lock:
            client, local = _clients.pop(self._key(), (self._client, None))
        self._client = None
        for item in (client, local):
            if item is not None:
                item.close()

    def _key(self) -> tuple:
        if self.cluster is not None:
            where = getattr(self.cluster, "scheduler_address", "") or id(self.cluster)
        else:
            where = self.address or f"local-{self.n_workers}x{self.threads_per_worker}"
        return (os.getpid(), where)

    def _where(self) -> str:
        if self.cluster is not None:
            return str(getattr(self.cluster, "scheduler_address", "") or self.cluster)
        if self._client is not None and getattr(self._client, "scheduler", None) is not None:
            return str(self._client.scheduler.address)
        return self.address or "the local cluster"

    def _connect(self) -> Any:
        distributed, key = _distributed(), self._key()
        with _lock:
            cached = _clients.get(key)
            if cached is not None and cached[0].status not in ("closing", "closed"):
                return cached[0]
            target, local = self.cluster or self.address, None
            try:
                if not target:
                    target = local = distributed.LocalCluster(
                        n_workers=self.n_workers,
                        threads_per_worker=self.threads_per_worker,
                        processes=True,
                        host="127.0.0.1",
                        dashboard_address=None,
                        # the scheduler's HTTP endpoints still start: on a free port, not 8787
                        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                    )
                if isinstance(target, str):  # a handshake with a deadline first (see _dask_stop)
                    probe(target, self.connect_timeout)
                client = bounded(
                    lambda: distributed.Client(
                        target, timeout=self.connect_timeout, set_as_default=False
                    ),
                    self.connect_timeout + 5,
                    "dask-connect",
                )
            except (OSError, TimeoutError) as exc:
                if local is not None:
                    local.close()
                raise RunError(
                    f"cannot reach the Dask scheduler at {self._where()} within "
                    f"{self.connect_timeout:g} s ({type(exc).__name__}: {exc}); check the address "
                    "and that the scheduler is running (`dask scheduler`), or raise connect_timeout"
                ) from None
            _clients[key] = (client, local)
            return client

    # hooks ------------------------------------------------------------------------------------
    def _before_run(self, run: RunObject, handler: Any, db: RunDB, **options: Any) -> None:
        super()._before_run(run, handler, db, **options)
        self._payload(run, handler)  # fail now, naming what cannot be pickled
        if not run.spec.artifact_path:  # resolved here: a worker's cwd is not the caller's
            from ..context import Context

            run.spec.artifact_path = Context(run, db).artifact_path
        try:
            self.client  # noqa: B018 - connect (or start the local cluster) before anything runs
        except RunError as exc:
            _fail(run, str(exc))
            db.store_run(run.to_dict(), run.uid, run.metadata.project, run.metadata.iteration)
            exc.run = run
            raise

    def _payload(self, run: RunObject, handler: Any) -> bytes:
        shipped = self._shipped
        if shipped is not None and shipped[0] is handler and shipped[1] == run.spec.handler:
            return shipped[2]
        payload = pickle_handler(self._resolve(run, handler))
        self._shipped = (handler, run.spec.handler, payload)
        return payload

    def _resolve(self, run: RunObject, handler: Any) -> Any:
        if callable(handler):
            return handler
        target = handler or run.spec.handler
        if not target:
            raise ConfigError(
                "the dask runtime needs a handler: run(handler=fn) or run(handler='module:fn')"
            )
        from .._binding import resolve_handler

        return resolve_handler(target)

    def _worker_db_url(self, db: RunDB) -> str:
        if not self.worker_db:
            return ""
        if isinstance(self.worker_db, str):
            return self.worker_db
        from ..settings import get_settings

        url = getattr(db, "path", "") or getattr(db, "url", "") or get_settings().dbpath
        if not url:
            raise ConfigError(
                "worker_db=True needs a run DB the workers can reach: set MLFLOWLET_DBPATH or "
                "pass worker_db='<db url>'"
            )
        return str(url)

    @staticmethod
    def _default_parallel() -> int:
        return 0  # auto: enough tasks in flight to keep every worker thread busy

    # execution --------------------------------------------------------------------------------
    def _execute(self, run: RunObject, handler: Any, db: RunDB) -> RunObject:
        # owned by this process while it waits: a caller killed meanwhile leaves a run readers
        # resolve (the worker's record replaces it; with worker_db the worker writes the row)
        with Claim(run, db, renew=not self.worker_db) as claim:
            return next(iter(self._execute_many([run], handler, claim.db_for_outcome, 1)))

    def _execute_many(
        self, runs: Iterable[RunObject], handler: Any, db: RunDB, parallel: int
    ) -> Iterator[RunObject]:
        """Submit iterations as Dask tasks (``parallel`` in flight), yield them as they finish."""
        todo = iter(runs)
        first = next(todo, None)
        if first is None:
            return
        client, todo, lost = self.client, itertools.chain([first], todo), ""
        payload, db_url = self._payload(first, handler), self._worker_db_url(db)
        # a timeout counts from submission, so with one only as many tasks as threads are out
        window = parallel if parallel > 0 else _auto_window(client, bool(first.spec.timeout))
        done: queue.SimpleQueue = queue.SimpleQueue()
        flying: dict[Any, tuple[RunObject, float]] = {}
        watch = _Health(client, self._where(), self.lost_timeout)
        try:
            while True:
                while not lost and len(flying) < window:
                    run = next(todo, None)
                    if run is None:
                        break
                    meta = run.metadata
                    fut = client.submit(
                        run_task,
                        payload,
                        run.model_dump_json(),  # JSON: Dask need not scan a dict for futures
                        db_url,
                        pure=False,
                        key=f"mlflowlet-{meta.name}-{meta.uid}-{meta.iteration}",
                    )
                    fut.add_done_callback(done.put)
                    flying[fut] = (run, time.monotonic())
                if lost:  # the cluster is gone: fail what is left without submitting it
                    for run in todo:
                        yield _store(db, _fail(run, lost))
                if not flying:
                    return
                for fut, outcome in _next_batch(client, done, flying, watch):
                    run = flying.pop(fut)[0]
                    if isinstance(outcome, dict):
                        yield _store(db, outcome)
                    else:
                        lost = lost or (outcome if watch.lost else "")
                        yield _store(db, _fail(run, outcome))
        except KeyboardInterrupt as exc:  # Ctrl-C / SIGTERM: stop the tasks, record them aborted
            from .._interrupt import reason

            stop_tasks(client, [fut.key for fut in flying])
            for run, _ in list(flying.values()):
                _store(db, _fail(run, reason(exc), "aborted"))
            flying.clear()
            raise
        finally:
            if flying:  # the caller stopped early, or we failed: free the cluster
                stop_tasks(client, [fut.key for fut in flying])


# waiting (always bounded) -----------------------------------------------------------------------
def _auto_window(client: Any, per_thread: bool) -> int:
    try:
        threads = sum(client.sync(client.scheduler.ncores, callback_timeout=10).values())
    except Exception:  # an unhealthy cluster shows in the wait loop, with a better message
        threads = 0
    return max(threads, 1) if per_thread else max(32, 4 * threads)


def _next_batch(
    client: Any, done: queue.SimpleQueue, flying: dict, watch: _Health
) -> list[tuple[Any, dict | str]]:
    """Wait for finished tasks; return ``(future, record or error text)`` pairs."""
    while True:
        try:
            batch = [done.get(timeout=_POLL)]
        except queue.Empty:
            overdue = _overdue(flying)
            if overdue:  # cancelled, and their workers freed (restarted if need be)
                notes = stop_overdue(client, [fut.key for fut, _ in overdue])
                overdue = [
                    (f, f"{text}; {notes[f.key]}" if f.key in notes else text)
                    for f, text in overdue
                ]
            lost = watch.check(flying)
            if lost:
                stop_tasks(client, [fut.key for fut, _ in lost])
            failed: list[tuple[Any, dict | str]] = [*overdue, *lost]
            if failed:
                return failed
            continue
        while True:
            try:
                batch.append(done.get_nowait())
            except queue.Empty:
                break
        batch = [fut for fut in dict.fromkeys(batch) if fut in flying]  # skip cancelled ones
        if batch:
            return _outcomes(client, batch, flying, watch.where)


def _overdue(flying: dict) -> list[tuple[Any, str]]:
    now, out = time.monotonic(), []
    for fut, (run, submitted) in flying.items():
        limit = run.spec.timeout
        if limit and now - submitted > limit:
            out.append((fut, f"the run did not finish within its timeout of {limit:g} s"))
    return out


class _Health:
    """Notices a scheduler that stays unreachable, or a cluster left without workers."""

    def __init__(self, client: Any, where: str, lost_timeout: float) -> None:
        self.client, self.where, self.lost_timeout = client, where, lost_timeout
        self.bad_since: float | None = None
        self.lost = False

    def check(self, flying: dict) -> list[tuple[Any, str]]:
        client, problem = self.client, ""
        if client.status in ("closing", "closed"):
            problem = f"the Dask client for {self.where} was closed"
            self.bad_since = -float("inf")
        elif client.status != "running":
            problem = f"lost the connection to the Dask scheduler at {self.where}"
        else:
            try:
                if not client.sync(client.scheduler.ncores, callback_timeout=self.lost_timeout):
                    problem = f"the Dask cluster at {self.where} has no workers"
            except Exception as exc:
                problem = f"the Dask scheduler at {self.where} does not answer ({exc!r})"
        if not problem:
            self.bad_since = None
            return []
        now = time.monotonic()
        self.bad_since = now if self.bad_since is None else self.bad_since
        if now - self.bad_since < self.lost_timeout:
            return []
        self.lost = True
        text = (
            f"{problem} for {self.lost_timeout:g} s (crashed or stopped?); the run did not finish"
        )
        return [(fut, text) for fut in flying]


def _outcomes(client: Any, batch: list, flying: dict, where: str) -> list[tuple[Any, dict | str]]:
    out: list[tuple[Any, dict | str]] = []
    finished = [fut for fut in batch if fut.status == "finished"]
    if finished:
        try:  # one round trip for the batch (Client.gather takes no timeout, its coroutine does)
            records = client.sync(client._gather, finished, callback_timeout=_FETCH_TIMEOUT)
            out.extend(zip(finished, records, strict=True))
        except Exception:
            for fut in finished:
                try:
                    out.append((fut, fut.result(timeout=_FETCH_TIMEOUT)))
                except Exception as exc:
                    out.append((fut, f"could not fetch the result from {where}: {exc!r}"))
    for fut in batch:
        if fut.status == "finished":
            continue
        if fut.status == "cancelled":
            out.append(
                (
                    fut,
                    f"the Dask task was cancelled: the scheduler at {where} restarted, "
                    "was lost or dropped it",
                )
            )
            continue
        try:
            error: BaseException | None = fut.exception(timeout=_FETCH_TIMEOUT)
        except Exception as err:  # the scheduler vanished meanwhile
            error = err
        it = flying[fut][0].metadata.iteration
        what = f"iteration {it}" if it else "the run"
        text = f"the Dask task for {what} failed on {where}: {type(error).__name__}: {error}"
        out.append((fut, text))
    return out


def _fail(run: RunObject, error: str, state: str = "error") -> RunObject:
    run.status.state = state
    run.status.error = error
    run.status.end_time = run.status.last_update = now_iso()
    return run


def _store(db: RunDB, outcome: RunObject | dict) -> RunObject:
    if isinstance(outcome, RunObject):
        db.commit_run(outcome.to_dict(), log=log_bytes(outcome.status.error + "\n"))
        return outcome
    if not outcome["stored"]:
        db.commit_run(outcome["run"], outcome["artifacts"], outcome["metrics"], outcome["log"])
    return RunObject.model_validate(outcome["run"])


@atexit.register
def _close_clusters() -> None:
    """Close the clients (and the local clusters) this process opened."""
    for key, (client, cluster) in list(_clients.items()):
        if key[0] != os.getpid():
            continue
        for item in (client, cluster):
            try:
                if item is not None:
                    item.close()
            except Exception:  # interpreter shutdown: best effort
                pass
    _clients.clear()
