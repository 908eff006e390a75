"""The run context handlers log through, and :func:`get_or_create_ctx`.

Writes (results, labels, metrics, artifact records, captured output) are buffered and flushed to
the run DB in one transaction at each state change, at most every ``flush_interval`` seconds during
a long run, and on :meth:`Context.commit`.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import time
import traceback
import weakref
from contextvars import ContextVar
from typing import Any

from . import _capture
from ._provenance import git_info, host_facts
from .errors import ConfigError, SecretsError
from .model import RunObject, new_uid, now_iso

_active: ContextVar[Context | None] = ContextVar("mlflowlet_active_run", default=None)
_live: weakref.WeakSet[Context] = weakref.WeakSet()  # for fresh locks in a forked child


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return _jsonable(item())
        except (TypeError, ValueError):
            pass
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return _jsonable(tolist())
    return str(value)


class Context:
    """What a handler logs through: params, inputs, secrets, results, metrics, artifacts, logger.

    Args:
        run: the run this context records.
        db: the run DB (``None`` keeps everything in memory, e.g. on a Dask worker).
        secrets: a ``SecretsStore``; built from the run's secret sources when omitted.
    """

    def __init__(self, run: RunObject, db: Any = None, secrets: Any = None) -> None:
        self._run = run
        self._db = db
        if db is not None:
            run._db_url = getattr(db, "url", "") or ""
        self._secrets = secrets
        self._pending_artifacts: list[dict[str, Any]] = []
        self._pending_metrics: list[tuple] = []
        self._log: list[str] = []
        self._log_lock = threading.Lock()
        self._commit_lock = threading.Lock()
        _live.add(self)
        self._deferred: dict[str, Any] | None = None  # the start record not yet written
        self._last_flush = time.monotonic()
        self._flush_interval = 1.0
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
    def artifact_path(self) -> str:
        """Directory (or URL) where this run's artifacts are written."""
        spec, meta = self._run.spec, self._run.metadata
        base = spec.artifact_path
        if base:
            base = base.replace("{{run.uid}}", meta.uid).replace("{{run.project}}", meta.project)
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
            self._inputs[key] = item
        if key not in self._inputs:
            self._inputs[key] = self._dataitem(key, self._run.spec.inputs[key])
        return self._inputs[key]

    def _dataitem(self, key: str, url: str) -> Any:
        from .datastore import get_dataitem

        return get_dataitem(url, key=key, secrets=self.secrets, db=self._db)

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
            labels[key] = str(value)

    def set_annotation(self, key: str, value: Any, replace: bool = True) -> None:
        """Set an annotation."""
        notes = self._run.metadata.annotations
        if replace or key not in notes:
            notes[key] = str(value)

    # artifacts --------------------------------------------------------------------------------
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
        if self._manager is None:
            from .artifacts import ArtifactManager

            self._manager = ArtifactManager(self.artifact_path)
        meta = self._run.metadata
        art = self._manager.log(
            item,
            body=body,
            local_path=local_path,
            target_path=target_path,
            viewer=viewer,
            labels=labels,
            format=format,
            tag=tag,
            upload=upload,
            producer={
                "uid": meta.uid,
                "name": meta.name,
                "iteration": meta.iteration,
                "kind": "run",
            },
            project=meta.project,
            tree=self._run.spec.pipeline_uid or meta.uid,
            iteration=meta.iteration,
            secrets=self._secrets,
            **kw,
        )
        record = art.to_dict()
        arts = self._run.status.artifacts
        arts[:] = [a for a in arts if a.get("key") != record["key"]]
        arts.append(record)
        self._pending_artifacts.append(record)
        self._maybe_flush(False)
        return art

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

    # persistence ------------------------------------------------------------------------------
    def _write_log(self, text: str) -> None:
        with self._log_lock:
            self._log.append(text)

    def _maybe_flush(self, force: bool) -> None:
        if force or time.monotonic() - self._last_flush >= self._flush_interval:
            self.commit()

    def commit(self, message: str = "", completed: bool = False) -> None:
        """Flush buffered writes to the run DB now (one transaction)."""
        if message:
            self.logger.info(message)
        run = self._run
        run.status.last_update = now_iso()
        self._last_flush = time.monotonic()
        if self._db is None:
            return
        with self._log_lock:
            log, self._log = "".join(self._log), []
        record = self._run.to_dict()
        secrets = self._mask_store()
        if secrets is not None:
            log, record = secrets.mask(log), _masked(record, secrets.mask)
        arts, self._pending_artifacts = self._pending_artifacts, []
        metrics, self._pending_metrics = self._pending_metrics, []
        with self._commit_lock:
            self._deferred = None  # this record supersedes the start record
            self._db.commit_run(record, arts, metrics, log.encode())

    def _flush_deferred_start(self) -> None:
        """Write the start record of a run still going (called by the deferred-start thread)."""
        with self._commit_lock:
            record, self._deferred = self._deferred, None
            if record is not None and not self._finished:
                self._db.commit_run(record)

    def _mask_store(self) -> Any:
        """Return the secrets store when the run has secret values to hide, else None."""
        if self._secrets is None and self._run.spec.secret_sources:
            try:
                self.secrets  # noqa: B018 - read the sources now: output may quote their values
            except SecretsError:  # reported by _start; nothing was read, so nothing to hide
                return None
        return self._secrets if self._secrets is not None and len(self._secrets) else None

    def _start(self, handler: Any = None, defer: bool = False) -> None:
        """Mark the run ``running`` and record it; ``defer`` writes it only if it lasts.

        With ``defer`` the ``running`` record is written after ``flush_interval`` seconds if the
        run has not committed by then (a run that ends sooner costs one transaction, not two).
        """
        status, meta = self._run.status, self._run.metadata
        if self._run.spec.secret_sources:
            self.secrets  # noqa: B018 - a missing secrets file fails the run now, naming it
        facts = host_facts()
        status.host, status.python_version = facts["host"], facts["python_version"]
        meta.owner = meta.owner or facts["owner"]
        if handler is not None:
            from ._binding import code_hash

            status.code_hash = code_hash(handler)
        if not status.git:
            status.git = git_info(_source_dir(handler))
        status.state = "running"
        status.start_time = status.start_time or now_iso()
        _capture.install()
        from .settings import get_settings

        self._flush_interval = get_settings().flush_interval
        if not defer or self._db is None:
            self.commit()
            return
        from ._flush import deferred_starts

        status.last_update = now_iso()
        self._deferred = self.to_dict()  # masked when the run has secrets
        deferred_starts.add(self, self._flush_interval)

    def _finish(self, state: str, error: str = "") -> None:
        status = self._run.status
        status.state = state
        if error:
            secrets = self._mask_store()
            status.error = error = secrets.mask(error) if secrets is not None else error
            self._write_log(error if error.endswith("\n") else error + "\n")
        status.end_time = now_iso()
        self._finished = True
        secrets = self._mask_store()
        if secrets is not None:  # the returned run matches its DB record: no secret values
            spec, meta = self._run.spec, self._run.metadata
            status.results = _masked(status.results, secrets.mask)
            spec.params = _masked(spec.params, secrets.mask)
            meta.labels = _masked(meta.labels, secrets.mask)
            meta.annotations = _masked(meta.annotations, secrets.mask)
        self.commit()

    def to_run_object(self) -> RunObject:
        """Return the run as recorded so far (the live object, not a copy)."""
        return self._run

    def to_dict(self) -> dict[str, Any]:
        """Return the run as a JSON-safe dict (secret values never included)."""
        record = self._run.to_dict()
        secrets = self._mask_store()
        return _masked(record, secrets.mask) if secrets is not None else record

    def to_json(self) -> str:
        """Return the run as JSON."""
        return json.dumps(self.to_dict(), default=str)

    def to_yaml(self) -> str:
        """Return the run as YAML (secret values never included)."""
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=False)

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
    for ctx in list(_live):
        ctx._log_lock, ctx._commit_lock = threading.Lock(), threading.Lock()


