"""``model_dump(mode="json")`` of a run record in plain Python, for records of plain values.

Building pydantic's serializer (and, with it, the validator and pydantic's scan of every
installed distribution's plugins) costs a fresh process tens of milliseconds; a plain tracked
run needs neither (issue 18). :func:`plain_dump` returns exactly what ``model_dump(mode="json")``
returns, or ``None`` where it cannot be sure, and the caller then asks pydantic. It is sure
only of values that pydantic's JSON mode returns unchanged: ``str``, ``int``, ``float``,
``bool`` and ``None`` of exactly that type where the field declares that type (``Any`` takes
all five), ``dict`` (``str`` keys) and ``list`` of such values, and the fields' own record
models, of exactly their declared class. Anything else (a tuple, an enum, an ``int`` in a
``float`` field, a subclass, a model with serializers or field metadata) is pydantic's.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, Union, cast

from pydantic import BaseModel
from pydantic.fields import FieldInfo

Dumper = Callable[[Any], Any]
_Record = TypeVar("_Record", bound=BaseModel)


class _NotPlain(Exception):
    """A value :func:`plain_dump` leaves to pydantic."""


_SCALARS = (str, int, float, bool)
_PLAIN: frozenset[type] = frozenset({str, int, float, bool, type(None)})
_NONE: Mapping[str, Any] = types.MappingProxyType({})
# a field: its name, the types of the values it keeps as they are, its dumper, the record class
# it holds (None: none)
_Step = tuple[str, frozenset[type], Dumper, type | None]
# record class -> its fields in order, or None: a class pydantic dumps
_PLANS: dict[type, list[_Step] | None] = {}


def plain_dump(
    model: BaseModel, given: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Any] | None:
    """Return ``model.model_dump(mode="json")``, or ``None`` when pydantic must make it.

    ``given`` maps a field holding a record to extra fields of that record whose JSON-safe
    form the caller already has: put in as they are, not dumped again.
    """
    try:
        return _dump_model(model, given or {})
    except (_NotPlain, KeyError, RecursionError):  # a deleted field; a cycle: pydantic says so
        return None


def plain_copy(
    model: BaseModel, cls: type[_Record], exclude: frozenset[str] = frozenset()
) -> _Record | None:
    """Return ``cls.model_validate(model.model_dump(exclude=exclude))``, or ``None``.

    Made without pydantic's validator when every value of ``model`` is one :func:`plain_dump`
    is sure of and is of the type ``cls`` declares: validating such values gives them back
    unchanged (a copy), so the copy is built directly. ``None``: the caller validates.
    """
    data = plain_dump(model)
    if data is None:
        return None
    try:
        return _load(cls, {k: v for k, v in data.items() if k not in exclude})
    except _NotPlain:
        return None


def _load(cls: type[_Record], data: Any) -> _Record:
    """Return ``cls.model_validate(data)`` for ``data`` of plain values of the declared types."""
    plan = _PLANS[cls] if cls in _PLANS else _plan(cls)
    if plan is None or type(data) is not dict or not _validates_plainly(cls):
        raise _NotPlain
    values: dict[str, Any] = {}
    for name, _, dump, record in plan:
        if name in data:
            value = data[name]
            values[name] = _load(record, value) if record is not None else dump(value)
        else:  # a field left out (status): its default, as validation makes it
            values[name] = _default(cls.model_fields[name])
    for key, value in data.items():
        if key not in values:
            if key.startswith("_"):  # pydantic's to tell from a private attribute
                raise _NotPlain
            values[key] = value  # plain_dump made it (a copy)
    return cls.model_construct(set(data), **values)


# the settings of a model whose validator gives plain values of the declared types back as they
# are, unknown fields kept (any other setting or a validator: pydantic validates); the two left
# out change when validators are built and how a dump writes NaN, not what validation gives
_PLAIN_CONFIG = {"extra": "allow", "validate_assignment": False}
_NOT_VALIDATION = ("defer_build", "ser_json_inf_nan")


def _validates_plainly(cls: type[BaseModel]) -> bool:
    decorators = cls.__pydantic_decorators__
    if decorators.validators or decorators.field_validators or decorators.root_validators:
        return False
    if decorators.model_validators:
        return False
    config = {k: v for k, v in cls.model_config.items() if k not in _NOT_VALIDATION}
    return config == _PLAIN_CONFIG


def factory_without_data(field: FieldInfo) -> Callable[[], Any] | None:
    """Return the field's default factory if pydantic calls it without arguments, else None.

    Told without ``inspect.signature`` (on builtins it parses their text signature with tokenize
    and ast) for ``dict``, ``list`` and functions without positional parameters.
    """
    make = field.default_factory
    if make is None:
        return None
    code = getattr(make, "__code__", None)
    if make in (dict, list) or (code is not None and code.co_argcount == 0):
        return cast("Callable[[], Any]", make)
    takes_data = getattr(field, "default_factory_takes_validated_data", False)  # pydantic 2.10+
    return None if takes_data else cast("Callable[[], Any]", make)


def _default(field: FieldInfo) -> Any:
    make = factory_without_data(field)
    if make is not None:
        return make()
    if field.default_factory is None and type(field.default) in _PLAIN:
        return field.default
    raise _NotPlain


def _dump_model(
    model: BaseModel,
    inner: Mapping[str, Mapping[str, Any]] = _NONE,
    given: Mapping[str, Any] = _NONE,
) -> dict[str, Any]:
    cls = type(model)
    plan = _PLANS[cls] if cls in _PLANS else _plan(cls)
    if plan is None:
        raise _NotPlain
    values, out = model.__dict__, {}
    for name, kept, dump, record in plan:
        value = values[name]
        if type(value) in kept:  # the common case, without a call
            out[name] = value
        elif name in inner:
            if record is None or type(value) is not record:
                raise _NotPlain
            out[name] = _dump_model(cast(BaseModel, value), given=inner[name])
        else:
            out[name] = dump(value)
    for key, value in (model.__pydantic_extra__ or {}).items():
        out[key] = given[key] if key in given else _any(value)
    return out


def _plan(cls: type[BaseModel]) -> list[_Step] | None:
    _PLANS[cls] = None
    decorators = cls.__pydantic_decorators__
    if cls.model_computed_fields or decorators.field_serializers:
        return None
    if decorators.model_serializers or cls.model_config.get("ser_json_inf_nan") != "constants":
        return None
    plan: list[_Step] = []
    for name, field in cls.model_fields.items():
        special = field.metadata or field.exclude or field.alias or field.serialization_alias
        hint = field.annotation
        dump = None if special or getattr(field, "exclude_if", None) else _dumper(hint)
        if dump is None:
            return None
        record = hint if isinstance(hint, type) and issubclass(hint, BaseModel) else None
        plan.append((name, _kept(hint), dump, record))
    _PLANS[cls] = plan
    return plan


def _kept(hint: Any) -> frozenset[type]:
    """Return the types of the values a field annotated ``hint`` dumps unchanged."""
    if hint is Any:
        return _PLAIN
    if hint in _SCALARS:
        return frozenset({hint})
    if typing.get_origin(hint) in (Union, types.UnionType):  # only scalars and None
        return frozenset(arg for arg in typing.get_args(hint) if arg in _PLAIN)
    return frozenset()


def _dumper(hint: Any) -> Dumper | None:
    """Return the dumper of a value annotated ``hint``, or ``None`` (pydantic's to dump)."""
    if hint is Any:
        return _any
    if hint in _SCALARS:
        return _exactly(hint)
    if isinstance(hint, type) and issubclass(hint, BaseModel):
        return _record(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType) and len(args) == 2 and type(None) in args:
        inner = _dumper(args[0] if args[1] is type(None) else args[1])
        return None if inner is None else _optional(inner)
    if origin is dict and len(args) == 2 and args[0] is str:
        inner = _dumper(args[1])
        return None if inner is None else _dict_of(inner, _kept(args[1]))
    if origin is list and len(args) == 1:
        inner = _dumper(args[0])
        return None if inner is None else _list_of(inner, _kept(args[0]))
    return None


def _any(value: Any) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            out[key] = item if type(item) in _PLAIN else _any(item)
        return out
    if kind is list:
        return [item if type(item) in _PLAIN else _any(item) for item in value]
    raise _NotPlain


def _exactly(kind: type) -> Dumper:
    def dump(value: Any) -> Any:
        if type(value) is not kind:
            raise _NotPlain
        return value

    return dump


def _record(cls: type[BaseModel]) -> Dumper:
    def dump(value: Any) -> Any:
        if type(value) is not cls:
            raise _NotPlain
        return _dump_model(value)

    return dump


def _optional(inner: Dumper) -> Dumper:
    return lambda value: None if value is None else inner(value)


def _dict_of(inner: Dumper, kept: frozenset[type]) -> Dumper:
    def dump(value: Any) -> Any:
        if type(value) is not dict:
            raise _NotPlain
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            out[key] = item if type(item) in kept else inner(item)
        return out

    return dump


def _list_of(inner: Dumper, kept: frozenset[type]) -> Dumper:
    def dump(value: Any) -> Any:
        if type(value) is not list:
            raise _NotPlain
        return [item if type(item) in kept else inner(item) for item in value]

    return dump
