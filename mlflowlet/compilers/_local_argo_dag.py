"""``--check`` for Argo: run a DAG template a task calls (a mapped sub-pipeline's body).

:mod:`mlflowlet.compilers._argo_loops` compiles each loop body to a DAG template that a task
runs once per item; here each such call runs the template's tasks in dependency order by the
same rules as ``main`` (:class:`~._local_argo.ArgoLocalRunner`), with the call's arguments as
``{{inputs.parameters.*}}`` and the body's own ``{{tasks.*}}`` scope, then the template's phase
by Argo's leaf rule. A body pod's iteration is its item's 1-based position (nested items
outer-major), as the local run numbers them, so an item whose ``when`` skipped a step leaves its
number out there too.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..errors import CompileError
from ._argo_expr import depends_tasks

if TYPE_CHECKING:
    from ._local_argo import ArgoLocalRunner

_INPUT = re.compile(r"^\{\{inputs\.parameters\.([^}]+)\}\}$")


def run_body(
    runner: Any,
    template: dict[str, Any],
    values: dict[str, str],
    raw: dict[str, str],
    place: tuple[int, int],
) -> tuple[bool, dict[str, str]]:
    """Run one call of DAG ``template`` with input parameters ``values``.

    ``raw`` holds the call's arguments before substitution: lineage follows a body input back
    to the step output it came from (:func:`unalias`). ``place``: (item, items) of the call.

    Returns:
        Whether it succeeded, and its output parameters (``valueFrom.parameter`` in its scope,
        else the ``default``; one that resolves to neither is left out).
    """
    runner.aliases.append(raw)
    runner.places.append(place)
    saved_scope, saved_phase = runner.scope, runner.phase
    runner.scope = {**saved_scope, **{f"inputs.parameters.{k}": v for k, v in values.items()}}
    runner.phase = {}
    runner.looping += 1
    try:
        tasks = template["dag"]["tasks"]
        for task in toposort(tasks):
            runner.phase[task["name"]] = runner._task(task)
        from ._local_argo import substitute

        outputs: dict[str, str] = {}
        for p in template.get("outputs", {}).get("parameters", []):
            source = p["valueFrom"]
            try:
                outputs[p["name"]] = substitute(source["parameter"], runner.scope, template["name"])
            except CompileError:
                if source.get("default") is not None:
                    outputs[p["name"]] = source["default"]
        return dag_phase(tasks, runner.phase) == "Succeeded", outputs
    finally:
        runner.scope, runner.phase = saved_scope, saved_phase
        runner.looping -= 1
        runner.aliases.pop()
        runner.places.pop()


def unalias(runner: Any, raw: str) -> str:
    """Follow ``{{inputs.parameters.x}}`` out through the open bodies' calls to its source."""
    for aliases in reversed(runner.aliases):
        match = _INPUT.match(raw)
        if match is None:
            break
        raw = aliases.get(match.group(1), raw)
    return raw


_OUTPUT = re.compile(r"^\{\{tasks\.([^.]+)\.outputs\.parameters\.([^}]+)\}\}$")


def unoutput(runner: ArgoLocalRunner, raw: str) -> str:
    """Follow a DAG template's output parameter in to the step output it comes from."""
    for _ in range(len(runner.templates)):
        match = _OUTPUT.match(raw)
        if match is None:
            break
        task, name = match.groups()
        found = [
            p["valueFrom"]["parameter"]
            for tpl in runner.templates.values()
            for t in tpl.get("dag", {}).get("tasks", [])
            if t["name"] == task
            for p in runner.templates[t["template"]].get("outputs", {}).get("parameters", [])
            if p["name"] == name and "parameter" in p.get("valueFrom", {})
        ]
        nxt = next((f for f in found if f != raw), None)  # a wrapper's task has the same name
        if nxt is None:
            break
        raw = nxt
    return raw


def number(runner: Any, pod: Any) -> None:
    """Give a pod inside a loop body its item number (see the module docstring)."""
    if runner.looping:
        flat = 0
        for item, items in runner.places:
            if item:  # 0: a call once, not per item (the wrapper bounding a loop's parallelism)
                flat = flat * items + item - 1
        pod.iteration = flat + 1


def body_steps(runner: Any, name: str) -> list[str]:
    """Return the step names of the containers DAG template ``name`` runs (nested too)."""
    from ._local_argo import _node_name

    template = runner.templates.get(name, {})
    if "container" in template:
        return [_node_name(template["container"], name)]
    found: list[str] = []
    for task in template.get("dag", {}).get("tasks", []):
        found += body_steps(runner, task["template"])
    return found


def dag_phase(tasks: list[dict[str, Any]], phase: dict[str, str]) -> str:
    """Return a finished DAG's phase by Argo's rule (``assessDAGPhase``, ``dag.go``).

    A task that ran has its own phase as its branch phase; a skipped or omitted one inherits
    ``Failed``/``Error`` from any task it depends on, else ``Succeeded``. The DAG fails with the
    first failed branch phase among its leaves (tasks nothing depends on).
    """
    branch: dict[str, str] = {}
    for task in toposort(tasks):
        own = phase.get(task["name"], "Omitted")
        if own in ("Succeeded", "Failed", "Error"):
            branch[task["name"]] = own
        else:
            ups = [branch[d] for d in depends_tasks(task) if d in branch]
            branch[task["name"]] = next((b for b in ups if b != "Succeeded"), "Succeeded")
    needed = {d for task in tasks for d in depends_tasks(task)}
    leaves = [t["name"] for t in tasks if t["name"] not in needed]
    return next((branch[n] for n in leaves if branch[n] != "Succeeded"), "Succeeded")


def toposort(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return ``tasks`` in dependency order (a cycle or an unknown dependency is an error)."""
    done: set[str] = set()
    order: list[dict[str, Any]] = []
    pending = list(tasks)
    while pending:
        ready = [t for t in pending if all(d in done for d in depends_tasks(t))]
        if not ready:
            raise CompileError(
                f"tasks {[t['name'] for t in pending]} depend on unknown tasks or on each other"
            )
        for t in ready:
            order.append(t)
            done.add(t["name"])
            pending.remove(t)
    return order
