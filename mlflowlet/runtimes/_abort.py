"""Abort a run that runs in a process (local, subprocess, a script): signal it, or mark it.

A run records its owner process (``status.process``). On the owner's host the process gets
SIGINT, as Ctrl-C would send, and the run ends ``aborted`` where it runs; this waits (bounded)
for that. A run in this very process is asked to stop at its next log call. A run whose
process cannot be reached (another host, a process already gone, no process yet) is marked
``aborted`` in the run DB.
"""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING

from .._owner import hostname, is_died_message, process_alive
from .._text import log_bytes
from ..model import TERMINAL_STATES, RunObject, now_iso

if TYPE_CHECKING:
    from ..db.base import RunDB

ABORT_TIMEOUT = 10.0  # seconds to wait for a signalled process to record the run's end
# kinds whose process runs the run itself (or a user's REPL, or a pipeline driver): SIGINT there
# is Ctrl-C; a Dask worker or a serving process holds other work and is never signalled, the
# caller waiting on a Dask or http:// run (``status.process['caller']``) is, as Ctrl-C would
SIGNALLED_KINDS = ("local", "subprocess", "pipeline", "")


def abort_process_run(run: RunObject, db: RunDB, timeout: float | None = None) -> RunObject:
    """Stop ``run`` (as the DB holds it) where its process runs, or mark it ``aborted``.

    Args:
        run: the run, freshly read from ``db``.
        db: the run DB.
        timeout: seconds to wait for a signalled process (default ``ABORT_TIMEOUT``).

    Returns:
        The run as recorded afterwards.
    """
    timeout = ABORT_TIMEOUT if timeout is None else float(timeout)
    proc = run.status.process or {}
    pid, host = int(proc.get("pid") or 0), proc.get("host")
    kind = run.metadata.labels.get("kind", "local")
    here = hostname()
    reachable = (
        run.state == "running"
        and pid
        and host == here
        and (kind in SIGNALLED_KINDS or proc.get("caller"))  # a Dask/http:// run's waiting caller
        and process_alive(pid, proc.get("started"), proc.get("boot"))
    )
    who = _who()
    if not reachable:
        why = f" (its process, pid {pid} on {host}, cannot be signalled from {here})" if pid else ""
        return _mark(run, db, f"aborted by {who}{why}")
    if pid == os.getpid():
        from ..context import request_abort

        request_abort(run, f"aborted by {who}")
        return _mark(run, db, f"aborted by {who}")
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return _mark(run, db, f"aborted by {who} (pid {pid} had exited)")
    final = _wait_terminal(run, db, timeout)
    if final is None:
        return _mark(
            run,
            db,
            f"aborted by {who}: SIGINT sent to pid {pid} on {host}, which had not recorded "
            f"the run's end {timeout:g} s later",
        )
    if final.state == "aborted" or final.state == "completed":
        return final  # it stopped (or had just finished) on its own terms
    return _mark(final, db, f"aborted by {who}: SIGINT sent to pid {pid} on {host}")


def _wait_terminal(run: RunObject, db: RunDB, timeout: float) -> RunObject | None:
    meta = run.metadata
    deadline, pause = time.monotonic() + timeout, 0.02
    while True:
        found = RunObject.model_validate(db.read_run(meta.uid, meta.project, meta.iteration))
        if found.state in TERMINAL_STATES:
            return found
        if time.monotonic() >= deadline:
            return None
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))  # a bounded poll
        pause = min(pause * 2, 0.5)


def _mark(run: RunObject, db: RunDB, message: str) -> RunObject:
    """Record ``run`` as ``aborted`` with ``message`` (its log gets the line too)."""
    meta, status = run.metadata, run.status
    if status.state == "error" and is_died_message(status.error):
        message = f"{message}; {status.error}"
    now = now_iso()
    status.state, status.error = "aborted", message
    status.end_time = status.end_time or now
    status.last_update = now
    db.store_log(meta.uid, meta.project, log_bytes(f"{message}\n"))
    db.store_run(run.to_dict(), meta.uid, meta.project, meta.iteration)
    return run


def _who() -> str:
    from .._provenance import host_facts

    return f"{host_facts()['owner'] or 'someone'}@{hostname()}"
