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
"""

from __future__ import annotations

from typing import Any

FAILED = ("error", "aborted")


def status_gate(on: str, state: str, up: str) -> str:
    """Return why a step does not run after ``up`` (in ``state``) by edge ``on`` ('' : it runs)."""
    if on == "failure" and state not in FAILED:
        return f"step {up!r} did not fail ({state})"
    if on == "success" and state != "completed":
        return f"step {up!r} did not succeed ({state})"
    return ""


def branch_states(dag: Any, states: dict[str, str]) -> dict[str, str]:
    """Return each step's branch state (``completed`` / ``error``), in topological order."""
    branch: dict[str, str] = {}
    for node in dag.nodes:
        state = states.get(node.name, "skipped")
        if state in FAILED:
            branch[node.name] = "error"
        elif state == "completed":
            branch[node.name] = "completed"
        else:  # skipped: inherits a failure from any predecessor's branch
            ups = dag.upstream(node.name)
            branch[node.name] = "error" if any(branch[u] == "error" for u in ups) else "completed"
    return branch


def final_state(dag: Any, states: dict[str, str]) -> str:
    """Return the pipeline's final state by Argo's leaf rule (see the module docstring)."""
    if any(
        n.map.loop is not None
        for n in dag.nodes
        if n.map is not None and states.get(n.name) in FAILED
    ):  # a failed item fails its loop's body, so the loop (engines agree)
        return "error"
    branch = branch_states(dag, states)
    leaves = [n.name for n in dag.nodes if not dag.downstream(n.name)]
    return "error" if any(branch[leaf] == "error" for leaf in leaves) else "completed"


def exit_failures(node: Any, states: dict[str, str]) -> dict[str, Any]:
    """Return ``{"failures": failed step names, sorted}`` for an exit step that takes it."""
    if node.spec.param("failures") is None:
        return {}
    return {"failures": sorted(n for n, s in states.items() if s in FAILED)}
