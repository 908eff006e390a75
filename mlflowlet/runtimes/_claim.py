"""The caller's claim on a run that executes elsewhere (a Dask worker, an HTTP function).

While the caller waits, nothing on its side runs a context, so the row it stored before sending
the run would name no owner: a caller killed then (SIGKILL, the OOM killer) left the run
``running`` (or ``pending``) forever. A :class:`Claim` records the waiting row as ``running``,
owned by this process (``status.process``), and renews its heartbeat from the flush thread
(``_flush.py``), so readers resolve the run to ``error`` when the caller is gone, exactly as they
do for an in-process run (see ``mlflowlet/_owner.py``). The claim ends before the outcome is
written: no heartbeat ever lands on a finished run.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, cast

from .._owner import process_identity
from ..model import RunObject, now_iso

if TYPE_CHECKING:
    from ..db.base import RunDB


class Claim:
    """Own ``run`` in ``db`` while this process waits for it to finish elsewhere.

    Args:
        run: the run (its state becomes ``running``, its ``status.process`` this process; its
            start time stays the executor's to set).
        db: the run DB the caller records into.
        renew: write a heartbeat when the run is quiet; ``False`` when the executor writes the
            run's row itself (Dask's ``worker_db``), whose record a heartbeat would overwrite.
    """

    def __init__(self, run: RunObject, db: RunDB, renew: bool = True) -> None:
        from ..settings import heartbeat_timing

        self.run, self.db, self.renew = run, db, renew
        self._lock = threading.Lock()
        self._done = False
        self._flush_interval, self._every = heartbeat_timing()  # a run's own, as a context's
        self._last = 0.0

    def __enter__(self) -> Claim:
        import time

        status = self.run.status
        # `caller`: the process waits on the run (its Ctrl-C aborts it), it does not host it
        status.state, status.process = "running", {**process_identity(), "caller": True}
        self._write()  # no start time: the executor sets it when the run starts (not queued)
        self._last = time.monotonic()
        if self.renew:
            from .._flush import flusher

            flusher.add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        """Stop renewing the heartbeat (before the run's outcome is written)."""
        with self._lock:
            self._done = True
        from .._flush import flusher

        flusher.discard(self)

    def _write(self) -> None:
        status, meta = self.run.status, self.run.metadata
        status.heartbeat = status.last_update = now_iso()
        self.db.store_run(self.run.to_dict(), self.run.uid, meta.project, meta.iteration)

    def _background_flush(self, now: float, final: bool = False) -> None:
        """Renew the heartbeat when due (called by the flush thread).

        Only the heartbeat fields are updated: an executor that records into the same DB (an
        HTTP function started with ``--db``) keeps what it wrote.
        """
        if final or now - self._last < self._every:
            return
        with self._lock:
            if self._done:
                return
            self._last = now
            status, meta = self.run.status, self.run.metadata
            status.heartbeat = status.last_update = now_iso()
            beat = {"status.heartbeat": status.heartbeat, "status.last_update": status.heartbeat}
            self.db.update_run(beat, self.run.uid, meta.project, meta.iteration)

    @property
    def db_for_outcome(self) -> RunDB:
        """``db`` whose ``commit_run`` ends the claim first: where the run's outcome is stored."""
        return cast("RunDB", _Outcome(self.db, self))


class _Outcome:
    """A run DB proxy: ``commit_run`` releases the claim, then commits; the rest is ``db``'s."""

    def __init__(self, db: RunDB, claim: Claim) -> None:
        self._db, self._claim = db, claim

    def commit_run(self, *args: Any, **kwargs: Any) -> None:
        """Release the claim, then commit (see ``RunDB.commit_run``)."""
        self._claim.release()
        self._db.commit_run(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)
