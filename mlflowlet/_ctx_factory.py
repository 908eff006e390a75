"""How :func:`mlflowlet.context.get_or_create_ctx` finds its run and ends a script's run.

Private to :mod:`mlflowlet.context`: the run from a spec, an event or ``MLFLOWLET_EXEC_CONFIG``
(with the inline secrets handed over in ``MLFLOWLET_EXEC_SECRETS``), and the at-exit/excepthook
finishing of a run a script started.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import traceback
from typing import Any, Protocol

from ._ctx_recorder import Recorder
from ._names import check_label_key, check_project, check_run_name, label_value
from ._runfields import blank
from .errors import SecretsError
from .model import RunObject, new_uid


class _Finishable(Protocol):
    """What ending a script's run needs of its ``Context`` (this module sits below it)."""

    _recorder: Recorder

    def _finish(self, state: str, error: str = "") -> None: ...


def _new_run(name: str, event: Any, spec: Any, with_env: bool, project: str) -> RunObject:
    """Return the run ``get_or_create_ctx`` starts: from a spec, an event, the env, else new.

    Its uid, name and project are filled in and checked, and so are its label keys.
    """
    run = _run_from(event, spec, with_env)
    if run is None:
        from .settings import get_settings

        run = blank(RunObject)  # no validator built (issue 18)
        run.metadata.project = project or get_settings().project
    meta = run.metadata
    meta.uid = meta.uid or new_uid()
    meta.name = meta.name or name
    meta.project = meta.project or project or "default"
    check_project(meta.project)
    check_run_name(meta.name)
    for key, value in meta.labels.items():
        label_value(check_label_key(key), value)
    return run


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


def _finish_at_exit(ctx: _Finishable) -> None:
    previous_hook = sys.excepthook

    def on_uncaught(exc_type, exc, tb):  # type: ignore[no-untyped-def]
        if not ctx._recorder.finished and issubclass(exc_type, KeyboardInterrupt):
            from ._interrupt import reason

            ctx._finish("aborted", reason(exc))
        elif not ctx._recorder.finished:
            text = "".join(traceback.format_exception(exc_type, exc, tb))
            ctx._finish("error", text)
        previous_hook(exc_type, exc, tb)

    def at_exit() -> None:
        if not ctx._recorder.finished:
            ctx._finish("completed")

    sys.excepthook = on_uncaught
    atexit.register(at_exit)
    from ._interrupt import on_sigterm

    on_sigterm()  # SIGTERM ends the script's run aborted, as Ctrl-C does
