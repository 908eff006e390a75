"""The plan of an exit sub-pipeline's steps (``mlflowlet.pipelines._exitpipe``).

Each step of it is planned as a step of the pipeline (:func:`._plan._step_plan`, on the exit
graph for its edges) after its arguments are resolved against ``on_exit(...)``: a parameter bound
to a pipeline parameter reads that one, a literal or a default is baked in, and the parameters
the run fills in (``state``, ``failures``, the final status) become the engine's
:class:`~._plan.Source` of that kind, as an exit step's. Conditions keep ``state`` as it is (the
Argo compiler maps it to ``{{workflow.status}}``, see :mod:`._argo_exit`).
"""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeGuard

from ._plan import Source, StepPlan

if TYPE_CHECKING:
    from ..pipelines._exitpipe import ExitPipeline
    from ..pipelines.graph import Node, PipelineGraph
    from ..pipelines.refs import Condition, PipelineParam
    from ._options import CompileOptions

SPECIAL = ("state", "failures", "final_status")


def exit_plans(
    dag: PipelineGraph,
    labels: dict[str, str],
    params: dict[str, tuple[str, Any, bool]],
    options: CompileOptions,
    target: str,
) -> list[StepPlan]:
    """Return the plans of the exit sub-pipeline's steps (none without one)."""
    from ._plan import _step_plan
    from ._types import result_uses

    exit_ = dag.exit_pipeline
    if exit_ is None:
        return []
    nodes: list[Node] = []
    special: dict[str, dict[str, str]] = {}
    for node in exit_.dag.nodes:
        nodes.append(_resolved(node, exit_, special.setdefault(node.name, {})))
    typed = {**params, **{name: ("str", None, False) for name in exit_.kinds}}
    uses = result_uses(SimpleNamespace(nodes=nodes, outputs={}), typed, target)
    plans = []
    graph = _Graph(exit_.dag, exit_.dag.image or dag.image)  # the pipeline's image by default
    for node in nodes:
        st = _step_plan(graph, node, labels[node.name], params, uses, options)
        for key, kind in special[node.name].items():
            st.params[key] = Source(kind)
            st.param_types[key] = "str"
            if kind == "failures":  # the failed steps are the pipeline's, by task name
                st.failure_names = {labels[n.name]: n.name for n in dag.nodes}
        plans.append(st)
    return plans


def _resolved(node: Node, exit_: ExitPipeline, special: dict[str, str]) -> Node:
    """Return a copy of ``node`` with its exit pipeline's parameters resolved (see the doc)."""
    from ..pipelines.refs import ConditionBlock

    out = copy.copy(node)
    out.arguments = {}
    for key, value in node.arguments.items():
        if _own(value, exit_) and value.name in exit_.kinds:
            special[key] = exit_.kinds[value.name]
        else:
            out.arguments[key] = _value(value, exit_)
    out.blocks = tuple(
        ConditionBlock(b.index, _condition(b.condition, exit_), b.site) for b in node.blocks
    )
    return out


def _own(value: object, exit_: ExitPipeline) -> TypeGuard[PipelineParam]:
    from ..pipelines.refs import PipelineParam

    return isinstance(value, PipelineParam) and any(value is p for p in exit_.dag.params)


def _value(value: object, exit_: ExitPipeline) -> object:
    """Return what an exit pipeline parameter stands for (filled-in ones stay as they are)."""
    if not _own(value, exit_) or value.name in exit_.kinds:
        return value
    if value.name in exit_.arguments:
        return exit_.arguments[value.name]
    return value.default


def _condition(cond: Condition, exit_: ExitPipeline) -> Condition:
    from ..pipelines.refs import Condition

    if cond.op in ("and", "or"):
        return Condition(cond.op, _condition(cond.left, exit_), _condition(cond.right, exit_))
    return Condition(cond.op, _value(cond.left, exit_), _value(cond.right, exit_))


class _Graph:
    """The exit sub-pipeline's graph, with the image its steps default to."""

    def __init__(self, dag: PipelineGraph, image: str) -> None:
        self._dag, self.image = dag, image

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dag, name)
