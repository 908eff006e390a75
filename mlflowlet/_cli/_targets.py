"""What ``mlflowlet run URL`` runs: a runtime and a handler (or a pipeline object) for the URL.

See the table in :mod:`mlflowlet._cli.run`'s docstring; only typer and the standard library are
imported at module level (``--help`` stays fast).
"""

from __future__ import annotations

import importlib
import inspect
import shlex
from typing import Any

from ._common import error_line, usage_error


def resolve_target(
    url: str | None, args: list[str], handler: str | None, mode: str | None
) -> tuple[str, Any, Any]:
    """Return ``(kind, runtime or pipeline object, handler)`` for what the command names."""
    from ..runtimes import new_runner

    if url is None:
        if handler and ":" in handler:
            return "run", new_runner(kind="local"), handler
        raise usage_error(
            "say what to run: a script (training.py), module:function, or --handler module:fn"
        )
    if "://" in url:
        return "run", new_runner(shlex.join([url, *args]) if args else url), handler
    if mode or url.endswith(".py") or " " in url.strip():
        command = shlex.join([url, *args]) if args else url
        return "run", new_runner(command, kind="subprocess"), handler
    if args:
        raise usage_error(f"extra arguments {args} only go to scripts (file.py)")
    if url.endswith(".ipynb"):  # a notebook runs as a whole, in this process, its params injected
        if handler:
            raise usage_error(f"{url} runs as a whole: drop --handler {handler}")
        return "run", new_runner(url, kind="local"), None
    if ":" in url:
        obj = load_object(url)
        if callable(getattr(obj, "run", None)) and not (
            inspect.isroutine(obj) or inspect.isclass(obj)
        ):
            return "pipeline", obj, None
        if handler:
            raise usage_error(f"{url} already names the function: drop --handler {handler}")
        return "run", new_runner(kind="local"), obj
    if handler:
        return "run", new_runner(url, kind="local"), handler
    raise usage_error(
        f"cannot tell how to run {url!r}: give a .py script, module:function, or a runtime URL"
    )


def kind_runner(
    url: str | None, args: list[str], kind: str | None, image: str | None, handler: str | None
) -> tuple[Any, Any]:
    """Return ``(runtime, handler)`` for ``--kind`` / ``--image`` (``job`` with only ``--image``).

    A file or module given with a runtime that takes its code as a handler (``--kind dask``, local)
    becomes the handler's location: ``--kind dask --handler fn file.py`` runs ``file.py:fn`` on a
    local Dask cluster.
    """
    from ..runtimes import new_runner

    command = shlex.join([url, *args]) if url and args else (url or "")
    options = {"image": image} if image else {}
    if kind is None and "://" in command:
        return new_runner(command, **options), handler
    if kind in ("dask", "local") and url and "://" not in url:
        if args:
            raise usage_error(f"--kind {kind} runs a function: extra arguments {args} have no use")
        if ":" in url and handler:
            raise usage_error(f"{url} already names the function: drop --handler {handler}")
        if ":" not in url and not handler:
            raise usage_error(f"--kind {kind} runs a function: give --handler NAME (or {url}:NAME)")
        target = url if ":" in url else f"{url}:{handler}"
        return new_runner("dask://" if kind == "dask" else "", kind=kind, **options), target
    return new_runner(command, kind=kind or "job", **options), handler


def load_object(url: str) -> Any:
    from .._binding import load_module_from_file
    from ..errors import ConfigError, MlflowletError

    source, _, attr = url.rpartition(":")
    try:
        if source.endswith(".py"):
            module = load_module_from_file(source)
        else:
            module = importlib.import_module(source)
    except MlflowletError:
        raise
    except ImportError as exc:
        raise ConfigError(f"cannot import {source!r}: {error_line(str(exc))}") from None
    except Exception as exc:  # the module itself failed while importing
        raise ConfigError(
            f"importing {source!r} failed: {type(exc).__name__}: {error_line(str(exc))}"
        ) from exc
    if not hasattr(module, attr):
        public = sorted(
            n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
        )[:10]
        raise ConfigError(f"{source!r} has no {attr!r}; it defines {', '.join(public) or 'none'}")
    return getattr(module, attr)
