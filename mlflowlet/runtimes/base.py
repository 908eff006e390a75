"""The runtime base class: turns a task into runs, expands hyper-parameters, selects the best.

A runtime implements :meth:`Runtime._execute` (run one prepared ``RunObject`` to a terminal state)
and may override :meth:`Runtime._execute_many` to run iterations its own way (processes, Dask
tasks, an Indexed Job). Everything else (merging arguments, storing the parent, stop conditions,
``max_errors``, the iteration table, ``best_iteration``) lives here once. :meth:`Runtime.run`
prepares a run from a task; :meth:`Runtime.execute` runs a prepared one (what the entrypoint and
the pipeline executor call); sweep options are one :class:`~mlflowlet.hyper.SweepOptions`.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, cast

from .._rundump import plain_copy
from .._runfields import blank
from ..errors import ConfigError, ParameterError, RunError
from ..hyper import SweepOptions
from ..model import RunObject, RunTemplate, new_uid, now_iso

if TYPE_CHECKING:
    from concurrent.futures import Future

    from ..db import RunDB


class Runtime(ABC):
    """Runs tasks. Subclasses set ``kind`` and implement :meth:`_execute`.

    Args:
        command: what to run (a URL, a file, ``module:function``), as the runtime understands it.
        **options: runtime-specific options kept in ``self.options``.
    """

    kind = ""
    # iterations run the handler object the caller gave, in this process (their git facts are
    # the parent's, read from that handler): the local runtime's threads
    runs_in_process = False

    def __init__(self, command: str = "", **options: Any) -> None:
        self.command = command
        self.options = options
        self.handler = options.pop("handler", None)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} command={self.command!r}>"

    # public API -------------------------------------------------------------------------------
    def with_limits(self, *args: Any, **kwargs: Any) -> Any:
        """Resource limits exist for pod runtimes only (``job``, ``mpijob``, ``spark``).

        Raises:
            ConfigError: always, naming this runtime (and ``gpus`` when given).
        """
        gpus = kwargs.get("gpus", args[2] if len(args) > 2 else None)
        what = "gpus" if gpus is not None else "resource limits"
        raise ConfigError(
            f"with_limits: the {self.kind or 'local'} runtime cannot use {what}; "
            "run on Kubernetes with new_runner(kind='job' or 'mpijob', image=...)"
        )

    def run(
        self,
        task: RunTemplate | dict | None = None,
        handler: Any = None,
        name: str = "",
        project: str = "",
        params: dict[str, Any] | None = None,
        inputs: dict[str, str] | None = None,
        artifact_path: str = "",
        watch: bool = True,
        raise_on_error: bool = True,
        db: RunDB | None = None,
        labels: dict[str, Any] | None = None,
        **options: Any,
    ) -> RunObject:
        """Run a task (one run, or one run per hyper-parameter iteration).

        Args:
            task: a ``RunTemplate`` (from ``new_task``) or its dict.
            handler: the function (or ``'module:function'`` / a name in the command file).
            name: run name (default: the task's, else the handler's).
            project: project name.
            params: parameters merged over the task's.
            inputs: inputs merged over the task's.
            artifact_path: where artifacts go.
            watch: print progress/logs where the runtime can (out-of-process runtimes).
            raise_on_error: raise ``RunError`` when the run ends in ``error``.
            db: a run DB (default: ``get_run_db()``).
            labels: labels merged over the task's.
            **options: runtime-specific options for this run (e.g. ``timeout``; ``strict=True``
                makes a param that names no handler parameter an error).

        Returns:
            The finished ``RunObject``.

        Raises:
            RunError: the run ended in ``error`` (the run is ``.run``) and ``raise_on_error``.
        """
        if handler is None and isinstance(task, RunTemplate):
            handler = task._handler  # new_task(handler=fn) keeps the function in memory
        handler = handler if handler is not None else self.handler
        run = self._prepare(task, handler, name, project, params, inputs, artifact_path, labels)
        if db is None:
            from ..db import get_run_db

            db = get_run_db()
        self._before_run(run, handler, db, watch=watch, **options)
        from .._interrupt import guard

        with guard():  # Ctrl-C / SIGTERM: every unfinished run of this call ends aborted
            result = self.execute(run, handler, db)
        if run.spec.secret_sources:  # in memory only: run.artifact(key).get() reads with them
            result._secret_sources = [dict(s) for s in run.spec.secret_sources]
        if raise_on_error and result.state == "error":
            last = (result.status.error or "").strip().splitlines()[-1:] or ["unknown error"]
            raise RunError(
                f"run {result.metadata.name!r} ({result.uid}) failed: {last[0]}", run=result
            )
        return result

    def execute(
        self,
        run: RunObject,
        handler: Any = None,
        db: RunDB | None = None,
        *,
        iteration: int | None = None,
    ) -> RunObject:
        """Run a prepared run here, as :meth:`run` does once it has prepared and stored it.

        For a caller that already holds its ``RunObject`` (the entrypoint in a container or a
        subprocess, a pipeline step): nothing is merged, validated or stored first. A run with
        hyper-parameters or a param file runs its iterations and selects the best.

        Args:
            run: the run (its uid, name, project and spec set).
            handler: the function (or ``'module:function'``); default: the spec's handler.
            db: the run DB to record into (default: ``get_run_db()``).
            iteration: run only iteration ``n`` (1-based) of the run's sweep, and return that
                iteration's run (one pod of an Indexed Job); no summary, no best.

        Returns:
            The finished run (a sweep's parent, or the iteration asked for).

        Raises:
            ConfigError: ``iteration`` is not one of the sweep's.
        """
        if db is None:
            from ..db import get_run_db

            db = get_run_db()
        sweep = SweepOptions.of(run.spec)
        if iteration is not None:
            combos = sweep.expand()
            if not 1 <= iteration <= len(combos):
                raise ConfigError(
                    f"iteration {iteration} does not exist: the run's spec has {len(combos)} "
                    "iteration(s) (an Indexed Job's completions must equal that number)"
                )
            return self._execute(self._child(run, iteration, combos[iteration - 1]), handler, db)
        if sweep.sweeps:
            return self._run_iterations(run, handler, db)
        return self._execute(run, handler, db)

    # hooks ------------------------------------------------------------------------------------
    def _before_run(self, run: RunObject, handler: Any, db: RunDB, **options: Any) -> None:
        """Validate or set up before anything runs (runtime-specific options arrive here)."""
        if options.get("timeout") is not None:
            run.spec.timeout = float(options["timeout"])
        if run.spec.timeout is not None and not run.spec.timeout > 0:  # NaN too
            raise ConfigError(f"timeout={run.spec.timeout!r} must be a number of seconds > 0")
        if options.get("strict") is not None:
            run.spec.strict = bool(options["strict"])

    @abstractmethod
    def _execute(self, run: RunObject, handler: Any, db: RunDB) -> RunObject:
        """Run one prepared run (or iteration) to a terminal state, record it, and return it."""

    def _execute_many(
        self, runs: Iterable[RunObject], handler: Any, db: RunDB, parallel: int
    ) -> Iterator[RunObject]:
        """Yield finished iterations as they complete (default: a thread pool of ``_execute``)."""
        runs = iter(runs)
        if parallel <= 1:
            for run in runs:
                yield self._execute(run, handler, db)
            return
        from concurrent.futures import FIRST_COMPLETED, as_completed, wait

        from .._interrupt import DaemonPool

        pool = DaemonPool(parallel, "mlflowlet-iter")  # daemons: Ctrl-C never waits on a handler
        pending: set[Future] = set()
        try:
            for run in runs:  # pulled lazily, so a stop condition stops new launches
                pending.add(pool.submit(self._execute, run, handler, db))
                while len(pending) >= parallel:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        yield fut.result()
            for fut in as_completed(pending):
                yield fut.result()
        finally:
            pool.shutdown(wait=False)

    # preparation ------------------------------------------------------------------------------
    def _prepare(
        self,
        task: Any,
        handler: Any,
        name: str,
        project: str,
        params: dict | None,
        inputs: dict | None,
        artifact_path: str,
        labels: dict | None,
    ) -> RunObject:
        if isinstance(task, dict):
            task = RunTemplate.model_validate(task)
        elif task is not None and not isinstance(task, RunTemplate):
            raise ConfigError(f"task must be a RunTemplate or dict, got {type(task).__name__}")
        if task is None:
            run = blank(RunObject)
        else:  # a deep copy: the task itself is never changed by running it (and checked)
            copied = None  # made without the validator while none is built (issue 18)
            if not RunObject.__pydantic_complete__:  # once it is, pydantic copies faster
                copied = plain_copy(task, RunObject, frozenset({"status"}))
            run = copied or RunObject.model_validate(task.model_dump(exclude={"status"}))
        meta, spec = run.metadata, run.spec
        if handler is not None and not spec.handler:
            spec.handler = handler if isinstance(handler, str) else _qualname(handler)
        meta.name = name or meta.name or _short_name(handler) or _short_name(self.command) or "run"
        if not meta.project:
            from ..settings import get_settings

            meta.project = project or get_settings().project
        elif project:
            meta.project = project
        from .._names import (  # before storing
            check_label_key,
            check_project,
            check_run_name,
            label_value,
        )

        check_project(meta.project)
        check_run_name(meta.name)
        spec.params.update(params or {})
        spec.inputs.update({k: str(v) for k, v in (inputs or {}).items()})
        meta.labels.update({k: str(v) for k, v in (labels or {}).items()})
        for key, value in meta.labels.items():
            label_value(check_label_key(key), value)
        meta.labels.setdefault("kind", self.kind or "local")
        if artifact_path:
            spec.artifact_path = artifact_path
        from .._coerce import check_recordable
        from ..datastore._urls import check_no_credentials  # refused before anything is stored

        if callable(handler):  # its annotations say how each record reads back
            from .._binding import check_params

            check_params(handler, spec.params)
            for key, values in spec.hyper_params.items():
                for value in values if isinstance(values, (list, tuple)) else (values,):
                    check_params(handler, {key: value})
        else:
            check_recordable(spec.params, spec.hyper_params)

        for key, url in spec.inputs.items():
            check_no_credentials(url, f"input {key!r}")
        check_no_credentials(spec.artifact_path or "", "artifact_path")
        if self.command and not spec.command:
            spec.command = self.command
        meta.uid = new_uid()
        run.status.state = "created"
        return run

    # hyper-parameters -------------------------------------------------------------------------
    def _run_iterations(self, parent: RunObject, handler: Any, db: RunDB) -> RunObject:
        from .._fdcapture import capture
        from ..context import Context
        from . import _sweep
        from ._sweep import Fold, summarise

        spec = parent.spec
        sweep = SweepOptions.of(spec)
        combos = sweep.iterations()  # lazily: a million iterations are never held at once
        ctx = Context(parent, db)
        ctx._start(handler if callable(handler) else None)  # the parent records code hash, git
        if callable(handler) and spec.hyper_params:  # a bad value fails before any iteration
            from .._binding import check_values

            try:
                check_values(handler, spec.hyper_params, spec.strict)
            except ParameterError as exc:
                ctx._finish("error", str(exc))
                return ctx.to_run_object()
        stop = sweep.stop()
        parallel = sweep.parallel or self._default_parallel()
        # the code an iteration runs is the handler the parent read git from, or (a handler
        # named, another process) code loaded afresh: then each iteration reads its own
        git = parent.status.git if callable(handler) and self.runs_in_process else None
        fold = Fold(sweep)

        def children() -> Iterator[RunObject]:
            for i, combo in enumerate(combos, start=1):
                aborted = ctx._recorder.abort_requested  # `mlflowlet abort` (the flush thread
                if aborted and not fold.stopped:  # read it from the DB): launch no more
                    fold.stopped = f"aborted before iteration {i}: {aborted}"
                if fold.stopped:
                    return
                fold.launched(i, combo)
                yield self._child(parent, i, combo, git)

        sink = ctx._recorder.write_log
        shared = capture.acquire(sink, shared=True)  # fd output of parallel iterations
        outer, _sweep._current.fold = getattr(_sweep._current, "fold", None), fold
        batched = _sweep.BatchedDB(db, ctx._recorder.flush_interval)
        try:
            for child in self._execute_many(children(), handler, cast("RunDB", batched), parallel):
                fold.add(child)
                if stop is not None and child.state == "completed" and not fold.stopped:
                    if stop(child.status.results):
                        fold.stopped = (
                            f"stop condition {sweep.stop_condition!r} met at "
                            f"iteration {child.metadata.iteration}"
                        )
        finally:
            batched.close()
            _sweep._current.fold = outer
            if shared:
                capture.release(sink)
        summarise(ctx, fold)
        return ctx.to_run_object()

    @staticmethod
    def _default_parallel() -> int:
        return 1

    @staticmethod
    def _child(
        parent: RunObject, iteration: int, combo: dict[str, Any], git: dict[str, str] | None = None
    ) -> RunObject:
        # Copy only what a child keeps, and only the containers a child may change (a deep copy
        # of the parent's hyper_params and status made a sweep quadratic in its iterations).
        meta, spec = parent.metadata, parent.spec
        child_meta = meta.model_copy(
            update={
                "iteration": iteration,
                "labels": dict(meta.labels),
                "annotations": dict(meta.annotations),
            }
        )
        child_spec = spec.model_copy(
            update={
                "params": {**spec.params, **combo},
                "inputs": dict(spec.inputs),
                "outputs": list(spec.outputs),
                "hyper_params": {},
                "param_file": "",
                "secret_sources": [dict(src) for src in spec.secret_sources],
                "parent_uid": parent.uid,
            }
        )
        status = type(parent.status)(git=dict(git or {}))  # empty: the iteration reads its own
        return parent.model_copy(
            update={"metadata": child_meta, "spec": child_spec, "status": status}
        )


def _qualname(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", "") or ""
    name = getattr(fn, "__name__", "") or ""
    return f"{module}:{name}" if module and module != "__main__" else name


def _short_name(obj: Any) -> str:
    if obj is None or obj == "":
        return ""
    if callable(obj):
        return getattr(obj, "__name__", "")
    text = str(obj).rstrip("/")
    text = text.rsplit(":", 1)[-1] if ":" in text and "://" not in text else text
    return os.path.splitext(os.path.basename(text))[0]


def finish_time_fields(run: RunObject) -> None:
    """Fill missing timing fields of a run that ended outside a context."""
    status = run.status
    status.end_time = status.end_time or now_iso()
    status.last_update = status.end_time
