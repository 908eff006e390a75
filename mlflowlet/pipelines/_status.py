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

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._items import Loop
    from .graph import Node, PipelineGraph

FAILED = ("error", "aborted")


def status_gate(on: str, state: str, up: str) -> str:
    """Return why a step does not run after ``up`` (in ``state``) by edge ``on`` ('' : it runs)."""
    if on == "failure" and state not in FAILED:
        return f"step {up!r} did not fail ({state})"
    if on == "success" and state != "completed":
        return f"step {up!r} did not succeed ({state})"
    return ""


def branch_states(
    dag: Any, states: dict[str, str], loops_failed: dict[str, bool] | None = None
) -> dict[str, str]:
    """Return each step's branch state (``completed`` / ``error``), in topological order.

    A step of a loop body takes its outermost loop's (``loops_failed``: loop name -> failed);
    without that, a step's own state.
    """
    branch: dict[str, str] = {}
    for node in dag.nodes:
        state = states.get(node.name, "skipped")
        loop = outer_loop(node)
        if loops_failed is not None and loop is not None and loop.name in loops_failed:
            branch[node.name] = "error" if loops_failed[loop.name] else "completed"
        elif state in FAILED:
            branch[node.name] = "error"
        elif state == "completed":
            branch[node.name] = "completed"
        else:  # skipped: inherits a failure from any predecessor's branch
            ups = dag.upstream(node.name)
            branch[node.name] = "error" if any(branch[u] == "error" for u in ups) else "completed"
    return branch


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
    branch: dict[str, str] = {}
    leaves: list[str] = []
    names = {unit.name for unit in body}
    for unit in body:
        if unit.name in nested:
            branch[unit.name] = "error" if nested[unit.name] else "completed"
            leaves.append(unit.name)
            continue
        state = states.get(unit.name, "skipped")
        if state in FAILED or state == "completed":
            branch[unit.name] = "error" if state in FAILED else "completed"
        else:
            ups = [u for u in dag.upstream(unit.name) if u in branch]
            branch[unit.name] = "error" if any(branch[u] == "error" for u in ups) else "completed"
        if not any(d in names for d in dag.downstream(unit.name)):
            leaves.append(unit.name)
    return any(branch[leaf] == "error" for leaf in leaves)


def final_state(
    dag: Any, states: dict[str, str], loops_failed: dict[str, bool] | None = None
) -> str:
    """Return the pipeline's final state by Argo's leaf rule (see the module docstring)."""
    branch = branch_states(dag, states, loops_failed or {})
    leaves = [n.name for n in dag.nodes if not dag.downstream(n.name)]
    return "error" if any(branch[leaf] == "error" for leaf in leaves) else "completed"


def exit_failures(node: Any, states: dict[str, str]) -> dict[str, Any]:
    """Return ``{"failures": failed step names, sorted}`` for an exit step that takes it."""
    if node.spec.param("failures") is None:
        return {}
    return {"failures": sorted(n for n, s in states.items() if s in FAILED)}
