"""The queries every SQL run DB runs, written once: :class:`SQLRunDB` under SQLite and PostgreSQL.

A backend supplies its :class:`~mlflowlet.db._sql.Dialect`, ``_read`` (rows of one query),
``_transact`` (run ``fn(conn, *args)`` in one write transaction; ``conn.execute`` and
``conn.executemany`` take ``?`` placeholders) and ``_store_run`` (the insert-or-update of a run,
where the backends differ: SQLite writes as few pages as it can, PostgreSQL upserts).
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

from .._text import log_bytes
from ..errors import NotFoundError
from ._dead import settle, settle_one, settled_list
from ._json import dumps, loads
from ._sql import (
    LINEAGE_COLS,
    Dialect,
    artifact_missing,
    artifact_query,
    chunks,
    del_artifact_rows,
    key_clause,
    labels_match,
    one_run,
    run_state,
    update_run_in,
    walk_lineage,
)
from ._sqlwrite import (
    LINEAGE_INSERT,
    del_run_body,
    del_runs_body,
    executemany,
    store_log_body,
)
from ._where import probe_sql, run_where
from .base import RunDB, exact_key, log_window, require_filter

if TYPE_CHECKING:
    from .lists import ArtifactList, RunList


class SQLRunDB(RunDB):
    """The run DB interface over SQL tables (see ``_sql.py`` for the schema)."""

    dialect: Dialect

    @abstractmethod
    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """Return the rows of one read query."""

    @abstractmethod
    def _transact(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Return ``fn(conn, *args)`` run inside one write transaction."""

    @abstractmethod
    def _store_run(self, conn: Any, run: dict[str, Any], uid: str, project: str, it: int) -> None:
        """Insert or update a run row and its labels on ``conn``."""

    # runs -----------------------------------------------------------------------------------
    def store_run(self, run: dict[str, Any], uid: str, project: str = "", iter: int = 0) -> None:
        """Insert or replace a run and its labels."""
        self._transact(self._store_run, run, uid, project, iter)

    def read_run(self, uid: str, project: str = "", iter: int = 0) -> dict[str, Any]:
        """Return a run (see ``RunDB.read_run``; a dead owner's run reads ``error``)."""
        return settle_one(self, loads(one_run(self._read, uid, project, iter)[0]))

    def read_state(self, uid: str, project: str = "", iter: int = 0) -> str:
        """Return a stored run's state alone ('' when not stored): a sweep parent's is big."""
        return run_state(self._read, uid, project, iter)

    def update_run(
        self, updates: dict[str, Any], uid: str, project: str = "", iter: int = 0
    ) -> None:
        """Apply dotted-key updates to a stored run, read and written in one transaction."""
        self._transact(update_run_in, self.dialect, self._store_run, updates, uid, project, iter)

    def resolve_dead_runs(self) -> list[dict[str, Any]]:
        """See ``RunDB.resolve_dead_runs`` (``db/_dead.py``)."""
        rows = self._read("SELECT body FROM runs WHERE state=?", ("running",))
        return list(settle(self, [loads(r[0]) for r in rows]).values())

    def _run_where(self, *filters: Any, **named: Any) -> tuple[str, list[Any]]:
        """Return ``(' WHERE ...', args)`` for ``list_runs``'s filters (the UI pages with it)."""
        sqlite, contains = self.dialect.name == "sqlite", self.dialect.contains
        return run_where(sqlite, contains, self._probe, *filters, **named)

    def _probe(self, select: str, args: tuple[Any, ...], limit: int) -> int:
        return int(self._read(probe_sql(select, limit), args)[0][0])

    def list_runs(
        self,
        name: str = "",
        uid: str | None = None,
        project: str = "",
        labels: Any = None,
        state: str = "",
        sort: bool = True,
        last: int = 0,
        iter: bool = False,
        offset: int = 0,
        **filters: Any,
    ) -> RunList:
        """Return a ``RunList`` (newest first when ``sort``; ``last`` limits the count).

        ``offset`` skips that many matches first (paging: ``last`` is then the page size); the
        order is total (ties broken by insertion), so pages neither repeat nor skip a run.
        """
        from .lists import RunList

        where, args = self._run_where(name, uid, project, labels, state, iter, **filters)
        settled = []  # a dead owner's run is stored running and read as error: judged when it
        if state in ("", "running", "error"):  # may match, and only the runs of this filter
            judge, judged = self._run_where(name, uid, project, labels, "running", iter, **filters)
            rows = self._read("SELECT body FROM runs" + judge, judged)
            settled = list(settle(self, [loads(r[0]) for r in rows]).values())
        sql = "SELECT body FROM runs" + where
        if sort:
            sql += " ORDER BY start_time DESC, iteration ASC, id DESC"
        elif offset:
            sql += " ORDER BY id"
        sql += _page(last, offset)
        return RunList(settled_list(settled, (loads(r[0]) for r in self._read(sql, args)), state))

    def del_run(self, uid: str, project: str = "", iter: int | None = None) -> None:
        """Delete a run (every iteration unless ``iter`` is given) with its logs and metrics."""
        self._transact(del_run_body, uid, project, iter)

    def del_runs(
        self,
        name: str = "",
        project: str = "",
        labels: Any = None,
        state: str = "",
        days_ago: int = 0,
    ) -> int:
        """Delete every run matching the filter (all iterations); refuses an empty filter."""
        require_filter(
            "del_runs",
            "run",
            name=name,
            project=project,
            labels=labels,
            state=state,
            days_ago=days_ago,
        )
        where, args = self._run_where(name, None, project, labels, state, False, days_ago)
        return cast(int, self._transact(del_runs_body, where, args))

    # artifacts ------------------------------------------------------------------------------
    def store_artifact(
        self,
        key: str,
        artifact: dict[str, Any],
        uid: str | None = None,
        iter: int | None = None,
        tag: str = "",
        project: str = "",
        tree: str = "",
    ) -> None:
        """Store an artifact version; ``latest`` (and ``tag``) move to it."""
        self._transact(self._store_artifact, key, artifact, uid, iter, tag, project, tree)

    @staticmethod
    def _store_artifact(
        conn: Any,
        key: str,
        artifact: dict[str, Any],
        uid: str | None,
        it: int | None,
        tag: str,
        project: str,
        tree: str,
    ) -> None:
        # a linked (remote) artifact has no hash: its version id then comes from the clock
        uid = uid or artifact.get("uid") or (artifact.get("hash") or "").rsplit(":", 1)[-1][:16]
        uid = uid or str(time.time_ns())
        it = it if it is not None else artifact.get("iteration", 0)
        tree = tree or artifact.get("tree", "")
        body = dict(artifact, key=key, uid=uid, iteration=it, tree=tree, project=project)
        art_id = conn.execute(
            "INSERT INTO artifacts (project, key, uid, tree, iteration, kind, updated, body)"
            " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (project, key, uid, iteration) DO UPDATE SET"
            " tree=excluded.tree, kind=excluded.kind, updated=excluded.updated,"
            " body=excluded.body RETURNING id",
            (
                project,
                key,
                uid,
                tree,
                it,
                body.get("kind", ""),
                body.get("updated", ""),
                dumps(body),
            ),
        ).fetchone()[0]
        for name in sorted({"latest", tag} - {""}):  # one lock order for concurrent writers
            conn.execute(
                "INSERT INTO artifact_tags (project, key, tag, artifact_id) VALUES (?,?,?,?)"
                " ON CONFLICT (project, key, tag) DO UPDATE SET artifact_id=excluded.artifact_id",
                (project, key, name, art_id),
            )

    def read_artifact(
        self,
        key: str,
        tag: str = "",
        iter: int | None = None,
        project: str = "",
        uid: str | None = None,
    ) -> dict[str, Any]:
        """Return an artifact by ``uid`` or ``tag`` (default ``latest``)."""
        rows = self._read(*artifact_query(key, tag, iter, project, uid))
        if not rows:
            raise NotFoundError(artifact_missing(key, tag, project, uid))
        return cast(dict[str, Any], loads(rows[0][0]))

    def list_artifacts(
        self,
        name: str = "",
        project: str = "",
        tag: str = "",
        labels: Any = None,
        kind: str | None = None,
        since: str | None = None,
        until: str | None = None,
        tree: str | None = None,
        iter: int | None = None,
        offset: int = 0,
        limit: int = 0,
    ) -> ArtifactList:
        """Return an ``ArtifactList`` (``name``: key prefix, ``~text`` or ``=key``; see base).

        ``offset``/``limit`` page the list (newest first; ``limit`` 0: to the end).
        """
        from .lists import ArtifactList

        args: list[Any]
        if tag == "*":
            sql, args = "SELECT a.body, a.id FROM artifacts a WHERE 1=1", []
        else:
            sql = (
                "SELECT a.body, a.id FROM artifacts a JOIN artifact_tags t ON t.artifact_id=a.id"
                " WHERE t.tag=?"
            )
            args = [tag or "latest"]
        if name:
            clause, key_args = key_clause("a.key", name)
            sql += f" AND {clause}"
            args += key_args
        for column, value in (("a.project", project), ("a.kind", kind), ("a.tree", tree)):
            if value:
                sql += f" AND {column}=?"
                args.append(value)
        if iter is not None:
            sql += " AND a.iteration=?"
            args.append(int(iter))
        if since:
            sql += " AND a.updated>=?"
            args.append(since)
        if until:
            sql += " AND a.updated<=?"
            args.append(until)
        sql += " ORDER BY a.id DESC" + ("" if labels else _page(limit, offset))
        found = self._read(sql, args)
        rows = [(loads(body), art_id) for body, art_id in found]
        if labels:  # label filters match in Python: page after them
            rows = [r for r in rows if labels_match(r[0].get("labels") or {}, labels)]
            rows = rows[offset : offset + limit] if limit else rows[offset:]
        tags = self._tags_of([r[1] for r in rows])
        for art, art_id in rows:
            art["tags"] = tags.get(art_id, [])  # the version's tags now: 'latest' moves on
        return ArtifactList(art for art, _ in rows)

    def _tags_of(self, ids: list[int]) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for chunk in chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT artifact_id, tag FROM artifact_tags WHERE artifact_id IN ({marks})"
            for art_id, name in self._read(sql + " ORDER BY tag", chunk):
                out.setdefault(art_id, []).append(name)
        return out

    def del_artifact(
        self,
        key: str,
        tag: str = "",
        project: str = "",
        uid: str | None = None,
        iter: int | None = None,
    ) -> int:
        """Delete one version (by tag or uid; ``iter`` with uid) or, with neither, every one."""
        return cast(int, self._transact(del_artifact_rows, key, tag, project, uid, iter))

    def del_artifacts(
        self, name: str = "", project: str = "", tag: str = "", labels: Any = None
    ) -> int:
        """Delete the artifact versions matching the filter (``name``: exact key, or ``~text``)."""
        require_filter(
            "del_artifacts", "artifact", name=name, project=project, tag=tag, labels=labels
        )
        found = self.list_artifacts(exact_key(name), project, tag or "*", labels)
        rows = [(a.get("project", ""), a["key"], a["uid"], a.get("iteration", 0)) for a in found]
        self._transact(
            executemany,
            "DELETE FROM artifacts WHERE project=? AND key=? AND uid=? AND iteration=?",
            rows,
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
    def store_log(
        self, uid: str, project: str = "", body: bytes = b"", append: bool = True
    ) -> None:
        """Append a chunk to the run's log (or replace the whole log with ``append=False``)."""
        if isinstance(body, str):
            body = body.encode()
        self._transact(store_log_body, uid, project, body, append)

    def get_log(self, uid: str, project: str = "", offset: int = 0, size: int = 0) -> bytes:
        """Return the log bytes from ``offset`` (``size`` 0: to the end)."""
        project, offset, size = log_window(project, offset, size)
        data = b"".join(
            r[0] for r in self._read("SELECT body FROM logs WHERE uid=? ORDER BY id", (uid,))
        )
        return data[offset : offset + size] if size else data[offset:]

    def store_metrics(
        self, uid: str, project: str, iter: int, rows: Iterable[tuple[Any, ...]]
    ) -> None:
        """Append metric rows ``(key, step, value, time)``."""
        self._transact(self._store_metrics, uid, project, iter, list(rows))

    @staticmethod
    def _store_metrics(
        conn: Any, uid: str, project: str, it: int, rows: list[tuple[Any, ...]]
    ) -> None:
        conn.executemany(
            "INSERT INTO metrics (uid, project, iteration, key, step, value, time)"
            " VALUES (?,?,?,?,?,?,?)",
            [(uid, project, it, *row) for row in rows],
        )

    def get_metrics(
        self, uid: str, key: str | None = None, iter: int = 0, project: str = ""
    ) -> list[dict[str, Any]]:
        """Return the metric series of a run (optionally one key), in logging order."""
        sql = "SELECT key, step, value, time FROM metrics WHERE uid=? AND iteration=?"
        args: list[Any] = [uid, iter]
        if key:
            sql += " AND key=?"
            args.append(key)
        rows = self._read(f"{sql} ORDER BY {self.dialect.metrics_order}", args)
        return [  # SQLite keeps a NaN value as the text 'NaN' (SQLiteRunDB._store_metrics)
            {"key": k, "step": s, "value": float(v) if isinstance(v, str) else v, "time": t}
            for k, s, v, t in rows
        ]

    # lineage ---------------------------------------------------------------------------------
    def store_lineage(self, edges: Iterable[dict[str, Any]]) -> None:
        """Store lineage edges (missing fields are stored empty)."""
        rows = [tuple(e.get(c) for c in LINEAGE_COLS) for e in edges]
        if rows:
            self._transact(executemany, LINEAGE_INSERT, rows)

    def list_lineage(
        self,
        run_uid: str | None = None,
        artifact_key: str | None = None,
        pipeline_uid: str | None = None,
        upstream: bool = False,
        downstream: bool = False,
    ) -> list[dict[str, Any]]:
        """Return lineage edges; ``upstream``/``downstream`` walk from ``run_uid`` transitively."""
        sel = f"SELECT {', '.join(LINEAGE_COLS)} FROM lineage"

        def rows(where: str, args: list[Any]) -> list[dict[str, Any]]:
            got = self._read(f"{sel} WHERE {where} ORDER BY id", args)
            return [dict(zip(LINEAGE_COLS, r, strict=True)) for r in got]

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
        start, own = set(), []
        if run_uid:
            start.add(run_uid)
        if artifact_key:  # the artifact's own edges, then onwards from its consumers/producers
            own = rows("artifact_key=?", [artifact_key])
            for edge in own:
                if downstream:
                    start.add(edge["consumer_uid"])
                if upstream:
                    start.add(edge["producer_uid"])
        walked = walk_lineage(start, rows, upstream, downstream)
        return own + [e for e in walked if e not in own]

    # one-shot commit ------------------------------------------------------------------------
    def commit_run(
        self,
        run: dict[str, Any],
        artifacts: Iterable[dict[str, Any]] = (),
        metrics: Iterable[tuple[Any, ...]] = (),
        log: bytes = b"",
    ) -> None:
        """Write a run with its new artifacts, metric rows and log output in one transaction."""
        if isinstance(log, str):
            log = log_bytes(log)
        self._transact(self._commit_run, run, list(artifacts), list(metrics), log)

    def _commit_run(
        self,
        conn: Any,
        run: dict[str, Any],
        artifacts: list[dict[str, Any]],
        metrics: list[tuple[Any, ...]],
        log: bytes,
    ) -> None:
        meta = run["metadata"]
        uid, project, it = meta["uid"], meta.get("project", ""), meta.get("iteration", 0)
        for art in artifacts:
            self._store_artifact(
                conn,
                art["key"],
                art,
                art.get("uid"),
                it,
                art.get("tag") or "",
                project,
                art.get("tree") or uid,
            )
        if metrics:
            self._store_metrics(conn, uid, project, it, metrics)
        if log:
            conn.execute(
                "INSERT INTO logs (uid, project, body) VALUES (?,?,?)", (uid, project, log)
            )
        self._store_run(conn, run, uid, project, it)

    def store_runs(
        self, runs: Iterable[dict[str, Any]], lineage: Iterable[dict[str, Any]] = ()
    ) -> None:
        """Store whole runs (keyed by their metadata) and lineage edges in one transaction."""
        edges = [tuple(e.get(c) for c in LINEAGE_COLS) for e in lineage]
        self._transact(self._store_runs, list(runs), edges)

    def _store_runs(
        self, conn: Any, runs: list[dict[str, Any]], edges: list[tuple[Any, ...]]
    ) -> None:
        for run in runs:
            meta = run["metadata"]
            uid, project, it = meta["uid"], meta.get("project", ""), meta.get("iteration", 0)
            self._store_run(conn, run, uid, project, it)
        if edges:
            executemany(conn, LINEAGE_INSERT, edges)


def _page(limit: int, offset: int) -> str:
    """Return the ``LIMIT``/``OFFSET`` clause of a page (none when neither is set)."""
    if not limit and not offset:
        return ""
    return f" LIMIT {int(limit) if limit else 2**63 - 1} OFFSET {int(offset)}"
