"""Run the steps of a mapped sub-pipeline locally: every item runs the whole body, no barrier.

The executor schedules each outermost loop (see :mod:`._subpipe`) as one unit
(:class:`LoopView`): once every step outside the loop that its steps need has finished, the
loop runs (:func:`run_loop`). Its items run at once (``parallel``, else the pipeline's
``max_parallel``); within one item the body's steps run in trace order, each reading the
results of the earlier steps *of that item*, so an item's second step never waits for
another item's first. A nested loop runs inside each item of its enclosing loop.

Each body step is recorded as a mapped step is: one run (its uid in ``status.steps``) whose
iterations are the items (``iteration`` = the item's 1-based position, nested items numbered
outer-major), sharing its log. An item whose earlier step failed or was skipped skips the rest
of its body; the step is ``error`` when an item failed, ``skipped`` when no item ran it. A
``with condition(...)`` block in the body that reads a body step is decided by each item (its
own results), else once for the loop.

A ``step.map`` under ``with condition(item...)`` runs the same way once the executor has
passed its upstream and status gates, as a loop of one step: each item decides its condition
on its own element, and an item whose condition is false is skipped (no run, no outputs; the
step is ``completed`` even when every item was skipped, as Argo's fan-out whose children were
all skipped succeeds).
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from ..errors import PipelineError
from ..model import RunObject, new_uid, now_iso
from ._inputs import Resolver
from ._items import Loop, MapItem, field_values, item_value
from ._status import item_failed, status_gate
from ._stepexec import StepCall, execute, last_line
from .refs import Collected, OutputRef

if TYPE_CHECKING:
    from .executor import LocalExecutor
    from .graph import Node


def item_tested(node: Node) -> bool:
    """Whether ``node`` is a ``step.map`` whose condition tests its item (``item.key == ...``)."""
    return node.condition is not None and next(node.condition.items(), None) is not None


def top_loop(node: Any) -> Loop | None:
    """Return the outermost loop of a sub-pipeline map step, or None."""
    loop = node.map.loop if node.map is not None else None
    return loop.chain()[0] if loop is not None else None


class LoopView:
    """The DAG as the scheduler sees it: each outermost loop's steps wait behind its first.

    The first step (the head) waits for every step outside the loop that any of the loop's
    steps needs; the others wait for the head, which runs the whole loop.
    """

    def __init__(self, dag: Any) -> None:
        self.dag = dag
        groups: dict[Loop, list[str]] = {}
        for node in dag.nodes:
            top = top_loop(node)
            if top is not None:
                groups.setdefault(top, []).append(node.name)
        head = {m: names[0] for names in groups.values() for m in names}
        self._up: dict[str, tuple[str, ...]] = {}
        for node in dag.nodes:
            name, first = node.name, head.get(node.name)
            ups: list[str]
            if first is None:
                ups = list(dag.upstream(name))
            elif first == name:
                ups = [u for m in groups[top_loop(node)] for u in dag.upstream(m)]  # type: ignore[index]
                ups = [u for u in ups if head.get(u) != name]
            else:
                ups = [first]
            self._up[name] = tuple(dict.fromkeys(ups))
        down: dict[str, list[str]] = {n.name: [] for n in dag.nodes}
        for name, waits in self._up.items():
            for up in waits:
                down[up].append(name)
        self._down = {k: tuple(v) for k, v in down.items()}

    def node(self, name: str) -> Any:
        """Return the node called ``name``."""
        return self.dag.node(name)

    @property
    def nodes(self) -> Any:
        """The nodes, in topological order."""
        return self.dag.nodes

    def upstream(self, name: str) -> tuple[str, ...]:
        """Return what ``name`` waits for."""
        return self._up[name]

    def downstream(self, name: str) -> tuple[str, ...]:
        """Return what waits for ``name``."""
        return self._down[name]

    def roots(self) -> list[str]:
        """Return the nodes that wait for nothing."""
        return [n.name for n in self.dag.nodes if not self._up[n.name]]


def run_loop(ex: Any, node: Any) -> Any:
    """Run the loop whose head is ``node`` (a no-op for its other steps: recorded with it)."""
    if node.name in ex.states:
        return None
    top = top_loop(node)
    if top is None:  # a step.map testing its item: a loop of this one step
        solo = copy.copy(node)
        top = Loop(f"{node.name}-items", node.map.items, node.map.parallel)
        solo.map = dataclasses.replace(node.map, loop=top)
        _warn_uncached(ex, [solo])
        _LoopRun(ex, [solo], solo=True).run(top)
        return None
    members = [n for n in ex.dag.nodes if top_loop(n) is top]
    _warn_uncached(ex, members)
    _LoopRun(ex, members).run(top)
    return None


def _warn_uncached(ex: LocalExecutor, members: list[Node]) -> None:
    """Say so when a step asking for the cache runs per item (not looked up, never silently)."""
    import warnings

    from ..errors import MlflowletWarning

    for n in members:
        if n.spec.cache if n.spec.cache is not None else ex.cache:
            warnings.warn(
                f"step {n.name!r} asks for cache=True but runs per item (a mapped sub-pipeline "
                "or a condition on the map item): its items are not looked up in the cache; "
                "they run",
                MlflowletWarning,
                stacklevel=2,
            )


class _LoopRun:
    def __init__(self, ex: Any, members: list[Any], solo: bool = False) -> None:
        self.ex, self.members, self.solo = ex, members, solo
        self.names = {n.name for n in members}
        self.uids = {n.name: new_uid() for n in members}
        self.items: dict[str, dict[int, RunObject]] = {n.name: {} for n in members}
        self.rows: dict[str, list[dict[str, Any]]] = {n.name: [] for n in members}
        self.held: dict[str, str] = {}  # step -> why it runs for no item
        self.fed_rows: dict[str, list[dict[str, Any]]] = {}  # loop over collected -> lineage
        self.failed: dict[tuple[str, int], bool] = {}  # (loop, enclosing item) -> an item failed
        self.lock = threading.Lock()
        self.start = now_iso()

    def run(self, top: Loop) -> None:
        for n in self.members:
            why = self._held_back(n)
            if why:
                self.held[n.name] = why
        try:
            values = self._values(top, {})
        except PipelineError as exc:
            for n in self.members:
                self.ex._record(n, "error", str(exc))
            self._settle(top, True)
            return
        self._loop(top, values, {}, 0)
        for n in self.members:
            if self.items[n.name]:  # the collected items it ran over fed it (rows once)
                self.rows[n.name] += self.fed_rows.get(n.map.loop.name, [])
            self._finish(n, bool(values))
        self._settle(top, self.failed.get((top.name, 0), False))

    def _settle(self, top: Loop, failed: bool) -> None:
        """Tell the executor whether the loop failed (for the pipeline's final state)."""
        self.ex.loops_failed = {**getattr(self.ex, "loops_failed", {}), top.name: failed}

    def _held_back(self, node: Any) -> str:
        """Why a step runs for no item: an outside step failed / was skipped, a false condition."""
        ex = self.ex
        if self.solo:  # the executor decided its upstream gates; each item, its condition
            return ""
        for up in ex.dag.upstream(node.name):
            if up in self.names:
                continue
            state = ex.states.get(up)
            if state in ("error", "aborted"):
                return f"upstream step {up!r} failed"
            if state == "skipped" and any(
                e.carries_data for e in ex.dag.edges_between(up, node.name)
            ):
                return f"upstream step {up!r} was skipped"
        try:
            if node.condition is not None and not self._per_item(node):
                if not node.condition.evaluate(ex.inputs.value_of):
                    return f"condition {node.condition} is false"
        except PipelineError as exc:
            return str(exc)
        return ""

    def _per_item(self, node: Node) -> bool:
        """Whether ``node``'s condition reads a body step (each item decides for itself)."""
        cond = node.condition
        return cond is not None and (
            item_tested(node)
            or any(isinstance(o, OutputRef) and o.node in self.names for o in cond.operands())
        )

    def _resolver(self, runs: dict[str, RunObject]) -> Resolver:
        ex = self.ex
        return Resolver({**ex.runs, **runs}, ex.params, ex.db, ex.project, ex.run.uid)

    def _values(self, loop: Loop, runs: dict[str, RunObject]) -> list[Any]:
        from .refs import PipelineParam

        items = loop.items
        if isinstance(items, Collected):  # a map over a map's results (only items that ran)
            got: dict[str, Any] = {}
            spec = next((n.map for n in self.members if n.map.loop is loop), None)
            fed, keys = (spec.fed, spec.fields) if spec is not None else ((), {})
            rows: list[dict[str, Any]] = []
            self._resolver(runs)._collect(items.ref, "items", got, {}, {}, rows, fed, keys)
            self.fed_rows[loop.name] = rows
            items = got["items"]
        elif isinstance(items, (OutputRef, PipelineParam)):
            items = self._resolver(runs).value_of(items)
        if not isinstance(items, (list, tuple)):
            raise PipelineError(
                f"loop {loop.name!r} maps over {loop.items!r}, which is a "
                f"{type(items).__name__}, not a list"
            )
        return list(items)

    def _loop(self, loop: Loop, values: list[Any], outer: dict[str, RunObject], base: int) -> None:
        """Run every item of ``loop`` (``base``: the enclosing item's 0-based flat position)."""
        units: list[Any] = []  # the body in trace order: direct steps and nested loops
        for n in self.members:
            chain = n.map.loop.chain()
            if n.map.loop is loop:
                units.append(n)
            elif loop in chain and chain[chain.index(loop) + 1] not in units:
                units.append(chain[chain.index(loop) + 1])

        def one(j: int, element: Any) -> None:
            runs, flat = dict(outer), base * len(values) + j
            for unit in units:
                if isinstance(unit, Loop):
                    try:
                        inner = self._values(unit, runs)
                    except PipelineError:
                        continue  # refused at trace time (items of an outside step or a list)
                    self._loop(unit, inner, runs, flat)
                else:
                    self._item(unit, element, runs, flat + 1)
            nested = {
                u.name: self.failed.get((u.name, flat), False) for u in units if isinstance(u, Loop)
            }
            states = {
                u.name: runs[u.name].state
                for u in units
                if not isinstance(u, Loop) and u.name in runs
            }
            failed = item_failed(units, self.ex.dag, states, nested)
            with self.lock:
                key = (loop.name, base)
                self.failed[key] = self.failed.get(key, False) or failed

        workers = loop.parallel or self.ex.max_parallel
        if workers <= 1 or len(values) <= 1:
            for j, element in enumerate(values):
                one(j, element)
            return
        with ThreadPoolExecutor(min(workers, len(values)), f"mlflowlet-{loop.name}") as pool:
            for fut in [pool.submit(one, j, element) for j, element in enumerate(values)]:
                fut.result()

    def _item(self, node: Any, element: Any, runs: dict[str, RunObject], iteration: int) -> None:
        """Run ``node`` for one item (``runs``: the earlier steps of that item, filled in)."""
        if node.name in self.held:
            return
        dag = self.ex.dag
        for up in dag.upstream(node.name):
            if up not in self.names:
                continue
            state = runs[up].state if up in runs else "skipped"
            edges = dag.edges_between(up, node.name)
            on = next((e.on for e in edges if e.on), "")
            if on:  # node.after(up, on=...): the item's own step's status decides, as outside
                if status_gate(on, state, up):
                    return
                if all(e.on for e in edges):
                    continue
            if state != "completed":
                return  # an earlier step of this item failed or did not run: skipped
        ex = self.ex
        arguments = dict(node.arguments)
        try:
            resolver = self._resolver(runs)

            def value_of(operand: object) -> object:
                if isinstance(operand, MapItem):
                    return item_value(operand, element)
                return resolver.value_of(operand)

            if self._per_item(node) and not node.condition.evaluate(value_of):
                return  # a false condition (Argo's `when` in the body): this item skips it
            if node.map.item_param:
                arguments[node.map.item_param] = element
            for param, key in node.map.fields.items():
                arguments[param] = field_values([element], key, node.name, param)[0]
            fed = node.map.fed if isinstance(node.map.items, OutputRef) else ()
            # lineage of the item: the list it came from (a result), as a map records it
            items = SimpleNamespace(items=node.map.items, fed=fed) if fed else None
            if items is not None:
                items.fields = node.map.fields
            facade = SimpleNamespace(arguments=arguments, map=items)
            params, inputs, _hashes, rows = resolver.resolve(facade)
            params.pop("__items__", None)
        except PipelineError as exc:
            runs[node.name] = self._failed(node, iteration, str(exc))
            return
        labels = {"pipeline": ex.pipe.name, "pipeline_uid": ex.run.uid, "step": node.name}
        call = StepCall(
            node.step,
            node.spec,
            node.name,
            params,
            inputs,
            labels,
            ex.project,
            ex.artifact_path,
            ex.run.uid,
            ex.run.uid,
            None,
            lineage=rows,
            records={k: resolver.records[u] for k, u in inputs.items() if u in resolver.records},
        )
        run = execute(call, self.ex.db, (self.uids[node.name], iteration))
        runs[node.name] = run
        with self.lock:
            self.items[node.name][iteration] = run
            self.rows[node.name] += rows

    def _failed(self, node: Any, iteration: int, error: str) -> RunObject:
        """Record item ``iteration`` of ``node`` as failed without running it."""
        run = RunObject()
        meta = run.metadata
        meta.uid, meta.name, meta.project = self.uids[node.name], node.name, self.ex.project
        meta.iteration = iteration
        run.status.state, run.status.error = "error", error
        run.status.start_time = run.status.end_time = now_iso()
        self.ex.db.store_run(run.to_dict(), meta.uid, meta.project, iteration)
        with self.lock:
            self.items[node.name][iteration] = run
        return run

    def _finish(self, node: Any, any_items: bool) -> None:
        """Record ``node``'s own run: the state its items add up to."""
        ex, done = self.ex, self.items[node.name]
        if node.name in self.held and not done:
            ex._record(node, "skipped", self.held[node.name])
            return
        states = [r.state for _i, r in sorted(done.items())]
        errors = [r.status.error for _i, r in sorted(done.items()) if r.state == "error"]
        if errors or any(s == "aborted" for s in states):
            state = "error"
        elif states and all(s == "skipped" for s in states):  # e.g. a container step's tool
            reason = next(iter(done.values())).metadata.annotations.get("reason", "")
            ex._record(node, "skipped", reason)
            return
        elif states or not any_items or self.solo:  # solo: every item's condition was false
            state = "completed"
        else:
            ex._record(node, "skipped", "an earlier step of every item failed or did not run")
            return
        run = RunObject()
        meta, spec = run.metadata, run.spec
        meta.uid, meta.name, meta.project = self.uids[node.name], node.name, ex.project
        meta.labels = {
            "kind": "local",
            **node.spec.labels,
            "pipeline": ex.pipe.name,
            "pipeline_uid": ex.run.uid,
            "step": node.name,
        }
        spec.handler, spec.parent_uid, spec.pipeline_uid = node.spec.handler, ex.run.uid, ex.run.uid
        run.status.state, run.status.start_time, run.status.end_time = state, self.start, now_iso()
        run.status.error = last_line(errors[0]) if errors else ""
        ex.db.store_run(run.to_dict(), meta.uid, meta.project, 0)
        run._record_in(ex.db)
        ex._finish(node, run, self.rows[node.name])
