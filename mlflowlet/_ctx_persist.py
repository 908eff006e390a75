"""Buffered persistence of a run context: start, finish, commit, masking, serialisation.

Private to :mod:`mlflowlet.context`: :class:`_Persistence` is a base of ``Context`` holding the
methods that turn the buffered writes into one ``commit_run`` transaction per state change, and
the helpers that make values JSON-safe and hide secret values.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from . import _capture
from ._owner import process_identity
from ._provenance import git_info, host_facts
from .errors import SecretsError
from .model import RunObject, now_iso


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return _jsonable(item())
        except (TypeError, ValueError):
            pass
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return _jsonable(tolist())
    return str(value)


def _masked(value: Any, mask: Any) -> Any:
    """Return ``value`` with every string, dict keys included, passed through ``mask``."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            new = mask(key) if isinstance(key, str) else key
            if new in out:  # two keys that differ only by a secret value: keep both
                new = next(
                    f"{new}#{n}" for n in range(2, len(value) + 2) if f"{new}#{n}" not in out
                )
            out[new] = _masked(item, mask)
        return out
    if isinstance(value, (list, tuple)):
        return [_masked(v, mask) for v in value]
    return value


def _source_dir(handler: Any) -> str:
    import inspect  # a wrapped handler (functools.wraps) lives where the function it wraps does

    code = getattr(inspect.unwrap(handler) if handler is not None else None, "__code__", None)
    path = code.co_filename if code is not None else (sys.argv[0] if sys.argv else "")
    if not path or path.startswith("<"):
        return os.getcwd()
    return os.path.dirname(os.path.abspath(path))


