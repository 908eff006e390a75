"""Capture stdout/stderr into the active run's log without mixing runs across threads.

A tee replaces ``sys.stdout``/``sys.stderr`` the first time a run starts (never at import). Each
write goes to the real stream and to the sink of the run active in the writer's context (a
``ContextVar``), so parallel iterations in threads each keep their own output.

A thread belongs to the run that started it: a ``threading.Thread`` started while a run's sink is
active in the starting thread writes to that run's log (mlflowlet's own threads excepted: they
record what they handle themselves). A ``concurrent.futures`` thread pool serves whoever submits,
so each task writes to the log of the run that submitted it, whichever worker runs it.
"""

from __future__ import annotations

import codecs
import collections
import os
import sys
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, cast

from . import _fdcapture, _process
from ._text import LOG_ERRORS, log_bytes

if TYPE_CHECKING:
    import logging

_sink: ContextVar[Callable[[str], None] | None] = ContextVar("mlflowlet_log_sink", default=None)
_install_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _install_lock
    _install_lock = threading.Lock()  # a parent thread may have held it at the fork


_process.at_fork(child=_after_fork_in_child)


@_process.on_reset
def _clear_sink() -> None:
    _sink.set(None)


class _Tee:
    """A text stream that forwards to the original and copies to the active run's sink.

    While fds 1/2 are captured (:mod:`mlflowlet._fdcapture`) and the original stream writes to
    one of them, text goes past the pipe, straight to where the fd pointed before, so it is
    recorded once, in the run of the writing thread.
    """

    def __init__(self, original: Any) -> None:
        self._original = original
        try:
            self._fd = original.fileno()
        except Exception:  # no fd behind it (pytest's capsys, a notebook)
            self._fd = -1

    def write(self, text: str) -> int:
        fds = _fdcapture.capture
        past_pipe = self._fd in (1, 2) and fds.active()
        if fds.active():
            fds.drain(c_buffers=False)  # an earlier os.write stays earlier in the log
        sink = _sink.get()
        if sink is not None and text:
            sink(text)
        if past_pipe:
            self._original.flush()
            orig = self._original
            fds.echo_text(self._fd, text, getattr(orig, "encoding", ""), orig.errors or "")
            return len(text)
        return cast(int, self._original.write(text))  # what the stream returns, as it is

    def _past_pipe(self) -> bool:
        return self._fd in (1, 2) and _fdcapture.capture.active()

    @property
    def buffer(self) -> Any:
        """The binary stream under the text stream, copied to the run's sink too."""
        return _BinaryTee(self, self._original.buffer)

    def flush(self) -> None:
        self._original.flush()

    def isatty(self) -> bool:
        fds = _fdcapture.capture
        if self._fd in (1, 2) and fds.active():
            return os.isatty(fds._saved.get(self._fd, self._fd))
        return bool(self._original.isatty())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


