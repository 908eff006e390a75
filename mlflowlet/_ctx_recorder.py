"""What a run context records, and how: buffers, locks, flushing, heartbeats, secret masking.

Private to :mod:`mlflowlet.context`: a ``Context`` holds one :class:`Recorder`, which turns the
buffered writes into one ``commit_run`` transaction per state change, starts and ends the run,
and hides secret values; plus the helpers that make values JSON-safe and mask them.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from . import _capture
from ._coerce import plain_json
from ._ctx_faults import drop_unstorable, ended_elsewhere, report_flush_error
from ._masking import masked as _masked
from ._owner import alive_note, process_identity
from ._provenance import git_info, host_facts, source_dir
from ._text import LOG_ERRORS, log_bytes
from ._writeguard import WriteGuard
from .errors import (
    PartlyWrittenError,
    RecordTooLargeError,
    SecretsError,
    UnstorableValueError,
)
from .model import RunObject, now_iso

if TYPE_CHECKING:
    from .db.base import RunDB
    from .secrets import SecretsStore


def _jsonable(value: Any, what: str = "result") -> Any:
    """Return ``value`` as the JSON it carries (:func:`mlflowlet._coerce.plain_json`)."""
    return plain_json(value, what)


_UNSET = object()


class Recorder:
    """Records one run: its buffered writes, their commits, its start and end, its secrets.

    Buffers (``output``, ``artifacts``, ``metrics``) are guarded by ``lock``; every DB write
    holds ``commit_lock`` from its snapshot to its commit, so writes from the handler's thread
    and from the flush thread (``_flush.py``) land in the order they were taken. The recorder
    never refers back to its ``Context``: a context nobody holds any more is freed, and the flush
    thread (which holds the recorder weakly) stops heartbeating it.

    Args:
        run: the run recorded (the live object ``Context`` reads and writes too).
        db: the run DB (``None`` keeps everything in memory, e.g. on a Dask worker).
        secrets: a ``SecretsStore``; built from the run's secret sources on first use when None.
    """

    __slots__ = (
        "run", "db", "_secrets", "output", "held", "artifacts", "metrics", "lock", "commit_lock",
        "dirty", "last_flush", "_flush_interval", "heartbeat_every", "finished", "final_written",
        "recorded", "flush_error", "abort_requested", "sealed_for", "log_limit", "along_runs",
        "along_edges", "guard", "__weakref__",
    )  # fmt: skip

    def __init__(
        self, run: RunObject, db: RunDB | None, secrets: SecretsStore | None = None
    ) -> None:
        self.run = run
        self.db = db
        self._secrets = secrets
        self.output: list[str] = []  # captured output not yet written
        self.held = ""  # raw output kept back until more arrives: it may end in half a secret
        self.artifacts: list[dict[str, Any]] = []  # artifact records not yet written
        self.metrics: list[tuple[str, int, float, float]] = []  # metric points not yet written
        self.lock = threading.Lock()  # guards the buffers: output, artifacts, metrics
        self.commit_lock = threading.Lock()  # one DB write at a time, snapshot to commit
        self.dirty = False
        self.last_flush = time.monotonic()
        self._flush_interval = 1.0  # the flush thread's name for it (as a sweep's BatchedDB)
        self.heartbeat_every = 30.0
        self.finished = False
        self.final_written = False
        self.recorded = False  # some record of this run reached the DB
        self.flush_error = ""
        self.abort_requested = ""  # set by request_abort: the next log call stops the handler
        self.sealed_for: int | None = None  # aborted by an interrupt (_interrupt.py) from there
        self.log_limit: _capture.LogLimit | None = None  # made at the first output
        # other runs and lineage edges the record names (a pipeline's skipped and cached steps):
        # stored just before the record, by the same write (``store_runs``)
        self.along_runs: list[dict[str, Any]] = []
        self.along_edges: list[dict[str, Any]] = []
        self.guard = WriteGuard()  # writes in flight: `finish` waits for them, refuses later ones

    @property
    def secrets(self) -> SecretsStore:
        """The run's ``SecretsStore``, read from the run's secret sources on first use."""
        if self._secrets is None:
            from .secrets import SecretsStore

            self._secrets = SecretsStore.from_sources(self.run.spec.secret_sources)
        return self._secrets

    @property
    def secrets_or_none(self) -> SecretsStore | None:
        """The secrets store if it was given or read already, else None (reads nothing)."""
        return self._secrets

    @property
    def flush_interval(self) -> float:
        """Seconds within which the flush thread writes what was logged."""
        return self._flush_interval

    def renew_locks(self, parent_pid: int) -> None:
        """Take fresh locks (in a forked child: a thread of the parent may have held one).

        The parent's writes in flight are not the child's, nor is the run: its guard admits no
        write (``ForkedRunError``; the run's record is the parent's to write).
        """
        self.lock, self.commit_lock = threading.Lock(), threading.Lock()
        ended, parent = self.guard.closed, self.guard.forked_from or parent_pid
        self.guard = WriteGuard(closed=True, forked_from=0 if ended else parent)

    # buffering ----------------------------------------------------------------------------------
    def writing(self, kind: str, name: Any = None) -> WriteGuard:
        """Hold the run open while ``kind`` ``name`` is written: ``with recorder.writing(...):``.

        ``name`` is written into the error only (a dict: its keys), never formatted otherwise.

        Raises:
            RunEndedError: the run already ended: nothing of it is written anywhere.
            ForkedRunError: this process is a forked copy of the one recording the run.
        """
        guard = self.guard
        if guard.admit():
            return guard
        from .errors import ForkedRunError, RunEndedError

        if isinstance(name, dict):
            name = [str(k) for k in name]
        what = kind if name is None else f"{kind} {name!r}"
        meta, status = self.run.metadata, self.run.status
        if guard.forked_from:
            raise ForkedRunError(meta.name, meta.uid, guard.forked_from, what)
        raise RunEndedError(meta.name, meta.uid, status.state, what)

    def write_log(self, text: str) -> None:
        """Append captured output (the capture sink of the run)."""
        with self.lock:
            limit = self.log_limit
            if limit is None:
                limit = self.log_limit = _capture.LogLimit()
            text = limit.take(text)  # beyond MLFLOWLET_MAX_LOG_BYTES: a marker and the tail
            if text and not self.finished:  # a thread it started, printing after its end
                self.output.append(text)

    def touch(self, force: bool) -> None:
        """Mark the run changed: written now when ``force``, else within ``flush_interval``.

        Raises:
            KeyboardInterrupt: the run was asked to abort (``context.request_abort``).
        """
        self.dirty = True
        if self.abort_requested and not self.finished:
            raise KeyboardInterrupt(self.abort_requested)
        if force:
            self.commit()

    def add_metric(self, key: str, step: int, value: float) -> None:
        """Buffer a metric point and make ``value`` the metric's latest (see :meth:`touch`)."""
        with self.lock:
            self.metrics.append((key, step, value, time.time()))
        self.run.status.metrics[key] = value
        self.dirty = True
        if self.abort_requested and not self.finished:
            raise KeyboardInterrupt(self.abort_requested)

    def set_result(self, key: str, value: Any) -> None:
        """Make ``value`` (JSON-safe) result ``key``; a large one only if the run DB takes it.

        Raises:
            RecordTooLargeError: with ``value`` the run's record is over what the run DB takes
                in one request (the HTTP server's body limit); the result is left as it was.
        """
        results = self.run.status.results
        old = results.get(key, _UNSET)
        results[key] = value
        limit = getattr(self.db, "record_limit", None)
        if limit is None or not isinstance(value, (str, list, dict)):
            return
        if isinstance(value, str) and len(value) < 4096:  # else nested values count too
            return
        from .db._json import dumps

        size, record = len(dumps(value).encode()), len(dumps(self.run.to_dict()).encode())
        if record > limit():
            if old is _UNSET:
                del results[key]
            else:
                results[key] = old
            raise RecordTooLargeError(
                f"result {key!r} is {size:,} bytes as JSON: the run's record would be "
                f"{record:,} bytes, over the {limit():,} bytes the run DB {self.db} takes in one "
                "request; store it as an artifact (context.log_artifact) or raise the server's "
                "limit (mlflowlet server --max-body-mb)"
            )

    def add_artifact(self, record: dict[str, Any]) -> None:
        """List an artifact record as the run's (replacing its key's) and buffer it."""
        arts = self.run.status.artifacts
        arts[:] = [a for a in arts if a.get("key") != record["key"]]
        arts.append(record)
        with self.lock:
            self.artifacts.append(record)

    # writing ------------------------------------------------------------------------------------
    def commit(self) -> None:
        """Flush buffered writes to the run DB now (one transaction)."""
        if self.db is None:
            self.run.status.last_update = now_iso()
            return
        with self.commit_lock:
            self.write(final=self.finished)

    def write(self, final: bool, record_only: bool = False, retry: bool = False) -> None:
        """Write the run record and the buffered rows in one transaction (holding the commit lock).

        The runs and lineage edges buffered ``along`` the record are stored first (``store_runs``),
        so no record written names a run or edge the DB does not hold.

        Secret values are hidden in every string (dict keys too) and in the output, masked on
        the joined stream: unless ``final``, a tail that may be the start of a secret is kept back
        for the next write. On failure the buffers are put back, so nothing is lost. ``retry``:
        the flush thread writing a final record that failed (even for a sealed run).
        """
        sealed = self.sealed_for
        if sealed is not None and sealed != threading.get_ident() and not retry:
            return  # a thread still running after its run was aborted records nothing
        status = self.run.status
        status.last_update = now_iso()
        if status.process:
            status.heartbeat = status.last_update
        with self.lock:
            record = self.run.to_dict()
            if record_only:
                text, arts, metrics = "", [], []
                runs, edges = [], []
            else:
                text = self.held + "".join(self.output)
                arts, metrics = self.artifacts, self.metrics
                runs, edges = self.along_runs, self.along_edges
                self.output, self.held = [], ""
                self.artifacts, self.metrics = [], []
                self.along_runs, self.along_edges = [], []
                self.dirty = False
        log, held, out_arts, out_metrics = text, "", arts, metrics
        secrets = self.mask_store()
        if secrets is not None:
            log, held = secrets.mask_stream(text, final)
            record, out_arts = _masked(record, secrets.mask), _masked(arts, secrets.mask)
            out_metrics = [(secrets.mask(key), step, value, at) for key, step, value, at in metrics]
        assert self.db is not None  # callers write only to a DB
        data = log_bytes(log)
        try:
            if runs or edges:  # first: the record never names a run or edge not stored
                self.db.store_runs(runs, edges)
                runs, edges = [], []
            try:
                self.db.commit_run(record, out_arts, out_metrics, data)
            except (UnicodeError, UnstorableValueError):
                if record_only or not drop_unstorable(
                    self.run, out_arts, out_metrics, arts, metrics
                ):
                    raise
                self.db.commit_run(record, out_arts, out_metrics, data)  # all the rest
        except BaseException as exc:
            if not record_only:
                with self.lock:
                    self.along_runs[:0], self.along_edges[:0] = runs, edges
                    if isinstance(exc, PartlyWrittenError):  # rows and that much log are stored
                        self.output.insert(
                            0, data[exc.written :].decode("utf-8", LOG_ERRORS) + held
                        )
                        self.recorded = True
                    else:
                        self.output.insert(0, text)
                        self.artifacts[:0] = arts
                        self.metrics[:0] = metrics
                    self.dirty = True
            if isinstance(exc, UnicodeError):  # a RunDBError: finish records the run alone
                raise UnstorableValueError(f"the run DB cannot store a value: {exc}") from None
            raise
        if not record_only:
            self.held = held
        self.recorded = True
        self.last_flush = time.monotonic()

    def _background_flush(self, now: float, final: bool = False) -> None:
        """Write what is buffered, a heartbeat when quiet, or a final record not yet written.

        Called by the flush thread (``_flush.py``), whose protocol names it.
        """
        from ._flush import flusher

        with self.commit_lock:
            if self.final_written:
                flusher.discard(self)
                return
            quiet = now - self.last_flush >= self.heartbeat_every
            pending = self.dirty or self.output or (final and self.held)
            if not (pending or quiet or self.finished):
                return
            if not self.finished:  # ended by another process while this one lives:
                state, reason = ended_elsewhere(self.db, self.run)
                if state == "error":  # a reader took it for dead: the log says it was not
                    self.write_log(alive_note(self.run.status.process))  # (written next)
                elif state == "aborted":  # the handler is asked to stop (as `request_abort`)
                    self.abort_requested = reason
                    return  # never write `running` over it: it stops at its next log call
            try:
                self.write(final=final or self.finished, retry=self.finished)
            except Exception as exc:
                self.flush_error = report_flush_error(
                    self.run, exc, self.flush_error, self._flush_interval
                )
                return
            self.flush_error = ""
            if self.finished:
                self.final_written = True
                flusher.discard(self)

    # masking ------------------------------------------------------------------------------------
    def mask_store(self) -> SecretsStore | None:
        """Return the secrets store when the run has secret values to hide, else None."""
        if self._secrets is None and self.run.spec.secret_sources:
            try:
                self.secrets  # noqa: B018 - read the sources now: output may quote their values
            except SecretsError:  # reported by start; nothing was read, so nothing to hide
                return None
        return self._secrets if self._secrets is not None and len(self._secrets) else None

    def masked(self, value: Any) -> Any:
        """Return ``value`` with secret values hidden in every string (dict keys too)."""
        secrets = self.mask_store()
        return _masked(value, secrets.mask) if secrets is not None else value

    def _mask_in_memory(self, mask: Any) -> None:
        spec, meta, status = self.run.spec, self.run.metadata, self.run.status
        status.results = _masked(status.results, mask)
        status.metrics = _masked(status.metrics, mask)
        status.artifacts = _masked(status.artifacts, mask)
        spec.params = _masked(spec.params, mask)
        meta.labels = _masked(meta.labels, mask)
        meta.annotations = _masked(meta.annotations, mask)

    # start and end ------------------------------------------------------------------------------
    def start(self, handler: Any = None) -> None:
        """Mark the run ``running``, owned by this process, and record it now.

        The ``running`` record is written before the handler runs, so a process killed at once
        still leaves a row that readers resolve; the flush thread then writes what the run logs
        within ``flush_interval`` seconds, and a heartbeat when it is quiet. A sweep's iteration
        (its DB a ``BatchedDB``, which holds commits in memory up to ``flush_interval`` anyway)
        is marked changed instead: the flush thread's next tick writes its record and then the
        batch, and an iteration that ends sooner is written once, as it ended.
        """
        status, meta = self.run.status, self.run.metadata
        if self.run.spec.secret_sources:
            self.secrets  # noqa: B018 - a missing secrets file fails the run now, naming it
        facts = host_facts()
        status.host, status.python_version = facts["host"], facts["python_version"]
        status.process = process_identity()
        meta.owner = meta.owner or facts["owner"]
        if handler is not None:
            from ._binding import code_hash

            status.code_hash = code_hash(handler)
        if not status.git:
            status.git = git_info(source_dir(handler))
        status.state = "running"
        status.start_time = status.start_time or now_iso()
        _capture.install()
        from .settings import heartbeat_timing  # two variables, not every setting: once per run

        self._flush_interval, self.heartbeat_every = heartbeat_timing()
        if getattr(self.db, "holds_commits", False):  # a sweep's batched DB: the flush
            self.dirty = True  # thread's next tick writes the record, then the batch (one tick)
        else:
            self.commit()
        if self.db is not None:
            from ._flush import flusher

            flusher.add(self)

    def finish(self, state: str, error: str = "") -> None:
        """End the run ``state`` (``error`` holds the reason) and write its final record.

        Raises:
            RunDBError: the final record could not be written; it is retried every
                ``flush_interval`` seconds until this process exits.
        """
        if self.guard.forked_from:  # a forked copy (its handler returned or exited in the
            return  # child): the run is the parent's to end and record
        _capture.drain()  # what C code and child processes wrote so far belongs to this run
        # a write in flight (another thread's) lands before the end; an abort does not wait:
        self.guard.close(wait=state != "aborted")  # its threads record nothing more
        status = self.run.status
        if self.abort_requested and state != "aborted":
            state, error = "aborted", self.abort_requested
        elif self.abort_requested:
            error = self.abort_requested
        status.state = state
        if error:
            secrets = self.mask_store()
            status.error = error = secrets.mask(error) if secrets is not None else error
            self.write_log(error if error.endswith("\n") else error + "\n")
        status.end_time = now_iso()
        limit = self.log_limit
        if limit is not None and limit.dropped:
            with self.lock:
                self.output.append(limit.closing())
        self.finished = True
        secrets = self.mask_store()
        if secrets is not None:  # the returned run matches its DB record: no secret values
            self._mask_in_memory(secrets.mask)
        if self.db is None:
            return
        from ._flush import flusher

        try:
            with self.commit_lock:
                self.write(final=True)
                self.final_written = True
        except Exception as exc:
            if not isinstance(exc, UnstorableValueError):  # that one never succeeds
                flusher.add(self, keep=True)  # retried by the flush thread, and at exit
            raise self._unrecorded(exc) from None
        flusher.discard(self)

    def _unrecorded(self, exc: Exception) -> Exception:
        """Try to record the terminal state alone; return the error to raise (one clear line)."""
        from .errors import RunDBError

        if not isinstance(exc, RunDBError):
            return exc
        meta, state = self.run.metadata, self.run.status.state
        try:
            with self.commit_lock:
                self.write(final=True, record_only=True)
            saved = f"is recorded {state}, but its last output and artifact/metric records are not"
        except Exception:
            before = "still recorded as it was before" if self.recorded else "not recorded at all"
            saved = f"ended {state} but is {before}"
        retried = f"retried every {self._flush_interval:g} s until this process exits"
        if isinstance(exc, UnstorableValueError):
            retried = "not retried: no run DB can store it"
        return RunDBError(f"{exc}; run {meta.name!r} ({meta.uid}) {saved} ({retried})")
