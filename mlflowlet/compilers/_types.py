"""How each value crosses a compiled pipeline exactly: carried types and comparable conditions.

A value's *carried type* is how the engine holds it and how the container reads it back
(``--param KEY:TYPE``, see :mod:`mlflowlet._wire`):

* pipeline parameters keep their declared type: ``str``, ``int``, ``float``, ``bool`` (KFP's
  typed parameters; Argo text), ``list[str|int|float|bool]`` (a KFP list, read back as that
  element type, since KFP holds every number as a double), and ``json`` for anything else a
  JSON value can carry exactly (``dict``, bare ``list``, nested lists, ``Optional[...]``);
* step results always travel as JSON text (``json``): a result's type is only known at run
  time, and JSON keeps it (``"1.10"`` stays a string, ``0`` stays an int);
* a collected result is ``items`` (each item's JSON text, untouched by the engine), a map item
  is ``json`` (one element's JSON text) or, over a ``list[T]`` pipeline parameter, ``T``.

Conditions compare like Python only between values of one kind (strings, numbers, booleans):
anything else (a ``dict``, ``None``, a string against a number, ordering booleans) is refused
at compile time, because KFP's CEL and Argo's govaluate would answer differently or fail. A
result's value is known at run time only: KFP's typed output fails a value of another type, and
on Argo the producer writes it as :func:`mlflowlet._govaluate.when_literal` does (strings tagged so
govaluate reads none as a date, numbers exact), failing on a value govaluate would compare
otherwise than Python (``None``, a list or dict, NaN, an integer beyond 2**53).
"""

from __future__ import annotations

import typing
from typing import Any

from .._wire import BRACED, wire_json, wire_text
from ..errors import CompileError

SCALARS = ("str", "int", "float", "bool")
_LISTS = {"list", "List", "Sequence", "tuple", "Tuple"}
_DICTS = {"dict", "Dict", "Mapping"}
KFP_MAX_INT = 2**53  # KFP holds numbers as doubles: larger integers lose digits


def _optional(hint: Any) -> bool:
    """Tell whether ``hint`` is ``Optional[...]`` / ``X | None``."""
    return type(None) in typing.get_args(hint)


def pipeline_param_type(param: Any, default: Any) -> str:
    """Return the carried type of a pipeline parameter (see the module docstring).

    Raises:
        CompileError: a type no target carries exactly, or no type to go by.
    """
    where = f"pipeline parameter {param.name!r}"
    base, _, inner = param.type.partition("[")
    inner = inner[:-1].strip() if inner else ""
    if base in SCALARS:
        carried = base
    elif base == "DataItem":  # a URL input (mlflowlet.pipelines._urlinputs): the URL's text
        return "str"
    elif base in _LISTS:
        carried = f"list[{inner}]" if base in ("list", "List") and inner in SCALARS else "json"
    elif base in _DICTS:
        carried = "json"
    elif base in ("", "Any", "object"):
        carried = _untyped(where, param.name, default, param.required)
    else:
        raise CompileError(
            f"{where} has type {param.type!r}, which a compiled pipeline cannot carry as a "
            "parameter; use str, int, float, bool, list[...] or dict (or pass data as an "
            "artifact)"
        )
    if _optional(param.hint) or (default is None and not param.required):
        return "json"  # None travels as null
    return carried


def _untyped(where: str, name: str, default: Any, required: bool) -> str:
    for typ in (bool, int, float, str):
        if isinstance(default, typ):
            return typ.__name__
    if isinstance(default, (list, dict, tuple)) or (default is None and not required):
        return "json"
    raise CompileError(
        f"{where} has no type annotation and no default to tell its type; annotate it "
        f"(e.g. {name}: str) so the compiled pipeline passes it exactly"
    )


_CHECKS = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
}


