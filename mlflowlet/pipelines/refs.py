"""What flows between steps at trace time: pipeline parameters, output references, conditions.

Inside a ``@pipeline`` function nothing has a value yet. A pipeline parameter is a
:class:`PipelineParam` placeholder; ``node.outputs['model']`` and ``node.results['accuracy']`` are
:class:`OutputRef` references; comparing a reference or a parameter builds a :class:`Condition`
for :func:`condition`; :func:`collect` turns the reference of a mapped step into the list of its
per-item values. Every operand describes itself as a plain dict (``describe()``) for compilers:

* ``{"kind": "value", "value": 3}`` - a literal;
* ``{"kind": "param", "name": "rows"}`` - a pipeline parameter;
* ``{"kind": "artifact", "node": "prep", "output": "dataset"}`` - an artifact output;
* ``{"kind": "result", "node": "train", "result": "accuracy"}`` - a scalar result;
* ``{"kind": "collect", "node": "score", "artifact"|"result": key}`` - every item of a mapped step
  (``"result": ""`` for ``collect(score.results)``: every result of each item, as a dict);
* ``{"kind": "item", "key": "a"}`` - the item of the map a condition guards (``item.a``).

Using a reference where Python needs a value (``if ref > 0.5:``) raises, naming the fix.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..errors import PipelineError

if TYPE_CHECKING:
    from ._items import Loop

COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_NO_BOOL = (
    "{what} has no value while the pipeline is traced; use `with condition({what} ...):` "
    "around the steps to run conditionally instead of `if`"
)
_NO_TEXT = (
    "{site}: {what} is a reference to a value that exists only when the pipeline runs; "
    "formatting it into a string (f-string, format(), str(), +) gives no value and no edge. "
    "Pass the reference itself to a step parameter and build the string inside the step"
)


def _no_text(what: Any) -> PipelineError:
    from ._trace import _call_site

    return PipelineError(_NO_TEXT.format(site=_call_site(), what=repr(what)))


class Comparisons:
    """Comparison operators that build a :class:`Condition` (through ``_cmp``)."""

    __slots__ = ()

    def _cmp(self, op: str, other: Any) -> Condition:
        return Condition(op, self, other)

    def __eq__(self, other: Any) -> Condition:  # type: ignore[override]
        return self._cmp("==", other)

    def __ne__(self, other: Any) -> Condition:  # type: ignore[override]
        return self._cmp("!=", other)

    def __lt__(self, other: Any) -> Condition:
        return self._cmp("<", other)

    def __le__(self, other: Any) -> Condition:
        return self._cmp("<=", other)

    def __gt__(self, other: Any) -> Condition:
        return self._cmp(">", other)

    def __ge__(self, other: Any) -> Condition:
        return self._cmp(">=", other)

    __hash__ = object.__hash__


class Operand(Comparisons):
    """Base of placeholders and references: comparisons build a :class:`Condition`."""

    __slots__ = ()

    def describe(self) -> dict[str, Any]:
        """Return the operand as a plain dict."""
        raise NotImplementedError

    def __bool__(self) -> bool:
        raise PipelineError(_NO_BOOL.format(what=repr(self)))

    def __iter__(self) -> Iterator[Any]:
        raise PipelineError(
            f"{self!r} cannot be iterated while the pipeline is traced; fan out over it with "
            "step.map(items=..., item_param=...)"
        )

    def __str__(self) -> str:
        raise _no_text(self)

    def __format__(self, spec: str) -> str:
        raise _no_text(self)

    def __add__(self, other: Any) -> Any:
        raise _no_text(self)

    def __radd__(self, other: Any) -> Any:
        raise _no_text(self)


class PipelineParam(Operand):
    """A typed placeholder for a pipeline parameter.

    Attributes:
        name: the parameter name.
        hint: the type hint (``inspect.Parameter.empty`` when unannotated).
        type: the hint as a short name (``'int'``, ``'list[str]'``; ``''`` when unannotated).
        default: the default value (meaningful only when not ``required``).
        required: True when the pipeline function gives no default.
    """

    __slots__ = ("name", "hint", "type", "default", "required")

    def __init__(self, name: str, hint: Any, type: str, default: Any, required: bool) -> None:
        self.name, self.hint, self.type = name, hint, type
        self.default, self.required = default, required

    def describe(self) -> dict[str, Any]:
        """``{"kind": "param", "name": ...}``."""
        return {"kind": "param", "name": self.name}

    def spec(self) -> dict[str, Any]:
        """Return the declaration: name, type, required and (when optional) default."""
        out: dict[str, Any] = {"name": self.name, "type": self.type, "required": self.required}
        if not self.required:
            out["default"] = self.default
        return out

    def __repr__(self) -> str:
        return f"PipelineParam({self.name!r})"


class OutputRef(Operand):
    """A reference to an artifact output or a scalar result of a node.

    Attributes:
        node: the producing node's name.
        key: the output (artifact) key or result key.
        kind: ``'artifact'`` or ``'result'``.
        mapped: True when the node is a mapped (fan-out) step; pass it through :func:`collect`.
    """

    __slots__ = ("node", "key", "kind", "mapped")

    def __init__(self, node: str, key: str, kind: str, mapped: bool = False) -> None:
        self.node, self.key, self.kind, self.mapped = node, key, kind, mapped

    def describe(self) -> dict[str, Any]:
        """Return ``{"kind": "artifact", "node", "output"}`` or ``{"kind": "result", ...}``."""
        field = "output" if self.kind == "artifact" else "result"
        return {"kind": self.kind, "node": self.node, field: self.key}

    def __repr__(self) -> str:
        where = "outputs" if self.kind == "artifact" else "results"
        return f"{self.node}.{where}[{self.key!r}]"


class Collected:
    """The list of one output or result over every item of a mapped step (see :func:`collect`).

    Attributes:
        ref: the reference to the mapped node's output or result (key ``''``: every result of
            each item, ``collect(node.results)``).
    """

    __slots__ = ("ref",)

    def __init__(self, ref: OutputRef) -> None:
        self.ref = ref

    @property
    def node(self) -> str:
        """The mapped node's name."""
        return self.ref.node

    @property
    def every(self) -> bool:
        """True for ``collect(node.results)``: each item's results as one dict."""
        return self.ref.key == ""

    def describe(self) -> dict[str, Any]:
        """``{"kind": "collect", "node": ..., "artifact"|"result": key}``."""
        return {"kind": "collect", "node": self.ref.node, self.ref.kind: self.ref.key}

    def __bool__(self) -> bool:
        raise PipelineError(_NO_BOOL.format(what=repr(self)))

    def __str__(self) -> str:
        raise _no_text(self)

    def __format__(self, spec: str) -> str:
        raise _no_text(self)

    def __repr__(self) -> str:
        return f"collect({self.ref.node}.results)" if self.every else f"collect({self.ref!r})"


