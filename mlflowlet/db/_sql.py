"""What the SQL run DBs share: one schema and migration story, run filters, the lineage walk.

SQL is written once with ``?`` placeholders, SQLite's own style, so the embedded DB runs it as
is; the PostgreSQL backend turns ``?`` into ``%s`` (see ``postgres.py``). The few dialect
differences (identity columns, 64-bit integer, float and binary types, ``WITHOUT ROWID``, the
substring function) live in :class:`Dialect`.

Migrations: bump ``SCHEMA_VERSION`` and add the statements that take version ``N - 1`` to ``N``
under ``MIGRATIONS[N]`` (formatted with the dialect like the schema); every backend applies them
through :func:`upgrade_schema` when it opens an older database, and refuses a newer one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import NotFoundError, RunDBError
from ._json import loads
from ._where import match_clause
from .base import apply_updates, parse_label_filters

SCHEMA_VERSION = 2
_RUNS_TOP = "CREATE INDEX IF NOT EXISTS runs_top ON runs (iteration, start_time)"
MIGRATIONS: dict[int, tuple[str, ...]] = {
    # 2: pages of top-level runs, newest first, without walking a sweep's iterations
    2: (_RUNS_TOP,),
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    {id},
    project TEXT NOT NULL, uid TEXT NOT NULL, iteration {int} NOT NULL,
    name TEXT, state TEXT, start_time TEXT, last_update TEXT,
    parent_uid TEXT, pipeline_uid TEXT, body TEXT NOT NULL,
    UNIQUE (uid, iteration, project));
CREATE INDEX IF NOT EXISTS runs_name ON runs (name);
CREATE INDEX IF NOT EXISTS runs_state ON runs (state);
CREATE INDEX IF NOT EXISTS runs_start ON runs (start_time);
CREATE INDEX IF NOT EXISTS runs_top ON runs (iteration, start_time);
CREATE INDEX IF NOT EXISTS runs_pipeline ON runs (pipeline_uid) WHERE pipeline_uid != '';
CREATE INDEX IF NOT EXISTS runs_parent ON runs (parent_uid) WHERE parent_uid != '';
CREATE TABLE IF NOT EXISTS run_labels (
    run_id {ref} NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key TEXT NOT NULL, value TEXT, PRIMARY KEY (run_id, key)){without_rowid};
CREATE INDEX IF NOT EXISTS run_labels_kv ON run_labels (key, value, run_id);
CREATE TABLE IF NOT EXISTS artifacts (
    {id},
    project TEXT NOT NULL, key TEXT NOT NULL, uid TEXT NOT NULL, tree TEXT,
    iteration {int}, kind TEXT, updated TEXT, body TEXT NOT NULL,
    UNIQUE (key, project, uid, iteration));
CREATE INDEX IF NOT EXISTS artifacts_tree ON artifacts (tree);
CREATE TABLE IF NOT EXISTS artifact_tags (
    project TEXT NOT NULL, key TEXT NOT NULL, tag TEXT NOT NULL,
    artifact_id {ref} NOT NULL REFERENCES artifacts (id) ON DELETE CASCADE,
    PRIMARY KEY (project, key, tag)){without_rowid};
CREATE INDEX IF NOT EXISTS artifact_tags_artifact ON artifact_tags (artifact_id);
CREATE TABLE IF NOT EXISTS metrics (
    {metrics_id}uid TEXT NOT NULL, project TEXT, iteration {int}, key TEXT NOT NULL,
    step {int}, value {real}, time {real});
CREATE INDEX IF NOT EXISTS metrics_run ON metrics (uid, iteration, key);
CREATE TABLE IF NOT EXISTS logs (
    {id}, uid TEXT NOT NULL, project TEXT, body {blob} NOT NULL);
CREATE INDEX IF NOT EXISTS logs_uid ON logs (uid);
CREATE TABLE IF NOT EXISTS lineage (
    {id}, project TEXT, pipeline_uid TEXT,
    producer_uid TEXT, producer_iter {int}, output TEXT, artifact_key TEXT,
    artifact_uri TEXT, artifact_hash TEXT, consumer_uid TEXT, consumer_param TEXT, time TEXT);
CREATE INDEX IF NOT EXISTS lineage_producer ON lineage (producer_uid);
CREATE INDEX IF NOT EXISTS lineage_consumer ON lineage (consumer_uid);
CREATE INDEX IF NOT EXISTS lineage_key ON lineage (artifact_key);
CREATE INDEX IF NOT EXISTS lineage_pipeline ON lineage (pipeline_uid);
"""

