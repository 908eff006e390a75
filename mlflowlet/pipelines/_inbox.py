"""Finished steps handed from the pool's threads to the scheduler, in batches.

A pool thread that ends a step adds it here; it wakes the scheduler only when the scheduler
has something to do that the pool cannot: no queued step is left (the pool would run dry, or
the pipeline is done), or the step may make another ready. Otherwise the pool keeps running
its queue and the scheduler sleeps, so a wide fan-out of short steps costs no thread hand-off
per step; the scheduler then takes every finished step at once. It also wakes at least every
``patience`` seconds (the pipeline run's progress and flushes keep their pace).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concurrent.futures import Future

    from .._interrupt import DaemonPool
    from ..model import RunObject
    from ._stepexec import StepCall
    from .graph import Node

    Finished = tuple[Node, StepCall, Future[RunObject]]


class Inbox:
    """The finished ``(node, call, future)`` triples of a scheduler's pool.

    ``waiting`` is the scheduler's count of unfinished upstream steps per step, which it lowers
    after :meth:`take`; ``downstream`` gives a step's downstream steps.
    """

    def __init__(
        self,
        pool: DaemonPool | None,
        waiting: dict[str, int],
        downstream: Callable[[str], Iterable[str]],
    ) -> None:
        self._pool, self._waiting, self._downstream = pool, waiting, downstream
        self._items: deque[Finished] = deque()
        self._arrived: dict[str, int] = {}  # step -> its upstream steps here, not taken yet
        self._lock, self._wake = threading.Lock(), threading.Event()

    def report(self, node: Node, call: StepCall, fut: Future[RunObject]) -> None:
        """Add a finished step (a future's done-callback, in the pool's thread)."""
        ready = False
        with self._lock:
            self._items.append((node, call, fut))
            for down in self._downstream(node.name):
                seen = self._arrived[down] = self._arrived.get(down, 0) + 1
                ready = ready or seen >= self._waiting[down]
        dry = self._pool is None or not self._pool.has_queued()
        if ready or dry or fut.exception() is not None:
            self._wake.set()

    def has_items(self) -> bool:
        """Whether a finished step waits to be taken (a glance: no lock, no wait)."""
        return bool(self._items)

    def take(self, patience: float) -> list[Finished]:
        """Return every finished step so far; wait for one first (``patience`` seconds at most).

        Empty when ``patience`` ran out (or on a stale wake-up). The scheduler takes again after
        each batch, so a step added while it handles one never waits for a wake-up.
        """
        if not self._items:
            self._wake.wait(patience)
        with self._lock:
            self._wake.clear()
            batch = list(self._items)
            self._items.clear()
            for node, _, _ in batch:
                for down in self._downstream(node.name):
                    self._arrived[down] -= 1
        return batch
