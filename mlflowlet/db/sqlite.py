"""The embedded run DB: one SQLite file in WAL mode, safe for several writing processes.

Every write transaction starts with ``BEGIN IMMEDIATE`` (deferred transactions that read then
write fail with "database is locked" at once, whatever ``busy_timeout`` says), commits use
``synchronous=NORMAL``, and runs are indexed by name, state, start time, parent and pipeline, with
labels in a ``(key, value, run)`` side table so label filters never scan JSON.

Each write dirties as few pages as it can (every dirty page is written to the WAL): an update
sets only the indexed columns that changed, labels are rewritten only when they changed, the
parent/pipeline indexes are partial (most runs have neither), and the label and tag tables are
``WITHOUT ROWID`` so each holds one b-tree less.

The schema, its migrations and every query are shared with the PostgreSQL backend
(``_sql.py``, ``_sqlbase.py``); this module holds the SQLite connection and the run upsert.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from .. import _process
from ..errors import RunDBError, UnstorableValueError
from ._json import dumps_run
from ._sql import (
    RUN_COLUMNS,
    SCHEMA_VERSION,
    SQLITE,
    check_version,
    chunks,
    run_row,
    stored_version,
    unstorable_text,
    upgrade_schema,
    write_labels,
)
from ._sqlbase import SQLRunDB
from ._sqlwrite import LINEAGE_INSERT

__all__ = ["SCHEMA_VERSION", "SQLiteRunDB", "check_sqlite_file"]

# Every open SQLiteRunDB of this process, so a fork can wait for their transactions (see below).
_live: weakref.WeakSet[SQLiteRunDB] = weakref.WeakSet()
_live_lock = threading.Lock()  # held across a fork with every DB's lock
_held: list[SQLiteRunDB] = []


class SQLiteRunDB(SQLRunDB):
    """Run DB kept in one SQLite file.

    Args:
        path: the ``.db`` file (created with its directory when missing).
    """

    dialect = SQLITE

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self._damaged = ""  # why writes are refused (damaged pages, a read-only filesystem)
        self._lock = threading.RLock()
        with _live_lock:
            _live.add(self)
        with self._lock:
            self._conn = self._open()
        self.resolve_dead_runs()

    def __repr__(self) -> str:
        return f"SQLiteRunDB({self.path!r})"

    @property
    def url(self) -> str:
        """The SQLite file path."""
        return self.path

    @property
    def artifact_root(self) -> str:
        """``<db dir>/artifacts``."""
        return os.path.join(os.path.dirname(self.path), "artifacts")

    # connection -----------------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._damaged = damage_found(self.path)
        try:
            conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            version = _retry_while_busy(lambda: self._set_up(conn))
        except sqlite3.DatabaseError as exc:
            if not (_code(exc) in (_CANTOPEN, _READONLY) and _on_read_only_fs(self.path)):
                raise RunDBError(self._explain(exc)) from None
            conn, version = self._open_read_only(exc)
        check_version(version, self.path)
        return conn

    def _open_read_only(self, exc: sqlite3.Error) -> tuple[sqlite3.Connection, int]:
        """Open a DB on a read-only filesystem for reading (nothing can change it there)."""
        from urllib.parse import quote

        self._damaged = self._damaged or explain_sqlite(
            self.path,
            sqlite3.OperationalError(
                "attempt to write a readonly database: the filesystem is mounted read-only"
            ),
        )
        try:  # WAL mode needs a writable -shm file; 'immutable' reads without one
            conn = sqlite3.connect(
                f"file:{quote(self.path)}?immutable=1",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
            version = stored_version(conn, SQLITE)
        except sqlite3.DatabaseError:
            raise RunDBError(self._explain(exc)) from None
        return conn, version or 0

    def _set_up(self, conn: sqlite3.Connection) -> int:
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        return self._ensure_schema(conn)

    @staticmethod
    def _ensure_schema(conn: sqlite3.Connection) -> int:
        version = stored_version(conn, SQLITE)
        if version is not None and version >= SCHEMA_VERSION:
            return version
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = upgrade_schema(conn, SQLITE, stored_version(conn, SQLITE))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return version

    def _explain(self, exc: sqlite3.Error) -> str:
        message = explain_sqlite(self.path, exc)
        if _code(exc) == _CORRUPT:  # never write to it again (see _write), nor may others
            self._damaged = message
            mark_damaged(self.path, message)
        return message

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._damaged:
                raise RunDBError(self._damaged)
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise RunDBError(self._explain(exc)) from None
            try:
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(conn)  # SQLite has already rolled back after a full disk or I/O error
                raise RunDBError(self._explain(exc)) from None
            except UnicodeEncodeError as exc:  # a lone surrogate bound as text
                _rollback(conn)
                raise UnstorableValueError(unstorable_text(self.path, exc)) from None
            except BaseException:
                _rollback(conn)
                raise

    def _transact(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self._write() as conn:
            return fn(conn, *args)

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._conn.execute(sql, tuple(args)).fetchall()
            except sqlite3.Error as exc:
                raise RunDBError(self._explain(exc)) from None
            except UnicodeEncodeError as exc:
                raise UnstorableValueError(unstorable_text(self.path, exc)) from None

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()
            self.closed = True

    def check_integrity(self) -> list[str]:
        """Run SQLite's ``PRAGMA quick_check`` on the file; return the problems (none: ``[]``)."""
        return check_sqlite_file(self.path)

    # runs -----------------------------------------------------------------------------------
    @staticmethod
    def _store_metrics(
        conn: sqlite3.Connection, uid: str, project: str, it: int, rows: list[tuple[Any, ...]]
    ) -> None:
        # SQLite stores a NaN REAL as NULL, which reads back as "no value": keep the text 'NaN'
        # in the REAL column instead (no number parses from it, so it stays text), read back as
        # the float by get_metrics. Infinities are REAL values SQLite keeps as they are.
        rows = [(k, s, "NaN" if isinstance(v, float) and v != v else v, t) for k, s, v, t in rows]
        SQLRunDB._store_metrics(conn, uid, project, it, rows)

    def _store_runs(
        self, conn: Any, runs: list[dict[str, Any]], edges: list[tuple[Any, ...]]
    ) -> None:
        """Store runs and lineage edges (in the caller's transaction).

        The runs not stored yet (a pipeline's cache hits and skipped steps) are found with one
        read and inserted with their labels in one pass; the others are updated in place.
        """
        metas = [run["metadata"] for run in runs]
        keys = [(m["uid"], m.get("iteration", 0), m.get("project", "")) for m in metas]
        known: set[tuple[str, int, str]] = set()
        for part in chunks(sorted({k[0] for k in keys}), 500):  # SQLite's parameter limit
            marks = ",".join("?" * len(part))
            sql = f"SELECT uid, iteration, project FROM runs WHERE uid IN ({marks})"
            known.update(conn.execute(sql, part).fetchall())
        labels: list[tuple[Any, str, str]] = []
        for run, key in zip(runs, keys, strict=True):
            if key in known:  # stored already (or earlier in this batch): updated in place
                conn.executemany(_INSERT_LABEL, labels)  # the labels it may replace, first
                labels = []
                self._store_run(conn, run, key[0], key[2], key[1])
                continue
            known.add(key)
            values, tags = run_row(run)
            run_id = conn.execute(_INSERT_RUN, (key[2], key[0], key[1], *values, dumps_run(run)))
            labels += [(run_id.lastrowid, k, v) for k, v in tags.items()]
        conn.executemany(_INSERT_LABEL, labels)
        if edges:
            conn.executemany(LINEAGE_INSERT, edges)

    @staticmethod
    def _store_run(
        conn: sqlite3.Connection, run: dict[str, Any], uid: str, project: str, it: int
    ) -> None:
        values, labels = run_row(run)
        body = dumps_run(run)
        row = conn.execute(
            f"SELECT id, {', '.join(RUN_COLUMNS)} FROM runs"
            " WHERE uid=? AND iteration=? AND project=?",
            (uid, it, project),
        ).fetchone()
        old_labels: dict[str, str] = {}
        if row is None:
            run_id = conn.execute(_INSERT_RUN, (project, uid, it, *values, body)).lastrowid
        else:
            run_id = row[0]
            changed = [
                (c, v) for c, v, old in zip(RUN_COLUMNS, values, row[1:], strict=True) if v != old
            ]
            sets = "".join(f"{column}=?, " for column, _ in changed)
            conn.execute(
                f"UPDATE runs SET {sets}body=? WHERE id=?", (*(v for _, v in changed), body, run_id)
            )
            old_labels = dict(
                conn.execute("SELECT key, value FROM run_labels WHERE run_id=?", (run_id,))
            )
        write_labels(conn, run_id, labels, old_labels)


