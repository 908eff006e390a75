"""Argo: a mapped sub-pipeline (``sub.map(...)``) as a DAG template per loop body.

Each loop is one task of the enclosing DAG (``main``, or the enclosing loop's body) that runs
the body's DAG template once per item (``withItems`` for a literal list, ``withParam`` for a
result or a ``list[T]`` parameter), so an item's steps wait only for that item's earlier steps,
as locally. The body template gets the item as ``inputs.parameters.item`` and every result of a
step outside the loop that a body step reads as an input parameter of its own (``ext-N``); its
tasks are the body's steps (no fan-out of their own) and its nested loops. A loop with
``parallel=N`` runs through a wrapper DAG template whose ``parallelism: N`` bounds the items
running at once (Argo's ``parallelism`` counts a template's running children).

A ``with condition(...)`` block opened in the body is the body task's ``when`` (a result of a
step outside the loop that it reads comes in as an ``ext-N`` input parameter too).

A bounded ``step.map(..., parallel=N)`` whose results a step outside any map collects: the
loop's templates declare them as outputs (the wrapper's aggregated over the items, ``[]`` for
none) and the collecting step reads and waits for the loop task.

Refused at compile time (one line naming the construct and the target): artifacts crossing
into a loop body, collecting a body step's results, anything else following a bounded map, and
a condition block around a map.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._wire import wire_json
from ..errors import CompileError
from ._naming import dns1123
from ._plan import Plan, StepPlan, result_output

if TYPE_CHECKING:
    from ..pipelines._items import Loop
    from ..pipelines.graph import Node, PipelineGraph


def _collects(dag: PipelineGraph, producer: str, consumer: str) -> bool:
    """Whether ``consumer``, mapped by nothing, only collects results of ``producer``."""
    kinds = {e.kind for e in dag.edges_between(producer, consumer)}
    return kinds == {"collect"} and dag.node(consumer).map is None


def _bounded(node: Any) -> bool:
    return node.map is not None and node.map.loop is None and bool(node.map.parallel)


def solo_loop(st: StepPlan, dag: Any, plan: Plan) -> Any:
    """Return the one-step loop that bounds a ``step.map(..., parallel=N)`` on Argo.

    Its results leave the loop to a step outside any map that collects them (the loop
    templates declare them as outputs, aggregated over the items).

    Raises:
        CompileError: something else reads or waits for the step.
    """
    from ..pipelines._items import Loop

    readers = [d for d in dag.downstream(st.name) if not _collects(dag, st.name, d)]
    readers += [f"pipeline output {k!r}" for k, src in plan.outputs.items() if src.node == st.name]
    if readers:
        raise CompileError(
            f"step {st.name!r} ({st.node.call_site}) maps with parallel={st.node.map.parallel} "
            f"and {readers[0]} depends on it: Argo target bounds a map's parallelism in a loop "
            "template, which only a step collecting its results may follow yet; drop parallel= "
            "or the dependency"
        )
    return Loop(f"{st.name}-loop", st.node.map.items, st.node.map.parallel)


ITEM = "{{inputs.parameters.item}}"


class _Scoped:
    """The DAG seen from one loop level: upstream steps outside it are the loop task's concern."""

    def __init__(self, dag: Any, keep: set[str]) -> None:
        self._dag, self._keep = dag, keep

    def upstream(self, name: str) -> list[str]:
        return [u for u in self._dag.upstream(name) if u in self._keep]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dag, name)


def _outside_operands(node: Node, level: set[str]) -> list[Any]:
    """Results of steps not in ``level`` that the body ``when`` of ``node`` reads."""
    from ..pipelines.refs import OutputRef

    conds = [b.condition for b in node.blocks if b.loop is not None]
    refs = [o for c in conds for o in c.operands() if isinstance(o, OutputRef)]
    return [r for r in refs if r.node not in level]


