"""The pipeline DAG: :class:`Node`, :class:`Edge` and :class:`PipelineGraph` (owns networkx).

This is the only module that imports networkx, and it is imported when a pipeline is first
traced, never by ``import mlflowlet``. Everything here is target-neutral: the local executor
runs it, and compilers (KFP, Argo) walk it without touching networkx.

Accessor API (for executors and compilers)
------------------------------------------
``pipe.dag`` is a :class:`PipelineGraph` (``pipe.describe()`` is ``pipe.dag.describe()``):

* ``dag.name``, ``dag.description``, ``dag.handler`` (``module:qualname`` of the pipeline
  function), ``dag.image`` (default image), ``dag.params`` (tuple of
  :class:`~mlflowlet.pipelines.refs.PipelineParam`: ``name``, ``type``, ``hint``, ``default``,
  ``required``).
* ``dag.nodes``: tuple of :class:`Node` in a deterministic topological order (trace order among
  independent nodes); ``dag.node(name)``; ``len(dag)``, ``name in dag``, ``iter(dag)``.
* ``dag.exit_handler``: the exit :class:`Node` (run after everything, with ``state``) or None.
* ``dag.outputs``: output name to what the pipeline function returned (an ``OutputRef``, a
  ``Collected``, a ``PipelineParam`` or a JSON value; ``{}`` when it returns nothing).
* ``dag.edges``: tuple of :class:`Edge`; ``dag.in_edges(name)``, ``dag.out_edges(name)``,
  ``dag.upstream(name)`` / ``dag.downstream(name)`` (node names), ``dag.roots()``.
* ``dag.describe()``: the same as plain JSON-safe dicts (a fresh copy each call), stored on every
  pipeline run; ``dag.to_networkx()`` (a copy), ``dag.to_mermaid()``, ``dag.to_dot()``.

A :class:`Node` has ``name`` (unique: ``train``, ``train-2``), ``spec`` (the step's
:class:`~mlflowlet.pipelines.step.StepSpec`: ``handler`` ``'module:function'``, ``params`` with
``type``/``default``/``required``/``dataitem``, ``outputs``, ``image``, ``resources``,
``retries``, ``retry_delay``, ``timeout``, ``cache``, ``labels``), ``arguments`` (parameter name
to a literal, a ``PipelineParam``, an ``OutputRef`` or a ``Collected``; ``describe()`` gives the
``{"kind": ...}`` dicts of :mod:`mlflowlet.pipelines.refs`), ``after`` (ordering-only
predecessors), ``condition`` (a :class:`~mlflowlet.pipelines.refs.Condition` or None: all
enclosing ``with condition(...)`` blocks and-ed), ``hyper`` (a
:class:`~mlflowlet.pipelines.step.HyperSpec` or None), ``map`` (a :class:`MapSpec`: ``items``
operand, ``item_param``, ``parallel``; or None), ``exit_handler`` (bool) and ``call_site``.

An :class:`Edge` is ``source -> target`` with ``kind``:

* ``artifact``: ``source.outputs[output]`` feeds parameter ``param`` (as a ``DataItem``);
* ``result``: ``source.results[output]`` feeds ``param`` (as a value);
* ``collect``: every item of mapped ``source`` (``ref`` is ``artifact`` or ``result``) feeds
  ``param`` as a list;
* ``items``: ``source.results[output]`` is the list a mapped ``target`` fans out over
  (``param`` is the item parameter);
* ``condition``: ``source.results[output]`` is read by ``target``'s condition;
* ``order``: ``target.after(source)``, no data (``on``: the status ``source`` must end in).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import networkx as nx

from ..errors import CycleError, PipelineError
from .refs import Collected, Condition, OutputRef, PipelineParam, describe_value

if TYPE_CHECKING:
    from ._exitpipe import ExitPipeline


@dataclass(frozen=True)
class MapSpec:
    """The fan-out of a mapped node: one run per element of ``items``.

    Attributes:
        items: a result ``OutputRef``, a ``PipelineParam`` or a literal list.
        item_param: the step parameter that receives one element per run (``''``: none).
        parallel: runs at once (None: the pipeline's ``max_parallel``).
        fields: step parameter -> the key of each element it receives (``x=item["key"]``).
        loop: the :class:`~mlflowlet.pipelines._items.Loop` of a step in a mapped
            sub-pipeline (its items run the whole body, no barrier), None for ``step.map``.
    """

    items: Any
    item_param: str
    parallel: int | None = None
    fields: dict[str, str] = field(default_factory=dict)
    loop: Any = None

    @property
    def fed(self) -> tuple[str, ...]:
        """Every parameter the item feeds: ``item_param`` (if any), then the fields, sorted."""
        return (*([self.item_param] if self.item_param else []), *sorted(self.fields))

    @property
    def params(self) -> str:
        """The parameter(s) the item feeds, as an edge's ``param`` (comma-separated)."""
        return ",".join(self.fed)

    def describe(self) -> dict[str, Any]:
        """Return ``{"items": operand dict, "item_param", "parallel", "fields"}``."""
        out: dict[str, Any] = {
            "items": describe_value(self.items),
            "item_param": self.item_param,
            "parallel": self.parallel,
            "fields": dict(self.fields),
        }
        if self.loop is not None:
            out["loop"] = [loop.name for loop in self.loop.chain()]
        return out


class Node:
    """One step call in the pipeline (read-only once the pipeline is traced).

    Attributes:
        name: the unique node name.
        step: the :class:`~mlflowlet.pipelines.step.Step` (its ``fn`` runs locally).
        spec: the step's spec, with the call's ``with_options`` overrides applied.
        arguments: parameter name to literal / ``PipelineParam`` / ``OutputRef`` / ``Collected``.
        after: names of ordering-only predecessors.
        after_on: ordering predecessor to the status it must end in for this node to run
            (``success``, ``failure`` or ``done``); those without one: see :meth:`after`.
        condition: the condition guarding the node, or None.
        hyper: hyper-parameters, or None.
        map: the fan-out, or None.
        exit_handler: True for the ``on_exit`` step.
        call_site: ``'file:line'`` of the call in the pipeline function.
        blocks: the enclosing ``with condition(...)`` blocks
            (:class:`~mlflowlet.pipelines.refs.ConditionBlock`), outermost first; ``condition``
            is their conjunction.
    """

    __slots__ = (
        "name",
        "step",
        "spec",
        "arguments",
        "after",
        "condition",
        "hyper",
        "map",
        "exit_handler",
        "call_site",
        "index",
        "blocks",
        "after_on",
    )

    def __init__(
        self,
        name: str,
        step: Any,
        arguments: dict[str, Any],
        *,
        condition: Condition | None = None,
        hyper: Any = None,
        map: MapSpec | None = None,
        exit_handler: bool = False,
        call_site: str = "",
        index: int = 0,
        blocks: tuple[Any, ...] = (),
    ) -> None:
        self.name, self.step, self.spec = name, step, step.spec
        self.arguments = arguments
        self.after: tuple[str, ...] = ()
        self.after_on: dict[str, str] = {}  # ordering predecessor -> success / failure / done
        self.condition, self.hyper, self.map = condition, hyper, map
        self.exit_handler, self.call_site, self.index = exit_handler, call_site, index
        self.blocks = blocks

    @property
    def handler(self) -> str:
        """``'module:function'`` of the step."""
        return self.spec.handler

    @property
    def outputs(self) -> tuple[str, ...]:
        """The declared artifact outputs."""
        return self.spec.outputs

    def references(self) -> Iterator[tuple[str, Any]]:
        """Yield ``(param, OutputRef | Collected)`` for every argument that is a reference."""
        for param, value in self.arguments.items():
            if isinstance(value, (OutputRef, Collected)):
                yield param, value

    def describe(self) -> dict[str, Any]:
        """Return the node as a plain dict (see the module docstring)."""
        return {
            "name": self.name,
            "step": self.spec.describe(),
            "arguments": {k: describe_value(v) for k, v in self.arguments.items()},
            "after": list(self.after),
            "after_on": dict(self.after_on),
            "condition": self.condition.describe() if self.condition is not None else None,
            "condition_blocks": [b.index for b in self.blocks],
            "hyper": self.hyper.describe() if self.hyper is not None else None,
            "map": self.map.describe() if self.map is not None else None,
            "exit_handler": self.exit_handler,
            "call_site": self.call_site,
        }

    def __repr__(self) -> str:
        return f"<Node {self.name!r} {self.spec.handler}>"


@dataclass(frozen=True)
class Edge:
    """A labelled dependency ``source -> target`` (kinds in the module docstring).

    Attributes:
        source: the producing (or earlier) node.
        target: the consuming (or later) node.
        kind: ``artifact``, ``result``, ``collect``, ``items``, ``condition`` or ``order``.
        output: the output or result key on ``source`` (``''`` for ``order``).
        param: the parameter of ``target`` it feeds (``''`` for ``condition`` and ``order``).
        ref: for ``collect``: ``artifact`` or ``result``; else ``''``.
        on: for ``order``: the status ``source`` must end in (``success``, ``failure``,
            ``done``), ``''`` for plain ordering.
    """

    source: str
    target: str
    kind: str
    output: str = ""
    param: str = ""
    ref: str = ""
    on: str = ""

    def describe(self) -> dict[str, Any]:
        """Return the edge as a plain dict."""
        return {
            "source": self.source,
            "target": self.target,
            "kind": self.kind,
            "output": self.output,
            "param": self.param,
            "ref": self.ref,
            "on": self.on,
        }

    @property
    def carries_data(self) -> bool:
        """True unless the edge is ``order``-only."""
        return self.kind != "order"


def _edges_of(node: Node) -> list[Edge]:
    out: list[Edge] = []
    for param, value in node.references():
        if isinstance(value, Collected):
            out.append(Edge(value.node, node.name, "collect", value.ref.key, param, value.ref.kind))
        else:
            out.append(Edge(value.node, node.name, value.kind, value.key, param))
    if node.map is not None and isinstance(node.map.items, OutputRef):
        ref = node.map.items
        out.append(Edge(ref.node, node.name, "items", ref.key, node.map.params))
    if node.map is not None and isinstance(node.map.items, Collected):  # a map over a map
        ref = node.map.items.ref
        out.append(Edge(ref.node, node.name, "collect", ref.key, node.map.params, ref.kind))
    if node.condition is not None:
        seen = set()
        for operand in node.condition.operands():
            if isinstance(operand, OutputRef) and (operand.node, operand.key) not in seen:
                seen.add((operand.node, operand.key))
                out.append(Edge(operand.node, node.name, "condition", operand.key))
    out.extend(
        Edge(before, node.name, "order", on=node.after_on.get(before, "")) for before in node.after
    )
    return out


class PipelineGraph:
    """The traced pipeline: nodes, labelled edges, parameters and the exit handler.

    Args:
        name: the pipeline name.
        params: the pipeline parameters.
        nodes: the nodes in trace order.
        exit_handler: the ``on_exit`` node, or None.
        description: the pipeline's docstring.
        handler: ``'module:qualname'`` of the pipeline function.
        image: the default image for compiled runs.
        outputs: output name to what the pipeline function returned for it (see
            :mod:`mlflowlet.pipelines._outputs`).

    Raises:
        CycleError: the nodes form a cycle (through ``after``); the error lists its steps.
    """

    def __init__(
        self,
        name: str,
        params: tuple[PipelineParam, ...],
        nodes: list[Node],
        exit_handler: Node | None = None,
        description: str = "",
        handler: str = "",
        image: str = "",
        outputs: dict[str, Any] | None = None,
    ) -> None:
        self.name, self.params, self.description = name, tuple(params), description
        self.handler, self.image, self.exit_handler = handler, image, exit_handler
        self.exit_pipeline: ExitPipeline | None = None  # an exit sub-pipeline
        self.outputs: dict[str, Any] = dict(outputs or {})
        graph = nx.DiGraph(name=name)
        for node in nodes:
            graph.add_node(node.name, node=node)
        edges: list[Edge] = []
        for node in nodes:
            for edge in _edges_of(node):
                if edge.source not in graph:
                    raise PipelineError(
                        f"node {node.name!r} refers to unknown node {edge.source!r}"
                    )
                edges.append(edge)
                if graph.has_edge(edge.source, edge.target):
                    graph.edges[edge.source, edge.target]["edges"].append(edge)
                else:
                    graph.add_edge(edge.source, edge.target, edges=[edge])
        if not nx.is_directed_acyclic_graph(graph):
            cycle = [u for u, _v in nx.find_cycle(graph)]
            raise CycleError(cycle)
        self._graph = graph
        order = nx.lexicographical_topological_sort(
            graph, key=lambda n: graph.nodes[n]["node"].index
        )
        self.nodes: tuple[Node, ...] = tuple(graph.nodes[n]["node"] for n in order)
        self.edges: tuple[Edge, ...] = tuple(edges)
        self._by_name = {n.name: n for n in self.nodes}
        self._up = {n: tuple(graph.predecessors(n)) for n in graph}
        self._down = {n: tuple(graph.successors(n)) for n in graph}
        self._described: dict[str, Any] | None = None
        self._described_json: Any = None

    # lookups ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def node(self, name: str) -> Node:
        """Return the node called ``name``.

        Raises:
            PipelineError: no such node (the message lists them).
        """
        try:
            return self._by_name[name]
        except KeyError:
            raise PipelineError(
                f"pipeline {self.name!r} has no step {name!r}; steps: {sorted(self._by_name)}"
            ) from None

    def upstream(self, name: str) -> tuple[str, ...]:
        """Names of the direct predecessors of ``name``."""
        return self._up[name]

    def downstream(self, name: str) -> tuple[str, ...]:
        """Names of the direct successors of ``name``."""
        return self._down[name]

    def edges_between(self, source: str, target: str) -> list[Edge]:
        """Return the labelled edges from ``source`` to ``target`` (empty when none)."""
        data = self._graph.get_edge_data(source, target)
        return list(data["edges"]) if data else []

    def in_edges(self, name: str) -> list[Edge]:
        """Edges into ``name``."""
        return [e for up in self._up[name] for e in self.edges_between(up, name)]

    def out_edges(self, name: str) -> list[Edge]:
        """Edges out of ``name``."""
        return [e for down in self._down[name] for e in self.edges_between(name, down)]

    def roots(self) -> list[str]:
        """Names of the nodes with no predecessors, in order."""
        return [n.name for n in self.nodes if not self._up[n.name]]

    # views -----------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Return the whole pipeline as plain, JSON-safe dicts (a fresh copy each call)."""
        return copy.deepcopy(self.described())

    def described(self) -> dict[str, Any]:
        """Return :meth:`describe`'s dict without copying it (callers must not change it)."""
        if self._described is None:
            self._described = {
                "name": self.name,
                "description": self.description,
                "handler": self.handler,
                "image": self.image,
                "params": [p.spec() for p in self.params],
                "nodes": [n.describe() for n in self.nodes],
                "edges": [e.describe() for e in self.edges],
                "exit_handler": self.exit_handler.describe() if self.exit_handler else None,
                "exit_pipeline": self._exit_pipeline_described(),
                "outputs": {k: describe_value(v) for k, v in self.outputs.items()},
            }
        return self._described

    def _exit_pipeline_described(self) -> dict[str, Any] | None:
        """Return the exit sub-pipeline: its name, the ``on_exit`` arguments, steps, edges."""
        exit_ = self.exit_pipeline
        if exit_ is None:
            return None
        return {
            "name": exit_.pipe.name,
            "arguments": {k: describe_value(v) for k, v in exit_.arguments.items()},
            "nodes": [n.describe() for n in exit_.dag.nodes],
            "edges": [e.describe() for e in exit_.dag.edges],
        }

    def described_json(self) -> Any:
        """Return :meth:`described` in its JSON-safe form (as a run's ``to_dict`` dumps it).

        Made once, and encoded once for the run DB (``db._json.share``); do not change it.
        """
        if self._described_json is None:
            from pydantic_core import to_jsonable_python

            from ..db._json import share

            self._described_json = share(to_jsonable_python(self.described()))
        return self._described_json

    def to_networkx(self) -> nx.DiGraph:
        """Return a copy of the networkx graph (attributes: node ``node``, edge ``edges``)."""
        return self._graph.copy()

    def to_mermaid(self) -> str:
        """Return a Mermaid ``flowchart`` of the pipeline (dashed arrows: ordering/condition)."""
        from ._drawing import mermaid

        return mermaid(self)

    def to_dot(self) -> str:
        """Return a Graphviz ``digraph`` of the pipeline."""
        from ._drawing import dot

        return dot(self)

    def __repr__(self) -> str:
        return f"<PipelineGraph {self.name!r} nodes={len(self.nodes)} edges={len(self.edges)}>"
