"""Output capture at the file-descriptor level: what C code, child processes and fd writes print.

While at least one run is active in this process, fds 1 and 2 point at pipes (``dup2``) that a
daemon thread reads: every byte is echoed to where the fd pointed before (the terminal, a file,
the parent's pipe) and added to a run's log. So ``os.write(1, ...)``, ``sys.stdout.buffer``, C
extensions (their stdio buffers are flushed before a run ends) and the processes a handler
starts are all recorded, while still showing as usual. When the last run ends, the fds point
back where they were.

Python-level writes (``print``, the logger) do not take this path: the tee of
:mod:`mlflowlet._capture` sends them to the run of the writing thread and straight to the
original fd, after draining the pipes so a ``print`` after an ``os.write`` stays after it.

Which run gets fd-level output: bytes carry no thread, so with runs active in several threads
at once (``parallel`` iterations, parallel pipeline steps) they go to the innermost shared run (a
sweep's parent, a pipeline run) when one is active, else to the run that started first. There
it keeps its order, but not its order with the parallel runs' Python-level output: each run's
buffer is stored when it flushes, so where they share one log (a sweep's iterations and their
parent) two writers' chunks may land out of order. Runs that need their fd-level output apart
and in order run in processes of their own (the subprocess runtime, Dask workers with one
thread each; a Dask run that shared its worker process says so in its log).
"""

from __future__ import annotations

import atexit
import codecs
import contextlib
import ctypes
import os
import select
import sys
import threading
from collections.abc import Callable
from typing import Any

from . import _process
from ._text import LOG_ERRORS

_FDS = (1, 2)
_CHUNK = 64 * 1024
Sink = Callable[[str], None]


def _c_flush() -> Callable[[], Any]:
    try:
        fflush = ctypes.CDLL(None).fflush
        fflush.argtypes = [ctypes.c_void_p]
    except (OSError, AttributeError):  # no C library to ask: nothing buffered there to lose
        return lambda: None
    return lambda: fflush(None)


