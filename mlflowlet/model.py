"""Run and task models: what to run with (``RunTemplate``) and what happened (``RunObject``).

``new_task`` (aliases ``NewTask``, ``NewRun``) builds a ``RunTemplate``; runtimes turn it into a
``RunObject`` that the run DB stores as JSON. The record's fields (``RunMetadata``, ``RunSpec``,
``RunStatus``) are in ``_runfields.py``, re-exported here.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar, cast

from pydantic import Field, PrivateAttr

from ._names import check_label_key, check_project, check_run_name, label_value
from ._runfields import (
    RUN_STATES,
    TERMINAL_STATES,
    RunMetadata,
    RunSpec,
    RunStatus,
    _Model,
    blank,
    dump_sharing,
    new_uid,
    now_iso,
)
from ._seams import RunReader, seam
from .errors import HyperParamError, ParameterError
from .secrets import safe_secret_source

__all__ = [
    "RUN_STATES",
    "TERMINAL_STATES",
    "NewRun",
    "NewTask",
    "RunMetadata",
    "RunObject",
    "RunSpec",
    "RunStatus",
    "RunTemplate",
    "new_task",
    "new_uid",
    "now_iso",
    "safe_secret_source",
]


def _as_dict(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    raise ParameterError(f"{what} must be a dict, got {type(value).__name__}")


_Copied = TypeVar("_Copied", bound="RunTemplate")


class RunTemplate(_Model):
    """A task: the metadata and spec a runtime runs with. Methods chain."""

    kind: str = "run"
    metadata: RunMetadata = Field(default_factory=lambda: blank(RunMetadata))
    spec: RunSpec = Field(default_factory=lambda: blank(RunSpec))
    _handler: Any = PrivateAttr(default=None)  # the function given to new_task, kept in memory
    # spec extra field -> (its value, that value's JSON-safe form): values never changed again
    # (a pipeline's graph), which to_dict shares instead of dumping again (see _share_extra)
    _shared_extra: dict[str, tuple[Any, Any]] = PrivateAttr(default_factory=dict)

    def with_params(self, params: dict[str, Any] | None = None, **kw: Any) -> RunTemplate:
        """Add or replace parameters, from a dict and/or keyword arguments."""
        self.spec.params.update(_as_dict(params, "params"))
        self.spec.params.update(kw)
        return self

    def with_input(self, key: str, url: str) -> RunTemplate:
        """Bind input ``key`` to a URL or path (read by the handler as a ``DataItem``)."""
        self.spec.inputs[key] = str(url)
        return self

    def with_secrets(self, kind: str, source: Any) -> RunTemplate:
        """Add a secrets source: ``('file', path)``, ``('env', 'A,B')``, ``('inline', {...})``."""
        if kind not in ("file", "env", "inline"):
            from .errors import SecretsError

            raise SecretsError(f"unknown secrets kind {kind!r}; use file, env or inline")
        self.spec.secret_sources.append({"kind": kind, "source": source})
        return self

    def set_label(self, key: str, value: Any) -> RunTemplate:
        """Set a label on the runs made from this task."""
        self.metadata.labels[check_label_key(key)] = label_value(key, value)
        return self

    def with_hyper_params(
        self,
        hyper_params: dict[str, list[Any]],
        selector: str | None = None,
        strategy: str = "grid",
        max_iterations: int | None = None,
        max_errors: int | None = None,
        stop_condition: str | None = None,
        parallel: int | None = None,
        seed: int | None = None,
    ) -> RunTemplate:
        """Run once per combination of the hyper-parameters and pick the best by ``selector``.

        The best iteration (the lowest one on a tie) gives the parent run its results and its
        artifact versions (links, not copies): ``latest`` of each of its keys, ``store://``
        references and ``run.artifact(key)`` on the parent then read the best iteration's bytes.
        Without a selector there is no best: ``latest`` of a key is the version recorded last,
        i.e. the iteration that finished last. Every iteration's versions stay listable with
        ``list_artifacts(key, tag='*', iter=n)``.

        Raises:
            HyperParamError: a value that is not a non-empty list, unequal lists for ``list``,
                an unknown strategy, a bad selector or stop condition.
        """
        from .hyper import SweepOptions

        if not isinstance(hyper_params, dict) or not hyper_params:
            raise HyperParamError(
                f"hyper_params must be a non-empty dict of lists, got {hyper_params!r:.80} "
                "(e.g. {'p1': [1, 2, 3]})"
            )
        # The runtime iterates when it runs; starting here checks with the same rules.
        SweepOptions(
            hyper_params=hyper_params, strategy=strategy, max_iterations=max_iterations, seed=seed
        ).iterations()
        self.spec.hyper_params = {k: list(v) for k, v in hyper_params.items()}
        self._set_iteration_options(
            selector, strategy, max_iterations, max_errors, stop_condition, parallel, seed
        )
        return self

    def with_param_file(
        self,
        path: str | None = None,
        selector: str | None = None,
        strategy: str = "list",
        max_iterations: int | None = None,
        max_errors: int | None = None,
        stop_condition: str | None = None,
        parallel: int | None = None,
        *,
        param_file: str | None = None,
    ) -> RunTemplate:
        """Run once per row of a CSV/JSON param file and pick the best by ``selector``.

        ``param_file=`` is accepted as another name for ``path`` (MLRun's spelling).
        """
        path = path if path is not None else param_file
        if path is None:
            raise ParameterError("with_param_file() needs the path of a CSV or JSON file")
        from .hyper import SweepOptions

        SweepOptions(strategy=strategy).checked()
        self.spec.param_file = str(path)
        self._set_iteration_options(
            selector, strategy, max_iterations, max_errors, stop_condition, parallel, None
        )
        return self

    def _set_iteration_options(
        self,
        selector: str | None,
        strategy: str,
        max_it: int | None,
        max_err: int | None,
        stop: str | None,
        parallel: int | None,
        seed: int | None,
    ) -> None:
        from .hyper import SweepOptions  # the rules of sweep options live there, once

        SweepOptions(
            selector=selector,
            max_errors=max_err,
            stop_condition=stop or None,
            parallel=parallel,
        ).checked()
        spec = self.spec
        if selector is not None:
            spec.selector = selector
        spec.strategy, spec.max_iterations, spec.max_errors = strategy, max_it, max_err
        if stop:
            spec.stop_condition = stop
        spec.parallel = parallel
        if seed is not None:
            spec.seed = seed

    def copy(self, **_: Any) -> RunTemplate:
        """Return a deep copy."""
        return self.model_copy(deep=True)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict; inline secret values are reduced to their key names."""
        data = dump_sharing(self, self._shared_extra)
        data["spec"]["secret_sources"] = [safe_secret_source(s) for s in self.spec.secret_sources]
        return data

    def _share_extra(self, name: str, value: Any, jsonable: Any) -> None:
        """Set spec extra ``name`` to ``value``, never changed again; see :func:`dump_sharing`."""
        assert self.spec.model_extra is not None
        self.spec.model_extra[name] = value
        self._shared_extra[name] = (value, jsonable)

    def __deepcopy__(self: _Copied, memo: dict[int, Any] | None = None) -> _Copied:
        copied = super().__deepcopy__(memo)
        copied._shared_extra = {}  # a copy's values are its own to change: dumped in full
        return copied

    def to_json(self) -> str:
        """Return :meth:`to_dict` as JSON."""
        return json.dumps(self.to_dict(), default=str)

    def to_yaml(self) -> str:
        """Return :meth:`to_dict` as YAML."""
        import yaml

        return str(yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=False))