def collect(ref: OutputRef) -> Collected:
    """Pass every item's output (or result) of a mapped step downstream as one list.

    ``collect(mapped.results)`` (no key) is every result of each item at once: a list of
    dicts, one per item, that a map fans out over and reads by key
    (``halve.map(items=collect(mapped.results), n=item.num)``; Argo's
    ``withParam: "{{tasks.X.outputs.parameters}}"``).

    Args:
        ref: ``mapped.results['score']``, ``mapped.outputs['model']`` or ``mapped.results`` of a
            ``step.map(...)`` node.

    Returns:
        A reference the consuming step receives as a list (results as values, artifacts as
        ``DataItem`` s), in item order; only the items that ran (an item skipped by its
        condition, see :func:`condition`, has no outputs).

    Raises:
        PipelineError: ``ref`` is not a reference to a mapped step.
    """
    from ._trace import _Refs

    if isinstance(ref, _Refs):  # node.results (or node.outputs): every result of each item
        ref = ref.every_result()
    if not isinstance(ref, OutputRef):
        raise PipelineError(
            f"collect() takes mapped.results['key'] or mapped.outputs['key'], got {ref!r}"
        )
    if not ref.mapped:
        raise PipelineError(
            f"collect({ref!r}): step {ref.node!r} is not mapped; pass the reference directly, "
            "or create the step with step.map(items=..., item_param=...)"
        )
    return Collected(ref)


class Condition:
    """A comparison of results, pipeline parameters and map items, or ``&`` / ``|`` of them.

    Attributes:
        op: one of ``==, !=, <, <=, >, >=`` (comparisons) or ``and`` / ``or``.
        left: an operand (or a condition for ``and`` / ``or``).
        right: an operand or literal (or a condition for ``and`` / ``or``).
    """

    __slots__ = ("op", "left", "right")

    def __init__(self, op: str, left: Any, right: Any) -> None:
        if op in COMPARISONS:
            for side in (left, right):
                if isinstance(side, (Condition, Collected)):
                    raise PipelineError(
                        f"cannot compare {side!r} with {op!r}; combine conditions with & and |"
                    )
                if isinstance(side, OutputRef) and side.kind != "result":
                    raise PipelineError(
                        f"{side!r} is an artifact; conditions compare results "
                        "(node.results['key']) and pipeline parameters"
                    )
                if isinstance(side, OutputRef) and side.mapped and not _same_item(side):
                    raise PipelineError(f"{side!r} belongs to a mapped step; it has no one value")
                if _is_item(side) and side._loop is not None:  # a sub-pipeline's parameter
                    from ._items import item_condition_error

                    raise item_condition_error(side)
                if not isinstance(side, Operand) and not _is_item(side):
                    _check_literal(side, "a condition")
        self.op, self.left, self.right = op, left, right

    def __and__(self, other: Condition) -> Condition:
        return Condition("and", self, _as_condition(other, "&"))

    def __or__(self, other: Condition) -> Condition:
        return Condition("or", self, _as_condition(other, "|"))

    def __bool__(self) -> bool:
        raise PipelineError(
            f"condition {self} has no value while the pipeline is traced; use "
            "`with condition(...):` (and combine conditions with & and |, not `and` / `or`)"
        )

    def operands(self) -> Iterator[Operand]:
        """Yield every reference and pipeline parameter the condition reads."""
        for side in (self.left, self.right):
            if isinstance(side, Condition):
                yield from side.operands()
            elif isinstance(side, Operand):
                yield side

    def items(self) -> Iterator[Any]:
        """Yield every map item (``item``, ``item.key``) the condition reads."""
        for side in (self.left, self.right):
            if isinstance(side, Condition):
                yield from side.items()
            elif _is_item(side):
                yield side

    def describe(self) -> dict[str, Any]:
        """Return ``{"op", "left", "right"}`` with operands as dicts (nested for and/or)."""
        return {
            "op": self.op,
            "left": describe_value(self.left),
            "right": describe_value(self.right),
        }

    def evaluate(self, value_of: Callable[[Operand], Any]) -> bool:
        """Evaluate with ``value_of`` giving each operand's run-time value."""
        if self.op == "and":
            return self.left.evaluate(value_of) and self.right.evaluate(value_of)
        if self.op == "or":
            return self.left.evaluate(value_of) or self.right.evaluate(value_of)
        left, right = (
            value_of(s) if isinstance(s, Operand) or _is_item(s) else s
            for s in (self.left, self.right)
        )
        fn = _OPS[self.op]
        try:
            return bool(fn(left, right))
        except TypeError as exc:
            raise PipelineError(
                f"condition {self} cannot compare {left!r} and {right!r}: {exc}"
            ) from None

    def __str__(self) -> str:
        if self.op in ("and", "or"):
            return f"({self.left} {'&' if self.op == 'and' else '|'} {self.right})"
        return f"{self.left!r} {self.op} {self.right!r}"

    __repr__ = __str__


