"""Deferred "running" records: one daemon thread writes them for runs that last.

A run executed by a runtime does not write its ``running`` state at once: most handlers finish in
milliseconds, and their one transaction at the end says everything (a second transaction per run
was half the cost of a tracked run). A run still going after ``delay`` seconds gets its ``running``
record written here, from a snapshot taken at its start, so the DB shows it within about a second;
a crash loses at most that window (see DESIGN.md, "flush at most every second or so").
"""

from __future__ import annotations

import heapq
import itertools
import os
import threading
import time
import weakref
from typing import Any

_BATCH = 0.25  # wake at most four times a second, whatever the rate of runs


class DeferredStarts:
    """A queue of contexts whose start record is due at a deadline, served by one thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Any]] = []
        self._counter = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, ctx: Any, delay: float) -> None:
        """Call ``ctx._flush_deferred_start()`` after ``delay`` seconds unless it is gone."""
        entry = (time.monotonic() + delay, next(self._counter), weakref.ref(ctx))
        with self._cond:
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="mlflowlet-deferred-start", daemon=True
                )
                self._thread.start()
            elif len(self._heap) == 1:
                self._cond.notify()

    def _due(self) -> list[Any]:
        with self._cond:
            while not self._heap:
                self._cond.wait()
            wait = self._heap[0][0] - time.monotonic()
        if wait > 0:
            time.sleep(max(wait, _BATCH))  # a scheduler's pause, batching many deadlines
        now = time.monotonic()
        due = []
        with self._cond:
            while self._heap and self._heap[0][0] <= now:
                due.append(heapq.heappop(self._heap)[2])
        return due

    def _loop(self) -> None:
        while True:
            for ref in self._due():
                ctx = ref()
                if ctx is None:
                    continue
                try:
                    ctx._flush_deferred_start()
                except Exception:  # the run's own next commit reports DB errors
                    pass

    def _reset_after_fork(self) -> None:
        self._cond = threading.Condition()
        self._heap = []
        self._thread = None


deferred_starts = DeferredStarts()
if hasattr(os, "register_at_fork"):  # a forked child has no copy of the thread
    os.register_at_fork(after_in_child=deferred_starts._reset_after_fork)