class _BinaryTee:
    """``sys.stdout.buffer`` of a tee: bytes reach the run's log however the stream is wired."""

    def __init__(self, tee: _Tee, raw: Any) -> None:
        self._tee, self._raw = tee, raw

    def write(self, data: Any) -> int:
        if not self._tee._past_pipe():  # else fd 1/2 is captured: the bytes arrive that way
            if _fdcapture.capture.active():
                _fdcapture.capture.drain(c_buffers=False)  # earlier fd writes stay earlier
            sink = _sink.get()
            if sink is not None and data:
                sink(bytes(data).decode("utf-8", LOG_ERRORS))
        return cast(int, self._raw.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def install() -> None:
    """Put the tees in place, and make threads inherit the starting thread's sink (idempotent)."""
    if isinstance(sys.stdout, _Tee) and isinstance(sys.stderr, _Tee):
        return
    _inherit_in_threads()
    with _install_lock:
        if not isinstance(sys.stdout, _Tee) and sys.stdout is not None:
            sys.stdout = _Tee(sys.stdout)
        if not isinstance(sys.stderr, _Tee) and sys.stderr is not None:
            sys.stderr = _Tee(sys.stderr)


_thread_start: Callable[[threading.Thread], None] | None = None  # the original Thread.start
_pool_submit: Any = None  # the original ThreadPoolExecutor.submit, once that module is loaded


def _inherit_in_threads() -> None:
    """Wrap ``Thread.start`` (once): the new thread starts with the starter's sink."""
    global _thread_start
    with _install_lock:
        if _thread_start is None:
            _thread_start = threading.Thread.start
            threading.Thread.start = _start  # type: ignore[method-assign]
    _carry_in_pools()


def _ours(fn: Any) -> bool:
    return str(getattr(fn, "__module__", None) or "").startswith("mlflowlet.")


def _start(self: threading.Thread) -> None:
    sink = _sink.get()
    if sink is not None and not _ours(getattr(self, "_target", None) or type(self).run):
        run = self.run

        def run_with_sink() -> None:
            _sink.set(sink)
            run()

        self.run = run_with_sink  # type: ignore[method-assign]
    if _pool_submit is None and "concurrent.futures.thread" in sys.modules:
        _carry_in_pools()  # a pool's first worker starts (its first task inherits, as above)
    assert _thread_start is not None
    _thread_start(self)


def _carry_in_pools() -> None:
    """Wrap ``ThreadPoolExecutor.submit`` (once loaded): a task runs with its submitter's sink."""
    global _pool_submit
    pools = sys.modules.get("concurrent.futures.thread")
    if pools is None:  # not imported yet (7 ms): the first pool thread's start wraps it
        return
    with _install_lock:
        if _pool_submit is not None:
            return
        _pool_submit = original = pools.ThreadPoolExecutor.submit

        def submit(self: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            sink = None if _ours(fn) else _sink.get()
            return original(self, _in_sink, sink, fn, *args, **kwargs)

        pools.ThreadPoolExecutor.submit = submit


def _in_sink(sink: Callable[[str], None] | None, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    token = _sink.set(sink)
    try:
        return fn(*args, **kwargs)
    finally:
        _sink.reset(token)


class LogLimit:
    """Keeps a run's stored output under ``limit`` bytes: the head, a marker, then the tail.

    :meth:`take` returns the part of each write to store now (everything until the limit);
    past it, writes are counted and only the last ``tail`` bytes are kept, which
    :meth:`closing` returns after a marker saying how much was left out.

    Args:
        limit: the most bytes stored as they come (``MLFLOWLET_MAX_LOG_BYTES`` by default).
        tail: how many of the last bytes are kept once the limit is reached.
    """

    def __init__(self, limit: int | None = None, tail: int = 64 * 1024) -> None:
        if limit is None:
            from .settings import get_settings

            limit = get_settings().max_log_bytes
        self.limit, self.tail = max(int(limit), 0), tail
        self.stored = 0
        self.dropped = 0
        self._tail: collections.deque[str] = collections.deque()
        self._tail_size = 0

    def take(self, text: str) -> str:
        """Return the part of ``text`` to store now ('' once the limit is reached)."""
        head = ""
        if not self.dropped:
            size = len(text) if text.isascii() else len(text.encode("utf-8", "replace"))
            if self.stored + size <= self.limit:
                self.stored += size
                return text
            keep = log_bytes(text)[: self.limit - self.stored]
            head = codecs.getincrementaldecoder("utf-8")(LOG_ERRORS).decode(keep)  # not a cut char
            self.stored += len(log_bytes(head))
            text = text[len(head) :]
        if text:
            self.dropped += len(text) if text.isascii() else len(text.encode("utf-8", "replace"))
            piece = text[-self.tail :]
            self._tail.append(piece)
            self._tail_size += len(piece)
            while self._tail_size - len(self._tail[0]) >= self.tail:
                self._tail_size -= len(self._tail.popleft())
        return head

    def closing(self) -> str:
        """Return the marker and the kept tail (once), or '' when nothing was left out."""
        if not self.dropped:
            return ""
        tail = "".join(self._tail)[-self.tail :]
        left_out = self.dropped - len(tail.encode("utf-8", "replace"))
        self._tail.clear()
        self._tail_size, self.dropped = 0, 0
        if left_out <= 0:
            return tail
        return (
            f"\n[mlflowlet: {left_out:,} bytes of output left out: the stored log keeps "
            f"{self.limit:,} bytes (MLFLOWLET_MAX_LOG_BYTES), then the last {len(tail):,}]\n" + tail
        )


def set_sink(sink: Callable[[str], None] | None, shared: bool = False) -> Any:
    """Make ``sink`` receive this context's output; returns a token for :func:`reset_sink`.

    A sink also receives fd-level output (see :mod:`mlflowlet._fdcapture`); ``shared`` marks a
    run that contains others (a sweep's parent, a pipeline run), which takes fd-level output
    that parallel runs inside it cannot be told apart by.
    """
    captured = sink is not None and _fdcapture.capture.acquire(sink, shared)
    return (_sink.set(sink), sink if captured else None)


def reset_sink(token: Any) -> None:
    """Undo :func:`set_sink`."""
    var_token, captured = token
    if captured is not None:
        _fdcapture.capture.release(captured)
    _sink.reset(var_token)


def drain() -> None:
    """Route fd-level output already written to the runs' sinks (before a run's last commit)."""
    _fdcapture.capture.drain()


_OURS = "_mlflowlet_stderr"  # set on the handler get_logger adds, which it adds once


def _stderr_handler() -> logging.Handler:
    """Return a handler writing to whatever ``sys.stderr`` is at emit time (the tee sees it)."""
    import logging

    class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
        def __init__(self) -> None:
            super().__init__()

        @property
        def stream(self) -> Any:
            return sys.stderr

        @stream.setter
        def stream(self, _value: Any) -> None:
            pass

    return _StderrHandler()


def get_logger(level: str = "info") -> logging.Logger:
    """Return the ``mlflowlet`` logger (one handler writing to the current ``sys.stderr``).

    The logger is enabled again each time: ``logging.config.dictConfig`` (called by many
    libraries, with ``disable_existing_loggers`` true by default) disables every logger that
    already exists, and a run's log would silently lose its handler's lines.
    """
    import logging  # here: a run that logs nothing never loads it

    logger = logging.getLogger("mlflowlet")
    logger.disabled = False
    if not any(getattr(h, _OURS, False) for h in logger.handlers):
        handler = _stderr_handler()
        setattr(handler, _OURS, True)
        handler.setFormatter(logging.Formatter("> %(asctime)s [%(levelname)s] %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level.upper() if isinstance(level, str) else level)
    return logger
