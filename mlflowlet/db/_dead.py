"""How the SQL run DBs record ``running`` runs whose process is gone (see ``mlflowlet/_owner.py``).

``settle`` judges runs read from the DB and stores the verdict in one transaction, writing a run
only if its record is still the one that was judged (its owner may have written meanwhile, or
another reader resolved it first). A DB that cannot be written (read-only) keeps its rows; the
caller still gets the runs resolved.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .._owner import died_message, mark_died
from ..errors import RunDBError
from ._json import dumps, loads

if TYPE_CHECKING:
    from ._sqlbase import SQLRunDB


def run_key(run: dict[str, Any]) -> tuple[str, int, str]:
    """Return ``(uid, iteration, project)`` of a run dict."""
    meta = run.get("metadata") or {}
    return meta.get("uid", ""), int(meta.get("iteration") or 0), meta.get("project", "")


def settle(db: SQLRunDB, runs: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Return ``{run_key: run ended error}`` for those of ``runs`` whose process is gone.

    Args:
        db: an ``SQLRunDB`` (its ``_transact`` and ``_store_run`` write the verdicts).
        runs: run dicts as read from ``db``.
    """
    from ..settings import get_settings

    timeout = get_settings().heartbeat_timeout
    dead = {}
    for run in runs:
        message = died_message(run, timeout)
        if message:
            dead[run_key(run)] = (run, message)
    if not dead:
        return {}
    try:
        db._transact(_save_dead, db._store_run, list(dead.values()))
    except RunDBError:  # a read-only or damaged DB: report them resolved, store nothing
        pass
    return {key: mark_died(run, message) for key, (run, message) in dead.items()}


def settle_one(db: SQLRunDB, run: dict[str, Any]) -> dict[str, Any]:
    """Return ``run`` as read, or ended ``error`` when it is ``running`` and its owner is gone."""
    if (run.get("status") or {}).get("state") != "running":
        return run
    return settle(db, [run]).get(run_key(run), run)


def settled_list(
    settled: list[dict[str, Any]], runs: Iterable[dict[str, Any]], state: str
) -> Iterator[dict[str, Any]]:
    """Yield ``runs``, the ``settled`` ones replaced (a read-only DB still holds them running).

    A replaced run that no longer matches the ``state`` filter is dropped.
    """
    if not settled:
        yield from runs
        return
    by_key = {run_key(run): run for run in settled}
    for run in runs:
        run = by_key.get(run_key(run), run)
        if not state or (run.get("status") or {}).get("state") == state:
            yield run


def _save_dead(conn: Any, store_run: Any, dead: list[tuple[dict[str, Any], str]]) -> None:
    """Record each run ended by :func:`~mlflowlet._owner.mark_died`, if still as it was read."""
    for run, message in dead:
        uid, it, project = run_key(run)
        row = conn.execute(
            "SELECT body FROM runs WHERE uid=? AND iteration=? AND project=?", (uid, it, project)
        ).fetchone()
        now = loads(row[0]) if row else {}
        if dumps(now.get("status") or {}) != dumps(run.get("status") or {}):  # NaN != NaN
            continue  # written since it was read: the owner is alive after all, or resolved
        store_run(conn, mark_died(run, message), uid, project, it)
        conn.execute(
            "INSERT INTO logs (uid, project, body) VALUES (?,?,?)",
            (uid, project, f"{message}\n".encode()),
        )