class _Persistence:
    """Start, finish, commit and serialisation of a run context (a base of ``Context``).

    Buffers (``_log``, ``_pending_artifacts``, ``_pending_metrics``) are guarded by ``_log_lock``;
    every DB write holds ``_commit_lock`` from its snapshot to its commit, so writes from the
    handler's thread and from the flush thread (``_flush.py``) land in the order they were taken.
    """

    _run: RunObject
    _db: Any
    _secrets: Any
    _pending_artifacts: list[dict[str, Any]]
    _pending_metrics: list[tuple[str, int, float, float]]
    _log: list[str]
    _log_held: str  # raw output kept back until more arrives: it may end in half a secret
    _log_lock: threading.Lock
    _commit_lock: threading.Lock
    _dirty: bool
    _last_flush: float
    _flush_interval: float
    _heartbeat_every: float
    _finished: bool
    _final_written: bool
    _flush_error: str
    _abort_requested: str
    _recorded: bool  # some record of this run reached the DB

    if TYPE_CHECKING:

        @property
        def logger(self) -> Any:
            """Defined by ``Context``."""

        @property
        def secrets(self) -> Any:
            """Defined by ``Context``."""

    def _write_log(self, text: str) -> None:
        with self._log_lock:
            limit = self.__dict__.get("_log_limit")
            if limit is None:
                limit = self._log_limit = _capture.LogLimit()
            text = limit.take(text)  # beyond MLFLOWLET_MAX_LOG_BYTES: a marker and the tail
            if text:
                self._log.append(text)

    def _maybe_flush(self, force: bool) -> None:
        """Flush now when ``force``; else the flush thread writes it within ``flush_interval``."""
        self._dirty = True
        if self._abort_requested and not self._finished:
            raise KeyboardInterrupt(self._abort_requested)
        if force:
            self.commit()

    def commit(self, message: str = "", completed: bool = False) -> None:
        """Flush buffered writes to the run DB now (one transaction)."""
        if message:
            self.logger.info(message)
        if self._db is None:
            self._run.status.last_update = now_iso()
            return
        with self._commit_lock:
            self._write(final=self._finished)

    def _write(self, final: bool, record_only: bool = False, retry: bool = False) -> None:
        """Write the run record and the buffered rows in one transaction (holding the commit lock).

        Secret values are hidden in every string (dict keys too) and in the output, masked on
        the joined stream: unless ``final``, a tail that may be the start of a secret is kept back
        for the next write. On failure the buffers are put back, so nothing is lost. ``retry``:
        the flush thread writing a final record that failed (even for a sealed run).
        """
        sealed = getattr(self, "_sealed_for", None)  # aborted by an interrupt (_interrupt.py)
        if sealed is not None and sealed != threading.get_ident() and not retry:
            return  # a thread still running after its run was aborted records nothing
        status = self._run.status
        status.last_update = now_iso()
        if status.process:
            status.heartbeat = status.last_update
        with self._log_lock:
            record = self._run.to_dict()
            if record_only:
                text, arts, metrics = "", [], []
            else:
                text = self._log_held + "".join(self._log)
                arts, metrics = self._pending_artifacts, self._pending_metrics
                self._log, self._log_held = [], ""
                self._pending_artifacts, self._pending_metrics = [], []
                self._dirty = False
        log, held, out_arts, out_metrics = text, "", arts, metrics
        secrets = self._mask_store()
        if secrets is not None:
            log, held = secrets.mask_stream(text, final)
            record, out_arts = _masked(record, secrets.mask), _masked(arts, secrets.mask)
            out_metrics = [(secrets.mask(key), *rest) for key, *rest in metrics]
        try:
            self._db.commit_run(record, out_arts, out_metrics, log.encode())
        except BaseException:
            if not record_only:
                with self._log_lock:
                    self._log.insert(0, text)
                    self._pending_artifacts[:0] = arts
                    self._pending_metrics[:0] = metrics
                    self._dirty = True
            raise
        if not record_only:
            self._log_held = held
        self._recorded = True
        self._last_flush = time.monotonic()

    def _background_flush(self, now: float, final: bool = False) -> None:
        """Write what is buffered, a heartbeat when quiet, or a final record not yet written."""
        from ._flush import flusher

        with self._commit_lock:
            if self._final_written:
                flusher.discard(self)
                return
            quiet = now - self._last_flush >= self._heartbeat_every
            pending = self._dirty or self._log or (final and self._log_held)
            if not (pending or quiet or self._finished):
                return
            if not self._finished and self._aborted_elsewhere():
                return  # never write `running` over it: the handler stops at its next log call
            try:
                self._write(final=final or self._finished, retry=self._finished)
            except Exception as exc:
                self._report_flush_error(exc)
                return
            self._flush_error = ""
            if self._finished:
                self._final_written = True
                flusher.discard(self)

    def _aborted_elsewhere(self) -> bool:
        """Whether the DB says this run was aborted (``mlflowlet abort`` from another host).

        Then the handler is asked to stop, as :func:`~mlflowlet.context.request_abort` does.
        """
        read = getattr(self._db, "read_run", None)
        if read is None:
            return False
        meta = self._run.metadata
        try:
            status = read(meta.uid, meta.project, meta.iteration).get("status") or {}
        except Exception:  # not stored yet, or unreachable: the write reports it
            return False
        if status.get("state") != "aborted":
            return False
        self._abort_requested = status.get("error") or "aborted"
        return True

    def _report_flush_error(self, exc: Exception) -> None:
        """Say once (on stderr, not in the run's output) that writes to the run DB fail."""
        text = str(exc) or type(exc).__name__
        if text != self._flush_error:
            self._flush_error = text
            meta = self._run.metadata
            print(
                f"mlflowlet: run {meta.name!r} ({meta.uid}) cannot be written to the run DB, "
                f"retrying every {self._flush_interval:g} s: {text}",
                file=getattr(sys.stderr, "_original", sys.stderr),
            )

    def _mask_store(self) -> Any:
        """Return the secrets store when the run has secret values to hide, else None."""
        if self._secrets is None and self._run.spec.secret_sources:
            try:
                self.secrets  # noqa: B018 - read the sources now: output may quote their values
            except SecretsError:  # reported by _start; nothing was read, so nothing to hide
                return None
        return self._secrets if self._secrets is not None and len(self._secrets) else None

    def _start(self, handler: Any = None) -> None:
        """Mark the run ``running``, owned by this process, and record it now.

        The ``running`` record is written before the handler runs, so a process killed at once
        still leaves a row that readers resolve; the flush thread then writes what the run logs
        within ``flush_interval`` seconds, and a heartbeat when it is quiet.
        """
        status, meta = self._run.status, self._run.metadata
        if self._run.spec.secret_sources:
            self.secrets  # noqa: B018 - a missing secrets file fails the run now, naming it
        facts = host_facts()
        status.host, status.python_version = facts["host"], facts["python_version"]
        status.process = process_identity()
        meta.owner = meta.owner or facts["owner"]
        if handler is not None:
            from ._binding import code_hash

            status.code_hash = code_hash(handler)
        if not status.git:
            status.git = git_info(_source_dir(handler))
        status.state = "running"
        status.start_time = status.start_time or now_iso()
        _capture.install()
        from .settings import get_settings

        settings = get_settings()
        self._flush_interval = settings.flush_interval
        self._heartbeat_every = max(self._flush_interval, min(30.0, settings.heartbeat_timeout / 4))
        self.commit()
        if self._db is not None:
            from ._flush import flusher

            flusher.add(self)

    def _finish(self, state: str, error: str = "") -> None:
        """End the run ``state`` (``error`` holds the reason) and write its final record.

        Raises:
            RunDBError: the final record could not be written; it is retried every
                ``flush_interval`` seconds until this process exits.
        """
        _capture.drain()  # what C code and child processes wrote so far belongs to this run
        status = self._run.status
        if self._abort_requested and state != "aborted":
            state, error = "aborted", self._abort_requested
        elif self._abort_requested:
            error = self._abort_requested
        status.state = state
        if error:
            secrets = self._mask_store()
            status.error = error = secrets.mask(error) if secrets is not None else error
            self._write_log(error if error.endswith("\n") else error + "\n")
        status.end_time = now_iso()
        limit = self.__dict__.get("_log_limit")
        if limit is not None and limit.dropped:
            with self._log_lock:
                self._log.append(limit.closing())
        self._finished = True
        secrets = self._mask_store()
        if secrets is not None:  # the returned run matches its DB record: no secret values
            self._mask_in_memory(secrets.mask)
        if self._db is None:
            return
        from ._flush import flusher

        try:
            with self._commit_lock:
                self._write(final=True)
                self._final_written = True
        except Exception as exc:
            flusher.add(self, keep=True)  # retried by the flush thread, and at exit
            raise self._unrecorded(exc) from None
        flusher.discard(self)

    def _unrecorded(self, exc: Exception) -> Exception:
        """Try to record the terminal state alone; return the error to raise (one clear line)."""
        from .errors import RunDBError

        if not isinstance(exc, RunDBError):
            return exc
        meta, state = self._run.metadata, self._run.status.state
        try:
            with self._commit_lock:
                self._write(final=True, record_only=True)
            saved = f"is recorded {state}, but its last output and artifact/metric records are not"
        except Exception:
            before = "still recorded as it was before" if self._recorded else "not recorded at all"
            saved = f"ended {state} but is {before}"
        return RunDBError(
            f"{exc}; run {meta.name!r} ({meta.uid}) {saved} (retried every "
            f"{self._flush_interval:g} s until this process exits)"
        )

    def _mask_in_memory(self, mask: Any) -> None:
        spec, meta, status = self._run.spec, self._run.metadata, self._run.status
        status.results = _masked(status.results, mask)
        status.metrics = _masked(status.metrics, mask)
        status.artifacts = _masked(status.artifacts, mask)
        spec.params = _masked(spec.params, mask)
        meta.labels = _masked(meta.labels, mask)
        meta.annotations = _masked(meta.annotations, mask)

    def to_run_object(self) -> RunObject:
        """Return the run as recorded so far (the live object, not a copy)."""
        return self._run

    def to_dict(self) -> dict[str, Any]:
        """Return the run as a JSON-safe dict (secret values never included)."""
        record = self._run.to_dict()
        secrets = self._mask_store()
        return _masked(record, secrets.mask) if secrets is not None else record

    def to_json(self) -> str:
        """Return the run as JSON."""
        return json.dumps(self.to_dict(), default=str)

    def to_yaml(self) -> str:
        """Return the run as YAML (secret values never included)."""
        import yaml

        return str(yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=False))
