"""The run context handlers log through, and :func:`get_or_create_ctx`.

Writes (results, labels, metrics, artifact records, captured output) are buffered and written to
the run DB in one transaction at each state change, on :meth:`Context.commit`, and by the flush
thread (``_flush.py``) within ``flush_interval`` seconds of being logged, whatever comes next.
"""

from __future__ import annotations

import json
import os
import traceback
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from . import _capture, _process
from ._ctx_artifacts import RunArtifacts, run_artifact_path
from ._ctx_factory import EXEC_SECRETS_ENV as EXEC_SECRETS_ENV
from ._ctx_factory import _finish_at_exit, _new_run
from ._ctx_factory import with_exec_secrets as with_exec_secrets
from ._ctx_recorder import Recorder, _jsonable
from ._ctx_workflow import SPEC_FIELD as WORKFLOW_FIELD
from ._ctx_workflow import WorkflowInfo
from ._names import check_label_key, check_storable, label_value
from .errors import ConfigError, SecretsError
from .model import RunObject

if TYPE_CHECKING:
    from .db.base import RunDB

_active: ContextVar[Context | None] = ContextVar("mlflowlet_active_run", default=None)


class Context:
    """What a handler logs through: params, inputs, secrets, results, metrics, artifacts, logger.

    A context is made of parts it holds: its :class:`~mlflowlet._ctx_recorder.Recorder` (buffers,
    locks, commits, flushing, heartbeats, secret masking, the run's start and end) and its
    :class:`~mlflowlet._ctx_artifacts.RunArtifacts` (artifacts stored by the run's
    ``ArtifactManager``). Its methods read the run or hand the work to one of them.

    Args:
        run: the run this context records.
        db: the run DB (``None`` keeps everything in memory, e.g. on a Dask worker).
        secrets: a ``SecretsStore``; built from the run's secret sources when omitted.
    """

    def __init__(self, run: RunObject, db: RunDB | None = None, secrets: Any = None) -> None:
        self._run = run
        self._db = db
        run._record_in(db)
        self._recorder = Recorder(run, db, secrets)
        self._artifact_log = RunArtifacts(self._recorder)
        _process.live_contexts.add(self)  # interrupts, aborts and forks find it there
        self._metric_steps: dict[str, int] = {}
        self._inputs: dict[str, Any] = {}
        self._dask_client: Any = None
        self._token: Any = None  # set when get_or_create_ctx activated this context
        self.log_level = "info"

    # read-only views --------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """Run name."""
        return self._run.metadata.name

    @property
    def uid(self) -> str:
        """Run uid."""
        return self._run.metadata.uid

    @property
    def iteration(self) -> int:
        """Hyper-parameter iteration (0 for a plain run)."""
        return self._run.metadata.iteration

    @property
    def project(self) -> str:
        """Project name."""
        return self._run.metadata.project

    @property
    def tag(self) -> str:
        """Run tag."""
        return self._run.metadata.tag

    @property
    def labels(self) -> dict[str, str]:
        """Run labels (a copy)."""
        return dict(self._run.metadata.labels)

    @property
    def annotations(self) -> dict[str, str]:
        """Run annotations (a copy)."""
        return dict(self._run.metadata.annotations)

    @property
    def parameters(self) -> dict[str, Any]:
        """Run parameters (a copy)."""
        return dict(self._run.spec.params)

    @property
    def inputs(self) -> dict[str, Any]:
        """Input key to ``DataItem``."""
        return {key: self.get_input(key) for key in self._run.spec.inputs}

    @property
    def results(self) -> dict[str, Any]:
        """Results logged so far (a copy)."""
        return dict(self._run.status.results)

    @property
    def artifacts(self) -> list[dict[str, Any]]:
        """Artifact records logged so far."""
        return list(self._run.status.artifacts)

    @property
    def state(self) -> str:
        """Run state."""
        return self._run.status.state

    @property
    def workflow(self) -> WorkflowInfo | None:
        """The pipeline run this step runs in: name, uid, attempt, parameters, creation time.

        None outside a pipeline. Local and compiled runs fill it alike (see
        :mod:`mlflowlet._ctx_workflow`; ``attempt`` counts from 1, and raises on KFP).
        """
        return WorkflowInfo.from_spec((self._run.spec.model_extra or {}).get(WORKFLOW_FIELD))

    @property
    def artifact_path(self) -> str:
        """Directory (or URL) where this run's artifacts are written: the run's own directory.

        It is ``<artifact_path>/<run uid>`` for a given ``artifact_path`` (unless the path already
        names the run, e.g. through ``{{run.uid}}``), else ``<artifact root>/<project>/<run uid>``;
        a hyper-parameter iteration adds ``/<iteration>``, and each attempt of a map item that
        retries ``/attempt-<n>``. Runs sharing an ``artifact_path`` therefore never share a file.
        """
        return run_artifact_path(self._run, self._db)

    out_path = artifact_path

    @property
    def logger(self) -> Any:
        """A ``logging.Logger`` whose output lands in the run's log."""
        return _capture.get_logger(self.log_level)

    @property
    def dask_client(self) -> Any:
        """The ``distributed.Client`` of the Dask cluster running this run, to submit more work.

        On a Dask worker (the ``dask`` runtime) this is the worker's client, and the run's task
        secedes from the worker's thread pool (as ``distributed.worker_client`` does), so waiting
        on the work it submits cannot deadlock a busy worker; elsewhere the default client.
        """
        if self._dask_client is None:
            try:
                from distributed import get_client
            except ImportError:
                from .errors import MissingDependencyError

                raise MissingDependencyError("dask[distributed]", "dask") from None
            try:
                self._dask_client = get_client()
            except ValueError:
                raise ConfigError(
                    "context.dask_client needs a Dask client: run with new_runner('dask://') or "
                    "create a distributed.Client first"
                ) from None
            from ._dask_pool import leave_pool

            leave_pool()  # waiting on its own sub-tasks must not deadlock a busy worker
        return self._dask_client

    @property
    def spark(self) -> Any:
        """The active ``SparkSession`` (``kind='spark'``: ``local[*]`` or an application's driver).

        Needs pyspark (``pip install 'mlflowlet[spark]'``); made on first use when none is active.
        """
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            from .errors import MissingDependencyError

            raise MissingDependencyError("pyspark", "spark") from None
        return SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()

    @property
    def secrets(self) -> Any:
        """The run's ``SecretsStore``."""
        return self._recorder.secrets

    # params, secrets, inputs ------------------------------------------------------------------
    def get_param(self, key: str, default: Any = None) -> Any:
        """Return param ``key``; a missing key records ``default`` (once ended: not recorded)."""
        params = self._run.spec.params
        if key not in params:
            guard = self._recorder.guard
            if not guard.admit():  # ended; else counted in flight: the end waits for it
                return default
            with guard:
                params[key] = default
                self._recorder.dirty = True
        return params[key]

    def get_secret(self, key: str) -> Any:
        """Return a secret value (never stored or logged)."""
        return self.secrets.get(key)

    def get_input(self, key: str, url: str | None = None) -> Any:
        """Return input ``key`` as a ``DataItem``.

        ``url`` adds or replaces the input; a key the run was not given is read as a URL itself
        (``get_input('infile.txt')`` reads the local file, as in MLRun), and recorded as an input.
        Once the run ended, adding or changing an input raises ``RunEndedError`` (reads do not).
        """
        inputs = self._run.spec.inputs
        if url is None and key not in inputs:
            url = key
        if url is not None:
            item = self._dataitem(key, str(url))  # a URL it refuses is never recorded
            if inputs.get(key) != str(url):
                with self._recorder.writing("input", key):
                    inputs[key] = str(url)
                    self._recorder.dirty = True
            self._inputs[key] = item
        if key not in self._inputs:
            self._inputs[key] = self._dataitem(key, self._run.spec.inputs[key])
        return self._inputs[key]

    def _dataitem(self, key: str, url: str) -> Any:
        from .datastore import get_dataitem

        art = self._run._input_artifacts.get(key)  # a recorded version: its reads are checked
        art = art if art is not None and art.get("uri") == url else None
        return get_dataitem(url, key=key, secrets=self.secrets, db=self._db, artifact=art)

    # results, labels, metrics -----------------------------------------------------------------
    def log_result(self, key: str, value: Any, commit: bool = False) -> None:
        """Record a result: a JSON value (a tuple as its list, dict keys as text).

        Raises:
            ParameterError: a value with no exact JSON form (bytes, a set...), naming ``key``.
            RecordTooLargeError: the run DB (an HTTP server's body limit) cannot take a record
                this large in one request; the result is not recorded.
            RunEndedError: the run already ended (a thread writing after the handler returned).
        """
        with self._recorder.writing("result", str(key)):
            self._recorder.set_result(str(key), _jsonable(value, f"result {str(key)!r}:"))
            self._recorder.touch(commit)

    def log_results(self, results: dict[str, Any], commit: bool = False) -> None:
        """Record several results."""
        with self._recorder.writing("results", results):
            for key, value in results.items():
                self._recorder.set_result(str(key), _jsonable(value, f"result {str(key)!r}:"))
            self._recorder.touch(commit)

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """Append a point to metric ``key``'s time series (``step`` defaults to the next one)."""
        with self._recorder.writing("metric", key):
            if key not in self._metric_steps:  # a new key: one every run DB can store
                check_storable(str(key), "metric key")
            if step is None:
                step = self._metric_steps.get(key, -1) + 1
            self._metric_steps[key] = step
            self._recorder.add_metric(key, step, float(_jsonable(value, f"metric {key!r}:")))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Log several metrics at one step."""
        for key, value in metrics.items():
            self.log_metric(key, value, step)

    def set_label(self, key: str, value: Any, replace: bool = True) -> None:
        """Set a label (keeps an existing value when ``replace`` is False)."""
        labels = self._run.metadata.labels
        with self._recorder.writing("label", key):
            if replace or key not in labels:
                labels[check_label_key(key)] = label_value(key, value)
                self._recorder.touch(False)

    def set_annotation(self, key: str, value: Any, replace: bool = True) -> None:
        """Set an annotation."""
        notes = self._run.metadata.annotations
        with self._recorder.writing("annotation", key):
            if replace or key not in notes:
                notes[key] = str(value)
                self._recorder.dirty = True

    # artifacts (stored by the run's ArtifactManager, see _ctx_artifacts.py) -------------------
    def log_artifact(
        self,
        item: Any,
        body: Any = None,
        local_path: str | None = None,
        target_path: str | None = None,
        viewer: str | None = None,
        labels: dict[str, str] | None = None,
        format: str | None = None,
        tag: str | None = None,
        upload: bool = True,
        **kw: Any,
    ) -> Any:
        """Store an artifact (a key with ``body``/``local_path``, or an ``Artifact``); record it."""
        return self._artifact_log.log(
            item, body, local_path, target_path, viewer, labels, format, tag, upload, kw
        )

    def log_dataset(
        self,
        key: str,
        df: Any,
        format: str = "parquet",
        preview: int = 20,
        stats: bool = True,
        labels: dict[str, str] | None = None,
        tag: str | None = None,
        **kw: Any,
    ) -> Any:
        """Store a DataFrame as a dataset artifact with schema, preview and stats."""
        from .artifacts import DatasetArtifact

        art = DatasetArtifact(key, df=df, format=format, preview=preview, stats=stats)
        return self.log_artifact(art, labels=labels, tag=tag, **kw)

    def log_model(
        self,
        key: str,
        model_file: str | None = None,
        body: Any = None,
        metrics: dict[str, Any] | None = None,
        parameters: dict[str, Any] | None = None,
        framework: str = "",
        labels: dict[str, str] | None = None,
        tag: str | None = None,
        model_dir: str | None = None,
        **kw: Any,
    ) -> Any:
        """Store a model file (or body) with its metrics, parameters and framework."""
        from .artifacts import ModelArtifact

        art = ModelArtifact(
            key,
            model_file=model_file,
            body=body,
            metrics=metrics,
            parameters=parameters,
            framework=framework,
            model_dir=model_dir,
        )
        return self.log_artifact(art, labels=labels, tag=tag, **kw)

    # the record (kept by the run's Recorder, see _ctx_recorder.py) ----------------------------
    def commit(self, message: str = "", completed: bool = False) -> None:
        """Flush buffered writes to the run DB now (one transaction)."""
        with self._recorder.writing("a commit"):  # would rewrite the final record
            if message:
                self.logger.info(message)
            self._recorder.commit()

    def to_run_object(self) -> RunObject:
        """Return the run as recorded so far (the live object, not a copy)."""
        return self._run

    def to_dict(self) -> dict[str, Any]:
        """Return the run as a JSON-safe dict (secret values never included)."""
        record: dict[str, Any] = self._recorder.masked(self._run.to_dict())
        return record

    def to_json(self) -> str:
        """Return the run as JSON."""
        return json.dumps(self.to_dict(), default=str)

    def to_yaml(self) -> str:
        """Return the run as YAML (secret values never included)."""
        import yaml

        return str(yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=False))

    def _start(self, handler: Any = None) -> None:
        """Mark the run ``running`` and record it now (runtimes call it before the handler)."""
        self._recorder.start(handler)

    def _finish(self, state: str, error: str = "") -> None:
        """End the run ``state`` and write its final record (see ``Recorder.finish``)."""
        self._recorder.finish(state, error)

    def __enter__(self) -> Context:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        """End a run started by :func:`get_or_create_ctx`: ``completed``, or ``error``."""
        if self._recorder.finished or self._token is None:
            return  # a runtime owns this run's end
        if exc_type is None:
            self._finish("completed")
        else:
            self._finish("error", "".join(traceback.format_exception(exc_type, exc, tb)))
        token, self._token = self._token, None
        try:
            deactivate(token)
        except ValueError:  # activated in another context (thread); nothing to undo here
            pass

    def __repr__(self) -> str:
        return f"<Context {self.name!r} uid={self.uid} iter={self.iteration} state={self.state}>"


MLClientCtx = Context


def _after_fork_in_child() -> None:
    """Fresh locks for every context; each run stays the parent's (writes: ForkedRunError)."""
    for ctx in list(_process.live_contexts):
        ctx._recorder.renew_locks(os.getppid())
    _active.set(None)  # nor is it the child's run: get_or_create_ctx there starts its own
    _capture.set_sink(None)  # (its output is not kept in a copy of the parent's buffers)


