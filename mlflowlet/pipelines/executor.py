"""Run a traced pipeline locally, in this process: the pipeline run and its step runs.

The pipeline run is a ``RunObject`` labelled ``kind=pipeline`` whose ``spec.graph`` is the DAG
(``describe()``) and whose ``status.steps`` holds each step's uid, state, duration and attempts;
it commits through a ``Context`` like any run (at state changes, and at most every
``flush_interval`` seconds in between, by the flush thread too). A step's lineage rows, and
the run of a step that did not run (skipped, cached), are buffered along that record and
stored before it by the same write: a record never names a step run or edge the DB lacks.

Steps run in topological order, independent ones at once (``max_parallel`` threads; 1 runs them
in the calling thread, so breakpoints work; ``_scheduler`` says which thread runs each). Each is
a child run (``parent_uid``/``pipeline_uid`` set, labels ``pipeline``, ``pipeline_uid``,
``step``). Artifact references reach a step as
``DataItem`` inputs, results as parameter values. A failed step skips what depends on it while
independent branches finish; a false condition skips its steps (and what needs their data).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from .._binding import code_hash
from ..context import Context
from ..errors import ConfigError, PipelineError
from ..model import RunObject, new_uid, now_iso
from . import cache as _cache
from ._exitpipe import run_exit
from ._inputs import Resolver
from ._loops import item_tested, run_loop
from ._spec import where
from ._status import final_state, status_gate
from ._stepexec import StepCall, hyper_fields, last_line
from .run import PipelineRun, step_states


class LocalExecutor:
    """Runs one pipeline run of a traced DAG (see :meth:`Pipeline.run` for the arguments)."""

    def __init__(
        self,
        pipe: Any,
        dag: Any,
        params: dict[str, Any],
        *,
        resume: str | None = None,
        cache: bool | None = None,
        max_parallel: int | None = None,
        project: str = "",
        artifact_path: str = "",
        db: Any = None,
        labels: dict[str, Any] | None = None,
    ) -> None:
        from ..settings import get_settings

        settings = get_settings()
        if db is None:
            from ..db import get_run_db

            db = get_run_db()
        if max_parallel is not None and (
            isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or max_parallel < 1
        ):
            raise ConfigError(f"max_parallel must be a positive integer, got {max_parallel!r}")
        self.pipe, self.dag, self.params, self.db = pipe, dag, params, db
        self.project = project or settings.project
        self.cache, self.artifact_path = bool(cache), artifact_path
        self.max_parallel = max_parallel or os.cpu_count() or 1
        self.interval = settings.flush_interval
        self.runs: dict[str, RunObject] = {}
        self.states: dict[str, str] = {}
        self.reused: dict[str, RunObject] = {}
        self._codes: dict[Any, str] = {}  # step function to its code hash (getsource is slow)
        self._prefetched: dict[str, dict[str, Any]] | None = None  # cache key -> likely hit
        self.run = self._pipeline_run(labels or {}, resume)
        if resume:
            from ._resume import load_resume

            load_resume(self, resume)
        self.ctx = Context(self.run, db)
        self.inputs = Resolver(self.runs, params, db, self.project, self.run.uid)
        self._last_flush = time.monotonic()

    # the pipeline run ------------------------------------------------------------------------
    def _pipeline_run(self, labels: dict[str, Any], resume: str | None) -> RunObject:
        run = RunObject()
        meta, spec = run.metadata, run.spec
        meta.uid, meta.name, meta.project = new_uid(), self.pipe.name, self.project
        meta.labels = {
            "kind": "pipeline",
            "pipeline": self.pipe.name,
            **{k: str(v) for k, v in labels.items()},
        }
        if resume:
            meta.labels["resumed_from"] = resume
        spec.handler, spec.params = self.pipe.handler, dict(self.params)
        spec.artifact_path = self.artifact_path
        spec.pipeline_uid = meta.uid
        # extra fields: the DAG (shared, read-only) and where the function lives (resume)
        run._share_extra("graph", self.dag.described(), self.dag.described_json())
        assert spec.model_extra is not None
        spec.model_extra["source"] = where(self.pipe.fn)
        step_states(run)
        run._record_in(self.db)
        return run

    def start(self, wait: bool = True) -> PipelineRun:
        """Run the pipeline (in a background thread when ``wait`` is False)."""
        handle = PipelineRun(self.run, self.runs, self.db)
        self.ctx._start(self.pipe.fn)  # recorded as running before this returns
        if wait:
            from .._interrupt import guard

            with guard():  # Ctrl-C / SIGTERM: the pipeline run and its running steps end aborted
                self._execute()
        else:
            thread = threading.Thread(
                target=self._execute, daemon=True, name=f"mlflowlet-pipeline-{self.pipe.name}"
            )
            handle._thread = thread
            thread.start()
        return handle

    def _execute(self) -> None:
        from .._fdcapture import capture

        # fd-level output (child processes, os.write) of steps running at once: the pipeline's
        sink = self.ctx._recorder.write_log
        shared = capture.acquire(sink, shared=True)
        try:
            self._schedule()
            state, error = self._outcome()
            if self.dag.outputs:
                state, error = self._outputs(state, error)
            state, error = run_exit(self, state, error)  # exit step(s); a failed one fails
        except BaseException as exc:
            if shared:
                capture.release(sink)
            self._flush(True)
            if isinstance(exc, KeyboardInterrupt):
                from .._interrupt import reason

                self.ctx._finish("aborted", reason(exc))
            else:
                self.ctx._finish("error", f"{type(exc).__name__}: {exc}")
            raise
        if shared:
            capture.release(sink)  # drains the pipes: what the steps wrote lands before the end
        self.ctx._finish(state, error)  # the failed steps also land in the pipeline run's log

    def _outcome(self) -> tuple[str, str]:
        failed = [n.name for n in self.dag.nodes if self.states.get(n.name) in ("error", "aborted")]
        loops = getattr(self, "loops_failed", {})  # set by _loops for each loop it ran
        if not failed or final_state(self.dag, self.states, loops) == "completed":
            return "completed", ""
        return "error", "; ".join(
            f"step {name!r} failed: {step_states(self.run)[name].get('error') or 'error'}"
            for name in failed
        )

    def _outputs(self, state: str, error: str) -> tuple[str, str]:
        """Record the pipeline's outputs on its run (results, and links to step artifacts)."""
        from ._outputs import resolve_outputs

        results, artifacts, problems = resolve_outputs(self.dag.outputs, self.inputs, self.states)
        if results:
            self.ctx.log_results(results)
        if artifacts:
            self.ctx._artifact_log.link_records([dict(r, key=k) for k, r in artifacts.items()])
        if problems and state == "completed":  # an engine fails a workflow whose outputs fail
            return "error", "; ".join(problems)
        return state, error

    def _flush(self, force: bool) -> None:
        now = time.monotonic()
        if force or now - self._last_flush >= self.interval:
            self._last_flush = now
            self.ctx.commit()  # with the lineage rows and runs buffered along the record

    def _runs_pending(self) -> bool:
        """Whether step runs (cache hits, skipped) wait to be stored with the next record."""
        return bool(self.ctx._recorder.along_runs)

    def _code(self, fn: Any) -> str:
        found = self._codes.get(fn)
        if found is None:
            found = self._codes[fn] = code_hash(fn)
        return found

    # scheduling ------------------------------------------------------------------------------
    def _schedule(self) -> None:
        """Run the ready steps until none is left (:mod:`._scheduler`: which thread runs each)."""
        from ._scheduler import schedule

        schedule(self)

    def _prepare(self, node: Any) -> StepCall | None:
        """Decide a ready node: record it (skipped, failed, reused, cached) or return its call."""
        if node.map is not None and node.map.loop is not None:
            return run_loop(self, node)
        for up in self.dag.upstream(node.name):
            state = self.states[up]
            edges = self.dag.edges_between(up, node.name)
            on = next((e.on for e in edges if e.on), "")
            if on:  # node.after(up, on=...): its status decides (no data edge comes with it)
                why = status_gate(on, state, up)
                if why:
                    self._record(node, "skipped", why)
                    return None
                if all(e.on for e in edges):
                    continue
            if state in ("error", "aborted"):
                self._record(node, "skipped", f"upstream step {up!r} failed")
                return None
            if state == "skipped" and any(
                e.carries_data for e in self.dag.edges_between(up, node.name)
            ):
                self._record(node, "skipped", f"upstream step {up!r} was skipped")
                return None
        if node.name in self.reused:
            self._finish(node, self.reused[node.name], None, reused=True)
            return None
        if node.map is not None and item_tested(node):  # each item decides: a loop of one step
            return run_loop(self, node)
        try:
            if node.condition is not None and not node.condition.evaluate(self.inputs.value_of):
                self._record(node, "skipped", f"condition {node.condition} is false")
                return None
            params, inputs, hashes, rows = self.inputs.resolve(node)
        except PipelineError as exc:
            self._record(node, "error", str(exc))
            return None
        try:
            iterate = self._iterate(node, params)
        except PipelineError as exc:  # it read its items (lineage), which are no list
            self._record(node, "error", str(exc), rows)
            return None
        labels = {"pipeline": self.pipe.name, "pipeline_uid": self.run.uid, "step": node.name}
        keyed = iterate  # a map runs every item at any parallelism: not part of its key
        if node.map is not None and iterate:
            keyed = {k: v for k, v in iterate.items() if k != "parallel"}
        key = _cache.cache_key(
            node.step.fn, node.spec, params, hashes, keyed, code=self._code(node.step.fn)
        )
        labels[_cache.CACHE_LABEL] = key
        common = dict(
            name=node.name,
            labels=labels,
            parent_uid=self.run.uid,
            pipeline_uid=self.run.uid,
            params=params,
            inputs=inputs,
        )
        use_cache = node.spec.cache if node.spec.cache is not None else self.cache
        if use_cache:
            hit = self._lookup(key, node.spec.cache_max_age)
            if hit is not None:
                # recorded in memory, written with the next record of the pipeline run
                run, data = _cache.hit_run(hit, **common)
                self._finish(node, run, rows, cached=True, store=data)
                return None
        call = StepCall(
            node.step,
            node.spec,
            node.name,
            params,
            inputs,
            labels,
            self.project,
            self.artifact_path,
            self.run.uid,
            self.run.uid,
            iterate,
            lineage=rows,
            per_item=node.map is not None,
            records={
                k: self.inputs.records[u] for k, u in inputs.items() if u in self.inputs.records
            },
        )
        if iterate is not None and iterate.get("hyper_params") == {}:
            from ._items import empty_map

            self._complete(node, call, empty_map(call, self.db))
            return None
        return call

    def _lookup(self, key: str, max_age: float | None = None) -> dict[str, Any] | None:
        """Return the completed run recorded with cache ``key`` (a fresh dict), or None.

        With ``max_age`` (seconds), None when the newest such run's result is older (stale).
        """
        if self._prefetched is None:  # the first lookup of this run: the likely hits, at once
            self._prefetched = _cache.prefetch(
                self.db, self.project, self.pipe.name, len(self.dag.nodes)
            )
        hit = self._prefetched.pop(key, None)  # popped: each hit changes its dict in place
        if hit is None:
            return _cache.find_cached(self.db, key, self.project, max_age)
        return None if max_age is not None and _cache.computed_age(hit) > max_age else hit

    def _iterate(self, node: Any, params: dict[str, Any]) -> dict[str, Any] | None:
        if node.map is None:
            return hyper_fields(node.hyper)
        from ._items import map_fields

        return map_fields(node, params.pop("__items__"), self.max_parallel)

    # results ---------------------------------------------------------------------------------
    def _complete(
        self, node: Any, call: StepCall, run: RunObject, flush: bool = True
    ) -> dict[str, Any]:
        return self._finish(node, run, call.lineage, attempts=call.attempts, flush=flush)

    def _finish(
        self,
        node: Any,
        run: RunObject,
        rows: list[dict[str, Any]] | None,
        attempts: list | None = None,
        cached: bool = False,
        reused: bool = False,
        flush: bool = True,
        store: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Record how ``node`` ended (``run``); return its entry in the pipeline run's steps.

        ``store``: the run's record when the pipeline stores it (a cache hit, a skipped step);
        it and ``rows`` (lineage edges into ``run``) go along the pipeline run's next record.
        """
        self.runs[node.name], self.states[node.name] = run, run.state
        status = run.status
        entry: dict[str, Any] = {
            "uid": run.uid,
            "state": run.state,
            "start_time": status.start_time,
            "end_time": status.end_time,
            "duration": _duration(status),
            "error": last_line(status.error),
            "attempts": len(attempts or []) or 1,
        }
        if cached:
            entry["cached_from"] = run.metadata.labels.get(_cache.CACHED_FROM, "")
        if reused:
            entry["reused_from"] = self.run.metadata.labels.get("resumed_from", "")
        if attempts and len(attempts) > 1:
            entry["attempt_uids"] = [a["uid"] for a in attempts]
        if run.metadata.annotations.get("reason"):
            entry["reason"] = run.metadata.annotations["reason"]
        stamp = now_iso()
        edges = [{**row, "consumer_uid": run.uid, "time": stamp} for row in rows or ()]
        recorder = self.ctx._recorder
        with recorder.lock:  # the flush thread dumps the run holding it: all of it, or none
            step_states(self.run)[node.name] = entry
            if store is not None:
                recorder.along_runs.append(store)
            recorder.along_edges.extend(edges)
            recorder.dirty = True
        self._progress(node.name, _progress_note(entry))
        if flush:
            self._flush(False)
        return entry

    def _progress(self, name: str, note: str) -> None:
        """Add a progress line to the pipeline run's log (what the live page shows)."""
        self.ctx._recorder.write_log(f"{now_iso()[11:19]} step {name}: {note}\n")

    def _record(
        self, node: Any, state: str, reason: str, rows: list[dict[str, Any]] | None = None
    ) -> None:
        """Record a step that does not run (skipped, or failed on its inputs ``rows``)."""
        run = RunObject()
        meta = run.metadata
        meta.uid, meta.name, meta.project = new_uid(), node.name, self.project
        meta.labels = {
            "kind": "local",
            **node.spec.labels,
            "pipeline": self.pipe.name,
            "pipeline_uid": self.run.uid,
            "step": node.name,
        }
        meta.annotations["reason"] = reason
        run.spec.handler, run.spec.parent_uid = node.spec.handler, self.run.uid
        run.spec.pipeline_uid = self.run.uid
        stamp = now_iso()
        run.status.state, run.status.start_time, run.status.end_time = state, stamp, stamp
        if state == "error":
            run.status.error = reason
        self._finish(node, run, rows, store=run.to_dict())  # stored with the pipeline's record


def _progress_note(entry: dict[str, Any]) -> str:
    """Say how a step ended: state, duration, and why (cached, reused, skipped, failed)."""
    note = entry["state"]
    if isinstance(entry.get("duration"), (int, float)) and note != "skipped":
        note += f" in {entry['duration']:.2f}s"
    if entry.get("cached_from"):
        note += f" (cached from {entry['cached_from'][:12]})"
    elif entry.get("reused_from"):
        note += f" (reused from {entry['reused_from'][:12]})"
    if entry.get("reason") or entry.get("error"):
        note += f": {entry.get('reason') or entry.get('error')}"
    return note


def _duration(status: Any) -> float | None:
    from datetime import datetime

    try:
        start = datetime.fromisoformat(status.start_time)
        end = datetime.fromisoformat(status.end_time)
    except (TypeError, ValueError):
        return None
    return round((end - start).total_seconds(), 6)