RUN_COLUMNS = ("name", "state", "start_time", "last_update", "parent_uid", "pipeline_uid")
LINEAGE_COLS = (
    "project",
    "pipeline_uid",
    "producer_uid",
    "producer_iter",
    "output",
    "artifact_key",
    "artifact_uri",
    "artifact_hash",
    "consumer_uid",
    "consumer_param",
    "time",
)


@dataclass(frozen=True)
class Dialect:
    """The few places where SQLite and PostgreSQL SQL differ."""

    name: str
    types: dict[str, str]  # fills the {placeholders} of the schema
    metrics_order: str  # the column that keeps metric rows in logging order
    contains: str  # SQL that is true when ``{}`` contains the ``?`` argument
    table_exists: str  # one row when the table named by ``?`` exists
    lock_row: str = ""  # appended to a SELECT inside a write transaction to lock its rows

    def schema(self) -> list[str]:
        """Return the ``CREATE`` statements of the current schema."""
        return [s.strip() for s in _SCHEMA.format(**self.types).split(";") if s.strip()]

    def migration(self, version: int) -> list[str]:
        """Return the statements that take the schema from ``version - 1`` to ``version``."""
        return [s.format(**self.types) for s in MIGRATIONS.get(version, ())]


SQLITE = Dialect(
    name="sqlite",
    types={
        "id": "id INTEGER PRIMARY KEY",
        "ref": "INTEGER",
        "int": "INTEGER",
        "real": "REAL",
        "blob": "BLOB",
        "without_rowid": " WITHOUT ROWID",
        "metrics_id": "",
    },
    metrics_order="rowid",
    contains="instr({}, ?) > 0",
    table_exists="SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
)
POSTGRES = Dialect(
    name="postgresql",
    types={
        "id": "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        "ref": "BIGINT",
        "int": "BIGINT",
        "real": "DOUBLE PRECISION",
        "blob": "BYTEA",
        "without_rowid": "",
        "metrics_id": "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, ",
    },
    metrics_order="id",
    contains="strpos({}, ?) > 0",
    table_exists="SELECT 1 FROM pg_tables WHERE schemaname=current_schema() AND tablename=?",
    lock_row=" FOR UPDATE",  # SQLite needs none: BEGIN IMMEDIATE already holds the write lock
)


# schema and migrations ---------------------------------------------------------------------------
def stored_version(conn: Any, dialect: Dialect) -> int | None:
    """Return the schema version stored in the database (None when there is none yet)."""
    if conn.execute(dialect.table_exists, ("schema_version",)).fetchone() is None:
        return None
    got = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
    return None if got is None else int(got)


def upgrade_schema(conn: Any, dialect: Dialect, version: int | None) -> int:
    """Create the schema (``version`` None) or migrate it up to ``SCHEMA_VERSION``.

    Call inside a write transaction that serialises schema changes between processes (SQLite's
    ``BEGIN IMMEDIATE``, a PostgreSQL advisory lock), after reading ``version`` again in it.
    Returns the version the database is at (a newer one is returned untouched).
    """
    if version is None:
        for stmt in dialect.schema():
            conn.execute(stmt)
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        return SCHEMA_VERSION
    for step in range(version + 1, SCHEMA_VERSION + 1):
        for stmt in dialect.migration(step):
            conn.execute(stmt)
        conn.execute("UPDATE schema_version SET version=?", (step,))
    return max(version, SCHEMA_VERSION)