class FdCapture:
    """Points fds 1 and 2 at pipes while runs are active (see the module doc)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._sinks: list[tuple[Sink, bool]] = []  # (sink, shared) in activation order
        self._saved: dict[int, int] = {}  # fd -> a dup of where it pointed before
        self._write: dict[int, int] = {}  # fd -> the pipe's write end (kept for the next run)
        self._read: dict[int, int] = {}  # pipe read end -> fd
        self._decoders: dict[int, Any] = {}
        self.last_byte: dict[int, bytes] = {}  # fd -> the last byte echoed (the entrypoint
        # starts its run-record line on a fresh line after output that did not end one)
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._c_flush = _c_flush()
        self.usable = hasattr(os, "pipe") and sys.platform != "win32"

    # redirection ------------------------------------------------------------------------------
    def acquire(self, sink: Sink, shared: bool = False) -> bool:
        """Start sending fd-level output to ``sink`` (redirecting the fds for the first run)."""
        if not self.usable:
            return False
        with self._lock:
            if self._pid != os.getpid():
                self._reset()
            if not self._sinks and not self._redirect():
                return False
            self._sinks.append((sink, shared))
            return True

    def release(self, sink: Sink) -> None:
        """Stop sending to ``sink``; after the last run, point the fds back where they were."""
        self.drain()  # C buffers may fill the pipe: flushed while the reader can still read
        with self._lock:
            self.drain(c_buffers=False)
            for i in range(len(self._sinks) - 1, -1, -1):
                if self._sinks[i][0] == sink:
                    del self._sinks[i]
                    break
            if not self._sinks:
                self._restore()

    def active(self) -> bool:
        """Whether the fds point at the pipes now."""
        return bool(self._saved) and self._pid == os.getpid()

    def _redirect(self) -> bool:
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            with contextlib.suppress(Exception):
                stream.flush()  # type: ignore[union-attr]  # what Python buffered goes first
        self._c_flush()
        try:
            for fd in _FDS:
                if fd not in self._write:
                    r, w = os.pipe()
                    os.set_blocking(r, False)
                    self._write[fd], self._read[r] = w, fd
                    self._decoders[fd] = codecs.getincrementaldecoder("utf-8")(LOG_ERRORS)
                self._saved[fd] = os.dup(fd)
                os.dup2(self._write[fd], fd)
        except OSError:  # fd 1 or 2 is closed (a daemon): stay with Python-level capture
            self._restore()
            self.usable = False
            return False
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, daemon=True, name="mlflowlet-fds")
            self._thread.start()
        return True

    def _restore(self) -> None:
        for fd, saved in list(self._saved.items()):
            with contextlib.suppress(OSError):
                os.dup2(saved, fd)
                os.close(saved)
        self._saved = {}

    def _reset(self) -> None:
        """Start over in a forked child: the pipes and the thread belong to the parent.

        Runs before anything else in the child (a fork hook), without taking the inherited lock:
        the parent's reader thread may have held it at the fork. The child's fds point back where
        the parent's pointed before its runs began, so the child's output never lands in the
        parent's pipe (and the parent's run log).
        """
        self._lock = threading.RLock()
        for fd, saved in self._saved.items():
            with contextlib.suppress(OSError):
                os.dup2(saved, fd)
        for own in [*self._saved.values(), *self._write.values(), *self._read]:
            with contextlib.suppress(OSError):
                os.close(own)
        self._sinks, self._saved, self._write, self._read = [], {}, {}, {}
        self._decoders = {}
        self._thread, self._pid = None, os.getpid()

    # reading ----------------------------------------------------------------------------------
    def _loop(self) -> None:
        poller = select.poll()
        for r in list(self._read):
            poller.register(r, select.POLLIN)
        while True:
            poller.poll()
            with self._lock:
                for r in list(self._read):
                    self._pump(r)

    def _pump(self, r: int) -> None:
        fd = self._read[r]
        while True:
            try:
                data = os.read(r, _CHUNK)
            except BlockingIOError:
                return
            if not data:
                return
            self._echo(fd, data)
            text = self._decoders[fd].decode(data)
            sink = self._target()
            if sink is not None and text:
                sink(text)

    def _target(self) -> Sink | None:
        leaves = [sink for sink, shared in self._sinks if not shared]
        if len(leaves) == 1:
            return leaves[0]
        shared = [sink for sink, is_shared in self._sinks if is_shared]
        if shared:
            return shared[-1]
        return leaves[0] if leaves else None

    def _echo(self, fd: int, data: bytes) -> None:
        target = self._saved.get(fd, fd if not self._saved else -1)
        if target < 0:
            return
        if data:
            self.last_byte[fd] = bytes(data[-1:])
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(target, view) :]
            except BlockingIOError:
                select.select([], [target], [], 1.0)
            except OSError:  # a closed terminal must not stall the run
                return

    def drain(self, c_buffers: bool = True) -> None:
        """Route everything already written to the fds (and what C stdio buffers hold)."""
        if not self._saved:
            return
        if c_buffers:
            self._c_flush()
        with self._lock:
            for r in list(self._read):
                self._pump(r)

    def echo_text(self, fd: int, text: str, encoding: str, errors: str) -> None:
        """Write Python-level text where ``fd`` pointed before (past the pipe)."""
        self._echo(fd, text.encode(encoding or "utf-8", errors or "replace"))


capture = FdCapture()
_process.at_fork(child=capture._reset)


@_process.on_reset
def _release_every_sink() -> None:
    """``reset()`` forgets the active runs: the fds point back.

    A forgotten run's sink kept them, and the next run's fd-level output went to it.
    """
    with capture._lock:
        if capture._sinks and capture._pid == os.getpid():
            capture._sinks = []
            capture._restore()


@atexit.register
def _at_exit() -> None:
    with contextlib.suppress(Exception):
        capture.drain()
        with capture._lock:
            capture._sinks.clear()
            capture._restore()
