"""The local runtime: runs a handler in this process, in a context of its own."""

from __future__ import annotations

import os
import sys
import threading
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._binding import bind, resolve_handler
from ..context import Context, activate, deactivate
from ..errors import ConfigError
from ..model import RunObject
from .base import Runtime

if TYPE_CHECKING:
    from ..db.base import RunDB


class LocalRuntime(Runtime):
    """Runs the handler in-process; hyper-parameter iterations run in threads with ``parallel=N``.

    ``command`` may name where the handler lives: ``'module:function'``, ``'file.py:function'`` or
    a module/file with the function given as ``handler=``. A ``.py`` script or ``.ipynb``
    notebook with no handler runs as a whole (:class:`ScriptHandler`).
    """

    kind = "local"
    runs_in_process = True

    def _resolve(self, run: RunObject, handler: Any) -> Any:
        if callable(handler):
            return handler
        target = handler or run.spec.handler
        command = self.command
        if not target and ":" in command:
            return resolve_handler(command)
        if not target and command.split(" ", 1)[0].endswith((".py", ".ipynb")):
            return ScriptHandler(command.split(" ", 1)[0])
        if not target:
            raise ConfigError(
                "the local runtime needs a handler: run(handler=fn) or new_runner('module:fn')"
            )
        return resolve_handler(target, command)

    def _execute(self, run: RunObject, handler: Any, db: RunDB) -> RunObject:
        ctx = Context(run, db)
        call_handler(ctx, lambda: self._resolve(run, handler))
        return ctx.to_run_object()

    @staticmethod
    def _default_parallel() -> int:
        return 1


def call_handler(
    ctx: Context,
    resolve: Callable[[], Any],
    extra: dict[str, Any] | None = None,
) -> None:
    """Run a handler in ``ctx`` (made the active context) and finish the run.

    The run ends ``completed`` (the return value logged), ``error`` (the traceback; a failure
    to resolve or bind the handler counts too) or ``aborted`` on Ctrl-C, which propagates.

    Args:
        ctx: the run's context.
        resolve: returns the handler (called inside, so its failure is the run's).
        extra: arguments offered to the handler when it declares them and the params do not
            set them (``event`` for HTTP functions).
    """
    token = activate(ctx)
    try:
        try:
            fn = resolve()
            try:
                kwargs = _bind(ctx, fn, extra)
            finally:  # a binding failure is recorded with the run's host and code hash too
                ctx._start(fn)
            log_return(ctx, fn(**kwargs))
        except KeyboardInterrupt as exc:
            from .._interrupt import reason

            ctx._finish("aborted", reason(exc))
            raise
        except BaseException as exc:  # the handler's failure is the run's, not ours
            if isinstance(exc, SystemExit) and exc.code in (0, None):
                ctx._finish("completed")
            else:
                ctx._finish("error", _format_error(exc))
        else:
            ctx._finish("completed")
    finally:
        deactivate(token)


def _bind(ctx: Context, fn: Any, extra: dict[str, Any] | None) -> dict[str, Any]:
    """Bind the run's params and inputs to ``fn``; record the params it receives (defaults too)."""
    spec = ctx._run.spec
    kwargs, effective = bind(
        fn, ctx, spec.params, spec.inputs, spec.strict, ctx._dataitem, offered=extra
    )
    spec.params = effective
    return kwargs


def log_return(ctx: Context, value: Any) -> None:
    """Log a handler's return value: a dict logs each key, anything else non-None as ``return``."""
    if value is None:
        return
    if isinstance(value, dict):
        ctx.log_results(value)
    else:
        ctx.log_result("return", value)


def _format_error(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if os.environ.get("MLFLOWLET_SHORT_TRACEBACK"):
        return f"{type(exc).__name__}: {exc}"
    return text


class ScriptHandler:
    """A script (or notebook) run as ``__main__`` in the active run, as a handler.

    The script's ``get_or_create_ctx()`` returns the run's context.

    A notebook is converted first (:func:`mlflowlet._notebook.notebook_to_script`: its
    ``parameters`` cell gets the run's params). The run's code hash and git facts are the
    script's. Params reach the script through ``context.get_param``, not as arguments.
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        if not os.path.isfile(self.path):
            raise ConfigError(f"script {path!r} does not exist")
        if self.path.endswith(".ipynb"):
            from .._notebook import notebook_to_script

            self.source = notebook_to_script(self.path)
        else:
            with open(self.path, encoding="utf-8") as fh:
                self.source = fh.read()
        self.__name__ = os.path.splitext(os.path.basename(self.path))[0]
        self.__qualname__ = self.__name__
        try:
            self.__code__ = compile(self.source, self.path, "exec")
        except SyntaxError as exc:
            raise ConfigError(f"{path} line {exc.lineno}: {exc.msg}") from None

    def __repr__(self) -> str:
        return f"<script {self.path}>"

    _lock = threading.Lock()  # sys.argv and sys.modules['__main__'] are one per process

    def __call__(self, **_params: Any) -> None:
        """Run the script as ``__main__`` (``sys.argv`` = its path, its folder on ``sys.path``).

        Scripts run one at a time in a process (parallel iterations wait their turn).
        """
        with self._lock:
            self._run()

    def _run(self) -> None:
        import types

        folder = os.path.dirname(self.path)
        saved_argv, saved_main = sys.argv, sys.modules.get("__main__")
        module = types.ModuleType("__main__")
        module.__file__ = self.path
        sys.argv, sys.modules["__main__"] = [self.path], module
        sys.path.insert(0, folder)
        try:
            exec(self.__code__, module.__dict__)
        finally:
            sys.argv = saved_argv
            if saved_main is not None:
                sys.modules["__main__"] = saved_main
            if folder in sys.path:
                sys.path.remove(folder)
