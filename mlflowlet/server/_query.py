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
        f"SELECT {body_column(db)} FROM runs{where} ORDER BY {order}"
        f" LIMIT {int(limit)} OFFSET {int(offset)}",
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


def _sql(db: Any) -> str:
    """Return the SQL dialect name of a SQL run DB, or ``''`` for any other store."""
    dialect = getattr(db, "dialect", None)
    return getattr(dialect, "name", "") if hasattr(db, "_read") else ""


#: a body of more than 64 KiB that is valid JSON (NaN is not, to SQLite) without its iteration
#: table: a 100k-row sweep's table is megabytes that no page shows whole
_BIG = "length(body) > 65536 AND json_valid(body)"
LIGHT_BODY = f"CASE WHEN {_BIG} THEN json_remove(body, '$.status.iterations') ELSE body END"


def body_column(db: Any) -> str:
    """Return the SQL of a run's body as a page needs it (SQLite strips big iteration tables)."""
    return LIGHT_BODY if _sql(db) == "sqlite" else "body"


def light_run(db: Any, uid: str, project: str = "", iter: int = 0) -> tuple[dict[str, Any], int]:
    """Return a run without ``status.iterations`` and how many rows that table has (header too).

    Raises:
        NotFoundError: no such run.
    """
    if _sql(db) != "sqlite":
        return _strip(db.read_run(uid, project, iter))
    where, args = " WHERE uid=? AND iteration=?", [uid, iter]
    if project:
        where += " AND project=?"
        args.append(project)
    rows = db._read(
        f"SELECT {LIGHT_BODY}, CASE WHEN {_BIG} THEN 1 ELSE 0 END FROM runs{where}", args
    )
    if not rows:
        db.read_run(uid, project, iter)  # raises the store's own NotFoundError
    run, stripped = loads(rows[0][0]), rows[0][1]
    if not stripped:
        return _strip(run)
    # the table has a header and one row per child run; count the children (an index range)
    children = db._read(
        f"SELECT count(*) FROM runs{_children(uid, project)[0]}", _children(uid, project)[1]
    )[0][0]
    if not children and not iter:  # a table without child runs (an imported sweep)
        sql = f"SELECT json_array_length(body, '$.status.iterations') FROM runs{where}"
        return run, int(db._read(sql, args)[0][0] or 0)
    return run, int(children) + 1 if not iter else 0


def _strip(run: dict[str, Any]) -> tuple[dict[str, Any], int]:
    table = run.get("status", {}).pop("iterations", None) or []
    return run, len(table)


def iteration_page(
    db: Any, uid: str, project: str, offset: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Return one page of a sweep's child runs (by iteration) and how many there are."""
    if not _sql(db):
        runs = [r for r in db.list_runs(uid=uid, project=project, iter=True, sort=False)]
        children = sorted(
            (r for r in runs if r["metadata"].get("iteration")),
            key=lambda r: r["metadata"]["iteration"],
        )
        return children[offset : offset + limit], len(children)
    where, args = _children(uid, project)
    rows = db._read(
        f"SELECT body FROM runs{where} ORDER BY iteration LIMIT {int(limit)} OFFSET {int(offset)}",
        args,
    )
    total = db._read(f"SELECT count(*) FROM runs{where}", args)[0][0]
    return [loads(r[0]) for r in rows], int(total)


def iteration_sample(
    db: Any, uid: str, project: str, total: int, most: int, always: int | None = None
) -> list[dict[str, Any]]:
    """Return at most about ``most`` child runs spread evenly over the sweep (plus ``always``)."""
    stride = max(1, -(-total // most))
    if not _sql(db):
        runs, _ = iteration_page(db, uid, project, 0, total)
        return [
            r
            for r in runs
            if r["metadata"]["iteration"] % stride == 0 or r["metadata"]["iteration"] == always
        ]
    where, args = _children(uid, project)
    where += " AND ((iteration / ?) * ? = iteration OR iteration = ?)"  # no '%': psycopg's mark
    sql = f"SELECT body FROM runs{where} ORDER BY iteration"
    rows = db._read(sql, [*args, stride, stride, always or -1])
    return [loads(r[0]) for r in rows]


def _children(uid: str, project: str) -> tuple[str, list[Any]]:
    where, args = " WHERE uid=? AND iteration>0", [uid]
    if project:
        where += " AND project=?"
        args.append(project)
    return where, args


Series = tuple[list[tuple[float, float]], int, int]
_FINITE = "abs(value) <= 1.7976931348623157e308"  # false for NULL, NaN and infinities


def metric_series(db: Any, uid: str, iter: int = 0, most: int = 400) -> dict[str, Series]:
    """Return each metric key's points to draw, how many finite values and how many others.

    The points are ``(step, value)`` in logging order, at most ``most`` per key (each bucket's
    min and max kept, so a spike always shows). Non-finite values are counted, not drawn; a
    row without a step is placed at its position. SQL stores hand over each key's finite rows
    as they are (no per-row work in Python but the thinning).
    """
    from ._charts import series_points, thin

    dialect = getattr(db, "dialect", None)
    if not _sql(db) or dialect is None:
        every = [(r["key"], r["step"], r["value"]) for r in db.get_metrics(uid, None, iter)]
        series, skipped = series_points(every)
        return {k: (thin(p, most), len(p), skipped.get(k, 0)) for k, p in series.items()}
    where = "FROM metrics WHERE uid=? AND iteration=?"
    totals = db._read(f"SELECT key, count(*) {where} GROUP BY key", (uid, iter))
    out: dict[str, Series] = {}
    for key, total in totals:
        rows: list[Any] = db._read(
            f"SELECT step, value {where} AND key=? AND {_FINITE} ORDER BY {dialect.metrics_order}",
            (uid, iter, key),
        )
        if any(step is None for step, _ in rows):
            rows = [(i if step is None else step, value) for i, (step, value) in enumerate(rows)]
        out[key] = (thin(rows, most), len(rows), int(total) - len(rows))
    return out
