"""Folding a sweep's iterations as they finish: counts, the best one, the table in chunks.

A sweep of a million iterations must not hold a million runs: :class:`Fold` keeps the counts, the
best iteration so far (:class:`~mlflowlet.hyper.Best`) with its results and artifacts, and writes
each iteration's table row to an unlinked temporary file as JSON lines, in iteration order (a
small buffer re-orders the few that finish out of turn). At the end the ``iteration_results`` CSV
artifact is written from that file in chunks, and the parent's ``status.iterations`` holds the
table (its first ``TABLE_ROWS_KEPT`` rows for a larger sweep; the annotation
``iterations.kept`` then says so, and the artifact has every row).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
import threading
import time
from typing import TYPE_CHECKING, Any

from .. import hyper
from .._text import log_bytes
from ..model import RunObject

if TYPE_CHECKING:
    from ..db.base import RunDB

TABLE_ROWS_KEPT = 10_000
_CHUNK_ROWS = 2_000


_current = threading.local()  # the fold of the sweep this thread runs (see sweep_stopped)


def sweep_stopped() -> str:
    """Why the sweep running in this thread stopped launching ('' while it goes on).

    A runtime that started every iteration at once (an Indexed Job) checks this after each
    finished iteration, to end the ones a stop condition made unnecessary.
    """
    fold = getattr(_current, "fold", None)
    return fold.stopped if fold is not None else ""


class Fold:
    """The running summary of a sweep (see the module doc)."""

    def __init__(self, options: hyper.SweepOptions) -> None:
        self.options = options
        self.count = self.errors = self.ok = self.aborted = 0
        self.first_abort = ""
        self.stopped = ""
        self.best = hyper.Best(options.selector) if options.selector else None
        self.best_run: RunObject | None = None
        self._keys: dict[int, list[str]] = {}  # in-flight iteration -> its combo's keys
        self._params: dict[str, None] = {}
        self._results: dict[str, None] = {}
        self._waiting: dict[int, list] = {}  # finished out of turn
        self._next = 1
        self._lines: list[str] = []
        self._spool = tempfile.TemporaryFile("w+", encoding="utf-8")

    def launched(self, iteration: int, combo: dict[str, Any]) -> None:
        """Note which params an iteration sweeps (its table cells)."""
        self._keys[iteration] = list(combo)

    def add(self, child: RunObject) -> None:
        """Fold in one finished iteration."""
        it, status = child.metadata.iteration, child.status
        self.count += 1
        keys = self._keys.pop(it, [])
        params = {k: child.spec.params.get(k) for k in keys}
        self._params.update(dict.fromkeys(params))
        self._results.update(dict.fromkeys(status.results))
        self._waiting[it] = [it, child.state, params, status.results]
        while self._next in self._waiting:
            self._lines.append(json.dumps(self._waiting.pop(self._next), default=str))
            self._next += 1
        if len(self._lines) >= _CHUNK_ROWS:
            self._flush()
        if child.state == "error":
            self.errors += 1
            limit = self.options.max_errors
            if limit is not None and self.errors >= limit:
                self.stopped = f"stopped after {self.errors} failed iteration(s) (max_errors)"
        elif child.state == "aborted":
            self.aborted += 1
            self.first_abort = self.first_abort or child.status.error
        elif child.state == "completed":
            self.ok += 1
            if self.best is not None and self.best.add(it, status.results):
                self.best_run = child

    def _flush(self) -> None:
        for it in sorted(self._waiting):  # at the end: whatever never came in turn
            self._lines.append(json.dumps(self._waiting.pop(it), default=str))
        if self._lines:
            self._spool.write("\n".join(self._lines) + "\n")
            self._lines = []

    def _rows(self) -> Any:
        self._flush()
        self._spool.seek(0)
        params, results = list(self._params), list(self._results)
        for line in self._spool:
            it, state, par, res = json.loads(line)
            yield [it, state, *(par.get(k) for k in params), *(res.get(k) for k in results)]

    def header(self) -> list[str]:
        """Return the header: iter, state, ``param.<k>``..., ``output.<k>``... (first seen)."""
        return [
            "iter",
            "state",
            *(f"param.{k}" for k in self._params),
            *(f"output.{k}" for k in self._results),
        ]

    def write(self, ctx: Any) -> list[list]:
        """Log the ``iteration_results`` artifact (written in chunks); return the kept table."""
        table: list[list] = [self.header()]
        folder = tempfile.mkdtemp(prefix="mlflowlet-sweep-")
        path = os.path.join(folder, "iteration_results.csv")
        try:
            with open(path, "w", encoding="utf-8", newline="") as out:
                writer = csv.writer(out, lineterminator="\n")
                writer.writerow(table[0])
                chunk: list[list] = []
                for row in self._rows():
                    if len(table) <= TABLE_ROWS_KEPT:
                        table.append(row)
                    chunk.append(row)
                    if len(chunk) >= _CHUNK_ROWS:
                        writer.writerows(chunk)
                        chunk = []
                writer.writerows(chunk)
            if self.count:
                ctx.log_artifact("iteration_results", local_path=path, format="csv", viewer="table")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            self._spool.close()
        if self.count > TABLE_ROWS_KEPT:
            ctx.set_annotation(
                "iterations.kept",
                f"status.iterations keeps the first {TABLE_ROWS_KEPT:,} of {self.count:,} "
                "rows; the iteration_results artifact has them all",
            )
        return table


def summarise(ctx: Any, fold: Fold) -> None:
    """Finish a sweep's parent: the table, the best iteration, the outcome."""
    # aborted from elsewhere (``mlflowlet abort``): the summary is still written (an abort
    # stops a handler at its next log call; the sweep's own writes here have none to stop)
    abort, ctx._recorder.abort_requested = ctx._recorder.abort_requested, ""
    parent = ctx.to_run_object()
    parent.status.iterations = fold.write(ctx) if fold.count else [fold.header()]
    problems, best = [], None
    if fold.best is not None and fold.ok:
        try:
            best = fold.best.result()
        except Exception as exc:  # a selector naming a result no iteration logged
            problems.append(str(exc))
    if best is not None and fold.best_run is not None:
        parent.status.results.update(fold.best_run.status.results)
        parent.status.results["best_iteration"] = best
        ctx._artifact_log.link_best(fold.best_run.status.artifacts, best)
    if fold.errors:
        problems.append(f"{fold.errors} of {fold.count} iteration(s) failed")
    stopped = fold.stopped
    if stopped:
        parent.status.results["stopped"] = stopped
        if "max_errors" in stopped:
            problems.append(stopped)
    if not fold.ok:
        problems.insert(0, "no iteration succeeded")
    failed = not fold.ok or "max_errors" in stopped or bool(fold.options.selector and best is None)
    if fold.aborted and not stopped:  # the sweep's work was deleted or stopped from outside
        problems.insert(0, f"{fold.aborted} iteration(s) aborted ({fold.first_abort})")
    if abort or (fold.aborted and not stopped):
        ctx._finish("aborted", "; ".join([abort] * bool(abort) + problems))
        return
    parent.status.error = "; ".join(problems)
    ctx._finish("error" if failed else "completed")


