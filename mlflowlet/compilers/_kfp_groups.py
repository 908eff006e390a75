"""Condition groups for KFP: one ``dsl.If`` group per ``with condition(...)`` block.

KFP's DSL requires every task of a group to be created inside one ``with dsl.If(...)`` context,
and a task outside a group may not depend on a task inside it ("Illegal task dependency across
DSL context managers"). :func:`check_topology` refuses such pipelines with the step, the block
and the fix; :func:`group_tree` arranges the steps as nested groups (nested blocks nest) whose
members are ordered so each is created after everything it depends on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import CompileError

if TYPE_CHECKING:
    from ..pipelines.graph import Node, PipelineGraph
    from ._plan import Plan


@dataclass
class Group:
    """A ``with condition(...)`` block (``block`` None: the pipeline itself) and its members.

    A group with a ``loop`` is a mapped sub-pipeline's ``dsl.ParallelFor`` (nested maps nest).
    """

    block: Any
    members: list[Any] = field(default_factory=list)  # StepPlan or Group, in creation order
    loop: Any = None


def _chain(node: Node) -> tuple[int, ...]:
    return tuple(b.index for b in node.blocks)


def check_topology(plan: Plan, dag: PipelineGraph) -> None:
    """Refuse an edge from a step inside a condition block to a step outside that block.

    Raises:
        CompileError: names both steps, the block's ``with`` line and how to fix it.
    """
    for st in plan.steps:
        consumer = _chain(st.node)
        for edge in dag.in_edges(st.name):
            producer = dag.node(edge.source)
            chain = _chain(producer)
            if consumer[: len(chain)] != chain:
                block = next(b for b in producer.blocks if b.index not in consumer)
                what = "runs after" if edge.kind == "order" else "reads the output of"
                raise CompileError(
                    f"step {st.name!r} ({st.node.call_site}) {what} step {edge.source!r}, which "
                    f"runs inside `with condition({block.condition})` at {block.site}; KFP "
                    "cannot pass data or order out of a condition group: create the step "
                    "inside that block (it is skipped with it in any case)"
                )


def group_tree(plan: Plan) -> Group:
    """Return the steps as nested groups, each group's members in a valid creation order."""
    root = Group(None)
    groups: dict[Any, Group] = {}
    for st in plan.steps:
        loop = st.node.map.loop if st.node.map is not None else None
        if loop is not None and any(b.loop is not loop for b in st.node.blocks):
            raise CompileError(
                f"step {st.name!r} ({st.node.call_site}) is in a mapped sub-pipeline under "
                "a condition around the map: KFP target does not compile a condition around a "
                "sub-pipeline map yet; open the condition inside the sub-pipeline"
            )
        # a block opened in the body nests in its loop's ParallelFor (each item decides)
        scopes = [*(loop.chain() if loop is not None else ()), *st.node.blocks]
        parent = root
        for scope in scopes:
            key = scope if loop is not None and scope in loop.chain() else scope.index
            if key not in groups:
                groups[key] = Group(None, loop=scope) if key is scope else Group(scope)
                parent.members.append(groups[key])
            parent = groups[key]
        parent.members.append(st)
    if groups:
        _order(root, {st.name: st for st in plan.steps})
    return root


def _names(member: Any) -> set[str]:
    if isinstance(member, Group):
        return {n for m in member.members for n in _names(m)}
    return {member.name}


def _order(group: Group, steps: dict[str, Any]) -> None:
    """Sort members so each comes after the members it depends on (stable otherwise)."""
    owner = {name: i for i, m in enumerate(group.members) for name in _names(m)}
    needs: list[set[int]] = []
    for i, member in enumerate(group.members):
        ups = {
            owner[up]
            for name in _names(member)
            for up in steps[name].depends
            if up in owner and owner[up] != i
        }
        needs.append(ups)
    done: list[int] = []
    while len(done) < len(group.members):
        ready = [i for i in range(len(group.members)) if i not in done and needs[i] <= set(done)]
        if not ready:
            raise CompileError(f"steps {sorted(_names(group))} depend on each other across blocks")
        done.append(ready[0])
    group.members = [group.members[i] for i in done]
    for member in group.members:
        if isinstance(member, Group):
            _order(member, steps)
