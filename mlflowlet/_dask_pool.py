"""Leaving a Dask worker's thread pool from inside a run (``context.dask_client``).

A handler that submits its own tasks and waits on them holds one of the worker's threads; when
every thread of the cluster runs such a handler (a hyper-parameter sweep), the sub-tasks never
get a thread and the sweep deadlocks. :func:`leave_pool` secedes the run's task once, as
``distributed.worker_client`` does, and keeps a later ``distributed.secede()`` (the pattern Dask
documents) harmless: the thread's executor becomes a view whose thread set still holds this
thread once, so the handler's own secede has nothing left to do. ``rejoin()`` works unchanged.
"""

from __future__ import annotations

import threading
from typing import Any


class _SecededView:
    """The worker's executor as seen by a thread this module seceded (see the module doc)."""

    def __init__(self, real: Any, thread: threading.Thread) -> None:
        self._real, self._spare, self._skip_adjust = real, {thread}, False

    @property
    def _threads(self) -> set[threading.Thread]:
        if self._spare:  # the handler's own secede() removes the thread from here: a no-op
            self._skip_adjust = True
            return self._spare
        threads: set[threading.Thread] = self._real._threads
        return threads

    def _adjust_thread_count(self) -> None:
        if self._skip_adjust:  # the replacement thread was started when this module seceded
            self._skip_adjust = False
            return
        self._real._adjust_thread_count()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def leave_pool() -> None:
    """Secede the current Dask task from its worker's thread pool (once); no-op elsewhere."""
    try:
        from distributed import get_worker, secede
        from distributed.threadpoolexecutor import thread_state

        get_worker()  # ValueError outside a Dask task
        real, thread = thread_state.executor, threading.current_thread()
        if isinstance(real, _SecededView) or thread not in real._threads:
            return  # seceded already (by us or by the handler)
        secede()  # type: ignore[no-untyped-call]
    except (ImportError, ValueError, AttributeError):  # not on a worker, or another distributed
        return
    thread_state.executor = _SecededView(real, thread)
