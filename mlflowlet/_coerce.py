"""Parameter values: coerced and validated by type hints (pydantic), recorded as JSON.

Every annotation pydantic understands is honoured, at any depth: ``list[int]`` turns ``["1", "2"]``
into ``[1, 2]``, ``Literal['a', 'b']`` refuses ``'c'``, a pydantic model or dataclass arrives as
that object, ``Enum``, ``datetime``, ``Path`` and ``Optional`` work as pydantic defines them. A
string given for a non-string type (from the CLI, a param file or a compiled pipeline) is read as a
JSON or Python literal first, so ``-p ids="[1, 2]"`` fills ``ids: list[int]``. On top of pydantic's
lax mode: a ``bool`` is never taken as a number, numbers become text for ``str`` (``5`` → ``'5'``),
and ``None`` is accepted where the type allows it or the default is ``None``.

The value a handler receives is recorded as JSON (:func:`json_value`): models and dataclasses as
objects, enums by value, dates as ISO text, NaN and infinities kept. Every runtime (a subprocess, a
rerun, a compiled step) binds the record again, so :func:`recorded` gives the handler the value the
record reads back as, and refuses a value whose record reads back as something else: a tuple is the
list it carries and dict keys are text, as :func:`plain_json` (and ``log_result``) records them;
bytes, sets, complex numbers, or a model or date without its annotation are refused, naming the
parameter.

A failure is one :class:`~mlflowlet.errors.ParameterError` line naming the parameter, the value
and the expected type. ``TypeAdapter`` s are built once per annotation (cached); pydantic is
imported on first use, not with ``import mlflowlet``.
"""

from __future__ import annotations

import ast
import enum
import inspect
import json
import math
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


def parse_cli(text: str) -> Any:
    """Read an untyped ``-p`` value: a literal JSON can record (tuples as lists), else the text.

    ``b'x'``, ``1j`` or ``{1, 2}`` stay the text typed: their literal has no JSON form, and a
    process that reads the recorded run must receive the same value as one that runs in place.
    A parameter annotated ``bytes`` or ``set[int]`` still reads the text through its annotation.
    """
    value = parse_literal(text)
    try:
        plain_json(value, "-p")
    except ParameterError:
        return text
    return value


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
    """Refuse, before anything is stored, a value whose record would read back as another.

    Without the handler's annotations (a handler named by text, run in another process), the
    value must be plain JSON (:func:`plain_json`): the record is all that process receives.

    Raises:
        ParameterError: naming the parameter and the value.
    """
    pairs = [(key, value) for key, value in params.items()]
    for key, values in hyper_params.items():
        pairs += [(key, v) for v in (values if isinstance(values, (list, tuple)) else (values,))]
    for key, value in pairs:
        try:
            recorded(value, EMPTY, key)
        except _Inexact:
            record = short(json_value(value, key))
            raise ParameterError(
                f"parameter {key!r}: {short(value)} ({type(value).__name__}) has no exact JSON "
                f"form, and a handler named by text binds its record ({record}): pass that JSON "
                "form (the handler's annotation converts it), or pass the function itself"
            ) from None


def recorded(value: Any, hint: Any, name: str, default: Any = EMPTY) -> tuple[Any, Any]:
    """Return ``(the value the handler receives, its JSON record)`` for parameter ``name``.

    The value is coerced by ``hint``; its record is bound again by every other runtime (a
    subprocess, a rerun, a compiled step), so the handler receives what the record reads back
    as: the value itself, or the plain JSON it carries (a tuple as a list, dict keys as text).

    Raises:
        ParameterError: the value does not fit ``hint``, or its record reads back as something
            else (bytes, a set, a complex number, a model or date without its annotation).
    """
    given = coerce(value, hint, name, default)
    record = json_value(given, name)
    if record is given and (given is None or type(given) in _SCALARS):
        return given, record
    try:
        back = coerce(record, hint, name, default)
    except ParameterError:
        back = _NONE
    if same(back, given):
        return given, record
    try:
        carried = plain_json(given, f"parameter {name!r}:")
    except _LostKey:
        raise
    except ParameterError:
        carried = _NONE
    if carried is not _NONE and same(back, carried):
        return back, record
    typ = type(given).__name__
    raise _Inexact(
        f"parameter {name!r}: {short(given)} ({typ}) would be recorded as {short(record)}, "
        f"which reads back as {'another value' if back is _NONE else type(back).__name__}; "
        f"pass a JSON value (numbers, text, lists, dicts), or annotate the parameter "
        f"({name}: {typ}) so every run reads the record back as one"
    )


def same(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` are the same value of the same type, at every depth.

    NaN is the same as NaN, ``-0.0`` differs from ``0.0``, ``1`` from ``True`` and ``1.0``.
    """
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (a != a and b != b) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            same(ka, kb) and same(a[ka], b[kb]) for ka, kb in zip(a, b, strict=False)
        )
    try:
        return bool(a == b)
    except Exception:  # an array's ==, a broken __eq__: not provably the same
        return False


_KEYS = (str, int, float, bool, type(None))


class _LostKey(ParameterError):
    """A dict key JSON cannot hold as it is given (an annotation does not bring it back)."""


class _Inexact(ParameterError):
    """A value whose JSON record reads back as another value."""


def plain_json(value: Any, what: str) -> Any:
    """Return ``value`` as the JSON it carries, or raise naming ``what``: the one rule for results.

    ``None``, booleans, numbers (NaN and infinities kept) and text are themselves; a tuple is
    the list it carries; dict keys that are text, numbers, booleans or ``None`` become text
    (keys that would become the same text are refused: a value would be lost); numpy scalars
    and arrays are their numbers and lists. Anything else (bytes, sets, complex numbers,
    objects) has no exact JSON form and is refused, never recorded as its ``str()``.

    Raises:
        ParameterError: ``what``, the value and how to record it.
    """
    if value is None or type(value) in _SCALARS:
        return value
    if isinstance(value, (list, tuple)):
        return [plain_json(v, what) for v in value]
    if isinstance(value, dict):
        bad = next((k for k in value if not isinstance(k, _KEYS)), _NONE)
        if bad is not _NONE:
            raise _LostKey(
                f"{what} dict key {short(bad)} ({type(bad).__name__}) is no JSON object key; "
                "use text keys"
            )
        out = {str(k): plain_json(v, what) for k, v in value.items()}
        if len(out) < len(value):  # JSON keys are text: 1 and '1' would become one key
            seen: dict[str, Any] = {}
            both = next((seen[str(k)], k) for k in value if seen.setdefault(str(k), k) is not k)
            raise _LostKey(
                f"{what} dict keys {both[0]!r} and {both[1]!r} both become JSON key "
                f"{str(both[1])!r}; one value would be lost: make the keys distinct strings"
            )
        return out
    item = getattr(value, "item", None)  # numpy scalars (and 0-d arrays, tensors)
    if callable(item) and getattr(value, "ndim", 0) == 0:
        try:
            return plain_json(item(), what)
        except (TypeError, ValueError):
            pass
    tolist = getattr(value, "tolist", None)  # numpy arrays
    if callable(tolist):
        return plain_json(tolist(), what)
    for base in (str, int, float):  # a text or number subclass (no enum): what it carries
        if isinstance(value, base) and not isinstance(value, enum.Enum):
            return base(value)
    raise ParameterError(
        f"{what} {short(value)} ({type(value).__name__}) has no exact JSON form and would be "
        "recorded as something else; record a JSON value (numbers, text, lists, dicts: e.g. "
        "bytes decoded, a set as a sorted list), or save it as an artifact"
    )


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
