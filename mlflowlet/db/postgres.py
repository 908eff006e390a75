"""The PostgreSQL run DB for teams: ``get_run_db('postgresql://user@host:5432/dbname')``.

It shares the schema, the migrations and every query with the SQLite DB (``_sql.py``,
``_sqlbase.py``); SQL written with ``?`` placeholders runs here as ``%s``. psycopg 3 is imported
when a DB is opened (``pip install 'mlflowlet[postgres]'``).

Concurrency: each state change is one transaction on a pooled connection; runs, artifacts and
tags are written with ``INSERT ... ON CONFLICT DO UPDATE`` (two writers of one run queue on its
row lock), tags in one order, and a transaction that loses a deadlock or serialisation race is
retried. Processes opening a new database at once create its schema once (advisory lock).

Give the password through ``PGPASSWORD`` or ``~/.pgpass`` rather than the URL: the URL is passed
on to child processes as it is, but ``repr`` and error messages never show a password.
"""

from __future__ import annotations

import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from .. import _process
from ..errors import MissingDependencyError, RunDBError, UnstorableValueError
from ._json import dumps_run
from ._sql import (
    POSTGRES,
    RUN_COLUMNS,
    SCHEMA_VERSION,
    check_version,
    run_row,
    stored_version,
    unstorable_text,
    upgrade_schema,
    write_labels,
)
from ._sqlbase import SQLRunDB

__all__ = ["PostgresRunDB"]

CONNECT_TIMEOUT = 10  # seconds to reach the server, unless the URL sets connect_timeout
POOL_SIZE = 8  # connections one PostgresRunDB keeps (the server's threads share them)
POOL_WAIT = 60  # seconds a caller waits for a free connection
_RETRIES = 5  # attempts of a transaction that lost a deadlock or serialisation race
_TABLES = ("runs", "run_labels", "artifacts", "artifact_tags", "metrics", "logs", "lineage")
_SCHEMA_LOCK = 0x6D6C666C  # advisory lock key ('mlfl') serialising schema creation/migration
_UPSERT_RUN = (
    f"INSERT INTO runs (project, uid, iteration, {', '.join(RUN_COLUMNS)}, body)"
    f" VALUES ({','.join('?' * (len(RUN_COLUMNS) + 4))}) ON CONFLICT (uid, iteration, project)"
    f" DO UPDATE SET {', '.join(f'{c}=excluded.{c}' for c in (*RUN_COLUMNS, 'body'))}"
    " RETURNING id"
)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise MissingDependencyError("psycopg", "postgres") from None
    return psycopg


@lru_cache(maxsize=1024)
def _pg_sql(sql: str) -> str:
    """Turn the shared ``?``-style SQL into psycopg's ``%s`` style."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Conn:
    """A psycopg connection that takes the shared ``?``-style SQL (what ``_sqlbase`` expects)."""

    __slots__ = ("raw",)

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def execute(self, sql: str, args: Iterable[Any] = ()) -> Any:
        return self.raw.execute(_pg_sql(sql), tuple(args))

    def executemany(self, sql: str, rows: Iterable[tuple[Any, ...]]) -> Any:
        rows = list(rows)
        cur = self.raw.cursor()
        if rows:
            cur.executemany(_pg_sql(sql), rows)
        return cur


class _Pool:
    """A few connections shared by threads; a forked child never touches its parent's sessions."""

    def __init__(self, connect: Callable[[], Any], size: int) -> None:
        self._connect, self._size = connect, size
        self._idle: list[Any] = []
        self._all: weakref.WeakSet[Any] = weakref.WeakSet()
        self._open, self._pid, self._closed = 0, os.getpid(), False
        self._cond = threading.Condition()
        _POOLS.add(self)

    @contextmanager
    def connection(self) -> Iterator[tuple[Any, bool]]:
        """Yield ``(connection, reused)``; the connection goes back to the pool afterwards."""
        conn, reused = self._get()
        try:
            yield conn, reused
        finally:
            self._put(conn)

    def _get(self) -> tuple[Any, bool]:
        deadline = time.monotonic() + POOL_WAIT
        with self._cond:
            while not self._idle and self._open >= self._size:
                if not self._cond.wait(deadline - time.monotonic()):
                    raise RunDBError(
                        f"all {self._size} PostgreSQL connections of this process "
                        f"stayed busy for {POOL_WAIT} s; retry or lower the load"
                    )
            if self._idle:
                return self._idle.pop(), True
            self._open += 1
        try:
            conn = self._connect()
        except BaseException:
            with self._cond:
                self._open -= 1
                self._cond.notify()
            raise
        self._all.add(conn)
        return conn, False

    def _put(self, conn: Any) -> None:
        with self._cond:
            if os.getpid() != self._pid:
                return
            if (
                self._closed or conn.closed or conn.broken or conn.info.transaction_status != 0
            ):  # 0: TransactionStatus.IDLE
                conn.close()
                self._open -= 1
            else:
                self._idle.append(conn)
            self._cond.notify()

    def discard_idle(self) -> None:
        """Close the idle connections (after one turned out dead, the others likely are too)."""
        with self._cond:
            idle, self._idle = self._idle, []
            self._open -= len(idle)
        for conn in idle:
            conn.close()

    def close(self) -> None:
        """Close every idle connection; busy ones close when they come back."""
        self._closed = True
        self.discard_idle()

    def after_fork(self) -> None:
        """In a forked child: point the inherited sockets at /dev/null, then close them.

        The parent still owns those sessions; closing them normally would send the server a
        Terminate message over the shared socket and end the parent's session.
        """
        null = os.open(os.devnull, os.O_RDWR)
        try:
            for conn in list(self._all):
                try:
                    if not conn.closed:
                        os.dup2(null, conn.fileno())
                        conn.close()
                except Exception:  # a half-broken connection: nothing of it to protect
                    pass
        finally:
            os.close(null)
        self._idle, self._all, self._open = [], weakref.WeakSet(), 0
        self._pid, self._cond = os.getpid(), threading.Condition()