def check_default(name: str, typ: str, value: Any, target: str) -> None:
    """Refuse a default that is not of its declared type, or that the target cannot hold.

    KFP holds numbers as doubles: integers beyond 2**53 lose digits there.

    Raises:
        CompileError: names the parameter, the type and the value.
    """
    import json

    if typ.startswith("list["):
        ok = isinstance(value, (list, tuple)) and all(_CHECKS[typ[5:-1]](v) for v in value)
    elif typ == "json":
        try:
            json.dumps(value, allow_nan=True)
            ok = True
        except (TypeError, ValueError):
            ok = False
    else:
        ok = _CHECKS[typ](value)
    if not ok:
        raise CompileError(
            f"pipeline parameter {name!r} is declared {typ} but its default is {value!r:.60}; "
            "give a default of that type"
        )
    numbers = value if isinstance(value, list) else [value]
    if target == "kfp" and typ in ("int", "list[int]"):
        big = [n for n in numbers if isinstance(n, int) and abs(n) > KFP_MAX_INT]
        if big:
            raise CompileError(
                f"pipeline parameter {name!r} defaults to {big[0]}, which KFP cannot hold "
                "exactly (it keeps numbers as doubles); annotate it str or pass it at run time"
            )


def item_type(items_type: str, where: str) -> str:
    """Return the carried type of a map item over a pipeline parameter of ``items_type``.

    Raises:
        CompileError: the parameter's elements have no scalar type to read them back by.
    """
    if items_type.startswith("list["):
        return items_type[5:-1]
    raise CompileError(
        f"{where} maps over a pipeline parameter of type {items_type}; declare its element "
        "type (list[str], list[int], list[float] or list[bool]) so each item is read back "
        "exactly, or produce the list in a step"
    )


# --- conditions ------------------------------------------------------------------------------
def _kind(typ: str) -> str:
    return {"int": "number", "float": "number"}.get(typ, typ)


def _side(value: Any, types: dict[str, str], cond: Any, target: str) -> tuple[str, str]:
    """Return ``(what, kind)`` of one side; kind ``''`` for a result known only at run time.

    ``types`` holds the pipeline parameters' carried types and, under ``node:return``, the
    return annotations of steps (a ``-> str`` step's return value is a string).
    """
    from ..pipelines.refs import OutputRef, PipelineParam

    if isinstance(value, OutputRef):
        returns = types.get(f"{value.node}:return", "") if value.key == "return" else ""
        return f"result {value!r}", _kind(returns) if returns in SCALARS else ""
    if isinstance(value, PipelineParam):
        typ = types[value.name]
        if typ not in SCALARS:
            raise CompileError(
                f"condition {cond} compares pipeline parameter {value.name!r} of type {typ}, "
                f"which {target} cannot compare; compare a str, int, float or bool"
            )
        return f"parameter {value.name!r}", _kind(typ)
    if isinstance(value, bool):
        return f"{value!r}", "bool"
    if isinstance(value, (int, float)):
        if target == "argo":
            from .._govaluate import when_literal

            try:
                when_literal(value)
            except ValueError as exc:
                raise CompileError(f"condition {cond}: the number {exc}") from None
        return f"{value!r}", "number"
    if isinstance(value, str):
        if target == "kfp" and ("{{" in value or any(c in value for c in "'\\\n\r")):
            raise CompileError(  # '{{': the backend passes the condition in an Argo argument
                f"condition {cond}: the string {value!r} holds a quote, backslash or newline "
                "(or '{{', which its backend substitutes), which KFP's condition expression "
                "cannot quote; compare another value"
            )
        return f"{value!r}", "str"
    raise CompileError(
        f"condition {cond} compares {value!r} ({type(value).__name__}), which {target} cannot "
        "compare; compare a str, int, float or bool"
    )


