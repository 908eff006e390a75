"""The run context handlers log through, and :func:`get_or_create_ctx`.

Writes (results, labels, metrics, artifact records, captured output) are buffered and written to
the run DB in one transaction at each state change, on :meth:`Context.commit`, and by the flush
thread (``_flush.py``) within ``flush_interval`` seconds of being logged, whatever comes next.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from . import _capture, _process
from ._ctx_artifacts import _ArtifactLogging
from ._ctx_factory import EXEC_SECRETS_ENV as EXEC_SECRETS_ENV
from ._ctx_factory import _finish_at_exit, _run_from
from ._ctx_factory import with_exec_secrets as with_exec_secrets
from ._ctx_persist import _jsonable, _Persistence
from ._ctx_workflow import SPEC_FIELD as WORKFLOW_FIELD
from ._ctx_workflow import WorkflowInfo
from ._names import check_label_key, check_project, check_run_name
from .errors import ConfigError, SecretsError
from .model import RunObject, new_uid

if TYPE_CHECKING:
    from .db.base import RunDB

_active: ContextVar[Context | None] = ContextVar("mlflowlet_active_run", default=None)


class Context(_ArtifactLogging, _Persistence):
    """What a handler logs through: params, inputs, secrets, results, metrics, artifacts, logger.

    Args:
        run: the run this context records.
        db: the run DB (``None`` keeps everything in memory, e.g. on a Dask worker).
        secrets: a ``SecretsStore``; built from the run's secret sources when omitted.
    """

    def __init__(self, run: RunObject, db: RunDB | None = None, secrets: Any = None) -> None:
        self._run = run
        self._db = db
        run._record_in(db)
        self._secrets = secrets
        self._pending_artifacts: list[dict[str, Any]] = []
        self._pending_metrics: list[tuple[str, int, float, float]] = []
        self._log: list[str] = []
        self._log_held = ""
        self._log_lock = threading.Lock()  # guards the buffers: log, pending artifacts, metrics
        self._commit_lock = threading.Lock()  # one DB write at a time, snapshot to commit
        _process.live_contexts.add(self)  # interrupts, aborts and forks find it there
        self._dirty = False
        self._last_flush = time.monotonic()
        self._flush_interval = 1.0
        self._heartbeat_every = 30.0
        self._final_written = False
        self._recorded = False
        self._flush_error = ""
        self._abort_requested = ""  # set by request_abort: the next log call stops the handler
        self._metric_steps: dict[str, int] = {}
        self._inputs: dict[str, Any] = {}
        self._manager: Any = None
        self._finished = False
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
        a hyper-parameter iteration adds ``/<iteration>``. Runs sharing an ``artifact_path``
        therefore never share a file.
        """
        spec, meta = self._run.spec, self._run.metadata
        check_run_name(meta.uid, "run uid")  # both become directories under the root
        if meta.project:
            check_project(meta.project)
        base = spec.artifact_path
        if base:
            base = base.replace("{{run.uid}}", meta.uid).replace("{{run.project}}", meta.project)
            if meta.uid and meta.uid not in base.replace("\\", "/").split("/"):
                base = f"{base.rstrip('/')}/{meta.uid}"
        else:
            from .settings import get_settings

            root = get_settings().artifact_path
            root = root or (self._db.artifact_root if self._db is not None else "")
            root = root or os.path.join(os.getcwd(), "artifacts")
            base = f"{root.rstrip('/')}/{meta.project}/{meta.uid}"
        if meta.iteration:
            base = f"{base.rstrip('/')}/{meta.iteration}"
        return base if "://" in base else os.path.abspath(base)

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
        if self._secrets is None:
            from .secrets import SecretsStore

            self._secrets = SecretsStore.from_sources(self._run.spec.secret_sources)
        return self._secrets

    # params, secrets, inputs ------------------------------------------------------------------
    def get_param(self, key: str, default: Any = None) -> Any:
        """Return param ``key``; a missing key records ``default`` into the run's params."""
        params = self._run.spec.params
        if key not in params:
            params[key] = default
            self._dirty = True
        return params[key]

    def get_secret(self, key: str) -> Any:
        """Return a secret value (never stored or logged)."""
        return self.secrets.get(key)

    def get_input(self, key: str, url: str | None = None) -> Any:
        """Return input ``key`` as a ``DataItem``.

        ``url`` adds or replaces the input; a key the run was not given is read as a URL itself
        (``get_input('infile.txt')`` reads the local file, as in MLRun), and recorded as an input.
        """
        if url is None and key not in self._run.spec.inputs:
            url = key
        if url is not None:
            item = self._dataitem(key, str(url))  # a URL it refuses is never recorded
            self._run.spec.inputs[key] = str(url)
            self._dirty = True
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
        """Record a scalar (or JSON-able) result."""
        self._run.status.results[str(key)] = _jsonable(value)
        self._maybe_flush(commit)

    def log_results(self, results: dict[str, Any], commit: bool = False) -> None:
        """Record several results."""
        for key, value in results.items():
            self._run.status.results[str(key)] = _jsonable(value)
        self._maybe_flush(commit)

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """Append a point to metric ``key``'s time series (``step`` defaults to the next one)."""
        if step is None:
            step = self._metric_steps.get(key, -1) + 1
        self._metric_steps[key] = step
        value = float(_jsonable(value))
        with self._log_lock:
            self._pending_metrics.append((key, step, value, time.time()))
        self._run.status.metrics[key] = value
        self._maybe_flush(False)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Log several metrics at one step."""
        for key, value in metrics.items():
            self.log_metric(key, value, step)

    def set_label(self, key: str, value: Any, replace: bool = True) -> None:
        """Set a label (keeps an existing value when ``replace`` is False)."""
        labels = self._run.metadata.labels
        if replace or key not in labels:
            labels[check_label_key(key)] = str(value)
            self._maybe_flush(False)

    def set_annotation(self, key: str, value: Any, replace: bool = True) -> None:
        """Set an annotation."""
        notes = self._run.metadata.annotations
        if replace or key not in notes:
            notes[key] = str(value)
            self._dirty = True

    def __enter__(self) -> Context:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        """End a run started by :func:`get_or_create_ctx`: ``completed``, or ``error``."""
        if self._finished or self._token is None:
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
    """Give every context fresh locks: a thread of the parent may have held one at the fork."""
    for ctx in list(_process.live_contexts):
        ctx._log_lock, ctx._commit_lock = threading.Lock(), threading.Lock()


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
            if not ctx._finished:
                ctx._abort_requested = message
                return True
    return False


def get_active_context() -> Context | None:
    """Return the context of the run active in this thread/task, if any."""
    return _active.get()


def activate(ctx: Context | None) -> Any:
    """Make ``ctx`` the active context and route captured output to it; returns a token."""
    return (_active.set(ctx), _capture.set_sink(ctx._write_log if ctx is not None else None))


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
    run = _run_from(event, spec, with_env)
    if run is None:
        from .settings import get_settings

        run = RunObject()
        run.metadata.project = project or get_settings().project
    meta = run.metadata
    meta.uid = meta.uid or new_uid()
    meta.name = meta.name or name
    meta.project = meta.project or project or "default"
    check_project(meta.project)
    check_run_name(meta.name)
    for key in meta.labels:
        check_label_key(key)
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
