"""Read a handler's signature once, bind params/inputs/context to it, coerce values by type hints.

Shared by every runtime, the entrypoint and the pipeline steps.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .errors import ConfigError, ParameterError

_EMPTY = inspect.Parameter.empty


@dataclass(frozen=True)
class HandlerParam:
    """One handler parameter: name, type hint, default, and whether it takes the context."""

    name: str
    hint: Any
    default: Any
    is_context: bool
    is_dataitem: bool
    kind: Any

    @property
    def required(self) -> bool:
        """True when the parameter has no default."""
        return self.default is _EMPTY


@dataclass(frozen=True)
class HandlerSignature:
    """The parameters of a handler, read once per function."""

    params: tuple[HandlerParam, ...]
    var_keyword: bool

    def names(self) -> list[str]:
        """Names of the non-context parameters."""
        return [p.name for p in self.params if not p.is_context]


def _hint_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _is_named(hint: Any, *names: str) -> bool:
    return (
        isinstance(hint, type)
        and hint.__name__ in names
        or (isinstance(hint, str) and hint.split(".")[-1] in names)
    )


@lru_cache(maxsize=1024)
def handler_signature(fn: Callable[..., Any]) -> HandlerSignature:
    """Return the parsed signature of ``fn`` (cached per function)."""
    sig = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception:  # unresolvable forward references: keep the raw annotations
        hints = dict(getattr(fn, "__annotations__", {}))
    params, var_kw = [], False
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
            continue
        if p.kind is p.VAR_POSITIONAL:
            continue
        hint = hints.get(p.name, _EMPTY)
        base = _strip_optional(hint)
        is_ctx = p.name == "context" or _is_named(base, "Context", "MLClientCtx")
        params.append(
            HandlerParam(p.name, hint, p.default, is_ctx, _is_named(base, "DataItem"), p.kind)
        )
    return HandlerSignature(tuple(params), var_kw)


def _strip_optional(hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return _strip_optional(typing.get_args(hint)[0])
    if origin in (typing.Union, getattr(types, "UnionType", None)):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return _strip_optional(args[0])
    return hint


def parse_literal(text: str) -> Any:
    """Parse a CLI value as a Python/JSON literal, else keep the string."""
    stripped = text.strip()
    for parser in (json.loads, ast.literal_eval):
        try:
            return parser(stripped)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return text


def coerce(value: Any, hint: Any, name: str) -> Any:
    """Coerce ``value`` to ``hint`` (strings from a CLI included); raise naming ``name``."""
    hint = _strip_optional(hint)
    if hint is _EMPTY or hint is Any or value is None or isinstance(hint, (str, typing.TypeVar)):
        return value
    origin = typing.get_origin(hint) or hint
    try:
        if origin is bool:
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("true", "1", "yes", "y", "on"):
                    return True
                if low in ("false", "0", "no", "n", "off"):
                    return False
                raise ValueError(value)
            if isinstance(value, (int, float)) and value in (0, 1):
                return bool(value)
            if isinstance(value, bool):
                return value
            raise ValueError(value)
        if origin is int:
            if isinstance(value, bool):
                raise ValueError(value)
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError(value)
                return int(value)
            return int(value.strip()) if isinstance(value, str) else int(value)
        if origin is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if origin is str:
            return value if isinstance(value, str) else str(value)
        if origin in (list, tuple, set, dict):
            parsed = parse_literal(value) if isinstance(value, str) else value
            if origin is dict and not isinstance(parsed, dict):
                raise ValueError(value)
            if origin is not dict and not isinstance(parsed, (list, tuple, set)):
                raise ValueError(value)
            return origin(parsed)
        if _is_named(hint, "Path", "PosixPath", "WindowsPath"):
            return hint(value)
    except (ValueError, TypeError):
        raise ParameterError(
            f"parameter {name!r}: cannot convert {value!r} to {_hint_name(hint)}"
        ) from None
    return value


def bind_arguments(
    fn: Callable[..., Any],
    context: Any,
    params: dict[str, Any],
    inputs: dict[str, Any],
    strict: bool = False,
    dataitem: Callable[[str, str], Any] | None = None,
) -> dict[str, Any]:
    """Build the keyword arguments for ``fn``.

    ``context`` goes to the parameter named ``context`` or annotated ``Context``; other
    parameters take params by name, then inputs (as ``DataItem``, or the URL when hinted ``str``),
    then their defaults. Hints coerce values.

    Raises:
        ParameterError: a required parameter has no value, a value cannot be coerced, or (in
            ``strict`` mode) a param names no parameter.
    """
    sig = handler_signature(fn)
    kwargs: dict[str, Any] = {}
    for p in sig.params:
        if p.is_context:
            kwargs[p.name] = context
        elif p.name in params:
            value = params[p.name]
            if p.is_dataitem and isinstance(value, str) and dataitem is not None:
                kwargs[p.name] = dataitem(p.name, value)
            else:
                kwargs[p.name] = coerce(value, p.hint, p.name)
        elif p.name in inputs:
            url = inputs[p.name]
            wants_str = _strip_optional(p.hint) is str
            if wants_str or dataitem is None or not isinstance(url, str):
                kwargs[p.name] = url
            else:
                kwargs[p.name] = dataitem(p.name, url)
        elif p.required:
            raise ParameterError(
                f"{fn.__name__}() is missing a value for parameter {p.name!r}; pass it with "
                f"params={{{p.name!r}: ...}} (or -p {p.name}=...)"
            )
    known = set(sig.names())
    extra = [k for k in params if k not in known]
    if extra and sig.var_keyword:
        kwargs.update({k: params[k] for k in extra})
    elif extra and strict:
        raise ParameterError(
            f"{fn.__name__}() has no parameter(s) {extra}; its parameters are {sorted(known)}"
        )
    return kwargs


@lru_cache(maxsize=1024)
def code_hash(fn: Callable[..., Any]) -> str:
    """Return a sha256 of the handler's source (or its bytecode when no source is available)."""
    try:
        text = inspect.getsource(fn).encode()
    except (OSError, TypeError):
        code = getattr(inspect.unwrap(fn), "__code__", None)
        text = _code_bytes(code) if code is not None else repr(fn).encode()
    return hashlib.sha256(text).hexdigest()