def condition_types(
    cond: Any, param_types: dict[str, str], target: str, out: dict[tuple[str, str], str]
) -> None:
    """Check one condition for ``target`` and note the type each result operand is read as.

    ``out`` maps ``(node, result key)`` to ``str`` / ``float`` / ``bool`` (KFP reads a
    condition's result operand as a typed parameter; Argo as a literal of its runtime value).

    Raises:
        CompileError: operands of different kinds, an ordering of booleans, an operand the
            target cannot compare, or (KFP) two results whose kind is unknown.
    """
    from ..pipelines.refs import OutputRef

    if cond.op in ("and", "or"):
        condition_types(cond.left, param_types, target, out)
        condition_types(cond.right, param_types, target, out)
        return
    (lname, lkind), (rname, rkind) = (
        _side(s, param_types, cond, target) for s in (cond.left, cond.right)
    )  # param_types: see _side
    if lkind and rkind and lkind != rkind:
        raise CompileError(
            f"condition {cond} compares {lname} ({lkind}) with {rname} ({rkind}); "
            f"{target} compares them differently from Python: compare values of one kind"
        )
    kind = lkind or rkind
    if kind == "bool" and cond.op not in ("==", "!="):
        raise CompileError(f"condition {cond} orders booleans; compare them with == or !=")
    if not kind and target == "kfp":
        raise CompileError(
            f"condition {cond} compares two results, whose types KFP must know to compare "
            "them; compare one of them with a literal or a typed pipeline parameter"
        )
    typ = {"number": "float", "str": "str", "bool": "bool"}.get(kind, "")
    for side in (cond.left, cond.right):
        if isinstance(side, OutputRef):
            seen = out.setdefault((side.node, side.key), typ)
            if seen != typ and (target == "kfp" or "bool" in (seen, typ)):
                raise CompileError(  # Argo: one literal, a boolean's differs (see when_literal)
                    f"result {side!r} is compared as {seen or 'a result'} in one condition "
                    f"and as {typ or 'a result'} in {cond}; compare it as one type"
                )
            if seen != typ:  # Argo: a string or a number, its literal compares either way
                out[(side.node, side.key)] = ""


def plan_params(dag: Any, options: Any, target: str) -> dict[str, tuple[str, Any, bool]]:
    """Return each pipeline parameter's ``(carried type, default, required)`` for ``target``.

    ``options.params`` (compile-time values) become defaults, checked as a run checks them.

    Raises:
        CompileError: a value or default the parameter's type (or the target) cannot carry.
    """
    from .._binding import coerce
    from ..errors import ParameterError

    out: dict[str, tuple[str, Any, bool]] = {}
    for p in dag.params:
        default = p.default
        if p.type == "DataItem":  # a URL input: checked as a run checks it (no credentials)
            from ..pipelines._urlinputs import url_value

            given = options.params.get(p.name, default)
            default = url_value(given, p.name) if given is not None else None
            required = p.required and p.name not in options.params
            out[p.name] = ("str", default, required)
            continue
        if p.name in options.params:
            try:
                default = coerce(options.params[p.name], p.hint, p.name)
            except ParameterError as exc:
                raise CompileError(f"params: {exc}") from None
        typ = pipeline_param_type(p, default)
        required = p.required and p.name not in options.params
        if not required:
            check_default(p.name, typ, default, target)
        out[p.name] = (typ, default, required)
    return out


def result_uses(dag: Any, params: dict[str, tuple[str, Any, bool]], target: str) -> dict:
    """Return ``node -> result key -> {use: type}`` for every result read downstream."""
    from ..pipelines.refs import Collected, OutputRef
    from ._map_items import item_uses

    uses: dict[tuple[str, str], dict[str, str]] = {}
    for node in dag.nodes:
        for value in node.arguments.values():
            if isinstance(value, Collected) and value.ref.kind == "result":
                uses.setdefault((value.node, value.ref.key), {})["item"] = "json"
            elif isinstance(value, OutputRef) and value.kind == "result":
                uses.setdefault((value.node, value.key), {})["json"] = "json"
        if node.map is not None and isinstance(node.map.items, OutputRef):
            uses.setdefault((node.map.items.node, node.map.items.key), {})["items"] = "json"
    for value in dag.outputs.values():  # pipeline outputs read results as JSON too
        if isinstance(value, Collected) and value.ref.kind == "result":
            uses.setdefault((value.node, value.ref.key), {})["item"] = "json"
        elif isinstance(value, OutputRef) and value.kind == "result":
            uses.setdefault((value.node, value.key), {})["json"] = "json"
    conds: dict[tuple[str, str], str] = {}
    types = {name: typ for name, (typ, _d, _r) in params.items()}
    types.update({f"{n.name}:return": n.spec.returns for n in dag.nodes if n.spec.returns})
    seen: set[int] = set()
    for node in dag.nodes:
        for block in node.blocks:
            if block.index not in seen and next(block.condition.items(), None) is None:
                seen.add(block.index)
                condition_types(block.condition, types, target, conds)
    for producer, key, use, node in item_uses(dag):  # maps over maps, item conditions
        if use == "item":
            uses.setdefault((producer, key), {})["item"] = "json"
            continue
        try:
            condition_types(use, types, target, conds)
        except CompileError as exc:  # it names the item's fields as the results they are
            raise CompileError(
                f"step {node.name!r} ({node.call_site}), its condition {node.condition} on the "
                f"map item: {exc}"
            ) from None
    for ref, typ in conds.items():
        uses.setdefault(ref, {})["cond"] = typ
    by_node: dict[str, dict[str, dict[str, str]]] = {}
    for (node_name, key), use in uses.items():
        by_node.setdefault(node_name, {})[key] = use
    return by_node


