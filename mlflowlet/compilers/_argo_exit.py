"""Argo ``onExit``: the exit step's container template, or an exit sub-pipeline's DAG template.

An exit sub-pipeline (``mlflowlet.pipelines._exitpipe``) is the DAG template
:data:`EXIT_TEMPLATE` (``failFast: false``), one task per step as in ``main``; the parameters the
run fills in are task arguments the controller substitutes when the exit handler runs:
``state`` is ``{{workflow.status}}``, ``failures`` ``{{workflow.failures}}``, a final status
:data:`mlflowlet._final_status.ARGO_TEXT`. A condition on ``state`` becomes a ``when`` on
``{{workflow.status}}``: ``state == "completed"`` is ``'{{workflow.status}}' == 'Succeeded'``,
``state == "error"`` is ``!= 'Succeeded'`` (``Failed`` or ``Error``), ``!=`` the opposite, as
the entrypoint maps the status; any other test of a filled-in parameter is refused.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from .._final_status import ARGO_TEXT
from ..errors import CompileError
from ._exit_plan import SPECIAL
from ._plan import Plan, StepPlan

if TYPE_CHECKING:
    from ..pipelines.graph import Node, PipelineGraph
    from ..pipelines.refs import Condition

EXIT_TEMPLATE = "exit-handler"
FILLED = {"state": "{{workflow.status}}", "failures": "{{workflow.failures}}"}


def exit_name(plan: Plan) -> str | None:
    """Return the ``onExit`` template's name (None: no exit handler)."""
    if plan.exit_step is not None:
        return plan.exit_step.label
    return EXIT_TEMPLATE if plan.exit_steps else None


def exit_templates(plan: Plan, dag: PipelineGraph) -> list[Any]:
    """Return the exit handler's templates (see the module docstring)."""
    from .argo import _models, build_container_template

    if plan.exit_step is not None:
        return [build_container_template(plan, plan.exit_step, exit_step=True)]
    if not plan.exit_steps:
        return []
    m = _models()
    labels = {st.name: st.label for st in plan.exit_steps}
    assert dag.exit_pipeline is not None  # plan.exit_steps are its steps
    exit_dag, kinds = dag.exit_pipeline.dag, dag.exit_pipeline.kinds
    tasks = [_task(st, labels, plan, exit_dag, kinds) for st in plan.exit_steps]
    main = m.Template(name=EXIT_TEMPLATE, dag=m.DAGTemplate(tasks=tasks, fail_fast=False))
    return [main, *(build_container_template(plan, st) for st in plan.exit_steps)]


def _task(
    st: StepPlan, labels: dict[str, str], plan: Plan, dag: PipelineGraph, kinds: dict[str, str]
) -> Any:
    from ._argo_depends import build_depends
    from .argo import _models, build_task

    m = _models()
    plain = dataclasses.replace(
        st,
        node=_bare(st.node),
        params={k: s for k, s in st.params.items() if s.kind not in SPECIAL},
    )
    task = build_task(plain, labels, plan, dag)
    filled = [
        m.Parameter(name=k, value=FILLED.get(s.kind, ARGO_TEXT))
        for k, s in sorted(st.params.items())
        if s.kind in SPECIAL
    ]
    if filled:
        given = list(task.arguments.parameters or []) if task.arguments else []
        params = sorted([*given, *filled], key=lambda p: p.name)
        task.arguments = m.Arguments(
            parameters=params, artifacts=task.arguments.artifacts if task.arguments else None
        )
    _depends, extra = build_depends(st.node, dag, labels)
    types = {name: typ for name, (typ, _d, _r) in plan.params.items()}
    conditions = [b.condition for b in st.node.blocks] + extra
    when = " && ".join(exit_when(c, labels, types, kinds) for c in conditions)
    task.when = when or None
    return task


def _bare(node: Node) -> Node:
    """Return a copy of ``node`` without condition blocks (its ``when`` is built here)."""
    import copy

    out = copy.copy(node)
    out.blocks = ()
    return out


def exit_when(
    cond: Condition, labels: dict[str, str], types: dict[str, str], kinds: dict[str, str]
) -> str:
    """Build an exit task's ``when``: ``state`` tests on ``{{workflow.status}}`` (see the doc).

    Raises:
        CompileError: a filled-in parameter tested otherwise (names the condition).
    """
    from ..pipelines.refs import PipelineParam
    from .argo import build_when

    if cond.op in ("and", "or"):
        joiner = " && " if cond.op == "and" else " || "
        left, right = (exit_when(c, labels, types, kinds) for c in (cond.left, cond.right))
        return f"({left}{joiner}{right})"
    for side, other in ((cond.left, cond.right), (cond.right, cond.left)):
        if isinstance(side, PipelineParam) and side.name in kinds:
            if (
                kinds[side.name] != "state"
                or cond.op not in ("==", "!=")
                or other
                not in (
                    "completed",
                    "error",
                )
            ):
                raise CompileError(
                    f"exit sub-pipeline condition {cond}: Argo tests the final state only as "
                    "state == / != 'completed' or 'error' ({{workflow.status}} == Succeeded); "
                    "test that, or test the value in a step"
                )
            succeeded = (other == "completed") == (cond.op == "==")
            return f"'{{{{workflow.status}}}}' {'==' if succeeded else '!='} 'Succeeded'"
    return build_when(cond, labels, types)
