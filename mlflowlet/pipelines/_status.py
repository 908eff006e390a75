"""Status rules of a pipeline run: when a step runs on another's status, and the final state.

* A step runs after an ordering predecessor by that edge's ``on`` (``node.after(x, on=...)``):
  ``success`` needs ``x`` completed, ``failure`` needs it failed, ``done`` only that it ended;
  a plain ``.after(x)`` skips the step when ``x`` failed. Data edges need their producer
  completed (a skipped producer skips the consumer).
* The pipeline's final state follows Argo's rule for a DAG (``assessDAGPhase`` in
  ``workflow/controller/dag.go``), which KFP's backend runs on: each step has a *branch* state,
  its own when it ran (completed or error), else (skipped) ``error`` when a predecessor's branch
  is ``error``; the pipeline is ``error`` when a *leaf* (a step nothing depends on) has an
  ``error`` branch. So a failure a later step handles (``on='failure'``) fails the pipeline
  only if it also reaches a leaf, as in Argo.
* A mapped sub-pipeline (a loop) fails when one item's body fails by that same rule inside the
  body (Argo runs each item's body as a DAG template); its steps' branch state is the loop's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._items import Loop
    from .executor import LocalExecutor
    from .graph import Node, PipelineGraph

FAILED = ("error", "aborted")


def status_gate(on: str, state: str, up: str) -> str:
    """Return why a step does not run after ``up`` (in ``state``) by edge ``on`` ('' : it runs)."""
    if on == "failure" and state not in FAILED:
        return f"step {up!r} did not fail ({state})"
    if on == "success" and state != "completed":
        return f"step {up!r} did not succeed ({state})"
    return ""


def dag_failed(
    names: list[str],
    own: Callable[[str], str],
    upstream: Callable[[str], Iterable[str]],
    downstream: Callable[[str], Iterable[str]],
) -> bool:
    """Whether a DAG fails by Argo's leaf rule (``assessDAGPhase``, see the module docstring).

    ``names``: its steps in topological order; ``own(name)``: a step's state (anything but
    ``completed`` or a failure counts as skipped). A skipped step's branch inherits a failure
    from any predecessor's; the DAG fails when a leaf (nothing in ``names`` after it) has.
    """
    branch: dict[str, bool] = {}  # name -> its branch failed
    for name in names:
        state = own(name)
        if state in FAILED or state == "completed":
            branch[name] = state in FAILED
        else:
            branch[name] = any(branch.get(up, False) for up in upstream(name))
    inside = set(names)
    return any(branch[n] for n in names if not inside.intersection(downstream(n)))


def outer_loop(node: Node) -> Loop | None:
    """Return the outermost loop ``node`` runs in (a mapped sub-pipeline), or None."""
    loop = node.map.loop if node.map is not None else None
    return loop.chain()[0] if loop is not None else None


def item_failed(
    body: list[Any], dag: PipelineGraph, states: dict[str, str], nested: dict[str, bool]
) -> bool:
    """Whether one item's body failed by the leaf rule inside it.

    ``body``: the body's steps (trace order) and nested loops; ``states``: each body step's state
    for this item (missing: skipped); ``nested``: nested loop name -> whether it failed for this
    item. A nested loop is a leaf (nothing in the body may read it).
    """

    def own(name: str) -> str:
        if name in nested:
            return "error" if nested[name] else "completed"
        return states.get(name, "skipped")

    def around(edges: Callable[[str], Iterable[str]]) -> Callable[[str], Iterable[str]]:
        return lambda name: () if name in nested else edges(name)

    names = [unit.name for unit in body]
    return dag_failed(names, own, around(dag.upstream), around(dag.downstream))


def final_state(
    dag: Any, states: dict[str, str], loops_failed: dict[str, bool] | None = None
) -> str:
    """Return the pipeline's final state by Argo's leaf rule (see the module docstring).

    A step of a loop body takes its outermost loop's state (``loops_failed``: loop name ->
    whether an item's body failed); without that, its own.
    """
    loops_failed = loops_failed or {}

    def own(name: str) -> str:
        loop = outer_loop(dag.node(name))
        if loop is not None and loop.name in loops_failed:
            return "error" if loops_failed[loop.name] else "completed"
        return states.get(name, "skipped")

    names = [n.name for n in dag.nodes]
    failed = dag_failed(names, own, dag.upstream, dag.downstream)
    return "error" if failed else "completed"


def exit_failures(node: Any, states: dict[str, str]) -> dict[str, Any]:
    """Return ``{"failures": failed step names, sorted}`` for an exit step that takes it."""
    if node.spec.param("failures") is None:
        return {}
    return {"failures": sorted(n for n, s in states.items() if s in FAILED)}


def exit_params(node: Node, state: str, error: str, executor: LocalExecutor) -> dict[str, Any]:
    """Return what the exit step gets from the run: ``state``, ``failures``, final statuses.

    ``state`` / ``error``: the pipeline's final state and error; a parameter annotated
    ``PipelineTaskFinalStatus`` gets the local run's own values (its run's uid, the pipeline's
    name; see :mod:`mlflowlet._final_status`).
    """
    from .._final_status import PipelineTaskFinalStatus, final_status_params

    run, name = executor.run.uid, executor.pipe.name
    status = PipelineTaskFinalStatus(state, run, name, None, error or None, "local").to_dict()
    statuses = {key: dict(status) for key in final_status_params(node.spec)}
    given = node.spec.param("state") is not None or node.spec.var_keyword
    return {
        **({"state": state} if given else {}),
        **exit_failures(node, executor.states),
        **statuses,
    }