def check_version(version: int, where: str) -> None:
    """Refuse a database written by a newer mlflowlet."""
    if version > SCHEMA_VERSION:
        raise RunDBError(
            f"run DB {where} has schema version {version}, newer than this mlflowlet "
            f"({SCHEMA_VERSION}); upgrade mlflowlet"
        )


# run filters ------------------------------------------------------------------------------------
def key_clause(column: str, value: str) -> tuple[str, list[Any]]:
    """Return SQL matching an artifact key filter and its arguments.

    ``name`` matches keys that start with ``name`` (case-sensitive), ``~text`` keys that
    contain ``text`` (any case), ``=name`` the key ``name`` exactly.
    """
    if value.startswith("="):
        return f"{column}=?", [value[1:]]
    if value.startswith("~"):
        clause, arg = match_clause(column, value)
        return clause, [arg]
    return f"substr({column}, 1, ?)=?", [len(value), value]


def labels_match(have: dict[str, Any], filters: Any) -> bool:
    """Return whether a label dict passes the label filters (for artifacts, filtered in Python)."""
    for op, key, value in parse_label_filters(filters):
        got = have.get(key)
        if op == "exists" and key not in have:
            return False
        if op == "=" and (got is None or str(got) != value):
            return False
        if op == "!=" and got is not None and str(got) == value:
            return False
        if op == "~=" and (got is None or (value or "") not in str(got)):
            return False
    return True


def unstorable_text(where: str, exc: UnicodeEncodeError) -> str:
    """Explain a text value the run DB at ``where`` refused (a lone surrogate), on one line."""
    bad = exc.object[exc.start : exc.end] if isinstance(exc.object, str) else ""
    return (
        f"run DB {where} cannot store text holding {bad!r} (a lone surrogate: Python's decoding "
        f"of a byte that is not UTF-8, e.g. by os.listdir) in {exc.object[:80]!r}; nothing was "
        "written: decode such names yourself, e.g. os.fsencode(text).decode('latin-1')"
    )


# runs and labels --------------------------------------------------------------------------------
def one_run(
    read: Callable[[str, list[Any]], list[Any]], uid: str, project: str, it: int, lock: str = ""
) -> tuple[str, str]:
    """Return ``(body, project)`` of one stored run, read with ``read(sql, args)``.

    Raises:
        NotFoundError: no such run (names the uid, the iteration and the project).
    """
    sql, args = "SELECT body, project FROM runs WHERE uid=? AND iteration=?", [uid, it]
    if project:
        sql += " AND project=?"
        args.append(project)
    rows = read(sql + lock, args)
    if not rows:
        where = f" in project {project!r}" if project else ""
        raise NotFoundError(f"run {uid} (iteration {it}) not found{where}")
    return rows[0][0], rows[0][1]


def run_state(read: Callable[[str, list[Any]], list[Any]], uid: str, project: str, it: int) -> str:
    """Return the ``state`` column of one stored run (its record left unread); '' when none."""
    sql, args = "SELECT state FROM runs WHERE uid=? AND iteration=?", [uid, it]
    if project:
        sql += " AND project=?"
        args.append(project)
    rows = read(sql, args)
    return (rows[0][0] or "") if rows else ""


def update_run_in(
    conn: Any,
    dialect: Dialect,
    store: Callable[..., None],
    updates: dict[str, Any],
    uid: str,
    project: str,
    it: int,
) -> None:
    """Apply dotted-key ``updates`` to one run on ``conn``, inside the caller's transaction.

    The run is locked as it is read (``FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE``
    already holds the write lock) and written back to the project it is stored in.
    """
    body, project = one_run(
        lambda sql, args: conn.execute(sql, args).fetchall(), uid, project, it, dialect.lock_row
    )
    store(conn, apply_updates(loads(body), updates), uid, project, it)


def run_row(run: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, str]]:
    """Return a run's indexed column values (in ``RUN_COLUMNS`` order) and its labels."""
    meta, status, spec = run["metadata"], run.get("status", {}), run.get("spec", {})
    values = (
        meta.get("name", ""),
        status.get("state", ""),
        status.get("start_time", ""),
        status.get("last_update", ""),
        spec.get("parent_uid", ""),
        spec.get("pipeline_uid", ""),
    )
    return values, {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}