_INSERT_LABEL = "INSERT INTO run_labels (run_id, key, value) VALUES (?,?,?)"
_INSERT_RUN = (
    f"INSERT INTO runs (project, uid, iteration, {', '.join(RUN_COLUMNS)}, body)"
    " VALUES (?,?,?,?,?,?,?,?,?,?)"
)


# errors -----------------------------------------------------------------------------------------
DAMAGED_SUFFIX = ".damaged"  # beside the DB file: written when damage is found
_CORRUPT, _NOTADB, _FULL, _READONLY, _CANTOPEN, _IOERR = 11, 26, 13, 8, 14, 10
_BUSY, _LOCKED = 5, 6
_CAUSES = {
    _FULL: "the disk is full",
    _READONLY: "it is read-only",
    _CANTOPEN: "the file cannot be opened",
    _IOERR: "a disk I/O error",
}


def _retry_while_busy(set_up: Callable[[], int], patience: float = 30.0) -> int:
    """Run ``set_up`` again while another process holds the lock it needs.

    SQLite's busy handler is not consulted for every lock taken while a new file is being
    switched to WAL and given its schema, so processes opening a fresh DB at the same moment
    can see "database is locked" at once; they wait their turn here instead.
    """
    deadline = time.monotonic() + patience
    pause = 0.005
    while True:
        try:
            return set_up()
        except sqlite3.OperationalError as exc:
            if _code(exc) not in (_BUSY, _LOCKED) or time.monotonic() > deadline:
                raise
        time.sleep(pause)  # back-off between attempts, not a synchronisation
        pause = min(pause * 2, 0.2)