class RunObject(RunTemplate):
    """A run: metadata, spec and status. ``state`` and ``results`` are status shortcuts.

    A run keeps the run DB it was recorded in (in memory: copies share it, pickles keep its URL),
    and :meth:`logs`, :meth:`refresh`, :meth:`metric_history` and :meth:`abort` read it there.
    """

    status: RunStatus = Field(default_factory=lambda: blank(RunStatus))
    _db: Any = PrivateAttr(default=None)  # the RunReader that recorded this run, in this process
    _db_url: str = PrivateAttr(default="")  # its URL, when known (kept by pickles too)
    # input key -> the artifact record of the version it reads (a pipeline step's inputs), so
    # its reads are checked against the record; kept in memory only
    _input_artifacts: dict[str, dict[str, Any]] = PrivateAttr(default_factory=dict)
    # The secret sources of the task, values included, in the process that ran it: they read
    # the artifacts back (store credentials). Private attributes are never dumped or stored.
    _secret_sources: list[dict[str, Any]] = PrivateAttr(default_factory=list)
    # an attempt of a map item that retries: its own directory under the item's (in memory)
    _attempt_dir: str = PrivateAttr(default="")

    def _record_in(self, db: RunReader | None) -> RunObject:
        """Remember ``db`` as the run DB this run is recorded in; returns self."""
        if db is not None:
            self._db, self._db_url = db, getattr(db, "url", "") or self._db_url
        return self

    def _run_db(self, db: RunReader | None = None) -> RunReader:
        if db is not None:
            return db
        kept = self._db
        if kept is not None and not (getattr(kept, "closed", False) and self._db_url):
            return cast(RunReader, kept)  # closed with no URL: it says so itself when read
        return cast(RunReader, seam("run_db")(self._db_url))  # none kept, or closed since

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> RunObject:
        memo = {} if memo is None else memo
        if self._db is not None:  # a copy of the run is recorded in the same DB, not a copy of it
            memo[id(self._db)] = self._db
        return super().__deepcopy__(memo)

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        private = state.get("__pydantic_private__")
        if private and (private.get("_db") is not None or private.get("_shared_extra")):
            # a connection does not travel; an unpickled run's values are its own to change
            state["__pydantic_private__"] = {**private, "_db": None, "_shared_extra": {}}
        return state

    @property
    def uid(self) -> str:
        """The run's uid."""
        return self.metadata.uid

    @property
    def state(self) -> str:
        """``status.state``."""
        return self.status.state

    @property
    def results(self) -> dict[str, Any]:
        """``status.results``."""
        return self.status.results

    @property
    def error(self) -> str:
        """``status.error``."""
        return self.status.error

    @property
    def outputs(self) -> dict[str, Any]:
        """Results and artifact URIs in one dict (results win on a clash)."""
        out: dict[str, Any] = {a["key"]: a.get("uri", "") for a in self.status.artifacts}
        out.update(self.status.results)
        return out

    def output(self, key: str) -> Any:
        """Return result ``key``, else the uri of artifact ``key``."""
        if key in self.status.results:
            return self.status.results[key]
        for art in self.status.artifacts:
            if art.get("key") == key:
                return art.get("uri")
        known = sorted(self.outputs)
        raise ParameterError(f"run {self.uid} has no output {key!r}; outputs: {known}")

    def artifact(self, key: str, verify: bool = False) -> Any:
        """Return artifact ``key`` as a ``DataItem`` on the recorded version.

        Every read checks the stored object against the record (size, mtime or ETag; the full
        sha256 with ``verify=True``) and raises ``ArtifactIntegrityError`` when it differs. On a
        sweep's parent this is the best iteration's version. In the process that ran the task,
        the data item reads with the store credentials of the task's secrets (kept in memory
        only); elsewhere with the environment's.
        """
        for art in self.status.artifacts:
            if art.get("key") == key:
                return seam("dataitem")(
                    art["uri"], key=key, artifact=art, verify=verify, secrets=self._secrets_store()
                )
        keys = [a.get("key") for a in self.status.artifacts]
        raise ParameterError(f"run {self.uid} has no artifact {key!r}; artifacts: {keys}")

    def _secrets_store(self) -> Any:
        if not self._secret_sources:
            return None
        from .secrets import SecretsStore

        return SecretsStore.from_sources(self._secret_sources)

    def logs(self, db: RunReader | None = None) -> str:
        """Return the run's captured output from the run DB."""
        db = self._run_db(db)
        return db.get_log(self.uid, project=self.metadata.project).decode("utf-8", "replace")

    def metric_history(
        self, key: str | None = None, db: RunReader | None = None
    ) -> list[dict[str, Any]]:
        """Return the logged metric series (``key, step, value, time`` dicts)."""
        db = self._run_db(db)
        return db.get_metrics(self.uid, key=key, iter=self.metadata.iteration)

    def show(self, display: bool = True) -> str | None:
        """Print a one-run table (terminal) or return its HTML with ``display=False``."""
        from ._records import RunTable

        return RunTable([self.to_dict()]).show(display=display)

    def abort(self, db: RunReader | None = None, **runtime_options: Any) -> RunObject:
        """Stop the run where it runs and mark it ``aborted`` (any run the run DB knows).

        A Kubernetes run's workload is deleted, with its pods and Secret. A run in a process on
        this host (local, subprocess, a tracked script, a pipeline) gets SIGINT, as Ctrl-C would
        send, and ends ``aborted`` there; a run in this process stops at its next log call. A run
        whose process cannot be reached (another host, already gone) is marked ``aborted``.

        Args:
            db: the run DB to record it in (default: the one that recorded the run).
            **runtime_options: ``timeout=`` (seconds to wait for a signalled process, default
                10); for Kubernetes runs ``namespace=``, ``batch_api=``, ``core_api=``,
                ``custom_api=`` (by default read from the run).

        Returns:
            The run as recorded afterwards: ``aborted`` (or ``completed`` when it finished
            before the signal reached it).

        Raises:
            ConfigError: the run already ended.
            NotFoundError: the run DB does not know the run.
        """
        return cast(RunObject, seam("abort")(self, self._run_db(db), **runtime_options))

    def refresh(self, db: RunReader | None = None) -> RunObject:
        """Reload the run from the run DB."""
        db = self._run_db(db)
        meta = self.metadata
        run = RunObject.model_validate(
            db.read_run(self.uid, project=meta.project, iter=meta.iteration)
        )
        run._db_url = self._db_url
        run._record_in(db)._secret_sources = self._secret_sources
        return run

    def __str__(self) -> str:
        return repr(self)

    def __repr__(self) -> str:
        return f"<RunObject {self.metadata.name!r} uid={self.uid} state={self.state}>"

    def _repr_html_(self) -> str:
        """Show the run in Jupyter: state, params, results, artifact links, metric sparklines."""
        from ._html import run_card

        return run_card(self.to_dict(), self._metric_points(), self._db_url)

    def _metric_points(self) -> dict[str, list[tuple[float, float]]]:
        """Return the logged metric series by key, from the run DB that recorded the run."""
        from .errors import MlflowletError

        if not self._db_url:  # unknown DB: opening the default one could create a file
            return {}
        try:
            rows = self.metric_history()
        except (MlflowletError, OSError):
            return {}
        series: dict[str, list[tuple[float, float]]] = {}
        for row in rows:
            value, step = row.get("value"), row.get("step")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                points = series.setdefault(row["key"], [])
                points.append((float(len(points) if step is None else step), float(value)))
        return series


