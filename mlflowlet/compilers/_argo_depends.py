"""Argo: a DAG task's ``depends``, from its producers' status (see :mod:`.argo`'s docstring).

A step reading a producer's data needs it ``Succeeded``; ``node.after(x, on=...)`` is
``x.Succeeded``, ``(x.Failed || x.Errored)`` or any end (``done``); an ordering-only
predecessor may also have been skipped or omitted; a collected fan-out may be ``Skipped``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..pipelines.graph import Node, PipelineGraph

# node.after(x, on=...) as Argo's depends (a pod that could not run is Errored; "done" any end)
STATUS_DEPENDS = {
    "success": "{task}.Succeeded",
    "failure": "({task}.Failed || {task}.Errored)",
    "done": "({task}.Succeeded || {task}.Failed || {task}.Errored || {task}.Skipped || "
    "{task}.Omitted)",
}


def build_depends(node: Node, dag: PipelineGraph, labels: dict[str, str]) -> tuple[str, list[Any]]:
    """Return the task's ``depends`` and the conditions of skippable collected fan-outs.

    See the module docstring; the conditions are those of a collected (or ``on="success"``)
    mapped step's blocks that the consumer is not inside (its ``when`` adds them, so a fan-out
    skipped by its condition, not by an empty list, skips the consumer too).
    """
    from ..pipelines._loops import item_tested

    parts: list[str] = []
    extra: list[Any] = []
    own = {b.index for b in node.blocks}
    for up in dag.upstream(node.name):
        edges = dag.edges_between(up, node.name)
        kinds = {e.kind for e in edges}
        task = labels[up]
        on = next((e.on for e in edges if e.on), "")  # node.after(up, on=...): its status
        if on in ("failure", "done") or (on == "success" and dag.node(up).map is None):
            parts.append(STATUS_DEPENDS[on].format(task=task))
        elif kinds == {"order"} and not on:
            parts.append(f"({task}.Succeeded || {task}.Skipped || {task}.Omitted)")
        elif kinds <= {"collect", "order"}:  # a fan-out collected or run on='success' after
            parts.append(f"({task}.Succeeded || {task}.Skipped)")
            if not item_tested(dag.node(up)):  # else decided per item: never skips the task
                extra += [b.condition for b in dag.node(up).blocks if b.index not in own]
        else:
            parts.append(f"{task}.Succeeded")
    return " && ".join(parts), extra
