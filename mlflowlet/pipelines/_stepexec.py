"""Run one step call through the local runtime: attempts with retries, timeouts, hyper-params.

Each attempt is a ``RunObject`` prepared here and run by ``LocalRuntime.execute`` (all its
iterations for hyper-parameters and fan-outs), so binding, error capture and
the buffered DB commits are the core's. Used by the pipeline executor and by a step called
outside a pipeline.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._ctx_workflow import SPEC_FIELD as WORKFLOW_FIELD
from .._provenance import git_info
from .._text import log_bytes
from ..errors import RunError
from ..model import RunObject, new_uid, now_iso
from ._attempts import attempt_dir, drop_item_versions, latest_of, rehome_artifacts

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..db.base import RunDB
    from ._spec import StepSpec
    from .step import Step


@dataclass
class StepCall:
    """What one step run needs: the step, its resolved arguments and where it belongs."""

    step: Step
    spec: StepSpec
    name: str
    params: dict[str, Any]
    inputs: dict[str, str]
    labels: dict[str, str]
    project: str
    artifact_path: str = ""
    parent_uid: str = ""
    pipeline_uid: str = ""
    iterate: dict[str, Any] | None = None  # RunSpec fields of hyper-params or a fan-out
    attempts: list[dict[str, Any]] = field(default_factory=list)
    lineage: list[dict[str, Any]] = field(default_factory=list)  # rows, consumer filled later
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # input -> artifact record
    per_item: bool = False  # a map: each item retries alone, as its pod does compiled


def _item_runtime(retries: int, delay: float, timeout: float | None = None) -> Any:
    """Return a local runtime whose sweep retries each iteration (a map's item) alone.

    The item's record (its uid and iteration) is its last attempt, labelled ``attempt``; each
    failed attempt before it is kept as its own run (:func:`keep_failed_attempt`); all write to
    the step's log, as an Argo / KFP pod per item retries alone. ``timeout`` bounds each
    attempt of an item, as a pod's deadline (not the whole map).
    """
    from ..runtimes.local import LocalRuntime

    class ItemRetries(LocalRuntime):
        def _execute(self, run: RunObject, handler: object, db: RunDB) -> RunObject:
            first = ""
            for attempt in range(1, retries + 2):
                one = run.model_copy(deep=True)
                if retries:  # labelled as a step's attempts: only a step that retries
                    one.metadata.labels["attempt"] = str(attempt)
                    attempt_dir(one, attempt)  # never the bytes an earlier attempt recorded
                if first:
                    one.metadata.labels["retry_of"] = first
                extra = one.spec.model_extra
                if extra and WORKFLOW_FIELD in extra:  # context.workflow.attempt: the item's
                    extra[WORKFLOW_FIELD] = {**extra[WORKFLOW_FIELD], "attempt": attempt}
                result = _run_once(super()._execute, one, handler, db, timeout)
                if result.state != "error" or attempt > retries:
                    return result
                kept = keep_failed_attempt(result, db)
                first = first or kept
                if delay * 2 ** (attempt - 1):
                    time.sleep(delay * 2 ** (attempt - 1))  # the back-off, not a synchronisation
            raise AssertionError("unreachable")

    return ItemRetries()


def keep_failed_attempt(result: RunObject, db: RunDB) -> str:
    """Move a failed attempt of an item to a run of its own before the item retries in place.

    The next attempt overwrites the item's record (its uid and iteration: the item is its last
    attempt), so the failure is kept as a new run (iteration 0) with the attempt's labels
    (``attempt``; ``retry_of`` the first attempt from the second on, as a step's retries) and
    annotations ``item_uid`` / ``item_iteration`` naming the item (Argo keeps each retry as its
    own node). Its metric history moves with it, and its artifact versions (its own bytes, in
    its own directory: ``_attempts``), re-produced by the new run; its output stays in the run
    log its item shares with the other items (a log is a run's, keyed by uid). Returns the new
    run's uid.
    """
    record = result.to_dict()
    meta = record["metadata"]
    uid, project, it = meta["uid"], meta.get("project", ""), meta.get("iteration", 0)
    meta["annotations"] = {
        **meta.get("annotations", {}),
        "item_uid": uid,
        "item_iteration": str(it),
    }
    meta["uid"], meta["iteration"] = new_uid(), 0
    # the attempt's metric history goes with it: the item's is its last attempt's alone
    flush = getattr(db, "flush", lambda: None)  # a sweep's batch (map items): write it first
    flush()
    history = db.get_metrics(uid, iter=it, project=project)
    rows = [(m["key"], m["step"], m["value"], m["time"]) for m in history]
    latest = latest_of(record, db)
    moved = rehome_artifacts(record, uid, it, db)
    db.commit_run(record, [art for _, art in moved], metrics=rows)
    flush()  # the copy is stored before the item's rows go: a crash loses neither
    drop_item_versions(moved, it, latest, db)
    db.del_run(uid, project, iter=it)  # the next attempt records the item afresh
    return str(meta["uid"])


def _runtime() -> Any:
    from ..runtimes.local import LocalRuntime

    return LocalRuntime()


def new_run(call: StepCall, attempt: int, place: tuple[str, int] | None = None) -> RunObject:
    """Prepare the ``RunObject`` of one attempt (``created``, not stored yet).

    ``place``: ``(uid, iteration)`` when the attempt is one item of a loop body's step run.
    """
    spec = call.spec
    run = RunObject()
    meta, rspec = run.metadata, run.spec
    meta.uid, meta.name, meta.project = new_uid(), call.name, call.project
    if place is not None:
        meta.uid, meta.iteration = place
    meta.labels = {"kind": "local", **spec.labels, **call.labels}
    if spec.retries:
        meta.labels["attempt"] = str(attempt)
        if call.attempts:
            meta.labels["retry_of"] = call.attempts[0]["uid"]
    rspec.handler, rspec.params, rspec.inputs = spec.handler, dict(call.params), dict(call.inputs)
    rspec.outputs, rspec.artifact_path = list(spec.outputs), call.artifact_path
    rspec.strict = True  # a param naming no parameter is a mistake, not something to ignore
    rspec.parent_uid, rspec.pipeline_uid, rspec.timeout = (
        call.parent_uid,
        call.pipeline_uid,
        spec.timeout,
    )
    for key, value in (call.iterate or {}).items():
        setattr(rspec, key, value)
    run.status.git = _git(spec.source)
    run._input_artifacts = dict(call.records)
    return run


def _git(source: str) -> dict[str, str]:
    path = source.rsplit(":", 1)[0]
    return dict(git_info(os.path.dirname(os.path.abspath(path)))) if path and path != "?" else {}


def execute(call: StepCall, db: RunDB, place: tuple[str, int] | None = None) -> RunObject:
    """Run ``call`` with its retries; return the last attempt (``call.attempts`` lists them all).

    ``place``: ``(uid, iteration)`` to record every attempt as that item of a loop body's step.
    """
    spec, runtime, handler = call.spec, _runtime(), call.step.handler()
    if spec.container is not None:  # a container step whose program is missing: skipped
        from .container import missing_tool

        why = missing_tool(spec)
        if why:
            return _skipped(call, why, db, place)
    result = None
    workflow = _workflow(call, db) if spec.uses_workflow else None
    retries, timeout = spec.retries, spec.timeout
    if call.per_item and call.iterate and (retries or timeout):  # a map: per item, as its pod
        runtime = _item_runtime(retries, spec.retry_delay, timeout)
        retries, timeout = 0, None
    for attempt in range(1, retries + 2):
        run = new_run(call, attempt, place)
        if place is not None and retries:  # an item's attempts: one directory each
            attempt_dir(run, attempt)
        if workflow is not None:  # context.workflow: attempt counts from 1 (see _ctx_workflow)
            assert run.spec.model_extra is not None
            elapsed = _elapsed(workflow["created"])  # this attempt's start, as Argo's
            run.spec.model_extra[WORKFLOW_FIELD] = {
                **workflow,
                "attempt": attempt,
                "duration": elapsed,
            }
        result = _run_once(runtime.execute, run, handler, db, timeout)
        result._record_in(db)
        last = result.state != "error" or attempt > retries
        uid = result.uid if last or place is None else keep_failed_attempt(result, db)
        call.attempts.append(
            {"uid": uid, "state": result.state, "error": last_line(result.status.error)}
        )
        if last:
            break
        delay = spec.retry_delay * 2 ** (attempt - 1)
        if delay:
            time.sleep(delay)  # the retry back-off itself, not a synchronisation
    assert result is not None
    return result


def _workflow(call: StepCall, db: RunDB) -> dict[str, Any] | None:
    """Return ``context.workflow`` of a step of pipeline run ``call.pipeline_uid`` (None: none)."""
    if not call.pipeline_uid:
        return None
    pipe = db.read_run(call.pipeline_uid, project=call.project)
    return {
        "name": pipe["metadata"].get("name", ""),
        "uid": call.pipeline_uid,
        "parameters": dict(pipe.get("spec", {}).get("params", {})),
        "created": pipe.get("status", {}).get("start_time") or "",
        "target": "local",
    }


def _elapsed(created: str) -> float | None:
    """Return the seconds since ``created`` (ISO 8601), or None when it is not a time."""
    from datetime import datetime, timezone

    try:
        start = datetime.fromisoformat(created)
    except ValueError:
        return None
    return round((datetime.now(timezone.utc) - start).total_seconds(), 6)


def _skipped(
    call: StepCall, reason: str, db: RunDB, place: tuple[str, int] | None = None
) -> RunObject:
    """Record ``call`` as a ``skipped`` run (``reason`` in its annotations) without running it."""
    run = new_run(call, 1, place)
    stamp = now_iso()
    run.status.state, run.status.start_time, run.status.end_time = "skipped", stamp, stamp
    run.metadata.annotations["reason"] = reason
    db.store_runs([run.to_dict()])
    call.attempts.append({"uid": run.uid, "state": "skipped", "error": ""})
    return run._record_in(db)


def last_line(text: str) -> str:
    """Return the last non-empty line of an error (its message, after a traceback)."""
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


_WRITES = ("commit_", "store_", "update_", "del_", "_transact")  # a sweep's batches: _transact


class _GuardedDB:
    """Passes writes through until closed: a timed-out step keeps running but records nothing."""

    def __init__(self, db: RunDB) -> None:
        self._db, self._lock, self._stopped = db, threading.Lock(), False  # `closed`: the DB's

    def _write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return None if self._stopped else fn(*args, **kwargs)

    def close(self) -> None:
        with self._lock:
            self._stopped = True

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._db, name)
        if name.startswith(_WRITES) and callable(found):
            return functools.partial(self._write, found)
        return found


def _run_once(
    target: Callable[..., RunObject],
    run: RunObject,
    handler: Any,
    db: RunDB,
    timeout: float | None,
) -> RunObject:
    """Return ``target(run, handler, db)`` (a runtime's execute: a sweep when the spec has one).

    Past ``timeout`` seconds the call is abandoned (its writes dropped) and ``run`` recorded
    as failed, naming the timeout.
    """
    if not timeout:
        return target(run, handler, db)
    guard = _GuardedDB(db)
    box: dict[str, Any] = {}  # "run" or "exc": what the call returned or raised

    def work() -> None:
        try:
            box["run"] = target(run, handler, guard)
        except BaseException as exc:  # re-raised in the caller's thread
            box["exc"] = exc

    thread = threading.Thread(target=work, daemon=True, name=f"mlflowlet-{run.metadata.name}")
    thread.start()
    thread.join(timeout)
    if not thread.is_alive():
        if "exc" in box:
            raise box["exc"]
        return box["run"]
    message = (
        f"step {run.metadata.name!r} timed out after {timeout:g}s (the in-process call "
        "was abandoned; raise timeout= or make the step faster)"
    )
    abandoned = _flush_abandoned(guard, run)  # what it logged before the deadline is kept
    guard.close()  # an in-process step cannot be killed: it is abandoned, its writes dropped
    for other in abandoned:  # its sweep's unfinished iterations end with it, saying so
        ended = _snapshot(other)
        ended["status"].update(state="error", error=message, end_time=now_iso())
        db.commit_run(ended, (), (), log_bytes(""))
    data = _snapshot(run)
    data["status"].update(state="error", error=message, end_time=now_iso(), last_update=now_iso())
    db.commit_run(data, (), (), log_bytes(message + "\n"))
    return RunObject.model_validate(data)


def _flush_abandoned(guard: _GuardedDB, run: RunObject) -> list[RunObject]:
    """Write the buffers (metric points, output) of the runs writing through ``guard``.

    They were logged before the deadline: a timed-out attempt's record keeps them, as a run's
    record keeps what it logged before it failed. Its sweep batch (if any) is written after.
    Returns the runs other than ``run`` not finished (a sweep's iterations under way).
    """
    from .._flush import flusher

    def through(db: object) -> bool:
        return db is guard or getattr(db, "_db", None) is guard

    live = flusher.live()
    recorders = [o for o in live if hasattr(o, "write") and through(getattr(o, "db", None))]
    batches = [o for o in live if getattr(o, "_db", None) is guard]
    for obj in [*recorders, *batches]:
        try:
            obj._background_flush(time.monotonic())
        except Exception:  # noqa: BLE001 - the timeout is recorded whatever this could write
            pass
    return [r.run for r in recorders if not r.finished and r.run is not run]


def _snapshot(run: RunObject) -> dict[str, Any]:
    for _ in range(5):  # the abandoned thread may be changing the run right now
        try:
            return run.to_dict()
        except RuntimeError:
            continue
    return run.to_dict()


def run_direct(st: Any, args: tuple, kwargs: dict[str, Any]) -> RunObject:
    """Run a step outside a pipeline as one tracked run (with its retries and hyper-params).

    Keywords ``project``, ``db``, ``artifact_path``, ``labels`` and ``raise_on_error`` (default
    True) configure the run; the rest bind to the step's parameters. ``DataItem`` s and paths
    passed to ``DataItem`` parameters become inputs.

    Raises:
        RunError: the run ended in ``error`` and ``raise_on_error``.
    """
    from ..errors import ParameterError

    opts = {
        k: kwargs.pop(k)
        for k in ("project", "db", "artifact_path", "labels", "raise_on_error")
        if k in kwargs
    }
    spec = st.spec
    names = [p.name for p in spec.params]
    if len(args) > len(names):
        raise ParameterError(
            f"step {spec.name!r} takes {len(names)} argument(s), got {len(args)} positional"
        )
    values = {**dict(zip(names, args, strict=False)), **kwargs}
    params, inputs = {}, {}
    for key, value in values.items():
        param = spec.param(key)
        if hasattr(value, "url") and hasattr(value, "local"):  # a DataItem
            inputs[key] = value.url
        elif isinstance(value, os.PathLike) or (
            param is not None and param.dataitem and isinstance(value, str)
        ):
            inputs[key] = os.fspath(value)
        else:
            params[key] = value
    db = opts.get("db")
    if db is None:
        from ..db import get_run_db

        db = get_run_db()
    if not opts.get("project"):
        from ..settings import get_settings

        opts["project"] = get_settings().project
    call = StepCall(
        st,
        spec,
        spec.name,
        params,
        inputs,
        {"step": spec.name, **(opts.get("labels") or {})},
        opts["project"],
        opts.get("artifact_path", ""),
        iterate=hyper_fields(st.hyper),
    )
    result = execute(call, db)
    if result.state == "error" and opts.get("raise_on_error", True):
        raise RunError(
            f"step {spec.name!r} ({result.uid}) failed: "
            f"{last_line(result.status.error) or 'unknown error'}",
            run=result,
        )
    return result


def hyper_fields(hyper: Any) -> dict[str, Any] | None:
    """Return the ``RunSpec`` fields of a ``HyperSpec`` (None when there is none)."""
    if hyper is None:
        return None
    return {
        "hyper_params": {k: list(v) for k, v in hyper.hyper_params.items()},
        "selector": hyper.selector,
        "strategy": hyper.strategy,
        "max_iterations": hyper.max_iterations,
        "max_errors": hyper.max_errors,
        "parallel": hyper.parallel,
        "seed": hyper.seed,
    }