def new_task(
    name: str | None = None,
    project: str | None = None,
    handler: Any = None,
    params: dict[str, Any] | None = None,
    inputs: dict[str, str] | None = None,
    outputs: list[str] | None = None,
    secrets: Any = None,
    labels: dict[str, Any] | None = None,
    hyper_params: dict[str, list[Any]] | None = None,
    param_file: str | None = None,
    selector: str | None = None,
    strategy: str | None = None,
    artifact_path: str | None = None,
    base: RunTemplate | None = None,
    strict: bool | None = None,
) -> RunTemplate:
    """Create a task (``RunTemplate``) to run with a runtime.

    Args:
        name: run name (default: the handler's name); no path separator, NUL or control
            characters.
        project: project name (default from settings): a DNS-1123 label.
        handler: a function or ``'module:function'`` / function name.
        params: parameters bound to the handler's arguments.
        inputs: input key to URL/path, read as ``DataItem``.
        outputs: declared output keys.
        secrets: a list of ``{'kind', 'source'}`` dicts, or a ``(kind, source)`` pair.
        labels: labels set on the runs.
        hyper_params: dict of lists, one run per combination.
        param_file: CSV/JSON file of parameter rows.
        selector: ``'min.loss'`` / ``'max.accuracy'`` picks the best iteration (the lowest on a
            tie), whose artifact versions become the parent's and ``latest``.
        strategy: ``grid`` (default), ``list`` or ``random``.
        artifact_path: where artifacts are written.
        base: a template to copy and extend.
        strict: ``False`` lets params that name no handler parameter through (the handler
            reads them with ``context.get_param``); by default they are an error naming the
            parameters the handler accepts. ``run(strict=...)`` overrides it.

    Returns:
        The task.
    """
    task = base.copy() if base is not None else blank(RunTemplate)
    if name:
        task.metadata.name = check_run_name(name)
    if project:
        task.metadata.project = check_project(project)
    if handler is not None:
        task.spec.handler = handler if isinstance(handler, str) else handler.__name__
        if callable(handler):
            task._handler = handler
        if not task.metadata.name and not isinstance(handler, str):
            task.metadata.name = handler.__name__
    if params:
        task.with_params(params)
    for key, url in (inputs or {}).items():
        task.with_input(key, url)
    if outputs:
        task.spec.outputs = list(outputs)
    if secrets:
        if isinstance(secrets, tuple):
            secrets = [{"kind": secrets[0], "source": secrets[1]}]
        for src in secrets:
            task.with_secrets(src["kind"], src["source"])
    for key, value in (labels or {}).items():
        task.set_label(key, value)
    if hyper_params:
        task.with_hyper_params(hyper_params, selector=selector, strategy=strategy or "grid")
    elif param_file:
        task.with_param_file(param_file, selector=selector, strategy=strategy or "list")
    elif selector:
        task._set_iteration_options(selector, strategy or "", None, None, None, None, None)
    if artifact_path:
        task.spec.artifact_path = artifact_path
    if strict is not None:
        task.spec.strict = bool(strict)
    return task


NewTask = NewRun = new_task  # aliases (MLRun's names)
