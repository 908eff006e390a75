"""Paged run listing for the UI: one page plus the total, without loading every run."""

from __future__ import annotations

from typing import Any

from ..db._json import loads

SORTS = {"start": "start_time", "name": "name", "state": "state", "updated": "last_update"}


def page_runs(
    db: Any,
    project: str = "",
    name: str = "",
    labels: Any = None,
    state: str = "",
    sort: str = "start",
    desc: bool = True,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], int]:
    """Return one page of top-level runs matching the filters and how many match in all.

    SQL stores (SQLite, PostgreSQL) answer with ``LIMIT``/``OFFSET`` and ``count(*)`` through
    their own filter builder; any other store is listed whole and sliced.
    """
    column = SORTS.get(sort, "start_time")
    db.resolve_dead_runs()  # a run whose process is gone is shown (and stored) as error
    where_builder = getattr(db, "_run_where", None)
    if where_builder is None or not hasattr(db, "_read"):
        runs = list(db.list_runs(name=name, project=project, labels=labels, state=state))
        runs.sort(key=lambda r: _sort_key(r, column), reverse=desc)
        return runs[offset : offset + limit], len(runs)
    where, args = where_builder(name, None, project, labels, state, False)
    order = f"{column} {'DESC' if desc else 'ASC'}, id {'DESC' if desc else 'ASC'}"
    rows = db._read(
        f"SELECT body FROM runs{where} ORDER BY {order} LIMIT {int(limit)} OFFSET {int(offset)}",
        args,
    )
    total = db._read(f"SELECT count(*) FROM runs{where}", args)[0][0]
    return [loads(r[0]) for r in rows], int(total)


def _sort_key(run: dict[str, Any], column: str) -> str:
    if column == "name":
        return run["metadata"].get("name") or ""
    status = run.get("status", {})
    return str(
        status.get({"start_time": "start_time", "state": "state"}.get(column, "last_update")) or ""
    )