def write_labels(conn: Any, run_id: Any, labels: dict[str, str], old: dict[str, str]) -> None:
    """Rewrite only the label rows that changed (each written row dirties index pages)."""
    if labels == old:
        return
    gone = [(run_id, k) for k, v in old.items() if labels.get(k) != v]
    if gone:  # a new run has none: no statement run for nothing
        conn.executemany("DELETE FROM run_labels WHERE run_id=? AND key=?", gone)
    new = [(run_id, k, v) for k, v in labels.items() if old.get(k) != v]
    if new:
        conn.executemany("INSERT INTO run_labels (run_id, key, value) VALUES (?,?,?)", new)


# lineage ----------------------------------------------------------------------------------------
def walk_lineage(
    start: set[str],
    rows: Callable[[str, list[Any]], list[dict[str, Any]]],
    upstream: bool,
    downstream: bool,
) -> list[dict[str, Any]]:
    """Follow lineage edges from the ``start`` runs, up (producers) and/or down (consumers)."""
    seen_edges: list[dict[str, Any]] = []
    seen_runs, frontier = set(start), list(start)
    while frontier:
        uid = frontier.pop()
        found = []
        if upstream:
            found += [(e, e["producer_uid"]) for e in rows("consumer_uid=?", [uid])]
        if downstream:
            found += [(e, e["consumer_uid"]) for e in rows("producer_uid=?", [uid])]
        for edge, nxt in found:
            if edge not in seen_edges:
                seen_edges.append(edge)
            if nxt and nxt not in seen_runs:
                seen_runs.add(nxt)
                frontier.append(nxt)
    return seen_edges


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    """Yield ``items`` in lists of at most ``size`` (bound the ``IN (...)`` argument count)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


# artifact versions ------------------------------------------------------------------------------
def artifact_query(
    key: str, tag: str, it: int | None, project: str, uid: str | None
) -> tuple[str, list[Any]]:
    """Return the query of one artifact version: by ``uid`` (and ``it``), else by tag."""
    if uid:
        sql = "SELECT body FROM artifacts a WHERE key=? AND uid=?"
        args: list[Any] = [key, uid]
        if it is not None:
            sql += " AND iteration=?"
            args.append(it)
    else:
        sql = (
            "SELECT a.body FROM artifacts a JOIN artifact_tags t ON t.artifact_id=a.id"
            " WHERE t.key=? AND t.tag=?"
        )
        args = [key, tag or "latest"]
    if project:
        sql += " AND a.project=?"
        args.append(project)
    return sql + " ORDER BY a.id DESC LIMIT 1", args


def artifact_missing(key: str, tag: str, project: str, uid: str | None) -> str:
    """Return the message of a missing artifact version."""
    which = f"@{uid}" if uid else f":{tag or 'latest'}"
    return f"artifact {key}{which} not found in project {project or '*'!r}"


def del_artifact_rows(
    conn: Any, key: str, tag: str, project: str, uid: str | None, it: int | None = None
) -> int:
    """Delete one artifact version (by tag, or uid and ``it``) or every version of ``key``."""
    if uid or tag:
        row = conn.execute(*artifact_query(key, tag, it, project, uid)).fetchone()
        if row is None:
            raise NotFoundError(artifact_missing(key, tag, project, uid))
        art = loads(row[0])
        sql, args = "DELETE FROM artifacts WHERE key=? AND uid=? AND project=?", [key, art["uid"]]
        args.append(art.get("project", project))
        if uid and it is not None:
            sql += " AND iteration=?"
            args.append(it)
        return int(conn.execute(sql, args).rowcount)
    sql, args = "DELETE FROM artifacts WHERE key=?", [key]
    if project:
        sql += " AND project=?"
        args.append(project)
    return int(conn.execute(sql, args).rowcount)