class BatchedDB:
    """The run DB as a sweep's iterations see it: their commits are written in batches.

    One transaction per iteration caps a sweep at a few thousand iterations a second; here an
    iteration's ``commit_run`` is buffered and written with the others in one transaction when
    ``rows`` are waiting or ``interval`` seconds passed (a crash loses at most that window, as
    DESIGN.md allows). Commits of one run in a batch are written as one (its last record, the
    artifacts, metrics and log of all of them, in order): an iteration's ``running`` record is
    replaced in the same transaction by its final one, unless that would move its output or an
    artifact before another run's commit in between (a shared log, a ``latest`` tag).
    Everything else, and DBs without transactions of their own (the HTTP client), pass
    straight through.
    """

    flush_after_runs = True  # the flush thread writes the runs' buffers into it, then it

    def __init__(self, db: RunDB, interval: float, rows: int = 500) -> None:
        self._db: Any = db  # a SQL store's _transact/_commit_run batch the commits
        self._interval, self._rows = interval, rows
        self._flush_interval = interval
        self._pending: list[list[Any]] = []  # [run, artifacts, metrics, log], one per run
        self._where: dict[tuple[str, str, int], int] = {}  # a run's place in _pending
        self._commits = 0  # buffered commits (a run may have several)
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self._batching = hasattr(db, "_transact") and hasattr(db, "_commit_run")
        self._done = False  # after the sweep (`closed` is the DB's own: it delegates)
        if self._batching:  # buffered commits reach the DB within `interval`, come what may
            from .._flush import flusher

            flusher.add(self)

    @property
    def holds_commits(self) -> bool:
        """Whether a commit waits in memory for the next flush (a SQL store, the sweep going on)."""
        return self._batching and not self._done

    def _background_flush(self, now: float, final: bool = False) -> None:
        """Write what is buffered (called by the flush thread every ``interval`` seconds)."""
        if self._pending:
            self.flush()

    def commit_run(
        self, run: dict, artifacts: Any = (), metrics: Any = (), log: bytes = b""
    ) -> None:
        """Buffer an iteration's commit (written within ``interval`` seconds)."""
        if not self._batching or self._done:  # after the sweep: an abort recorded at once
            self._db.commit_run(run, artifacts, metrics, log)
            return
        if isinstance(log, str):
            log = log_bytes(log)
        key = _key(run)
        artifacts = list(artifacts)
        with self._lock:
            at = self._where.get(key)
            if at is None or self._passes(at, key, artifacts, log):
                self._where[key] = len(self._pending)
                self._pending.append([run, artifacts, list(metrics), log])
            else:  # the same run again: its newer record, and what both logged, in order
                entry = self._pending[at]
                entry[0] = run
                entry[1] += artifacts
                entry[2] += metrics
                entry[3] += log
            self._commits += 1
            due = self._commits >= self._rows
        if due or time.monotonic() - self._last >= self._interval:
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - this commit is buffered: a later flush writes it
                pass  # and close() raises if the DB still fails (the sweep then fails)

    def _passes(self, at: int, key: tuple[str, str, int], artifacts: list, log: bytes) -> bool:
        """Whether merging into entry ``at`` moves output or an artifact before a later commit's.

        The iterations of a sweep share one log (their uid) and a project's ``latest`` tag of
        a key is the version stored last: both are written in commit order.
        """
        if not (log or artifacts) or at == len(self._pending) - 1:
            return False
        uid, project, _ = key
        keys = {a.get("key") for a in artifacts}
        for run, arts, _metrics, text in self._pending[at + 1 :]:
            meta = run["metadata"]
            if meta.get("project", "") != project:
                continue
            if (log and text and meta["uid"] == uid) or any(a.get("key") in keys for a in arts):
                return True
        return False

    def close(self) -> None:
        """Write what is buffered; later commits go straight to the DB."""
        from .._flush import flusher

        self._done = True
        flusher.discard(self)
        self.flush()

    def flush(self) -> None:
        """Write every buffered commit now, in one transaction; kept buffered when that fails."""
        with self._lock:
            batch, self._pending = self._pending, []
            self._where, self._commits = {}, 0
            self._last = time.monotonic()
            if not batch:
                return
            try:
                self._db._transact(self._write, batch)
            except BaseException:  # nothing is lost: the next flush (or close) writes it
                self._pending, self._commits = batch, len(batch)
                self._where = {_key(entry[0]): i for i, entry in enumerate(batch)}
                raise

    def _write(self, conn: Any, batch: list[list[Any]]) -> None:
        for run, artifacts, metrics, log in batch:
            self._db._commit_run(conn, run, artifacts, metrics, log)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def _key(run: dict[str, Any]) -> tuple[str, str, int]:
    """Return a run record's identity: ``(uid, project, iteration)``."""
    meta = run["metadata"]
    return meta["uid"], meta.get("project", ""), meta.get("iteration", 0)