class ArgoLoops:
    """Builds the main DAG's tasks and the loop templates (see the module docstring)."""

    def __init__(self, plan: Plan, dag: Any, labels: dict[str, str], build_task: Any) -> None:
        self.plan, self.dag, self.labels, self.build_task = plan, dag, labels, build_task
        self.templates: list[Any] = []
        self.loop_labels: dict[Any, str] = {}
        self.solo = {st.name: solo_loop(st, dag, plan) for st in plan.steps if _bounded(st.node)}
        taken = set(labels.values())
        for st in plan.steps:
            for loop in self.loop_of(st.node).chain() if self.loop_of(st.node) is not None else ():
                if loop not in self.loop_labels:
                    label = dns1123(loop.name)
                    while label in taken:
                        label += "-x"
                    taken.add(label)
                    self.loop_labels[loop] = label
        for st in plan.steps:
            self._refuse(st)
        for key, src in plan.outputs.items():
            if src.node and self.loop_of(dag.node(src.node)) is not None:
                raise CompileError(
                    f"pipeline output {key!r} reads step {src.node!r} of a mapped sub-pipeline: "
                    "Argo target does not carry a loop body's outputs yet"
                )

    def loop_of(self, node: Any) -> Any:
        """Return the loop ``node`` runs in (a bounded ``step.map`` is a one-step loop), or None."""
        own = node.map.loop if node.map is not None else None
        return own if own is not None else self.solo.get(node.name)

    def inside(self, node: Any, loop: Any) -> bool:
        """Whether ``node`` runs in ``loop`` (directly or in a nested loop)."""
        own = self.loop_of(node)
        return own is not None and loop in own.chain()

    def _refuse(self, st: StepPlan) -> None:
        node = st.node
        inner = self.loop_of(st.node)
        where = f"step {st.name!r} ({node.call_site})"
        if inner is not None and any(b.loop is not inner for b in node.blocks):
            raise CompileError(
                f"{where} is in a loop under a condition opened around the loop: Argo target "
                "does not compile a condition around a loop template yet; open the condition "
                "inside the sub-pipeline (or drop parallel=)"
            )
        for src in [*st.params.values(), *st.artifacts_in.values()]:
            producer = self.dag.node(src.node) if src.node else None
            if producer is None or self.loop_of(producer) is None:
                continue
            if src.kind == "collect" and src.node not in self.solo:
                raise CompileError(
                    f"{where} collects results of step {src.node!r} of a mapped sub-pipeline: "
                    "Argo target does not carry a loop body's outputs yet"
                )
        for up in self.dag.upstream(st.name):
            own = self.loop_of(self.dag.node(up))
            if up in self.solo and _collects(self.dag, up, st.name):
                continue  # a bounded map's results, collected: the loop template's outputs
            if own is not None and (inner is None or own not in inner.chain()):
                raise CompileError(
                    f"{where} depends on step {up!r} inside a mapped sub-pipeline it is not in: "
                    "Argo target does not carry a loop body's outputs or status out of it yet"
                )
        for _key, src in st.artifacts_in.items():
            producer = self.dag.node(src.node)
            if inner is not None and self.loop_of(producer) is not inner:
                raise CompileError(
                    f"{where} reads artifact {src.key!r} of step {src.node!r} from outside its "
                    "mapped sub-pipeline: Argo target does not pass artifacts into a loop yet"
                )

    def main_tasks(self) -> list[Any]:
        """Return the ``main`` DAG's tasks (loop templates land in :attr:`templates`)."""
        return self._level(None, {})

    def _level(self, loop: Any, ext: dict[tuple[str, str, str], str]) -> list[Any]:
        """Tasks of one level: the steps directly in ``loop`` (None: main) and its child loops."""
        tasks: list[Any] = []
        units: list[Any] = []
        for st in self.plan.steps:
            own = self.loop_of(st.node)
            chain = own.chain() if own is not None else []
            if own is loop:
                units.append(st)
            else:
                depth = chain.index(loop) + 1 if loop is not None and loop in chain else 0
                if (loop is None or loop in chain) and chain and chain[depth] not in units:
                    units.append(chain[depth])
        level = {u.name for u in units if isinstance(u, StepPlan)}
        for unit in units:
            if isinstance(unit, StepPlan):
                tasks.append(self._step_task(unit, loop, ext, level))
            else:
                tasks.append(self._loop_task(unit, loop, ext, units))
        return tasks

    def _step_task(self, st: StepPlan, loop: Any, ext: dict, level: set[str]) -> Any:
        task = self.build_task(st, self.labels, self.plan, _Scoped(self.dag, level))
        if loop is None:  # a step collecting a bounded map's results: reads its loop task
            for up in [u for u in self.dag.upstream(st.name) if u in self.solo]:
                step, outer = self.labels[up], self.loop_labels[self.solo[up]]
                for p in (task.arguments.parameters if task.arguments else None) or []:
                    p.value = p.value.replace("{{tasks." + step + ".", "{{tasks." + outer + ".")
                part = f"({outer}.Succeeded || {outer}.Skipped)"
                task.depends = f"{task.depends} && {part}" if task.depends else part
            return task
        task.with_param = task.with_items = None  # the loop task fans out, once per item
        for p in (task.arguments.parameters if task.arguments else None) or []:
            src = st.params.get(p.name)
            if src is not None and src.kind == "item":
                p.value = ITEM
            elif src is not None and src.kind == "result" and src.node not in level:
                p.value = "{{inputs.parameters." + ext[(src.node, src.key, "json")] + "}}"
        for ref in _outside_operands(st.node, level):  # a body `when` reading an outer result
            outer = "{{tasks." + self.labels[ref.node] + ".outputs.parameters."
            outer += result_output(ref.key, "cond") + "}}"
            inner = "{{inputs.parameters." + ext[(ref.node, ref.key, "cond")] + "}}"
            task.when = task.when.replace(outer, inner)
        return task

    def _collected(self, loop: Loop) -> list[tuple[str, str]]:
        """Return ``(step label, output name)`` of the results collected out of solo ``loop``."""
        found = []
        for st in self.plan.steps:
            if self.solo.get(st.name) is loop:
                found += [(st.label, n) for _k, use, n in st.result_outputs() if use == "item"]
        return found

    def _external(self, loop: Any) -> list[tuple[str, str, str]]:
        """Results from outside ``loop`` that its steps (nested ones too) or nested loops read."""
        from ..pipelines.refs import OutputRef

        found: list[tuple[str, str, str]] = []
        for st in self.plan.steps:
            if not self.inside(st.node, loop):
                continue
            for src in st.params.values():
                if src.kind == "result" and not self.inside(self.dag.node(src.node), loop):
                    found.append((src.node, src.key, "json"))
            for ref in _outside_operands(st.node, set()):
                if not self.inside(self.dag.node(ref.node), loop):
                    found.append((ref.node, ref.key, "cond"))
            for each in self.loop_of(st.node).chain():
                items = each.items
                if each is not loop and loop in each.chain() and isinstance(items, OutputRef):
                    if not self.inside(self.dag.node(items.node), loop):
                        found.append((items.node, items.key, "items"))
        return list(dict.fromkeys(found))

    def _outer_ref(self, key: tuple[str, str, str], ext: dict) -> str:
        node, result, use = key
        if key in ext:
            return "{{inputs.parameters." + ext[key] + "}}"
        name = result_output(result, use)
        return "{{tasks." + self.labels[node] + ".outputs.parameters." + name + "}}"

    def _loop_task(self, loop: Any, parent: Any, ext: dict, units: list[Any]) -> Any:
        from . import argo

        m = argo._models()
        label = self.loop_labels[loop]
        inner_ext = {key: f"ext-{i + 1}" for i, key in enumerate(self._external(loop))}
        body = self._level(loop, inner_ext)
        inputs = [m.Parameter(name="item")] + [m.Parameter(name=n) for n in inner_ext.values()]
        collected = self._collected(loop)

        def outputs(task: str, default: str | None) -> Any:
            if not collected:
                return None
            return m.Outputs(
                parameters=[
                    m.Parameter(
                        name=name,
                        value_from=m.ValueFrom(
                            parameter="{{tasks."
                            + (task or step)
                            + ".outputs.parameters."
                            + name
                            + "}}",
                            default=default,
                        ),
                    )
                    for step, name in collected
                ]
            )

        self.templates.append(
            m.Template(
                name=label,
                inputs=m.Inputs(parameters=inputs),
                outputs=outputs("", None),  # the item's own result
                dag=m.DAGTemplate(tasks=body, fail_fast=False),
            )
        )
        args = [m.Parameter(name=n, value=self._outer_ref(k, ext)) for k, n in inner_ext.items()]
        with_items, with_param = self._items(loop, ext)
        depends = self._depends(loop, units)
        if loop.parallel:  # a wrapper whose parallelism bounds the items running at once
            wrapped = [
                m.Parameter(name=p.name, value="{{inputs.parameters." + p.name + "}}") for p in args
            ]
            decl = [m.Parameter(name=p.name) for p in args]
            if with_param is not None:
                decl.append(m.Parameter(name="items"))
                args.append(m.Parameter(name="items", value=with_param))
                with_param = "{{inputs.parameters.items}}"
            self.templates.append(
                m.Template(
                    name=f"{label}-for",
                    inputs=m.Inputs(parameters=decl) if decl else None,
                    outputs=outputs(label, "[]"),  # aggregated over the items ([]: none)
                    parallelism=loop.parallel,
                    dag=m.DAGTemplate(
                        tasks=[
                            m.DAGTask(
                                name=label,
                                template=label,
                                with_items=with_items,
                                with_param=with_param,
                                arguments=m.Arguments(
                                    parameters=[
                                        m.Parameter(name="item", value="{{item}}"),
                                        *wrapped,
                                    ]
                                ),
                            )
                        ]
                    ),
                )
            )
            return m.DAGTask(
                name=label,
                template=f"{label}-for",
                depends=depends or None,
                arguments=m.Arguments(parameters=args) if args else None,
            )
        return m.DAGTask(
            name=label,
            template=label,
            depends=depends or None,
            arguments=m.Arguments(parameters=[m.Parameter(name="item", value="{{item}}"), *args]),
            with_items=with_items,
            with_param=with_param,
        )

    def _items(self, loop: Any, ext: dict) -> tuple[Any, Any]:
        from ..pipelines.refs import OutputRef
        from . import argo

        m = argo._models()
        items = loop.items
        if isinstance(items, (list, tuple)):
            return [m.Item(wire_json(item)) for item in items], None
        if isinstance(items, OutputRef):
            return None, self._outer_ref((items.node, items.key, "items"), ext)
        return None, f"{{{{workflow.parameters.{items.name}}}}}"

    def _depends(self, loop: Any, units: list[Any]) -> str:
        """Return the loop task's ``depends``: the same-level units its steps need."""
        owner: dict[str, str] = {}
        for unit in units:
            if isinstance(unit, StepPlan):
                owner[unit.name] = unit.label
            else:
                for st in self.plan.steps:
                    if self.inside(st.node, unit):
                        owner[st.name] = self.loop_labels[unit]
        parts: list[str] = []
        for st in self.plan.steps:
            if not self.inside(st.node, loop):
                continue
            for up in self.dag.upstream(st.name):
                if self.inside(self.dag.node(up), loop) or up not in owner:
                    continue
                task = owner[up]
                kinds = {e.kind for e in self.dag.edges_between(up, st.name)}
                part = (
                    f"({task}.Succeeded || {task}.Skipped || {task}.Omitted)"
                    if kinds == {"order"}
                    else f"{task}.Succeeded"
                )
                if part not in parts:
                    parts.append(part)
        return " && ".join(parts)
