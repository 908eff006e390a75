"""One daemon thread per process that makes what live runs log reach the run DB.

A run writes its ``running`` record when it starts and its final record when it ends. In between
its context buffers results, labels, metrics, artifact records and output; every
``flush_interval`` seconds (1 s by default) this thread writes the buffers of each live run that
has something new, in one transaction per run, and writes a heartbeat for a run that has been
quiet for a while. A crash (SIGKILL, the OOM killer) therefore loses at most the last interval,
and readers resolve the run whose process is gone (see ``mlflowlet/_owner.py``).

A final record that could not be written (a full disk, a DB briefly unreachable) stays queued
here and is retried at each tick, and once more when the process exits. The thread sleeps when
no run is live; it costs a run one dictionary insert and removal.
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from typing import Any

from . import _process

_IDLE_TICKS = 30  # ticks without a live run before the thread waits to be woken


class Flusher:
    """The registry of live contexts and the thread that flushes them."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._live: dict[int, Any] = {}  # id -> weakref.ref (or _Strong): call it for the ctx
        self._thread: threading.Thread | None = None
        self._sleeping = False
        self._waiting = 0.0  # the tick the thread waits out now (a run with a shorter one wakes it)
        self._exit_hooked = False

    def add(self, ctx: Any, keep: bool = False) -> None:
        """Flush ``ctx`` (``ctx._background_flush()``) every tick until :meth:`discard`.

        A live run is held weakly (a context nobody holds any more stops heartbeating); with
        ``keep`` (a final record still to write) it is held until written.
        """
        with self._cond:
            self._live[id(ctx)] = _Strong(ctx) if keep else weakref.ref(ctx)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="mlflowlet-flush", daemon=True
                )
                self._thread.start()
                if not self._exit_hooked:
                    atexit.register(self.flush_all)
                    self._exit_hooked = True
            elif self._sleeping or (getattr(ctx, "_flush_interval", 1.0) or 1.0) < self._waiting:
                self._cond.notify()  # idle, or waiting longer than this run's interval

    def discard(self, ctx: Any) -> None:
        """Stop flushing ``ctx``."""
        with self._cond:
            self._live.pop(id(ctx), None)

    def live(self) -> list[Any]:
        """Return the contexts being flushed (forgetting those nobody holds any more)."""
        with self._cond:
            for key in [k for k, ref in self._live.items() if ref() is None]:
                del self._live[key]
            refs = list(self._live.values())
        return [c for c in (r() for r in refs) if c is not None]

    def _tick(self) -> float:
        with self._cond:
            intervals = [getattr(r(), "_flush_interval", 1.0) for r in self._live.values()]
        return max(0.01, min([i for i in intervals if i] or [1.0]))

    def _loop(self) -> None:
        idle = 0
        while True:
            with self._cond:  # the tick is taken where `add` sees it (a shorter one wakes it)
                if self._live:
                    idle = 0
                else:
                    idle += 1
                if idle >= _IDLE_TICKS:
                    self._sleeping = True
                    while not self._live:
                        self._cond.wait()
                    self._sleeping, idle = False, 0
                else:
                    tick = self._waiting = self._tick()  # the lock is re-entrant (an RLock)
                    self._cond.wait(tick)
                    self._waiting = 0.0
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        now = time.monotonic()
        # runs first, then what they write into (a sweep's batched DB): one tick carries it all
        for ctx in sorted(self.live(), key=lambda o: getattr(o, "flush_after_runs", False)):
            try:
                ctx._background_flush(now, final)
            except Exception:  # noqa: S110 - the context keeps its buffers and reports the error
                pass

    def flush_all(self) -> None:
        """Write what every live run still buffers (at exit: the output's held tail too)."""
        self._flush(final=True)

    def _reset_after_fork(self) -> None:
        self._cond = threading.Condition()
        self._live = {}
        self._thread = None
        self._sleeping = False
        self._waiting = 0.0


class _Strong:
    """A strong reference with the call interface of ``weakref.ref``."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __call__(self) -> Any:
        return self.obj


flusher = Flusher()
_process.at_fork(child=flusher._reset_after_fork)  # a forked child has no thread, nor its runs
