"""The embedded run DB: one SQLite file in WAL mode, safe for several writing processes.

Every write transaction starts with ``BEGIN IMMEDIATE`` (deferred transactions that read then
write fail with "database is locked" at once, whatever ``busy_timeout`` says), commits use
``synchronous=NORMAL``, and runs are indexed by name, state, start time, parent and pipeline, with
labels in a ``(key, value, run)`` side table so label filters never scan JSON.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

from ..errors import ConfigError, NotFoundError, RunDBError
from .base import RunDB, parse_label_filters

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    project TEXT NOT NULL, uid TEXT NOT NULL, iteration INTEGER NOT NULL,
    name TEXT, state TEXT, start_time TEXT, last_update TEXT,
    parent_uid TEXT, pipeline_uid TEXT, body TEXT NOT NULL,
    UNIQUE (project, uid, iteration));
CREATE INDEX IF NOT EXISTS runs_uid ON runs (uid, iteration);
CREATE INDEX IF NOT EXISTS runs_name ON runs (name);
CREATE INDEX IF NOT EXISTS runs_state ON runs (state);
CREATE INDEX IF NOT EXISTS runs_start ON runs (start_time);
CREATE INDEX IF NOT EXISTS runs_pipeline ON runs (pipeline_uid);
CREATE INDEX IF NOT EXISTS runs_parent ON runs (parent_uid);
CREATE TABLE IF NOT EXISTS run_labels (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key TEXT NOT NULL, value TEXT);
CREATE INDEX IF NOT EXISTS run_labels_kv ON run_labels (key, value, run_id);
CREATE INDEX IF NOT EXISTS run_labels_run ON run_labels (run_id);
CREATE TABLE IF NOT EXISTS artifacts (
    id INTEGER PRIMARY KEY,
    project TEXT NOT NULL, key TEXT NOT NULL, uid TEXT NOT NULL, tree TEXT,
    iteration INTEGER, kind TEXT, updated TEXT, body TEXT NOT NULL,
    UNIQUE (project, key, uid, iteration));
CREATE INDEX IF NOT EXISTS artifacts_key ON artifacts (key);
CREATE INDEX IF NOT EXISTS artifacts_tree ON artifacts (tree);
CREATE TABLE IF NOT EXISTS artifact_tags (
    project TEXT NOT NULL, key TEXT NOT NULL, tag TEXT NOT NULL,
    artifact_id INTEGER NOT NULL REFERENCES artifacts (id) ON DELETE CASCADE,
    PRIMARY KEY (project, key, tag));
CREATE TABLE IF NOT EXISTS metrics (
    uid TEXT NOT NULL, project TEXT, iteration INTEGER, key TEXT NOT NULL,
    step INTEGER, value REAL, time REAL);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics (uid, iteration, key);
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY, uid TEXT NOT NULL, project TEXT, body BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS logs_uid ON logs (uid);
CREATE TABLE IF NOT EXISTS lineage (
    id INTEGER PRIMARY KEY, project TEXT, pipeline_uid TEXT,
    producer_uid TEXT, producer_iter INTEGER, output TEXT, artifact_key TEXT,
    artifact_uri TEXT, artifact_hash TEXT, consumer_uid TEXT, consumer_param TEXT, time TEXT);
CREATE INDEX IF NOT EXISTS lineage_producer ON lineage (producer_uid);
CREATE INDEX IF NOT EXISTS lineage_consumer ON lineage (consumer_uid);
CREATE INDEX IF NOT EXISTS lineage_key ON lineage (artifact_key);
CREATE INDEX IF NOT EXISTS lineage_pipeline ON lineage (pipeline_uid);
"""

_LINEAGE_COLS = (
    "project", "pipeline_uid", "producer_uid", "producer_iter", "output", "artifact_key",
    "artifact_uri", "artifact_hash", "consumer_uid", "consumer_param", "time",
)


