"""Read a handler's signature once, bind params/inputs/context to it, coerce values by type hints.

Shared by every runtime, the entrypoint and the pipeline steps.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from ._coerce import coerce as coerce  # re-exported: the compilers coerce as binding does
from ._coerce import parse_literal as parse_literal
from ._coerce import recorded, same
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


def bind_arguments(
    fn: Callable[..., Any],
    context: Any,
    params: dict[str, Any],
    inputs: dict[str, Any],
    strict: bool = True,
    dataitem: Callable[[str, str], Any] | None = None,
) -> dict[str, Any]:
    """Build the keyword arguments for ``fn`` (see :func:`bind`, which also returns the record)."""
    return bind(fn, context, params, inputs, strict, dataitem)[0]


def bind(
    fn: Callable[..., Any],
    context: Any,
    params: dict[str, Any],
    inputs: dict[str, Any],
    strict: bool = True,
    dataitem: Callable[[str, str], Any] | None = None,
    offered: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``(kwargs, effective)``: the arguments for ``fn`` and the params it receives.

    ``context`` goes to the parameter named ``context`` or annotated ``Context``; other
    parameters take params by name (coerced and validated by their hints, see
    :mod:`mlflowlet._coerce`), then inputs (as ``DataItem``, or the URL when hinted ``str``),
    then what the runtime ``offered`` (an HTTP ``event``: passed as is, not recorded), then
    their defaults. ``effective`` holds every param the handler receives, defaults
    included, as JSON (a default JSON cannot hold is left out; rerunning without it gives the
    same default). Params naming no parameter are an error when ``strict`` (the default), unless
    the handler takes ``**kwargs`` or an offered ``event`` (whose body holds them); with
    ``strict=False`` they stay in the record, for ``context.get_param`` to read.

    Raises:
        ParameterError: a required parameter has no value, a value does not fit its type or
            has no JSON form, or (``strict``) a param names no parameter.
    """
    sig = handler_signature(fn)
    kwargs: dict[str, Any] = {}
    effective: dict[str, Any] = {}
    for p in sig.params:
        if p.is_context:
            kwargs[p.name] = context
        elif p.name in params:
            value = params[p.name]
            if p.is_dataitem and isinstance(value, str) and dataitem is not None:
                kwargs[p.name] = dataitem(p.name, value)
                effective[p.name] = value
            else:
                kwargs[p.name], effective[p.name] = recorded(value, p.hint, p.name, p.default)
        elif p.name in inputs:
            url = inputs[p.name]
            wants_str = _strip_optional(p.hint) is str
            if wants_str or dataitem is None or not isinstance(url, str):
                kwargs[p.name] = url
            else:
                kwargs[p.name] = dataitem(p.name, url)
        elif offered and p.name in offered:
            kwargs[p.name] = offered[p.name]
        elif p.required:
            raise ParameterError(
                f"{fn.__name__}() is missing a value for parameter {p.name!r}; pass it with "
                f"params={{{p.name!r}: ...}} (or -p {p.name}=...)"
            )
        else:
            try:
                back, record = recorded(p.default, p.hint, p.name, p.default)
                if same(back, p.default):  # a default read back as another is left out
                    effective[p.name] = record
            except ParameterError:
                pass  # a sentinel default: not JSON, and the same on every run
    known = set(sig.names())
    extra = [k for k in params if k not in known]
    takes_event = any(k in known for k in offered or {})  # the handler reads params from it
    if extra and strict and not (sig.var_keyword or takes_event):
        raise unknown_params(fn, extra, known)
    for key in extra:  # **kwargs receives them; without it context.get_param can read them
        value, effective[key] = recorded(params[key], _EMPTY, key)
        if sig.var_keyword:
            kwargs[key] = value
    return kwargs, effective


def unknown_params(fn: Any, extra: list[str], known: Any) -> ParameterError:
    """Return the error for params that name no parameter of ``fn``."""
    name = getattr(fn, "__name__", "the handler")
    return ParameterError(
        f"{name}() has no parameter(s) {extra}; its parameters are {sorted(known)} (pass "
        "strict=False to allow params the handler reads with context.get_param)"
    )


def check_values(fn: Callable[..., Any], values: dict[str, list[Any]], strict: bool) -> None:
    """Check hyper-parameter lists against ``fn``'s signature before any iteration runs.

    Raises:
        ParameterError: a key naming no parameter (``strict``), or a value that does not fit.
    """
    sig = handler_signature(fn)
    by_name = {p.name: p for p in sig.params if not p.is_context}
    extra = [k for k in values if k not in by_name]
    if extra and strict and not sig.var_keyword:
        raise unknown_params(fn, extra, by_name)
    for key, options in values.items():
        p = by_name.get(key)
        for value in options:
            if p is None:
                recorded(value, _EMPTY, key)
            elif not (p.is_dataitem and isinstance(value, str)):
                recorded(value, p.hint, key, p.default)


def check_params(fn: Callable[..., Any], params: dict[str, Any]) -> None:
    """Refuse, before a run is stored, a param whose record reads back as another value.

    A value that does not fit its annotation is left to the run, which records that error
    (and the value as given: which must be plain JSON).

    Raises:
        ParameterError: naming the parameter (see :func:`mlflowlet._coerce.recorded`).
    """
    by_name = {p.name: p for p in handler_signature(fn).params if not p.is_context}
    for key, value in params.items():
        p = by_name.get(key)
        hint, default = (p.hint, p.default) if p is not None else (_EMPTY, _EMPTY)
        if p is not None and p.is_dataitem and isinstance(value, str):
            continue
        try:
            coerce(value, hint, key, default)
        except ParameterError:
            hint, default = _EMPTY, _EMPTY
        recorded(value, hint, key, default)


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
        return cast(Callable[..., Any], handler)
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
    return cast(Callable[..., Any], fn)
