"""Capture stdout/stderr into the active run's log without mixing runs across threads.

A tee replaces ``sys.stdout``/``sys.stderr`` the first time a run starts (never at import). Each
write goes to the real stream and to the sink of the run active in the writer's context (a
``ContextVar``), so parallel iterations in threads each keep their own output.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

_sink: ContextVar[Callable[[str], None] | None] = ContextVar("mlflowlet_log_sink", default=None)
_install_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _install_lock
    _install_lock = threading.Lock()  # a parent thread may have held it at the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Tee:
    """A text stream that forwards to the original and copies to the active run's sink."""

    def __init__(self, original: Any) -> None:
        self._original = original

    def write(self, text: str) -> int:
        sink = _sink.get()
        if sink is not None and text:
            sink(text)
        return self._original.write(text)

    def flush(self) -> None:
        self._original.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


def install() -> None:
    """Put the tees in place (idempotent)."""
    if isinstance(sys.stdout, _Tee) and isinstance(sys.stderr, _Tee):
        return
    with _install_lock:
        if not isinstance(sys.stdout, _Tee) and sys.stdout is not None:
            sys.stdout = _Tee(sys.stdout)
        if not isinstance(sys.stderr, _Tee) and sys.stderr is not None:
            sys.stderr = _Tee(sys.stderr)


def set_sink(sink: Callable[[str], None] | None) -> Any:
    """Make ``sink`` receive this context's output; returns a token for :func:`reset_sink`."""
    return _sink.set(sink)


def reset_sink(token: Any) -> None:
    """Undo :func:`set_sink`."""
    _sink.reset(token)


class _StderrHandler(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stderr`` is at emit time (so the tee sees it)."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def get_logger(level: str = "info") -> logging.Logger:
    """Return the ``mlflowlet`` logger (one handler writing to the current ``sys.stderr``)."""
    logger = logging.getLogger("mlflowlet")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("> %(asctime)s [%(levelname)s] %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level.upper() if isinstance(level, str) else level)
    return logger