_process.at_fork(child=_after_fork_in_child)  # a child printing through the tee takes the log lock


@_process.on_reset
def _clear_active() -> None:
    _active.set(None)


def request_abort(run: RunObject, message: str) -> bool:
    """Ask the live context of ``run`` in this process to stop; return whether one was found.

    Its next log call raises ``KeyboardInterrupt`` (as Ctrl-C would), and the run ends
    ``aborted`` with ``message``.
    """
    meta = run.metadata
    for ctx in list(_process.live_contexts):
        other = ctx._run.metadata
        if (other.uid, other.iteration, other.project) == (meta.uid, meta.iteration, meta.project):
            if not ctx._recorder.finished:
                ctx._recorder.abort_requested = message
                return True
    return False


def get_active_context() -> Context | None:
    """Return the context of the run active in this thread/task, if any."""
    return _active.get()


def activate(ctx: Context | None) -> Any:
    """Make ``ctx`` the active context and route captured output to it; returns a token."""
    sink = ctx._recorder.write_log if ctx is not None else None
    return (_active.set(ctx), _capture.set_sink(sink))


def deactivate(token: Any) -> None:
    """Undo :func:`activate`."""
    _capture.reset_sink(token[1])
    _active.reset(token[0])


def get_or_create_ctx(
    name: str,
    event: Any = None,
    spec: Any = None,
    with_env: bool = True,
    project: str = "",
    db: RunDB | None = None,
) -> Context:
    """Return the active run's context, or start one.

    The context comes from, in order: the run active in this thread or task; ``spec`` (a dict,
    JSON or ``RunTemplate``); ``event`` (an HTTP event whose body is a run spec); the
    ``MLFLOWLET_EXEC_CONFIG`` environment variable set by out-of-process runtimes; else a new run
    recorded in the default run DB, so ``python training.py`` alone is tracked. A context started
    here ends with the process: ``completed``, or ``error`` with the traceback of an uncaught
    exception; or earlier, at the end of a ``with get_or_create_ctx(...) as ctx:`` block.
    """
    active = _active.get()
    if active is not None:
        return active
    run = _new_run(name, event, spec, with_env, project)
    if db is None:
        from .db import get_run_db

        db = get_run_db()
    ctx = Context(run, db)
    try:
        ctx.secrets  # noqa: B018 - fail now on a missing secrets file, naming it
    except SecretsError:
        raise
    ctx._start()
    ctx._token = activate(ctx)
    if event is None:
        _finish_at_exit(ctx)
    return ctx
