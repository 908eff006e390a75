"""Host one handler as an HTTP function (``mlflowlet serve module:handler``), Nuclio style.

``POST /`` (or ``PUT /``) with a run spec JSON runs the handler in a context of its own and
answers with the run JSON; ``?envelope=1`` answers ``{"run", "log", "metrics", "artifacts"}`` so
the remote runtime can record everything in its own run DB. Handlers written as
``handler(context, event)`` get an :class:`Event`; ``get_or_create_ctx(name, event=event)`` inside
them returns the request's context. Requests run concurrently, each in a thread with its own
context (a ``ContextVar``), so their results and output never mix.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

from ..errors import ConfigError
from ._middleware import DEFAULT_MAX_BODY

if TYPE_CHECKING:
    from ..db.base import RunDB


class Event:
    """What a handler written as ``handler(context, event)`` receives.

    Attributes:
        body: the parsed JSON body (a dict), as Nuclio gives a JSON body.
        headers: the request headers (credentials hidden: ``authorization`` reads
            ``Bearer ***``; the server checked them).
        method: ``POST`` or ``PUT``.
        path: the request path.
    """

    def __init__(self, body: Any, headers: dict[str, str], method: str, path: str) -> None:
        self.body, self.headers, self.method, self.path = body, headers, method, path

    def __repr__(self) -> str:
        return f"<Event {self.method} {self.path}>"


class _Recorder:
    """The run DB a served handler's context writes to: keeps what it logs for the response.

    Everything is also forwarded to ``inner`` (a real run DB) when the function has one.
    """

    def __init__(self, inner: Any = None, artifact_root: str = "") -> None:
        self._inner, self._root = inner, artifact_root
        self.run: dict[str, Any] = {}
        self.artifacts: dict[str, dict[str, Any]] = {}
        self.metrics: list[list[Any]] = []
        self.log: list[bytes] = []

    @property
    def url(self) -> str:
        return getattr(self._inner, "url", "") or ""

    @property
    def artifact_root(self) -> str:
        return self._root or (self._inner.artifact_root if self._inner is not None else "")

    def commit_run(
        self,
        run: dict[str, Any],
        artifacts: Iterable[dict[str, Any]] = (),
        metrics: Iterable[tuple] = (),
        log: bytes = b"",
    ) -> None:
        artifacts, metrics = list(artifacts), list(metrics)
        self.run = run
        self.artifacts.update({a["key"]: a for a in artifacts})
        self.metrics += [list(m) for m in metrics]
        if log:
            self.log.append(log)
        if self._inner is not None:
            self._inner.commit_run(run, artifacts, metrics, log)

    def __getattr__(self, name: str) -> Any:  # store:// inputs read through the real DB
        if self._inner is None:
            raise AttributeError(
                f"this HTTP function has no run DB for {name}(); start it with "
                "--db or MLFLOWLET_DBPATH"
            )
        return getattr(self._inner, name)


def execute(
    fn: Any, body: Any, event: Event | None = None, db: RunDB | None = None, artifact_root: str = ""
) -> dict[str, Any]:
    """Run ``fn`` for one request body (a run spec dict) and return the envelope.

    Returns:
        ``{"run": run dict, "log": text, "metrics": rows, "artifacts": records}``; a handler
        that raises gives a run in state ``error`` whose ``status.error`` is the traceback.

    Raises:
        ConfigError: the body is not a run spec.
        OutsideRootError: the spec's project, uid, artifact path, inputs or file secrets lead
            outside ``artifact_root``.
    """
    from ..context import Context
    from ..model import RunObject, new_uid
    from ..runtimes.local import call_handler

    if body in (None, b"", ""):
        body = {}
    if not isinstance(body, dict):
        raise ConfigError(
            "the request body must be a JSON object: a run spec "
            '({"metadata": {...}, "spec": {"params": {...}}})'
        )
    try:
        run = RunObject.model_validate(body)
    except ValueError as exc:
        raise ConfigError(f"the request body is not a run spec: {exc}") from None
    meta = run.metadata
    meta.uid = meta.uid or new_uid()
    meta.name = meta.name or getattr(fn, "__name__", "handler")
    meta.project = meta.project or "default"
    meta.labels.setdefault("kind", "remote")
    if not run.spec.handler:  # recorded as an in-process run records it: 'module:function'
        from ..runtimes.base import _qualname

        run.spec.handler = _qualname(fn)
    run.status.state = "created"
    if artifact_root:
        from ._confine import confine_run

        confine_run(run, artifact_root)  # before the handler: nothing runs for a bad request
    recorder = _Recorder(db, artifact_root)
    ctx = Context(run, cast("RunDB", recorder))  # records like a run DB: the response carries it
    try:  # a failure is the run's, sent to the caller
        call_handler(ctx, lambda: fn, {"event": event})
    except KeyboardInterrupt:  # raised by code in a request thread (the handler, an abort asked
        pass  # elsewhere), never the server's Ctrl-C: the run is recorded aborted, and answered
    return {
        "run": recorder.run or ctx.to_dict(),
        "log": b"".join(recorder.log).decode("utf-8", "replace"),
        "metrics": recorder.metrics,
        "artifacts": list(recorder.artifacts.values()),
    }


def create_function_app(
    handler: Any,
    db: RunDB | str | None = None,
    token: str | None = None,
    artifact_root: str = "",
    max_body: int = DEFAULT_MAX_BODY,
    max_concurrency: int = 32,
) -> Any:
    """Build the ASGI app of ``mlflowlet serve``.

    Args:
        handler: the function, or ``'module:function'`` / ``'file.py:function'``.
        db: a run DB (or URL) the function also records into; None keeps runs only in responses.
        token: bearer token callers must send; None reads ``MLFLOWLET_API_TOKEN``; empty: none.
        artifact_root: where the handler's artifacts are written, and the only place a request
            may make it write or read files (default: the DB's root, ``MLFLOWLET_ARTIFACT_PATH``,
            else ``./artifacts``).
        max_body: largest accepted request body in bytes (413 above).
        max_concurrency: requests running the handler at once (more wait their turn).

    Returns:
        The FastAPI app.
    """
    from .._binding import resolve_handler
    from .app import require_fastapi

    require_fastapi()
    from ._function_app import build_function_app

    fn = resolve_handler(handler)
    if isinstance(db, str):
        from ..db import get_run_db

        db = get_run_db(db)
    from ..settings import get_settings

    if token is None:
        token = get_settings().api_token
    root = artifact_root or (db.artifact_root if db is not None else "")
    root = root or get_settings().artifact_path or "artifacts"
    root = root[len("file://") :] if root.startswith("file://") else root
    root = root if "://" in root else os.path.abspath(root)
    return build_function_app(fn, db, token or "", root, max_body, max_concurrency)
