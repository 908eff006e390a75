"""The ``WHERE`` clause of a run filter, written so that its most selective filter drives.

SQLite keeps no statistics here (nothing runs ``ANALYZE``), and its planner, asked for runs newest
first, walked ``runs_top`` (every top-level run, in ``start_time`` order) and tested each run
against the other filters: a filter matching few runs (a name, the ``running`` state every
unfiltered list judges, a pipeline's uid, a cache key's label) read every top-level run, ~40 ms
over 100,000 runs, and a cache lookup that missed read them all. So each equality filter that has
an index (``uid``, ``name``, ``state``, ``parent_uid``, ``pipeline_uid``, a ``k=v`` label) is
probed with a count bounded by ``PROBE_LIMIT`` (and by the fewest found so far: a filter
matching no run ends the probing); the one matching fewest runs, when under the limit, drives:
every other term is written ``+column`` (SQLite then uses no index for it) and the matches are
sorted. A filter matching more runs leaves the walk in time order, which
stops at a page's end. PostgreSQL plans from its own statistics: only labels are probed there, to
choose which ``k=v`` becomes the id list.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from ..errors import ConfigError
from .base import parse_label_filters

PROBE_LIMIT = 1000  # a filter matching fewer runs than this drives the query
LABEL_ROWS = "SELECT 1 FROM run_labels WHERE key=? AND value=?"
#: the indexed run columns a filter compares for equality (the partial indexes need != '')
INDEXED = {
    "uid": "uid=?",
    "name": "name=?",
    "state": "state=?",
    "parent_uid": "parent_uid=? AND parent_uid!=''",
    "pipeline_uid": "pipeline_uid=? AND pipeline_uid!=''",
}

#: ``probe(select, args, limit)``: how many rows ``select`` yields, counted up to ``limit``
Probe = Callable[[str, tuple[Any, ...], int], int]


def probe_sql(select: str, limit: int) -> str:
    """Return the count of ``select``'s rows, up to ``limit``."""
    return f"SELECT count(*) FROM ({select} LIMIT {int(limit)}) AS hits"


def match_clause(column: str, value: str) -> tuple[str, Any]:
    """Return SQL matching ``column``: exact, or (``~text``) a case-insensitive substring.

    The ``~`` prefix follows MLRun's name filters (``list_runs('~train')``).
    """
    if value.startswith("~"):
        text = value[1:].lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return f"lower({column}) LIKE ? ESCAPE '\\'", f"%{text}%"
    return f"{column}=?", value


def run_where(
    sqlite: bool,
    contains: str,
    probe: Probe,
    name: str = "",
    uid: str | None = None,
    project: str = "",
    labels: Any = None,
    state: str = "",
    iter: bool = False,
    days_ago: int = 0,
    **filters: Any,
) -> tuple[str, list[Any]]:
    """Return the ``WHERE`` clause (or ``''``) and its arguments for a run filter.

    ``sqlite``: whether the DB is SQLite (``+column`` steers its planner; see the module);
    ``contains``: SQL true when ``{}`` contains the ``?`` argument (the dialect's); ``probe``
    counts a filter's rows, bounded (see :data:`Probe`). The filters are ``list_runs``'s.
    """
    unknown = set(filters) - {"parent_uid", "pipeline_uid"}
    if unknown:
        raise ConfigError(f"unknown run filter(s) {sorted(unknown)}")
    label_filters = parse_label_filters(labels)
    equal = [(k, v) for op, k, v in label_filters if op == "="]
    values = {"uid": uid, "name": name, "state": state, **filters}
    candidates: list[tuple[Any, str, tuple[Any, ...]]] = []
    if sqlite or len(equal) > 1:
        candidates = [(pair, LABEL_ROWS, pair) for pair in equal]
    if sqlite:
        candidates += [
            (column, f"SELECT 1 FROM runs WHERE {INDEXED[column]}", (values[column],))
            for column in ("uid", "pipeline_uid", "parent_uid", "name", "state")
            if values.get(column) and not (column == "name" and name.startswith("~"))
        ]
    best, driver = PROBE_LIMIT, None
    for candidate, select, probed in candidates:
        if best == 0:
            break  # nothing can match: no need to count the rest
        count = probe(select, probed, best)  # counted up to the best so far
        if count < best:
            best, driver = count, candidate
    # the k=v whose runs become an id list: the driver, or the likeliest when nothing drives; a
    # run column driving checks every label on each of its runs instead (no list to build)
    label = driver if driver in equal else (equal[0] if equal and driver is None else None)
    if not sqlite:
        driver = None  # PostgreSQL plans from its statistics
    clauses, args = [], []
    for column, value in values.items():
        if value:
            own = "" if driver in (None, column) else "+"
            if column == "name":
                clause, value = match_clause(own + column, value)
            else:  # the partial indexes need their != '' term
                clause = INDEXED[column] if not own else f"{own}{column}=?"
            clauses.append(clause)
            args.append(value)
    free = "" if driver is None else "+"
    if project:
        clauses.append(f"{free}project=?")
        args.append(project)
    if not iter:
        clauses.append(f"{free}iteration=0")
    if days_ago:
        since = datetime.now(timezone.utc) - timedelta(days=days_ago)
        clauses.append(f"{free}start_time>=?")
        args.append(since.isoformat())
    checked = bool(equal) or driver is not None  # each candidate run's labels are looked up
    label_clauses, label_args = label_where(contains, label_filters, label, checked)
    clauses += label_clauses
    args += label_args
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def label_where(
    contains: str,
    filters: list[tuple[str, str, str | None]],
    driver: tuple[str, Any] | None,
    checked: bool,
) -> tuple[list[str], list[Any]]:
    """Return SQL for label filters: ``driver`` (a ``k=v``) is an id list, the rest check.

    An ``id IN (SELECT ...)`` list costs what it matches (a ``parity=1`` label matching half
    the runs costs a 50,000-id list), so only the ``k=v`` filter with the fewest rows (probed
    with a bounded count) becomes the list; every other filter is a correlated lookup on the
    ``(run_id, key)`` primary key of each candidate run, and so are all of them when
    ``checked`` (another filter chooses the candidates).
    """
    clauses, args = [], []
    own = "SELECT 1 FROM run_labels l WHERE l.run_id=runs.id AND l.key=?"
    for op, key, value in filters:
        if op == "=" and (key, value) == driver:
            clauses.append("id IN (SELECT run_id FROM run_labels WHERE key=? AND value=?)")
            args += [key, value]
            driver = None  # a repeated filter is checked like the others
        elif op == "=":
            clauses.append(f"EXISTS ({own} AND l.value=?)")
            args += [key, value]
        elif op == "!=":
            clauses.append(f"NOT EXISTS ({own} AND l.value=?)")
            args += [key, value]
        elif op == "~=" and checked:
            clauses.append(f"EXISTS ({own} AND {contains.format('l.value')})")
            args += [key, value]
        elif op == "~=":
            matching = contains.format("value")
            clauses.append(f"id IN (SELECT run_id FROM run_labels WHERE key=? AND {matching})")
            args += [key, value]
        elif checked:
            clauses.append(f"EXISTS ({own})")
            args.append(key)
        else:
            clauses.append("id IN (SELECT run_id FROM run_labels WHERE key=?)")
            args.append(key)
    return clauses, args
