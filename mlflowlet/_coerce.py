"""Parameter values: coerced and validated by type hints (pydantic), recorded as JSON.

Every annotation pydantic understands is honoured, at any depth: ``list[int]`` turns ``["1", "2"]``
into ``[1, 2]``, ``Literal['a', 'b']`` refuses ``'c'``, a pydantic model or dataclass arrives as
that object, ``Enum``, ``datetime``, ``Path`` and ``Optional`` work as pydantic defines them. A
string given for a non-string type (from the CLI, a param file or a compiled pipeline) is read as a
JSON or Python literal first, so ``-p ids="[1, 2]"`` fills ``ids: list[int]``. On top of pydantic's
lax mode: a ``bool`` is never taken as a number, numbers become text for ``str`` (``5`` → ``'5'``),
and ``None`` is accepted where the type allows it or the default is ``None``.

The value a handler receives is recorded as JSON (:func:`json_value`): models and dataclasses as
objects, tuples and sets as lists, enums by value, dates as ISO text, NaN and infinities kept.

A failure is one :class:`~mlflowlet.errors.ParameterError` line naming the parameter, the value
and the expected type. ``TypeAdapter`` s are built once per annotation (cached); pydantic is
imported on first use, not with ``import mlflowlet``.
"""

from __future__ import annotations

import ast
import inspect
import json
import types
import typing
from functools import lru_cache
from typing import Any

from .errors import ParameterError

EMPTY = inspect.Parameter.empty
_SCALARS = (bool, int, float, str)
_NONE = object()  # "no adapter": the value passes unchecked


def parse_literal(text: str) -> Any:
    """Parse a CLI value as a JSON or Python literal, else keep the string."""
    stripped = text.strip()
    for parser in (json.loads, ast.literal_eval):
        try:
            return parser(stripped)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return text


def hint_name(hint: Any) -> str:
    """Return a readable name of a type hint (``int``, ``list[int]``, ``Literal['a', 'b']``)."""
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    return str(hint).replace("typing.", "")


def short(value: Any, limit: int = 60) -> str:
    """Return ``repr(value)`` on one line, cut to about ``limit`` characters."""
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real error
        text = f"<{type(value).__name__}>"
    text = text.replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def adapter_for(hint: Any) -> Any:
    """Return the cached ``TypeAdapter`` of ``hint`` (``None`` when the hint checks nothing)."""
    if hint is EMPTY or hint is Any or hint is object or isinstance(hint, (str, typing.TypeVar)):
        return None
    try:
        found = _cached_adapter(hint)
    except TypeError:  # an unhashable annotation (Annotated with a dict...): build each time
        found = _build_adapter(hint)
    return None if found is _NONE else found


@lru_cache(maxsize=1024)
def _cached_adapter(hint: Any) -> Any:
    return _build_adapter(hint)


def _build_adapter(hint: Any) -> Any:
    from pydantic import ConfigDict, PydanticUserError, TypeAdapter

    config = ConfigDict(coerce_numbers_to_str=True, arbitrary_types_allowed=True)
    try:
        return TypeAdapter(hint, config=config)
    except PydanticUserError:  # models, dataclasses and TypedDicts carry their own config
        try:
            return TypeAdapter(hint)
        except Exception:
            return _NONE
    except Exception:  # an annotation pydantic cannot check (unresolved forward ref...)
        return _NONE


def _numeric(hint: Any) -> bool:
    """Whether ``hint`` is ``int`` or ``float`` (maybe ``Optional`` or ``Annotated``)."""
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return _numeric(typing.get_args(hint)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return len(args) == 1 and _numeric(args[0])
    return hint in (int, float)


def coerce(value: Any, hint: Any, name: str, default: Any = EMPTY) -> Any:
    """Return ``value`` converted to ``hint``; raise a one-line error naming ``name``.

    Args:
        value: the given value (a CLI string, a JSON value, or an object of the type).
        hint: the parameter's annotation (``inspect.Parameter.empty`` for none).
        name: the parameter name, for the error.
        default: the parameter's default; ``None`` there makes ``None`` acceptable.

    Raises:
        ParameterError: the value does not fit the type.
    """
    if value is None and default is None:
        return None
    if type(value) is hint and hint in _SCALARS:  # the common case, without pydantic
        return value
    adapter = adapter_for(hint)
    if adapter is None:
        return value
    if isinstance(value, bool) and _numeric(hint):
        raise ParameterError(
            f"parameter {name!r}: cannot convert {short(value)} (bool) to {hint_name(hint)}"
        )
    from pydantic import ValidationError

    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        error = exc
    if isinstance(value, str):
        parsed = parse_literal(value)
        if not isinstance(parsed, str):
            try:
                return adapter.validate_python(parsed)
            except ValidationError as exc:
                error = exc
    raise ParameterError(
        f"parameter {name!r}: cannot convert {short(value)} ({type(value).__name__}) to "
        f"{hint_name(hint)}: {_reason(error)}"
    ) from None


def _reason(exc: Any) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first.get("loc", ()))
    where = where.lstrip(".")
    text = f"at {where}: {first['msg']}" if where else first["msg"]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return text.replace("\n", " ") + more


def check_recordable(params: dict[str, Any], hyper_params: dict[str, Any]) -> None:
    """Refuse, before anything is stored, a param or hyper-parameter value JSON cannot hold.

    Raises:
        ParameterError: naming the parameter and the value.
    """
    for key, value in params.items():
        json_value(value, key)
    for key, values in hyper_params.items():
        for value in values if isinstance(values, (list, tuple)) else (values,):
            json_value(value, key)


def json_value(value: Any, name: str) -> Any:
    """Return ``value`` as JSON data for the run record; raise naming ``name`` when it has none.

    Raises:
        ParameterError: an object JSON cannot hold (an ``object()``, invalid UTF-8 bytes...).
    """
    if type(value) is str and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: bytes that were not UTF-8 (a CLI arg)
            raise ParameterError(
                f"parameter {name!r}: {short(value)} (str) is not valid UTF-8 text; pass the "
                "value in UTF-8"
            ) from None
    if value is None or type(value) in _SCALARS:
        return value
    from pydantic_core import to_jsonable_python

    try:
        return to_jsonable_python(value, inf_nan_mode="constants")
    except Exception as exc:  # PydanticSerializationError, UnicodeDecodeError, a broken model
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ParameterError(
            f"parameter {name!r}: {short(value)} ({type(value).__name__}) cannot be recorded "
            f"as JSON ({reason}); pass JSON values (numbers, text, lists, dicts) or objects of "
            "the parameter's annotated type, and data as an input"
        ) from None
