"""What a run's recorder does when the run DB cannot take a write, or ended the run elsewhere.

Free functions of :class:`mlflowlet._ctx_recorder.Recorder`'s failure paths: rows no run DB can
store, a flush error said once on stderr (never in the run's output), and an abort recorded by
another process (``mlflowlet abort`` from another host) or a reader's wrong ``process died``
verdict on a live run, read back by the flush thread.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from ._names import drop_unstorable_rows
from ._owner import is_died_message

if TYPE_CHECKING:
    from .model import RunObject


def _say(text: str) -> None:
    print(text, file=getattr(sys.stderr, "_original", sys.stderr))  # not the run's own output


def drop_unstorable(
    run: RunObject, out_arts: list[Any], out_metrics: list[Any], arts: list[Any], metrics: list[Any]
) -> bool:
    """Drop the artifact and metric rows no run DB can store (NUL, a lone surrogate).

    Their calls refuse such text; this is the guard for rows made past them, so that one such
    row neither stops every later write (retried forever) nor loses the others. Drops from both
    the masked rows and the buffered ones (put back on failure); says so on stderr.
    """
    names = drop_unstorable_rows([out_metrics, metrics], [out_arts, arts])
    if not names:
        return False
    meta = run.metadata
    _say(
        f"mlflowlet: run {meta.name!r} ({meta.uid}) records no rows for "
        f"{', '.join(dict.fromkeys(map(repr, names)))}: no run DB can store text with NUL or "
        "a lone surrogate (an undecodable byte); everything else is recorded"
    )
    return True


def report_flush_error(run: RunObject, exc: Exception, said: str, interval: float) -> str:
    """Say on stderr that writes of ``run`` fail, unless ``said`` already; return what is said."""
    text = str(exc) or type(exc).__name__
    if text != said:
        meta = run.metadata
        _say(
            f"mlflowlet: run {meta.name!r} ({meta.uid}) cannot be written to the run DB, "
            f"retrying every {interval:g} s: {text}"
        )
    return text


def ended_elsewhere(db: Any, run: RunObject) -> tuple[str, str]:
    """Return ``(state, error)`` when the run DB says another process ended live ``run``.

    ``('aborted', reason)``: ``mlflowlet abort`` (or another host) aborted it. ``('error',
    verdict)``: a reader took its owner for dead (``_owner.died_message``). Else ``('', '')``,
    also when the DB cannot tell (not stored yet, unreachable, no ``read_run``).
    """
    read = getattr(db, "read_run", None)
    if read is None:
        return "", ""
    meta = run.metadata
    state = getattr(db, "read_state", None)  # a SQL DB: the record is read only if need be
    try:
        if state is not None and state(meta.uid, meta.project, meta.iteration) not in (
            "aborted",
            "error",
        ):
            return "", ""
        status = read(meta.uid, meta.project, meta.iteration).get("status") or {}
    except Exception:  # not stored yet, or unreachable: the write reports it
        return "", ""
    now, error = status.get("state"), str(status.get("error") or "")
    if now == "aborted":
        return now, error or "aborted"
    if now == "error" and is_died_message(error):
        return now, error
    return "", ""