def _code_bytes(code: types.CodeType) -> bytes:
    # The bytecode alone misses constants (`x + 1` and `x + 2` compile alike) and names.
    consts = [
        _code_bytes(c) if isinstance(c, types.CodeType) else repr(c).encode()
        for c in code.co_consts
    ]
    return b"\0".join([code.co_code, *consts, repr(code.co_names).encode()])


def load_module_from_file(path: str) -> types.ModuleType:
    """Import a ``.py`` file as a module (its directory goes first on ``sys.path``)."""
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"handler file {path!r} does not exist")
    name = os.path.splitext(os.path.basename(path))[0]
    folder = os.path.dirname(path)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == path:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def resolve_handler(handler: Any, command: str = "") -> Callable[..., Any]:
    """Return the function named by ``handler``.

    Accepts a callable, ``'module:function'``, ``'file.py:function'``, or a bare function name
    looked up in ``command`` (a ``.py`` file or module) or ``__main__``.
    """
    if callable(handler):
        return handler
    if not isinstance(handler, str) or not handler:
        raise ConfigError("no handler given: pass a function or 'module:function'")
    if ":" in handler:
        source, _, name = handler.rpartition(":")
    elif "." in handler and not command:
        source, _, name = handler.rpartition(".")
    else:
        source, name = command, handler
    try:
        if source.endswith(".py"):
            module = load_module_from_file(source)
        elif source:
            module = importlib.import_module(source)
        else:
            module = sys.modules["__main__"]
    except ImportError as exc:
        raise ConfigError(f"cannot import handler module {source!r}: {exc}") from None
    fn = getattr(module, name, None)
    if fn is None or not callable(fn):
        raise ConfigError(f"module {source or '__main__'!r} has no function {name!r}")
    return fn
