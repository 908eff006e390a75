"""The writes in flight on a run: its end waits for them and refuses any that come after it.

A handler's thread may still be logging when the run ends. :class:`WriteGuard` counts the writes
under way (``log_result``, ``log_artifact``...) so ``Recorder.finish`` lets them land before the
final record, and refuses every write once the run ended (the record is final). The common path
(no run ending) costs one plain lock taken twice: a sweep makes several writes per iteration.
"""

from __future__ import annotations

import threading


class WriteGuard:
    """Counts a run's writes in flight; the context manager :meth:`admit` hands out."""

    __slots__ = ("lock", "inflight", "closed", "drained", "forked_from")

    def __init__(self, closed: bool = False, forked_from: int = 0) -> None:
        self.lock = threading.Lock()
        self.inflight = 0  # writes under way in any thread
        self.closed = closed  # the run ended: no write is admitted from now on
        self.drained: threading.Event | None = None  # set when the last write in flight ends
        # the pid of the process a forked child copied the live run from (it admits no write:
        # the child's copy of the record would overwrite what that process records)
        self.forked_from = forked_from

    def admit(self) -> bool:
        """Count one more write in flight (ended by leaving the ``with``); False once closed."""
        with self.lock:
            if self.closed:
                return False
            self.inflight += 1
            return True

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.inflight -= 1
            if not self.inflight and self.drained is not None:
                self.drained.set()

    def close(self, wait: bool) -> None:
        """Admit no more writes; with ``wait``, then let the writes in flight end.

        Closed first: threads logging in a loop cannot keep the run from ending (waiting for a
        moment with no write in flight starved the end behind eight such threads).
        """
        with self.lock:
            self.closed = True
            if not (wait and self.inflight):
                return
            drained = self.drained = threading.Event()
        drained.wait()
