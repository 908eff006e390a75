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
    """Return ``value`` with every string passed through ``mask`` (secret values hidden)."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: _masked(v, mask) for k, v in value.items()}
    if isinstance(value, list):
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
    """Start, finish, commit and serialisation of a run context (a base of ``Context``)."""

    _run: RunObject
    _db: Any
    _secrets: Any
    _pending_artifacts: list[dict[str, Any]]
    _pending_metrics: list[tuple]
    _log: list[str]
    _log_lock: threading.Lock
    _commit_lock: threading.Lock
    _deferred: dict[str, Any] | None
    _last_flush: float
    _flush_interval: float
    _finished: bool

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
        if force or time.monotonic() - self._last_flush >= self._flush_interval:
            self.commit()

    def commit(self, message: str = "", completed: bool = False) -> None:
        """Flush buffered writes to the run DB now (one transaction)."""
        if message:
            self.logger.info(message)
        run = self._run
        run.status.last_update = now_iso()
        self._last_flush = time.monotonic()
        if self._db is None:
            return
        with self._log_lock:
            log, self._log = "".join(self._log), []
        record = self._run.to_dict()
        secrets = self._mask_store()
        if secrets is not None:
            log, record = secrets.mask(log), _masked(record, secrets.mask)
        arts, self._pending_artifacts = self._pending_artifacts, []
        metrics, self._pending_metrics = self._pending_metrics, []
        with self._commit_lock:
            sealed = getattr(self, "_sealed_for", None)  # aborted by an interrupt (_interrupt.py)
            if sealed is not None and sealed != threading.get_ident():
                return  # a thread still running after its run was aborted records nothing
            self._deferred = None  # this record supersedes the start record
            self._db.commit_run(record, arts, metrics, log.encode())

    def _flush_deferred_start(self) -> None:
        """Write the start record of a run still going (called by the deferred-start thread)."""
        with self._commit_lock:
            record, self._deferred = self._deferred, None
            if record is not None and not self._finished:
                self._db.commit_run(record)

    def _mask_store(self) -> Any:
        """Return the secrets store when the run has secret values to hide, else None."""
        if self._secrets is None and self._run.spec.secret_sources:
            try:
                self.secrets  # noqa: B018 - read the sources now: output may quote their values
            except SecretsError:  # reported by _start; nothing was read, so nothing to hide
                return None
        return self._secrets if self._secrets is not None and len(self._secrets) else None

    def _start(self, handler: Any = None, defer: bool = False) -> None:
        """Mark the run ``running`` and record it; ``defer`` writes it only if it lasts.

        With ``defer`` the ``running`` record is written after ``flush_interval`` seconds if the
        run has not committed by then (a run that ends sooner costs one transaction, not two).
        """
        status, meta = self._run.status, self._run.metadata
        if self._run.spec.secret_sources:
            self.secrets  # noqa: B018 - a missing secrets file fails the run now, naming it
        facts = host_facts()
        status.host, status.python_version = facts["host"], facts["python_version"]
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

        self._flush_interval = get_settings().flush_interval
        if not defer or self._db is None:
            self.commit()
            return
        from ._flush import deferred_starts

        status.last_update = now_iso()
        self._deferred = self.to_dict()  # masked when the run has secrets
        deferred_starts.add(self, self._flush_interval)

    def _finish(self, state: str, error: str = "") -> None:
        _capture.drain()  # what C code and child processes wrote so far belongs to this run
        status = self._run.status
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
            spec, meta = self._run.spec, self._run.metadata
            status.results = _masked(status.results, secrets.mask)
            spec.params = _masked(spec.params, secrets.mask)
            meta.labels = _masked(meta.labels, secrets.mask)
            meta.annotations = _masked(meta.annotations, secrets.mask)
        self.commit()

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

        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=False)