_POOLS: weakref.WeakSet[_Pool] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for pool in list(_POOLS):
        pool.after_fork()


_process.at_fork(child=_after_fork_in_child)


class PostgresRunDB(SQLRunDB):
    """Run DB in a PostgreSQL database (the schema is created on first use).

    Args:
        url: ``postgresql://user[:password]@host[:port]/dbname[?param=value]`` (also
            ``postgres://``); any libpq parameter may follow, e.g. ``?connect_timeout=5``.
        pool_size: connections kept open for this process's threads.
    """

    dialect = POSTGRES
    cacheable = True  # get_run_db keeps one per process and URL (it holds a connection pool)

    def __init__(self, url: str, pool_size: int = POOL_SIZE) -> None:
        self._pg = _psycopg()
        self._url = url
        try:
            self._params = self._pg.conninfo.conninfo_to_dict(url)
        except self._pg.Error as exc:
            raise RunDBError(
                f"bad PostgreSQL run DB URL ({_mask(_first_line(exc))}); use "
                "postgresql://user@host:port/dbname"
            ) from None
        self._where = _display(self._params)
        self._pool = _Pool(self._connect, pool_size)
        self._ensure_schema()
        self.resolve_dead_runs()

    def __repr__(self) -> str:
        return f"PostgresRunDB({self._where!r})"

    @property
    def url(self) -> str:
        """The URL this DB was opened with (child processes reopen it)."""
        return self._url

    # connection -----------------------------------------------------------------------------
    def _connect(self) -> Any:
        options: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in self._params:
            options["connect_timeout"] = CONNECT_TIMEOUT
        if "application_name" not in self._params:
            options["application_name"] = "mlflowlet"
        try:
            return self._pg.connect(self._url, **options)
        except self._pg.Error as exc:
            raise RunDBError(self._explain(exc, connecting=True)) from None

    def _ensure_schema(self) -> None:
        def create(conn: _Conn) -> int:
            conn.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
            return upgrade_schema(conn, POSTGRES, stored_version(conn, POSTGRES))

        try:
            with self._pool.connection() as (raw, _):
                version = stored_version(_Conn(raw), POSTGRES)
        except self._pg.Error as exc:
            raise RunDBError(self._explain(exc)) from None
        if version is None or version < SCHEMA_VERSION:
            version = self._transact(create)
        check_version(version, self._where)

    def _explain(self, exc: Exception, connecting: bool = False) -> str:
        text = _mask(_first_line(exc))
        password = self._params.get("password") or ""
        if len(password) >= 4:  # libpq never echoes it; this is a second belt
            text = text.replace(password, "***")
        where = self._where
        if connecting and "invalid" in text and ("connection option" in text or "dsn" in text):
            return f"bad PostgreSQL run DB URL {where} ({text}); use postgresql://user@host:port/db"
        if connecting and "database" in text and "does not exist" in text:
            name = self._params.get("dbname", "")
            return f"PostgreSQL run DB {where}: {text}; create it (createdb {name}) or fix the URL"
        if connecting and ("password" in text or "authentication" in text):
            return (
                f"PostgreSQL run DB {where} refused the login ({text}); set PGPASSWORD or "
                "~/.pgpass for that user"
            )
        if self._unstorable(exc):
            return f"PostgreSQL run DB {where} cannot store a value ({text}); nothing was written"
        if connecting or _lost_connection(exc):
            return (
                f"cannot reach PostgreSQL run DB {where} ({text}); start the server or fix "
                "the host/port in the URL (MLFLOWLET_DBPATH or --db)"
            )
        return f"PostgreSQL run DB {where}: {text}"

    def _unstorable(self, exc: Exception) -> bool:
        """Whether psycopg refused a value before sending it (NUL in text): never retried."""
        return isinstance(exc, self._pg.DataError) and not getattr(exc, "sqlstate", None)

    def _error(self, exc: Exception) -> RunDBError:
        """Return the error to raise for a failed statement (one line, no password)."""
        kind = UnstorableValueError if self._unstorable(exc) else RunDBError
        return kind(self._explain(exc))

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        args = tuple(args)
        for attempt in (1, 2):
            try:
                with self._pool.connection() as (raw, reused):
                    rows: list[tuple[Any, ...]] = raw.execute(_pg_sql(sql), args).fetchall()
                    return rows
            except self._pg.Error as exc:
                if not (reused and attempt == 1 and _lost_connection(exc)):
                    raise self._error(exc) from None
                self._pool.discard_idle()  # a dead pooled connection (server restarted): retry
        raise AssertionError("unreachable")

    def _transact(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(conn, *args)`` in one transaction; retry lost deadlock/serialisation races.

        ``BEGIN`` failing on a pooled connection means nothing was sent yet, so that is retried
        on a new connection too; an error after it is never retried blindly.
        """
        errors = self._pg.errors
        races = (errors.DeadlockDetected, errors.SerializationFailure)
        for attempt in range(1, _RETRIES + 1):
            try:
                with self._pool.connection() as (raw, reused):
                    try:
                        raw.execute("BEGIN")
                    except self._pg.Error as exc:
                        if not (reused and _lost_connection(exc)):
                            raise
                        self._pool.discard_idle()
                        continue
                    try:
                        result = fn(_Conn(raw), *args)
                        raw.execute("COMMIT")
                        return result
                    except BaseException:
                        if not (raw.closed or raw.broken):
                            raw.execute("ROLLBACK")
                        raise
            except races as exc:
                if attempt == _RETRIES:
                    raise RunDBError(self._explain(exc)) from None
                time.sleep(0.005 * 2**attempt)  # back off so the winner can finish
            except self._pg.Error as exc:
                raise self._error(exc) from None
            except UnicodeEncodeError as exc:  # a lone surrogate bound as text
                raise UnstorableValueError(unstorable_text(self._where, exc)) from None
        raise RunDBError(
            f"PostgreSQL run DB {self._where}: no live connection after "
            f"{_RETRIES} attempts; check the server"
        )

    @contextmanager
    def _write(self) -> Iterator[_Conn]:
        """One write transaction as a ``with`` block (no race retries; prefer ``_transact``)."""
        try:
            with self._pool.connection() as (raw, _), raw.transaction():
                yield _Conn(raw)
        except self._pg.Error as exc:
            raise self._error(exc) from None

    def close(self) -> None:
        """Close the pooled connections."""
        self._pool.close()
        self.closed = True

    def check_integrity(self) -> list[str]:
        """Read every table whole (a damaged page fails the read); check indexes with amcheck.

        ``bt_index_check`` runs on every index of the schema where the ``amcheck`` extension
        is installed.

        Returns:
            The problems found (``[]`` when none), each naming the table or index.
        """
        problems = []
        for table in _TABLES:
            try:
                self._read(f"SELECT sum(octet_length(t::text)) FROM {table} AS t")  # every row
            except RunDBError as exc:
                problems.append(f"table {table}: {exc}")
        if self._read("SELECT 1 FROM pg_extension WHERE extname='amcheck'"):
            indexes = self._read(
                "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid=i.indexrelid"
                " JOIN pg_class t ON t.oid=i.indrelid JOIN pg_am a ON a.oid=c.relam"
                " WHERE t.relname IN (" + ",".join("?" * len(_TABLES)) + ") AND a.amname='btree'"
                " AND t.relnamespace=current_schema()::regnamespace",
                _TABLES,
            )
            for (index,) in indexes:
                try:
                    self._read("SELECT bt_index_check(?::regclass)", (index,))
                except RunDBError as exc:
                    problems.append(f"index {index}: {exc}")
        return problems

    # runs -----------------------------------------------------------------------------------
    @staticmethod
    def _store_run(conn: _Conn, run: dict[str, Any], uid: str, project: str, it: int) -> None:
        values, labels = run_row(run)
        body = dumps_run(run)
        run_id = conn.execute(_UPSERT_RUN, (project, uid, it, *values, body)).fetchone()[0]
        old = dict(conn.execute("SELECT key, value FROM run_labels WHERE run_id=?", (run_id,)))
        write_labels(conn, run_id, labels, old)


def _lost_connection(exc: Exception) -> bool:
    """Whether the error means the session is gone (no SQLSTATE, or class 08 / 57P)."""
    state = getattr(exc, "sqlstate", None)
    return state is None or state.startswith(("08", "57P"))


def _first_line(exc: Exception) -> str:
    """Return the error text on one line (libpq puts a hint on the next line)."""
    return "; ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())


def _mask(text: str) -> str:
    """Hide the password of any ``scheme://user:password@`` URL inside ``text``."""
    return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)


def _display(params: dict[str, Any]) -> str:
    """Return the URL without its password (for repr and messages)."""
    user = f"{params['user']}@" if params.get("user") else ""
    host = params.get("host") or params.get("hostaddr") or "localhost"
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgresql://{user}{host}{port}/{params.get('dbname', '')}"
