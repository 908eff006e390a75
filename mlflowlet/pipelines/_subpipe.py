"""Tracing a map over a sub-pipeline: ``sub.map(items=..., x=item.a)`` inside a ``@pipeline``.

The sub-pipeline's function is traced in place, once, with a :class:`~._items.Loop` open: each
step it calls becomes a node mapped over the loop's items (``MapSpec.loop``), so every item
runs the whole body and a step waits only for the earlier steps *of its own item* (KFP's
``dsl.ParallelFor`` holding several tasks, Argo's DAG template with ``withParam``). A
``step.map`` or ``sub.map`` inside the body is a nested loop. What the sub-pipeline's
parameters get (``item``, ``item.key``, pipeline parameters, results, literals) is passed to
its function as it is; a body step reads the item of its own (innermost) map only.
"""

from __future__ import annotations

from typing import Any

from ..errors import PipelineError
from ._items import Loop, MapItem, split_item_args


class LoopHandle:
    """What ``sub.map(...)`` returns: the loop, to order it after other steps.

    Attributes:
        name: the loop's name (``<sub-pipeline>-loop-N``).
        steps: the names of the steps its body traced.
    """

    def __init__(self, tracer: Any, loop: Loop, steps: list[Any]) -> None:
        self._tracer, self._loop, self._steps = tracer, loop, steps
        self.name, self.steps = loop.name, tuple(n.name for n in steps)

    def after(self, *others: Any, on: str | None = None) -> LoopHandle:
        """Run every item only after ``others`` finished (KFP ``task.after`` inside the loop).

        The body's first steps (those reading no other body step) get the ordering edges;
        ``on`` is as for :meth:`NodeHandle.after`. Returns self.
        """
        from ._trace import NodeHandle

        body = set(self.steps)
        for node in self._steps:
            reads = {v.node for _p, v in node.references()} | set(node.after)
            if not reads & body:
                NodeHandle(self._tracer, node).after(*others, on=on)
        return self

    def __repr__(self) -> str:
        return f"<LoopHandle {self.name!r} steps={list(self.steps)}>"


def map_subpipeline(
    pipe: Any, items: Any, item_param: str | None, parallel: int | None, kwargs: dict[str, Any]
) -> LoopHandle:
    """Trace ``pipe``'s function as the body of a map over ``items`` (see the module doc).

    Raises:
        PipelineError: outside a ``@pipeline`` function, bad items or ``parallel``, an unknown
            or missing parameter, no parameter given the item, or a body that returns a value.
    """
    from ._trace import _call_site, current_tracer

    tracer = current_tracer()
    site = _call_site()
    if tracer is None:
        raise PipelineError(
            f"{site}: {pipe.name}.map() maps a sub-pipeline inside a @pipeline function only; "
            f"call it there (outside a pipeline, run {pipe.name}(...) once per item)"
        )
    if pipe is tracer.pipe or any(
        loop.name.startswith(f"{pipe.name}-loop-") for loop in tracer.loops
    ):
        raise PipelineError(f"{site}: sub-pipeline {pipe.name!r} maps itself (recursion)")
    tracer.check_items(items, parallel, site)
    from .refs import Collected

    if isinstance(items, Collected):
        raise PipelineError(
            f"{site}: {pipe.name}.map(items={items!r}): a sub-pipeline map over collected "
            "results is not supported yet; map a step over them (step.map(items=...))"
        )
    parent = tracer.loops[-1] if tracer.loops else None
    loop = tracer.new_loop(pipe.name, items, parallel, parent)
    bound = _bind(pipe, item_param, kwargs, loop, site)
    first = len(tracer.nodes)
    tracer.loops.append(loop)
    try:
        returned = pipe.fn(**bound)
    finally:
        tracer.loops.pop()
    if returned is not None:
        raise PipelineError(
            f"{site}: sub-pipeline {pipe.name!r} returns a value, which a map over it cannot "
            "pass on yet; collect(...) a body step's result inside the pipeline instead"
        )
    return LoopHandle(tracer, loop, tracer.nodes[first:])


def _bind(
    pipe: Any, item_param: str | None, kwargs: dict[str, Any], loop: Loop, site: str
) -> dict[str, Any]:
    names = [p.name for p in pipe.params]
    bound = dict(kwargs)
    if item_param:
        if item_param in bound:
            raise PipelineError(f"{site}: {item_param!r} is the item parameter; do not pass it too")
        bound[item_param] = MapItem()
    unknown = sorted(set(bound) - set(names))
    if unknown:
        raise PipelineError(
            f"{site}: sub-pipeline {pipe.name!r} has no parameter(s) {unknown}; its parameters: "
            f"{names}"
        )
    missing = [p.name for p in pipe.params if p.required and p.name not in bound]
    if missing:
        raise PipelineError(
            f"{site}: sub-pipeline {pipe.name!r} is missing required parameter(s) {missing}"
        )
    if not any(isinstance(v, MapItem) for v in bound.values()):
        raise PipelineError(
            f"{site}: {pipe.name}.map(...) gives the item to no parameter; pass item_param='x', "
            "x=item, or sub-fields x=item['key']"
        )
    for key, value in bound.items():
        if isinstance(value, MapItem):
            if value._loop is not None:
                raise PipelineError(
                    f"{site}: {pipe.name}.map(...) passes {key}={value!r}, the item of an "
                    "enclosing map; a nested map reads its own item only"
                )
            bound[key] = MapItem(value._key, loop)
    for p in pipe.params:
        if p.name not in bound:
            bound[p.name] = p.default
    return bound


def check_item_loops(arguments: dict[str, Any], loop: Loop | None, site: str, step: str) -> None:
    """Refuse an ``item`` bound by another map than ``loop`` (an enclosing one)."""
    for key, value in arguments.items():
        if isinstance(value, MapItem) and value._loop not in (None, loop):
            raise PipelineError(
                f"{site}: step {step!r} gets {key}={value!r}, the item of an enclosing map "
                f"({value._loop.name}); a step reads the item of its own (innermost) map only"
            )


def body_item_args(
    arguments: dict[str, Any], loop: Loop, site: str, step: str, hyper: Any
) -> tuple[str, dict[str, str]]:
    """Split the item arguments of a step in the body of ``loop`` (it may take none)."""
    if hyper is not None:
        raise PipelineError(
            f"{site}: step {step!r} in a mapped sub-pipeline cannot use hyper-parameters"
        )
    check_item_loops(arguments, loop, site, step)
    if not any(isinstance(v, MapItem) for v in arguments.values()):
        return "", {}
    return split_item_args(arguments, "", site, step)