class SQLiteRunDB(RunDB):
    """Run DB kept in one SQLite file.

    Args:
        path: the ``.db`` file (created with its directory when missing).
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self._lock = threading.RLock()
        self._conn = self._open()

    def __repr__(self) -> str:
        return f"SQLiteRunDB({self.path!r})"

    @property
    def artifact_root(self) -> str:
        """``<db dir>/artifacts``."""
        return os.path.join(os.path.dirname(self.path), "artifacts")

    # connection -----------------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        try:
            conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            version = self._ensure_schema(conn)
        except sqlite3.DatabaseError as exc:
            raise RunDBError(self._explain(exc)) from None
        if version > SCHEMA_VERSION:
            raise RunDBError(
                f"run DB {self.path} has schema version {version}, newer than this mlflowlet "
                f"({SCHEMA_VERSION}); upgrade mlflowlet"
            )
        return conn

    def _ensure_schema(self, conn: sqlite3.Connection) -> int:
        row = conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='schema_version'"
        ).fetchone()
        if row:
            got = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
            if got is not None:
                return int(got)
        conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            if conn.execute("SELECT count(*) FROM schema_version").fetchone()[0] == 0:
                conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return SCHEMA_VERSION

    def _explain(self, exc: sqlite3.Error) -> str:
        text = str(exc)
        if "not a database" in text:
            return (
                f"{self.path} is not an SQLite run DB ({text}); point MLFLOWLET_DBPATH "
                "(or get_run_db) at another file or directory"
            )
        if "readonly" in text or "read-only" in text or "unable to open" in text:
            return (
                f"run DB {self.path} cannot be written ({text}); make it writable or point "
                "MLFLOWLET_DBPATH at a writable directory"
            )
        return f"run DB {self.path}: {text}"

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise RunDBError(self._explain(exc)) from None
            try:
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                conn.execute("ROLLBACK")
                raise RunDBError(self._explain(exc)) from None
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._conn.execute(sql, tuple(args)).fetchall()
            except sqlite3.Error as exc:
                raise RunDBError(self._explain(exc)) from None

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    # runs -----------------------------------------------------------------------------------
    def store_run(self, run: dict[str, Any], uid: str, project: str = "", iter: int = 0) -> None:
        """Insert or replace a run and its labels."""
        with self._write() as conn:
            self._store_run(conn, run, uid, project, iter)

    @staticmethod
    def _store_run(conn: sqlite3.Connection, run: dict, uid: str, project: str, it: int) -> None:
        meta, status, spec = run["metadata"], run.get("status", {}), run.get("spec", {})
        row = conn.execute(
            "INSERT INTO runs (project, uid, iteration, name, state, start_time, last_update,"
            " parent_uid, pipeline_uid, body) VALUES (?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT (project, uid, iteration) DO UPDATE SET name=excluded.name,"
            " state=excluded.state, start_time=excluded.start_time,"
            " last_update=excluded.last_update, parent_uid=excluded.parent_uid,"
            " pipeline_uid=excluded.pipeline_uid, body=excluded.body RETURNING id",
            (
                project, uid, it, meta.get("name", ""), status.get("state", ""),
                status.get("start_time", ""), status.get("last_update", ""),
                spec.get("parent_uid", ""), spec.get("pipeline_uid", ""),
                json.dumps(run, default=str),
            ),
        ).fetchone()
        run_id = row[0]
        conn.execute("DELETE FROM run_labels WHERE run_id=?", (run_id,))
        labels = meta.get("labels") or {}
        if labels:
            conn.executemany(
                "INSERT INTO run_labels (run_id, key, value) VALUES (?,?,?)",
                [(run_id, k, str(v)) for k, v in labels.items()],
            )

    def read_run(self, uid: str, project: str = "", iter: int = 0) -> dict[str, Any]:
        """Return a run; raises ``NotFoundError`` naming the uid."""
        sql, args = "SELECT body FROM runs WHERE uid=? AND iteration=?", [uid, iter]
        if project:
            sql += " AND project=?"
            args.append(project)
        rows = self._read(sql, args)
        if not rows:
            where = f" in project {project!r}" if project else ""
            raise NotFoundError(f"run {uid} (iteration {iter}) not found{where}")
        return json.loads(rows[0][0])

    def _run_where(
        self, name: str = "", uid: str | None = None, project: str = "", labels: Any = None,
        state: str = "", iter: bool = False, days_ago: int = 0, **filters: Any,
    ) -> tuple[str, list[Any]]:
        clauses, args = [], []
        for column, value in (("name", name), ("uid", uid), ("project", project), ("state", state)):
            if value:
                clauses.append(f"{column}=?")
                args.append(value)
        for column in ("parent_uid", "pipeline_uid"):
            if filters.get(column):
                clauses.append(f"{column}=?")
                args.append(filters[column])
        unknown = set(filters) - {"parent_uid", "pipeline_uid"}
        if unknown:
            raise ConfigError(f"unknown run filter(s) {sorted(unknown)}")
        if not iter:
            clauses.append("iteration=0")
        if days_ago:
            since = datetime.now(timezone.utc) - timedelta(days=days_ago)
            clauses.append("start_time>=?")
            args.append(since.isoformat())
        for op, key, value in parse_label_filters(labels):
            if op == "=":
                clauses.append("id IN (SELECT run_id FROM run_labels WHERE key=? AND value=?)")
                args += [key, value]
            elif op == "!=":
                clauses.append(
                    "id NOT IN (SELECT run_id FROM run_labels WHERE key=? AND value=?)"
                )
                args += [key, value]
            elif op == "~=":
                clauses.append(
                    "id IN (SELECT run_id FROM run_labels WHERE key=? AND instr(value, ?) > 0)"
                )
                args += [key, value]
            else:
                clauses.append("id IN (SELECT run_id FROM run_labels WHERE key=?)")
                args.append(key)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    def list_runs(
        self, name: str = "", uid: str | None = None, project: str = "", labels: Any = None,
        state: str = "", sort: bool = True, last: int = 0, iter: bool = False, **filters: Any,
    ) -> Any:
        """Return a ``RunList`` (newest first when ``sort``; ``last`` limits the count)."""
        from .lists import RunList

        where, args = self._run_where(name, uid, project, labels, state, iter, **filters)
        sql = "SELECT body FROM runs" + where
        if sort:
            sql += " ORDER BY start_time DESC, iteration ASC"
        if last:
            sql += f" LIMIT {int(last)}"
        return RunList(json.loads(r[0]) for r in self._read(sql, args))

    def del_run(self, uid: str, project: str = "", iter: int | None = None) -> None:
        """Delete a run (every iteration unless ``iter`` is given) with its logs and metrics."""
        where, args = "uid=?", [uid]
        if project:
            where += " AND project=?"
            args.append(project)
        with self._write() as conn:
            if iter is None:
                conn.execute(f"DELETE FROM runs WHERE {where}", args)
                conn.execute("DELETE FROM logs WHERE uid=?", (uid,))
                conn.execute("DELETE FROM metrics WHERE uid=?", (uid,))
            else:
                conn.execute(f"DELETE FROM runs WHERE {where} AND iteration=?", [*args, iter])

    def del_runs(
        self, name: str = "", project: str = "", labels: Any = None, state: str = "",
        days_ago: int = 0,
    ) -> int:
        """Delete every run matching the filter (all iterations); refuses an empty filter."""
        if not (name or project or labels or state or days_ago):
            raise ConfigError(
                "del_runs() needs a filter (name, project, labels, state or days_ago); "
                "refusing to delete every run"
            )
        where, args = self._run_where(name, None, project, labels, state, False, days_ago)
        with self._write() as conn:
            uids = [r[0] for r in conn.execute(f"SELECT DISTINCT uid FROM runs{where}", args)]
            for chunk in _chunks(uids, 500):
                marks = ",".join("?" * len(chunk))
                for table in ("runs", "logs", "metrics"):
                    conn.execute(f"DELETE FROM {table} WHERE uid IN ({marks})", chunk)
        return len(uids)

    # artifacts ------------------------------------------------------------------------------
    def store_artifact(
        self, key: str, artifact: dict[str, Any], uid: str | None = None, iter: int | None = None,
        tag: str = "", project: str = "", tree: str = "",
    ) -> None:
        """Store an artifact version; ``latest`` (and ``tag``) move to it."""
        with self._write() as conn:
            self._store_artifact(conn, key, artifact, uid, iter, tag, project, tree)

    @staticmethod
    def _store_artifact(conn, key, artifact, uid, it, tag, project, tree) -> None:
        uid = uid or artifact.get("uid") or artifact.get("hash", "")[:16] or str(time.time_ns())
        it = it if it is not None else artifact.get("iteration", 0)
        tree = tree or artifact.get("tree", "")
        body = dict(artifact, key=key, uid=uid, iteration=it, tree=tree, project=project)
        art_id = conn.execute(
            "INSERT INTO artifacts (project, key, uid, tree, iteration, kind, updated, body)"
            " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (project, key, uid, iteration) DO UPDATE SET"
            " tree=excluded.tree, kind=excluded.kind, updated=excluded.updated,"
            " body=excluded.body RETURNING id",
            (project, key, uid, tree, it, body.get("kind", ""), body.get("updated", ""),
             json.dumps(body, default=str)),
        ).fetchone()[0]
        for name in {"latest", tag} - {""}:
            conn.execute(
                "INSERT INTO artifact_tags (project, key, tag, artifact_id) VALUES (?,?,?,?)"
                " ON CONFLICT (project, key, tag) DO UPDATE SET artifact_id=excluded.artifact_id",
                (project, key, name, art_id),
            )

    def read_artifact(
        self, key: str, tag: str = "", iter: int | None = None, project: str = "",
        uid: str | None = None,
    ) -> dict[str, Any]:
        """Return an artifact by ``uid`` or ``tag`` (default ``latest``)."""
        if uid:
            sql = "SELECT body FROM artifacts a WHERE key=? AND uid=?"
            args: list[Any] = [key, uid]
            if iter is not None:
                sql += " AND iteration=?"
                args.append(iter)
        else:
            sql = (
                "SELECT a.body FROM artifacts a JOIN artifact_tags t ON t.artifact_id=a.id"
                " WHERE t.key=? AND t.tag=?"
            )
            args = [key, tag or "latest"]
        if project:
            sql += " AND a.project=?"
            args.append(project)
        rows = self._read(sql + " ORDER BY a.id DESC LIMIT 1", args)
        if not rows:
            which = f"@{uid}" if uid else f":{tag or 'latest'}"
            raise NotFoundError(f"artifact {key}{which} not found in project {project or '*'!r}")
        return json.loads(rows[0][0])

    def list_artifacts(
        self, name: str = "", project: str = "", tag: str = "", labels: Any = None,
        kind: str | None = None, since: str | None = None, until: str | None = None,
        tree: str | None = None,
    ) -> Any:
        """Return an ``ArtifactList`` (``tag=''`` latest, ``'*'`` all versions, else that tag)."""
        from .lists import ArtifactList

        if tag == "*":
            sql, args = "SELECT a.body FROM artifacts a WHERE 1=1", []
        else:
            sql = (
                "SELECT a.body FROM artifacts a JOIN artifact_tags t ON t.artifact_id=a.id"
                " WHERE t.tag=?"
            )
            args = [tag or "latest"]
        for column, value in (("a.key", name), ("a.project", project), ("a.kind", kind),
                              ("a.tree", tree)):
            if value:
                sql += f" AND {column}=?"
                args.append(value)
        if since:
            sql += " AND a.updated>=?"
            args.append(since)
        if until:
            sql += " AND a.updated<=?"
            args.append(until)
        rows = [json.loads(r[0]) for r in self._read(sql + " ORDER BY a.id DESC", args)]
        return ArtifactList(r for r in rows if _labels_match(r.get("labels") or {}, labels))

    def del_artifact(self, key: str, tag: str = "", project: str = "", uid: str | None = None) -> int:
        """Delete one version (by tag or uid) or, with neither, every version of ``key``."""
        with self._write() as conn:
            if uid or tag:
                art = self.read_artifact(key, tag=tag, project=project, uid=uid)
                cur = conn.execute(
                    "DELETE FROM artifacts WHERE key=? AND uid=? AND project=?",
                    (key, art["uid"], art.get("project", project)),
                )
            else:
                sql, args = "DELETE FROM artifacts WHERE key=?", [key]
                if project:
                    sql += " AND project=?"
                    args.append(project)
                cur = conn.execute(sql, args)
            return cur.rowcount

    def del_artifacts(self, name: str = "", project: str = "", tag: str = "", labels: Any = None) -> int:
        """Delete every artifact version matching the filter; refuses an empty filter."""
        if not (name or project or tag or labels):
            raise ConfigError(
                "del_artifacts() needs a filter (name, project, tag or labels); "
                "refusing to delete every artifact"
            )
        found = self.list_artifacts(name, project, tag or "*", labels)
        with self._write() as conn:
            for art in found:
                conn.execute(
                    "DELETE FROM artifacts WHERE project=? AND key=? AND uid=? AND iteration=?",
                    (art.get("project", ""), art["key"], art["uid"], art.get("iteration", 0)),
                )
        return len(found)

    def list_artifact_tags(self, project: str = "") -> list[str]:
        """Return the distinct tags (including ``latest``)."""
        sql, args = "SELECT DISTINCT tag FROM artifact_tags", []
        if project:
            sql += " WHERE project=?"
            args.append(project)
        return sorted(r[0] for r in self._read(sql, args))

    # logs and metrics -----------------------------------------------------------------------
    def store_log(self, uid: str, project: str = "", body: bytes = b"", append: bool = True) -> None:
        """Append a chunk to the run's log (or replace the whole log with ``append=False``)."""
        if isinstance(body, str):
            body = body.encode()
        with self._write() as conn:
            if not append:
                conn.execute("DELETE FROM logs WHERE uid=?", (uid,))
            if body:
                conn.execute("INSERT INTO logs (uid, project, body) VALUES (?,?,?)",
                             (uid, project, body))

    def get_log(self, uid: str, project: str = "", offset: int = 0, size: int = 0) -> bytes:
        """Return the log bytes from ``offset`` (``size`` 0: to the end)."""
        data = b"".join(
            r[0] for r in self._read("SELECT body FROM logs WHERE uid=? ORDER BY id", (uid,))
        )
        return data[offset: offset + size] if size else data[offset:]

    def store_metrics(self, uid: str, project: str, iter: int, rows: Iterable[tuple]) -> None:
        """Append metric rows ``(key, step, value, time)``."""
        with self._write() as conn:
            self._store_metrics(conn, uid, project, iter, rows)

    @staticmethod
    def _store_metrics(conn, uid, project, it, rows) -> None:
        conn.executemany(
            "INSERT INTO metrics (uid, project, iteration, key, step, value, time)"
            " VALUES (?,?,?,?,?,?,?)",
            [(uid, project, it, *row) for row in rows],
        )

    def get_metrics(
        self, uid: str, key: str | None = None, iter: int = 0, project: str = ""
    ) -> list[dict[str, Any]]:
        """Return the metric series of a run (optionally one key), in logging order."""
        sql, args = "SELECT key, step, value, time FROM metrics WHERE uid=? AND iteration=?", [
            uid, iter]
        if key:
            sql += " AND key=?"
            args.append(key)
        rows = self._read(sql + " ORDER BY rowid", args)
        return [dict(zip(("key", "step", "value", "time"), r)) for r in rows]

    # lineage ---------------------------------------------------------------------------------
    def store_lineage(self, edges: Iterable[dict[str, Any]]) -> None:
        """Store lineage edges (missing fields are stored empty)."""
        rows = [tuple(e.get(c) for c in _LINEAGE_COLS) for e in edges]
        if not rows:
            return
        marks = ",".join("?" * len(_LINEAGE_COLS))
        with self._write() as conn:
            conn.executemany(
                f"INSERT INTO lineage ({', '.join(_LINEAGE_COLS)}) VALUES ({marks})", rows
            )

    def list_lineage(
        self, run_uid: str | None = None, artifact_key: str | None = None,
        pipeline_uid: str | None = None, upstream: bool = False, downstream: bool = False,
    ) -> list[dict[str, Any]]:
        """Return lineage edges; with ``upstream``/``downstream`` walk from ``run_uid`` transitively."""
        sel = f"SELECT {', '.join(_LINEAGE_COLS)} FROM lineage"

        def rows(where: str, args: list[Any]) -> list[dict[str, Any]]:
            got = self._read(f"{sel} WHERE {where} ORDER BY id", args)
            return [dict(zip(_LINEAGE_COLS, r)) for r in got]

        if not (upstream or downstream):
            clauses, args = [], []
            for column, value in (("pipeline_uid", pipeline_uid), ("artifact_key", artifact_key)):
                if value:
                    clauses.append(f"{column}=?")
                    args.append(value)
            if run_uid:
                clauses.append("(producer_uid=? OR consumer_uid=?)")
                args += [run_uid, run_uid]
            return rows(" AND ".join(clauses) or "1=1", args)
        start = set()
        if run_uid:
            start.add(run_uid)
        if artifact_key:
            for edge in rows("artifact_key=?", [artifact_key]):
                start.add(edge["consumer_uid"] if downstream else edge["producer_uid"])
        return self._walk(start, rows, upstream, downstream)

    @staticmethod
    def _walk(start: set[str], rows, upstream: bool, downstream: bool) -> list[dict[str, Any]]:
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

    # one-shot commit ------------------------------------------------------------------------
    def commit_run(
        self, run: dict[str, Any], artifacts: Iterable[dict[str, Any]] = (),
        metrics: Iterable[tuple] = (), log: bytes = b"",
    ) -> None:
        """Write a run with its new artifacts, metric rows and log output in one transaction."""
        meta = run["metadata"]
        uid, project, it = meta["uid"], meta.get("project", ""), meta.get("iteration", 0)
        metrics = list(metrics)
        with self._write() as conn:
            for art in artifacts:
                self._store_artifact(conn, art["key"], art, art.get("uid"), it,
                                     art.get("tag") or "", project, art.get("tree") or uid)
            if metrics:
                self._store_metrics(conn, uid, project, it, metrics)
            if log:
                conn.execute("INSERT INTO logs (uid, project, body) VALUES (?,?,?)",
                             (uid, project, log))
            self._store_run(conn, run, uid, project, it)


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start: start + size]


def _labels_match(have: dict[str, Any], filters: Any) -> bool:
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
