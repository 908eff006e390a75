"""The write bodies of :class:`~mlflowlet.db._sqlbase.SQLRunDB`: each runs in one transaction.

Each takes the backend's connection wrapper (``execute``/``executemany`` with ``?`` placeholders)
and writes; the backends call them through ``_transact``.
"""

from __future__ import annotations

from typing import Any

from ._sql import LINEAGE_COLS, chunks

LINEAGE_INSERT = (
    f"INSERT INTO lineage ({', '.join(LINEAGE_COLS)}) VALUES ({','.join('?' * len(LINEAGE_COLS))})"
)


def executemany(conn: Any, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """Run one statement over many rows."""
    conn.executemany(sql, rows)


def del_run_body(conn: Any, uid: str, project: str, it: int | None) -> None:
    """Delete a run: every iteration, its log and metrics (``it`` None), else one iteration.

    One iteration goes with its metric rows (keyed by iteration); the log is the run's (keyed
    by uid alone), kept for the iterations that remain.
    """
    where, args = "uid=?", [uid]
    if project:
        where += " AND project=?"
        args.append(project)
    if it is None:
        conn.execute(f"DELETE FROM runs WHERE {where}", args)
        conn.execute("DELETE FROM logs WHERE uid=?", (uid,))
        conn.execute("DELETE FROM metrics WHERE uid=?", (uid,))
    else:
        conn.execute(f"DELETE FROM runs WHERE {where} AND iteration=?", [*args, it])
        conn.execute("DELETE FROM metrics WHERE uid=? AND iteration=?", (uid, it))


def del_runs_body(conn: Any, where: str, args: list[Any]) -> int:
    """Delete every run matching ``where`` with its logs and metrics; return how many."""
    uids = [r[0] for r in conn.execute(f"SELECT DISTINCT uid FROM runs{where}", args)]
    for chunk in chunks(uids, 500):
        marks = ",".join("?" * len(chunk))
        for table in ("runs", "logs", "metrics"):
            conn.execute(f"DELETE FROM {table} WHERE uid IN ({marks})", chunk)
    return len(uids)


def store_log_body(conn: Any, uid: str, project: str, body: bytes, append: bool) -> None:
    """Write (or with ``append`` add to) a run's captured output."""
    if not append:
        conn.execute("DELETE FROM logs WHERE uid=?", (uid,))
    if body:
        conn.execute("INSERT INTO logs (uid, project, body) VALUES (?,?,?)", (uid, project, body))
