"""The map item inside ``step.map(...)``: ``item`` (the whole element) and its sub-fields.

``concat.map(items=rows, a=item["a"], b=item.b)`` runs ``concat`` once per element of ``rows``
with ``a = element["a"]`` and ``b = element["b"]`` (KFP ``item.a``, Argo ``{{item.a}}``); a bare
``item`` is the whole element, as ``item_param=`` gives it. Each element must then be a dict
holding those keys: else the map fails before any item runs, naming the item and the key.

Comparing the item builds a condition each item decides for itself (Argo's ``when:
"{{item.evenness}} == even"`` on a fanned-out task)::

    with condition(item.evenness == "even"):
        halve.map(items=collect(check.results), num=item.num)

The whole condition of the step (its enclosing blocks too) is decided per item, as Argo
evaluates a ``when`` that reads the item per expanded item; the map is ``completed`` even when
every item was skipped (Argo's task group succeeds).
An item whose condition is false is skipped: it runs nothing and has no outputs, so a
``collect`` of the map holds only the items that ran (as Argo aggregates only the items that
succeeded).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import PipelineError
from .refs import Comparisons

if TYPE_CHECKING:
    from ..db.base import RunDB
    from .refs import Condition, ConditionBlock


@dataclass(eq=False)
class Loop:
    """One map over a sub-pipeline (``sub.map(items=...)``), or a step map nested in one.

    Attributes:
        name: a unique name (``<sub-pipeline>-loop-N``).
        items: what it maps over (a result ``OutputRef``, a ``PipelineParam``, a literal list).
        parallel: items run at once (None: the pipeline's ``max_parallel``).
        parent: the enclosing loop (a nested map), or None.
    """

    name: str
    items: Any
    parallel: int | None = None
    parent: Loop | None = None

    def chain(self) -> list[Loop]:
        """Return this loop and its enclosing ones, outermost first."""
        out: list[Loop] = []
        loop: Loop | None = self
        while loop is not None:
            out.insert(0, loop)
            loop = loop.parent
        return out


class MapItem(Comparisons):
    """The element of the map being run, or one of its sub-fields (``item["a"]``, ``item.a``)."""

    __slots__ = ("_key", "_loop")

    def __init__(self, key: str | None = None, loop: Loop | None = None) -> None:
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "_loop", loop)  # the sub-pipeline map it was bound by

    def __getitem__(self, key: str) -> MapItem:
        if self._key is not None:
            raise PipelineError(
                f"item[{self._key!r}][{key!r}]: a map reads one level of sub-fields; "
                f"return the nested value as its own key"
            )
        if not isinstance(key, str) or not key:
            raise PipelineError(f"item[{key!r}]: a sub-field is a non-empty str key")
        return MapItem(key, self._loop)

    def __getattr__(self, name: str) -> MapItem:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __setattr__(self, name: str, value: Any) -> None:
        raise PipelineError("item is read-only")

    def __bool__(self) -> bool:
        raise PipelineError("item has no truth value while the pipeline is traced")

    def _cmp(self, op: str, other: object) -> Condition:
        if self._loop is not None:
            raise item_condition_error(self)
        return super()._cmp(op, other)

    def __repr__(self) -> str:
        return "item" if self._key is None else f"item[{self._key!r}]"


item = MapItem()


def describe_item(value: MapItem) -> dict[str, Any]:
    """``{"kind": "item", "key": ...}`` (key None: the whole element).

    Module functions, not methods: ``item.describe`` is the element's sub-field ``describe``.
    """
    return {"kind": "item", "key": value._key}


def item_value(value: MapItem, element: object) -> object:
    """Return ``value`` (``item`` or ``item.key``) in ``element``.

    Raises:
        PipelineError: a sub-field of an element that is no dict or lacks the key.
    """
    if value._key is None:
        return element
    if not isinstance(element, dict) or value._key not in element:
        what = "has no such key" if isinstance(element, dict) else "is not a dict"
        raise PipelineError(f"{value!r}: the item ({element!r:.60}) {what}")
    return element[value._key]


def item_condition_error(value: MapItem) -> PipelineError:
    """Return the refusal of a condition on a sub-pipeline's parameter bound to its map's item."""
    return PipelineError(
        f"{value!r}: a condition on a mapped sub-pipeline's parameter bound to the item is not "
        "supported yet; open `with condition(item.key == ...)` around a step.map(...) call in "
        "the calling pipeline, or compute the test in a body step and test its output"
    )


def check_item_blocks(
    blocks: list[ConditionBlock],
    item_param: str | None,
    site: str,
    step: str,
    loop: object,
) -> None:
    """Refuse a ``with condition(item...)`` block around anything but a top-level step map."""
    tested = [b for b in blocks if next(b.condition.items(), None) is not None]
    if not tested:
        return
    where = f"{site}: step {step!r} is inside `with condition({tested[-1].condition})`"
    if item_param is None:
        raise PipelineError(
            f"{where}, which tests the item of a map: only a step.map(...) called in the block "
            "has an item; call it with .map(items=...), or move it out of the block"
        )
    if loop is not None:
        raise PipelineError(
            f"{where}: a condition on the item of a map nested in a mapped sub-pipeline is not "
            "supported yet; map the step outside the sub-pipeline"
        )


def check_every_items(items: object, item_param: str, site: str, step: str) -> None:
    """Refuse giving the whole item of ``collect(x.results)`` to a parameter (read keys)."""
    from .refs import Collected

    if isinstance(items, Collected) and items.every and item_param:
        raise PipelineError(
            f"{site}: {step}.map(items={items!r}) gives the whole item (a dict of every result) "
            f"to {item_param!r}; read the results it needs by key (x=item.key), so the "
            "compiled pipeline carries exactly those"
        )


def split_item_args(
    arguments: dict[str, Any], item_param: str, site: str, step: str
) -> tuple[str, dict[str, str]]:
    """Take the ``item`` / ``item[KEY]`` arguments out of ``arguments`` (changed in place).

    Returns:
        ``(item_param, fields)``: the parameter given the whole element (``item_param=`` or
        ``x=item``; ``''`` for none) and sub-field parameter -> key.
    """
    fields: dict[str, str] = {}
    for param in [p for p, v in arguments.items() if isinstance(v, MapItem)]:
        key = arguments.pop(param)._key
        if key is not None:
            fields[param] = key
        elif item_param:
            raise PipelineError(
                f"{site}: step {step!r} gets the whole item twice ({item_param!r} and "
                f"{param!r}); give it to one parameter"
            )
        else:
            item_param = param
    if not item_param and not fields:
        raise PipelineError(
            f"{site}: {step}.map(...) gives the item to no parameter; pass item_param='x', "
            "x=item, or sub-fields x=item['key']"
        )
    return item_param, fields


def map_fields(node: Any, items: Any, max_parallel: int) -> dict[str, Any]:
    """Return the ``RunSpec`` sweep fields of mapped ``node`` over ``items`` (one run each).

    Raises:
        InputError: ``items`` is not a list, or an element lacks a sub-field a parameter reads.
    """
    from ._inputs import InputError

    if not isinstance(items, (list, tuple)):
        raise InputError(
            f"step {node.name!r} maps over {node.map.items!r}, which is a "
            f"{type(items).__name__}, not a list"
        )
    if not items:
        return {"hyper_params": {}}
    values = {node.map.item_param: list(items)} if node.map.item_param else {}
    try:
        for param, key in node.map.fields.items():
            values[param] = field_values(list(items), key, node.name, param)
    except PipelineError as exc:
        raise InputError(str(exc)) from None
    return {
        "hyper_params": values,
        "strategy": "list",
        "selector": "",
        "max_errors": 1,
        "parallel": node.map.parallel or max_parallel,
    }


def field_values(items: list[Any], key: str, step: str, param: str) -> list[Any]:
    """Return ``element[key]`` of each element (the values a sub-field parameter takes).

    Raises:
        PipelineError: an element is not a dict, or lacks ``key`` (names its index).
    """
    out = []
    for i, element in enumerate(items):
        if not isinstance(element, dict) or key not in element:
            what = f"has no key {key!r}" if isinstance(element, dict) else "is not a dict"
            raise PipelineError(
                f"step {step!r} maps {param}=item[{key!r}], but item {i} ({element!r:.60}) "
                f"{what}; map over dicts holding {key!r}"
            )
        out.append(element[key])
    return out


def empty_map(call: Any, db: RunDB) -> Any:
    """Record and return the run of a map over no items: completed, with no iterations."""
    from ..model import now_iso
    from ._stepexec import new_run

    call.iterate = None
    run = new_run(call, 1)
    stamp = now_iso()
    run.status.state, run.status.start_time, run.status.end_time = "completed", stamp, stamp
    run.status.iterations = []
    db.store_run(run.to_dict(), run.uid, run.metadata.project, 0)
    return run