def _code(exc: sqlite3.Error) -> int:
    """Return the primary SQLite result code of ``exc`` (0 when unknown)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:  # errors raised before a statement ran carry only their text
        text = str(exc)
        for needle, found in (
            ("malformed", _CORRUPT),
            ("not a database", _NOTADB),
            ("disk is full", _FULL),
            ("readonly", _READONLY),
            ("unable to open", _CANTOPEN),
            ("disk I/O", _IOERR),
            ("database is locked", _BUSY),
        ):
            if needle in text:
                return found
        return 0
    return int(code) & 0xFF


def explain_sqlite(path: str, exc: sqlite3.Error) -> str:
    """Return one line naming the file, the cause and what to do about it."""
    text, code = str(exc), _code(exc)
    if code == _NOTADB:
        return (
            f"{path} is not an SQLite run DB ({text}); point MLFLOWLET_DBPATH (or get_run_db) "
            "at another file or directory, or run `mlflowlet doctor` on it"
        )
    if code == _CORRUPT:
        return (
            f"run DB {path} is damaged ({text}); nothing more is written to it: run "
            f"`mlflowlet doctor --db {path}` and restore it from a backup"
        )
    if code in _CAUSES:
        return (
            f"run DB {path} cannot be written: {_CAUSES[code]} ({text}); free space or make "
            f"{os.path.dirname(path)} writable, or point MLFLOWLET_DBPATH elsewhere; what was "
            "committed before is intact"
        )
    return f"run DB {path}: {text}"


def _on_read_only_fs(path: str) -> bool:
    try:
        return bool(os.statvfs(os.path.dirname(path)).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows)
        return False


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:  # the transaction went with the error
            pass


def damage_found(path: str) -> str:
    """Return the damage recorded for the DB at ``path`` (its ``.damaged`` marker), else ``''``."""
    try:
        with open(path + DAMAGED_SUFFIX) as fh:
            return fh.readline().strip() or f"run DB {path} is damaged"
    except OSError:
        return ""


def mark_damaged(path: str, message: str) -> None:
    """Record that the DB at ``path`` is damaged, so every process refuses to write to it.

    ``mlflowlet doctor`` removes the marker once ``quick_check`` finds the file sound again.
    """
    try:
        with open(path + DAMAGED_SUFFIX, "w") as fh:
            fh.write(message + "\n")
    except OSError:  # a read-only directory: this process still refuses (see _write)
        pass


def check_sqlite_file(path: str) -> list[str]:
    """Run ``PRAGMA quick_check`` on the SQLite file at ``path`` (opened read-only).

    A damaged file gets a ``.damaged`` marker beside it (every process then refuses to write
    to it); a sound one loses its marker.

    Returns:
        The problems found (``[]`` when the file is sound), each naming the file.
    """
    problems = _quick_check(path)
    if problems and os.path.isfile(path):
        mark_damaged(path, problems[0])
    elif not problems:
        try:
            os.remove(path + DAMAGED_SUFFIX)
        except OSError:
            pass
    return problems


def _quick_check(path: str) -> list[str]:
    from urllib.parse import quote

    if not os.path.isfile(path):
        return [f"no run DB at {path}"]
    try:
        conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        return [explain_sqlite(path, exc)]
    try:
        rows = [r[0] for r in conn.execute("PRAGMA quick_check")]
    except sqlite3.Error as exc:
        return [explain_sqlite(path, exc)]
    finally:
        conn.close()
    if rows == ["ok"]:
        return []
    return [f"run DB {path} is damaged: {row}" for row in rows]


# SQLite keeps its file-lock bookkeeping per process, in C (one record per open file, shared by
# every connection), and a forked child inherits that memory but not the parent's fcntl locks.
# A fork taken while another thread is inside a transaction leaves the child believing "another
# connection of this process" holds the WAL write lock forever: each of its BEGIN IMMEDIATE
# waits out busy_timeout and fails with "database is locked" (https://sqlite.org/howtocorrupt.html
# section 2.6). So a fork waits until no thread of ours is inside SQLite (every call holds the
# DB's lock), and the child gets fresh locks; its own connections are opened anew (the cache in
# db/__init__.py is keyed by pid) and the parent's are never used there.
def _before_fork() -> None:
    _live_lock.acquire()
    _held[:] = list(_live)
    for db in _held:
        db._lock.acquire()


def _after_fork_in_parent() -> None:
    for db in _held:
        db._lock.release()
    _held.clear()
    _live_lock.release()


def _after_fork_in_child() -> None:
    global _live_lock
    _held.clear()
    for db in list(_live):
        db._lock = threading.RLock()
    _live_lock = threading.Lock()


_process.at_fork(before=_before_fork, parent=_after_fork_in_parent, child=_after_fork_in_child)