if hasattr(os, "register_at_fork"):  # a child printing through the tee takes the log lock
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _masked(value: Any, mask: Any) -> Any:
    """Return ``value`` with every string passed through ``mask`` (secret values hidden)."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: _masked(v, mask) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v, mask) for v in value]
    return value


def _source_dir(handler: Any) -> str:
    import inspect  # a wrapped handler (functools.wraps) lives where the function it wraps does

    code = getattr(inspect.unwrap(handler) if handler is not None else None, "__code__", None)
    path = code.co_filename if code is not None else (sys.argv[0] if sys.argv else "")
    if not path or path.startswith("<"):
        return os.getcwd()
    return os.path.dirname(os.path.abspath(path))


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


def _run_from(event: Any, spec: Any, with_env: bool) -> RunObject | None:
    if spec is not None:
        if isinstance(spec, RunObject):
            return spec
        data = spec.to_dict() if hasattr(spec, "to_dict") else spec
        if isinstance(data, (str, bytes)):
            data = json.loads(data)
        return RunObject.model_validate(data)
    if event is not None:
        body = getattr(event, "body", event)
        if isinstance(body, (str, bytes)):
            body = json.loads(body or b"{}")
        if body:
            return RunObject.model_validate(body)
    if with_env:
        from .settings import get_settings

        config = get_settings().exec_config
        if config:
            return with_exec_secrets(RunObject.model_validate(json.loads(config)))
    return None


EXEC_SECRETS_ENV = "MLFLOWLET_EXEC_SECRETS"


def with_exec_secrets(run: RunObject) -> RunObject:
    """Give ``run`` the inline secret values a parent process handed over out of band.

    Out-of-process runtimes keep inline secret values out of ``MLFLOWLET_EXEC_CONFIG`` (and so out
    of the run DB) and pass them as a JSON object in ``MLFLOWLET_EXEC_SECRETS``. The variable is
    removed from the environment once read, so the values go no further than this run.

    Raises:
        SecretsError: the variable does not hold a JSON object.
    """
    raw = os.environ.pop(EXEC_SECRETS_ENV, "")
    if not raw:
        return run
    try:
        values = json.loads(raw)
    except ValueError:
        values = None
    if not isinstance(values, dict):  # never quote the text: it holds secrets
        raise SecretsError(f"{EXEC_SECRETS_ENV} must hold a JSON object of secret names to values")
    sources, placed = run.spec.secret_sources, False
    for i, src in enumerate(sources):
        if src.get("kind") == "inline" and src.get("source") is None:
            keys = src.get("keys") or list(values)
            sources[i] = {"kind": "inline", "source": {k: values[k] for k in keys if k in values}}
            placed = True
    if not placed:
        sources.append({"kind": "inline", "source": values})
    return run


def get_or_create_ctx(
    name: str,
    event: Any = None,
    spec: Any = None,
    with_env: bool = True,
    project: str = "",
    db: Any = None,
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


def _finish_at_exit(ctx: Context) -> None:
    previous_hook = sys.excepthook

    def on_uncaught(exc_type, exc, tb):  # type: ignore[no-untyped-def]
        if not ctx._finished:
            text = "".join(traceback.format_exception(exc_type, exc, tb))
            ctx._finish("error", text)
        previous_hook(exc_type, exc, tb)

    def at_exit() -> None:
        if not ctx._finished:
            ctx._finish("completed")

    sys.excepthook = on_uncaught
    atexit.register(at_exit)