def argo_value(value: object, typ: str = "") -> str:
    """Return a parameter value as Argo carries it (:func:`mlflowlet._govaluate.argo_text`).

    With no ``{{`` Argo would substitute: see :func:`mlflowlet._wire.wire_text`. A
    ``list[str]``'s strings cross in that form too (a map's ``withParam`` hands each item's
    decoded string to ``{{item}}``; ``decode_param`` reads them back).
    """
    from .._govaluate import argo_text

    if isinstance(value, str):
        return wire_text(value)
    if typ == "list[str]" and isinstance(value, list):
        value = [wire_text(v) if isinstance(v, str) else v for v in value]
    text = argo_text(value)
    return wire_json(value) if "{" in text else text


def kfp_value(name: str, typ: str, value: object) -> object:
    """Return a pipeline parameter's value as KFP carries it: no ``{{`` its launcher replaces.

    A ``str`` crosses as :func:`mlflowlet._wire.wire_text`; a list parameter is a KFP list,
    whose strings the launcher writes into the step's arguments as they are.

    Raises:
        CompileError: a list parameter holding ``{{`` (names it and the fix).
    """
    if isinstance(value, str):
        return wire_text(value)
    strs = [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
    if any("{{" in v or v.startswith(BRACED) for v in strs):  # BRACED: read back unwired
        raise CompileError(
            f"pipeline parameter {name!r} ({typ}) holds '{{{{', which KFP's launcher would "
            f"replace in the step's arguments (or a str starting {BRACED!r}, read back as its "
            "JSON); annotate it a bare list (carried as JSON text)"
        )
    return value


def engine_arguments(dag: Any, arguments: dict[str, Any], target: str) -> dict[str, Any]:
    """Return run arguments as the compiled pipeline declares its parameters.

    ``json``-typed parameters take JSON text (so ``None`` and ``{"a": 0}`` arrive exactly); on
    Argo every value is text (strings as they are, anything else as JSON); on KFP typed values
    stay values (KFP types them itself). On Argo, a value a condition reads is checked as
    :func:`._argo_quote.check_when_values` checks it.

    Raises:
        CompileError: an unknown parameter, a value of another type than an undeclared
            parameter's default (it would be read back as that type), or (Argo) a value no
            condition compares exactly.
    """
    from .._binding import coerce

    out: dict[str, Any] = {}
    coerced: dict[str, Any] = {}
    for param in dag.params:
        if param.name not in arguments:
            continue
        if param.type == "DataItem":  # a URL input: its text, checked as a local run checks it
            from ..pipelines._urlinputs import url_value

            out[param.name] = url_value(arguments[param.name], param.name)
            continue
        value = coerced[param.name] = coerce(arguments[param.name], param.hint, param.name)
        typ = pipeline_param_type(param, param.default if not param.required else value)
        if param.type in ("", "Any", "object") and typ in SCALARS and type(value).__name__ != typ:
            raise CompileError(  # the step would read it back as typ: another value than locally
                f"pipeline parameter {param.name!r} has no declared type, so the compiled "
                f"pipeline carries it as {typ} (its default's type), but it gets "
                f"{value!r:.40} ({type(value).__name__}); pass a {typ}, or annotate it "
                f"({param.name}: {type(value).__name__}, or dict/list for JSON)"
            )
        if typ == "json":
            out[param.name] = wire_json(value)
        elif target == "argo":
            out[param.name] = argo_value(value, typ)
        else:
            out[param.name] = kfp_value(param.name, typ, value)
    unknown = sorted(set(arguments) - {p.name for p in dag.params})
    if unknown:
        raise CompileError(f"pipeline {dag.name!r} has no parameter(s) {unknown}")
    from ._argo_quote import check_when_values  # a value no condition compares exactly

    check_when_values(dag, coerced, "argument", target)
    return out
