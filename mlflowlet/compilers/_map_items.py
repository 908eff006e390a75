"""Compiling a map over a map (``items=collect(...)``) and a condition on the item (Argo).

A map over ``collect(x.results)`` / ``collect(x.results["k"])`` fans out over Argo's aggregate
of *every* output of ``x``'s items (``withParam: "{{tasks.x.outputs.parameters}}"``, a list of
``{output name: text}``, one per item that succeeded): unlike the per-output aggregate, it is
defined when every item was skipped (``[]``; argo-workflows#16793 leaves
``{{tasks.x.outputs.parameters.k}}`` unresolved then). Each parameter the item feeds gets the
whole element and reads its output (``--item-output param=name``), decoded back to the result.

A condition on the item (``with condition(item.evenness == "even")``) is the fanned-out task's
``when`` on ``{{item.evenness__if}}``: the producer writes the result's ``__if`` output as a
govaluate literal, typed as a condition on that result would be; Argo substitutes the item and
evaluates the ``when`` per item, and skips the items whose ``when`` is false.

KFP refuses both (see ``._kfp_limits``); so does Argo for an item condition on a map over
anything but collected results (its items are not typed), and for a parameter collecting a map
that an item condition guards (its aggregate may be unresolved, argo-workflows#16793), and
for a map over collected results nested in a mapped sub-pipeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..pipelines.graph import Node, PipelineGraph
    from ..pipelines.refs import Collected, Condition

from ..errors import CompileError


def collected_items(node: Node) -> Collected | None:
    """Return ``node.map.items`` when it is a ``Collected`` (a map over a map), else None."""
    from ..pipelines.refs import Collected

    items = node.map.items if node.map is not None else None
    return items if isinstance(items, Collected) else None


def item_condition(cond: Condition, node: Node) -> Condition:
    """Return ``cond`` with each item operand as the result of the collected step it reads.

    Raises:
        CompileError: the map is not over collected results, or reads the whole item of
            ``collect(x.results)``.
    """
    from ..pipelines._items import MapItem, describe_item
    from ..pipelines.refs import Condition, OutputRef

    if next(cond.items(), None) is None:
        return cond
    if cond.op in ("and", "or"):
        return Condition(cond.op, item_condition(cond.left, node), item_condition(cond.right, node))
    items = collected_items(node)
    sides = []
    for side in (cond.left, cond.right):
        if isinstance(side, MapItem):
            if items is None:
                raise CompileError(
                    f"step {node.name!r} ({node.call_site}) maps over "
                    f"{getattr(node.map, 'items', None)!r} under "
                    f"`with condition({cond})`: Argo target compiles a condition on the item of "
                    "a map over collected results only (collect(step.results)), whose outputs "
                    "carry their types; compute the test in the producing step"
                )
            field: str | None = describe_item(side)["key"]
            key = field if items.every else items.ref.key
            if key is None or (field is not None and not items.every):
                raise CompileError(
                    f"step {node.name!r} ({node.call_site}): `with condition({cond})` reads "
                    f"{side!r} of {items!r}; test a result by key (item.key) of "
                    "collect(step.results), or the item itself of collect(step.results['key'])"
                )
            side = OutputRef(items.node, key, "result")
        sides.append(side)
    return Condition(cond.op, sides[0], sides[1])


def item_fields(node: Node) -> dict[str, str]:
    """Return parameter -> result key of each parameter the item of a map over a map feeds."""
    items, spec = collected_items(node), node.map
    if items is None or spec is None:
        return {}
    if items.every:
        return dict(spec.fields)
    if spec.fields:
        raise CompileError(
            f"step {node.name!r} ({node.call_site}) reads sub-fields "
            f"{sorted(spec.fields.values())} of the items of {items!r}: compiled pipelines "
            f"read the item of one collected result whole; collect({items.node}.results) and "
            "read its results by key"
        )
    return {spec.item_param: items.ref.key}


def item_uses(dag: PipelineGraph) -> list[tuple[str, str, Any, Node]]:
    """Return ``(producer, result key, use, node)`` of every result a map over a map reads.

    ``use`` is ``item`` (a parameter reads it) or the node's rewritten condition (its ``when``
    reads the result's ``__if`` output).
    """
    from ..pipelines._loops import item_tested

    out: list[tuple[str, str, Any, Node]] = []
    for node in dag.nodes:
        items = collected_items(node)
        if items is not None:
            out += [(items.node, key, "item", node) for key in item_fields(node).values()]
        if node.map is not None and node.condition is not None and item_tested(node):
            out.append(("", "", item_condition(node.condition, node), node))
    return out


def refuse_for_argo(dag: PipelineGraph) -> None:
    """Refuse what Argo cannot carry exactly (see the module doc).

    Raises:
        CompileError: a parameter or pipeline output collecting a map an item condition
            guards, a map over collected results nested in a mapped sub-pipeline, or either
            construct with ``parallel=`` (a bounded map is a loop template).
    """
    from ..pipelines._loops import item_tested
    from ..pipelines.refs import Collected

    for node in dag.nodes:
        spec = node.map
        if spec is None:
            continue
        over = collected_items(node)
        if spec.parallel and (item_tested(node) or over is not None):
            raise CompileError(
                f"step {node.name!r} ({node.call_site}) maps with parallel={spec.parallel} "
                "over collected results or under a condition on its item: Argo target bounds "
                "a map's parallelism in a loop template, which carries neither yet; drop "
                "parallel= (or the pipeline's max_parallel bounds it)"
            )
        if over is not None and spec.loop is not None:
            raise CompileError(
                f"step {node.name!r} ({node.call_site}) maps over {over!r} inside a "
                "mapped sub-pipeline: Argo target does not pass collected results into a loop "
                "yet; map over them outside the sub-pipeline"
            )

    guarded = {n.name for n in dag.nodes if n.map is not None and item_tested(n)}
    for key, value in dag.outputs.items():
        if isinstance(value, Collected) and value.node in guarded:
            raise CompileError(
                f"pipeline output {key!r} collects {value!r}, a map under a condition on its "
                "item: Argo leaves that aggregate unresolved when every item was skipped "
                "(argo-workflows#16793); pass it to a step mapped over it instead"
            )
    for node in dag.nodes:
        for param, value in node.arguments.items():
            if isinstance(value, Collected) and value.node in guarded:
                raise CompileError(
                    f"parameter {param!r} of step {node.name!r} ({node.call_site}) collects "
                    f"{value!r}, a map under a condition on its item: Argo leaves that "
                    "aggregate unresolved when every item was skipped (argo-workflows#16793); "
                    f"map over it instead (step.map(items={value!r}, ...))"
                )


def when_of(node: Node, when: str, labels: dict[str, str]) -> str:
    """Return the task's ``when`` with the collected step's outputs read from ``{{item}}``."""
    items = collected_items(node)
    if items is None:
        return when
    return when.replace("{{tasks." + labels[items.node] + ".outputs.parameters.", "{{item.")
