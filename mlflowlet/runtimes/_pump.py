"""Reading a child process's output in bounded chunks: echo it, store it or spool it.

:class:`Pump` reads the child's merged stdout/stderr with ``os.read`` (64 KiB at a time), so a
child writing one huge line without a newline costs the parent a few chunks of memory, never the
line. Text is decoded incrementally, secret values are masked (a partial line keeps back as many
characters as the longest secret, so a value split across two reads is still hidden), the
entrypoint's ``MLFLOWLET_RUN_JSON=`` report is dropped, and what remains is echoed and either
stored in the run's log as it comes (the parent records the run: ``noctx``/``pass`` modes) or
spooled to an unlinked temporary file, to replace the log of a child that died before storing
its own. Either way the stored log keeps at most ``MLFLOWLET_MAX_LOG_BYTES`` (see
:class:`~mlflowlet._capture.LogLimit`).
"""

from __future__ import annotations

import codecs
import os
import sys
import tempfile
import threading
import time
from typing import IO, TYPE_CHECKING, Any

from .._capture import LogLimit
from .._text import LOG_ERRORS, log_bytes
from .._wire import RUN_JSON_MARKER

if TYPE_CHECKING:
    from ..db.base import RunDB

CHUNK = 64 * 1024
_FLUSH_SECONDS = 1.0
_FLUSH_BYTES = 1024 * 1024  # store at least this often, whatever the time


class Pump:
    """Reads a child's output in a thread: echoes, and stores (``store``) or spools it.

    Args:
        stream: the child's stdout pipe (None: nothing to read).
        echo: write the output to this process's stdout.
        store: ``(db, run metadata)`` when this process records the run's log, else None.
        masker: a ``SecretsStore`` whose values are hidden, or None.
    """

    def __init__(self, stream: IO[bytes] | None, echo: bool, store: Any, masker: Any) -> None:
        self._echo, self._store, self._masker = echo, store, masker
        self._hold = max((len(v) for v in masker.values()), default=1) - 1 if masker else 0
        self._limit = LogLimit()
        self._unsaved: list[str] = []
        self._unsaved_size = 0
        self._last_save = time.monotonic()
        self.mid_line = False  # the output so far ends without a newline
        self._spool: Any = None if store is not None or stream is None else tempfile.TemporaryFile()
        self._thread: threading.Thread | None = None
        if stream is not None:
            self._thread = threading.Thread(
                target=self._read, args=(stream,), daemon=True, name="mlflowlet-output"
            )
            self._thread.start()

    def mask(self, text: str) -> str:
        """Hide secret values in ``text``."""
        return self._masker.mask(text) if self._masker is not None else text

    def _read(self, stream: IO[bytes]) -> None:
        decode = codecs.getincrementaldecoder("utf-8")(LOG_ERRORS).decode
        fd, pending, skipping = stream.fileno(), "", False
        try:
            while True:
                chunk = os.read(fd, CHUNK)
                pending += decode(chunk, final=not chunk)
                lines = pending.split("\n")
                pending = lines.pop()
                for line in lines:
                    if skipping:
                        skipping = False  # the end of the entrypoint's report
                    elif not line.startswith(RUN_JSON_MARKER):
                        self._emit(line + "\n")
                if not chunk:
                    break
                if len(pending) > CHUNK:  # a long line: pass it on in bounded pieces
                    skipping = skipping or pending.startswith(RUN_JSON_MARKER)
                    cut = len(pending) - self._hold
                    if not skipping:
                        self._emit(pending[:cut])
                    pending = pending[cut:]
            if pending and not skipping and not pending.startswith(RUN_JSON_MARKER):
                self._emit(pending)
        except OSError:  # the pipe broke: keep what was read
            pass
        finally:
            stream.close()

    def _emit(self, text: str) -> None:
        text = self.mask(text)
        if text:
            self.mid_line = not text.endswith("\n")  # a message after it starts a new line
        if self._echo:
            try:
                _echo(text)
            except (OSError, ValueError):  # a closed terminal must not stall the child
                self._echo = False
        if self._spool is not None:
            self._spool.write(log_bytes(text))
            return
        if self._store is None:
            return
        kept = self._limit.take(text)
        if kept:
            self._unsaved.append(kept)
            self._unsaved_size += len(kept)
        now = time.monotonic()
        if self._unsaved_size >= _FLUSH_BYTES or now - self._last_save >= _FLUSH_SECONDS:
            self._save()

    def _save(self, closing: bool = False) -> None:
        db, meta = self._store
        text, self._unsaved, self._unsaved_size = "".join(self._unsaved), [], 0
        if closing:
            text += self._limit.closing()
        self._last_save = time.monotonic()
        if text:
            db.store_log(meta.uid, meta.project, log_bytes(text))

    def join(self, timeout: float = 5.0) -> None:
        """Wait (bounded: a process outside the tree may hold the pipe) for the output to end."""
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        if self._store is not None:
            self._save(closing=True)

    def store_all(self, db: RunDB, meta: Any, replace: bool) -> None:
        """Store the spooled output (``replace`` the DB's copy); owners already stored theirs."""
        spool, self._spool = self._spool, None
        if spool is None:
            if replace and self._store is None:
                db.store_log(meta.uid, meta.project, b"", append=False)
            return
        with spool:
            spool.seek(0)
            limit, first = LogLimit(), replace
            decode = codecs.getincrementaldecoder("utf-8")(LOG_ERRORS).decode
            while True:
                chunk = spool.read(4 * _FLUSH_BYTES)
                text = limit.take(decode(chunk, final=not chunk))
                if not chunk:
                    text += limit.closing()
                if text or first:
                    db.store_log(meta.uid, meta.project, log_bytes(text), append=not first)
                    first = False
                if not chunk:
                    return

    def discard(self) -> None:
        """Drop the spooled copy (the child stored its own log)."""
        spool, self._spool = self._spool, None
        if spool is not None:
            spool.close()


def empty(masker: Any) -> Pump:
    """Return a pump with nothing to read (a child that never started)."""
    return Pump(None, False, None, masker)


def _echo(text: str) -> None:
    """Write the child's output to this process's stdout.

    A byte that is not UTF-8 (decoded as a lone surrogate) goes out as it came in when the
    stream's text encoding refuses it.
    """
    try:
        sys.stdout.write(text)
    except UnicodeEncodeError:
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is None:
            raise
        sys.stdout.flush()
        buffer.write(log_bytes(text))
    sys.stdout.flush()