def _is_item(value: object) -> bool:
    from ._items import MapItem

    return isinstance(value, MapItem)


def _same_item(ref: OutputRef) -> bool:
    """Whether ``ref`` is a step of a sub-pipeline map being traced (one value per item)."""
    from ._trace import current_tracer

    tracer = current_tracer()
    return tracer is not None and tracer.in_open_loop(ref.node)


def _as_condition(other: Any, sign: str) -> Condition:
    if not isinstance(other, Condition):
        raise PipelineError(
            f"{sign} combines conditions; got {other!r} (compare it first, e.g. ref >= 0.9)"
        )
    return other


def _check_literal(value: Any, where: str) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise PipelineError(
            f"{where} takes JSON values (numbers, strings, bools, lists, dicts); got a "
            f"{type(value).__name__}: {value!r:.80}"
        ) from None


def describe_value(value: Any) -> dict[str, Any]:
    """Describe an operand, a collected reference, a condition or a literal as a plain dict."""
    if isinstance(value, (Operand, Collected, Condition)):
        return value.describe()
    if _is_item(value):
        from ._items import describe_item

        return describe_item(value)
    return {"kind": "value", "value": value}


class ConditionBlock:
    """One ``with condition(...)`` block of a traced pipeline (a KFP condition group).

    Attributes:
        index: the block's number in the pipeline (trace order, from 0).
        condition: the block's own condition (without the enclosing blocks').
        site: ``'file:line'`` of the ``with`` statement.
        loop: the innermost sub-pipeline map it was opened in (each item decides), or None.
    """

    __slots__ = ("index", "condition", "site", "loop")

    def __init__(
        self, index: int, condition: Condition, site: str, loop: Loop | None = None
    ) -> None:
        self.index, self.condition, self.site, self.loop = index, condition, site, loop

    def __repr__(self) -> str:
        return f"<ConditionBlock {self.index} {self.condition} at {self.site}>"


@contextmanager
def condition(expr: Condition) -> Iterator[Condition]:
    """Run the steps created inside the ``with`` block only when ``expr`` holds at run time.

    ``expr`` compares results and pipeline parameters (``==, !=, <, <=, >, >=``), combined with
    ``&`` and ``|`` (parenthesise each comparison). Around a ``step.map`` it may compare the map's
    item (``item.key == "x"``): each item decides, and a false one is skipped (see
    :mod:`._items`). Nested blocks must all hold. Steps whose
    condition is false are recorded as ``skipped``. Each block compiles to one condition group
    (KFP ``dsl.If``; nested blocks nest), so steps inside a block may depend on each other.

    Example::

        with condition(train.results["accuracy"] >= 0.9):
            deploy(model=train.outputs["model"])

    Raises:
        PipelineError: outside a ``@pipeline`` function, or ``expr`` is not a comparison.
    """
    from ._trace import current_tracer

    tracer = current_tracer()
    if tracer is None:
        raise PipelineError("condition() is used inside a @pipeline function, around step calls")
    if not isinstance(expr, Condition):
        raise PipelineError(
            f"condition() takes a comparison such as node.results['accuracy'] >= 0.9, got {expr!r}"
        )
    from ._trace import _call_site

    tracer.open_block(expr, _call_site())
    try:
        yield expr
    finally:
        tracer.close_block()
