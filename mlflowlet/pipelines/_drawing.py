"""Drawings of a traced pipeline: Mermaid and Graphviz text (``to_mermaid`` / ``to_dot``).

Data edges are solid, ordering and condition edges dashed; an exit step is drawn apart, and an
exit sub-pipeline's steps in a box of their own (they run after the pipeline, so no arrow leads
into them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .graph import Edge, Node, PipelineGraph


def mermaid(dag: PipelineGraph) -> str:
    """Return a Mermaid ``flowchart`` of ``dag``."""
    lines = ["flowchart TD", *_mermaid_lines(dag, "n", "    ")]
    if dag.exit_handler is not None:
        lines.append(f'    exit(["on exit: {dag.exit_handler.name}"])')
    if dag.exit_pipeline is not None:
        lines.append(f'    subgraph exit["on exit: {_quoted(dag.exit_pipeline.pipe.name)}"]')
        lines += _mermaid_lines(dag.exit_pipeline.dag, "x", "        ")
        lines.append("    end")
    return "\n".join(lines) + "\n"


def _mermaid_lines(dag: PipelineGraph, prefix: str, indent: str) -> list[str]:
    ids = {n.name: f"{prefix}{i}" for i, n in enumerate(dag.nodes)}
    lines = [f'{indent}{ids[node.name]}["{_label(node)}"]' for node in dag.nodes]
    for source, target, label, dashed in _arrows(dag):
        arrow = "-.->" if dashed else "-->"
        text = f'|"{_quoted(label)}"|' if label else ""  # quoted: "[", "|" or "-->" in it
        lines.append(f"{indent}{ids[source]} {arrow}{text} {ids[target]}")
    return lines


def dot(dag: PipelineGraph) -> str:
    """Return a Graphviz ``digraph`` of ``dag``."""
    lines = [f"digraph {_dot_string(dag.name)} {{", "    rankdir=TB;", *_dot_lines(dag, "    ")]
    if dag.exit_handler is not None:
        label = _dot_string(f"on exit: {dag.exit_handler.name}")
        lines.append(f"    {_dot_string(dag.exit_handler.name)} [label={label}, shape=box];")
    if dag.exit_pipeline is not None:
        label = _dot_string(f"on exit: {dag.exit_pipeline.pipe.name}")
        lines += ["    subgraph cluster_exit {", f"        label={label};"]
        lines += _dot_lines(dag.exit_pipeline.dag, "        ")
        lines.append("    }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_lines(dag: PipelineGraph, indent: str) -> list[str]:
    lines = [
        f"{indent}{_dot_string(node.name)} [label={_dot_string(_label(node))}];"
        for node in dag.nodes
    ]
    for source, target, label, dashed in _arrows(dag):
        attrs = [f"label={_dot_string(label)}"] if label else []
        if dashed:
            attrs.append("style=dashed")
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f"{indent}{_dot_string(source)} -> {_dot_string(target)}{suffix};")
    return lines


def _dot_string(text: str) -> str:
    """Return ``text`` as a DOT string: quoted and escaped, non-ASCII as it is (DOT reads UTF-8)."""
    return json.dumps(text, ensure_ascii=False)


def _arrows(dag: PipelineGraph) -> Iterator[tuple[str, str, str, bool]]:
    for source, target, data in dag._graph.edges(data=True):
        edges: list[Edge] = data["edges"]
        labels = [_edge_label(e) for e in edges if _edge_label(e)]
        dashed = all(e.kind in ("order", "condition") for e in edges)
        yield source, target, ", ".join(labels), dashed


def _quoted(text: str) -> str:
    """Return ``text`` fit for a quoted Mermaid label (``#`` starts an entity code there)."""
    return text.replace("#", "#35;").replace('"', "#quot;")


def _label(node: Node) -> str:
    extra = " (map)" if node.map is not None else " (hyper)" if node.hyper is not None else ""
    return _quoted(f"{node.name}{extra}")


def _edge_label(edge: Edge) -> str:
    if edge.kind == "order":
        return f"on {edge.on}" if edge.on else ""
    if edge.kind == "condition":
        return f"if {edge.output}"
    output = edge.output or "results"  # collect(node.results): every result of each item
    text = output if output == edge.param else f"{output} → {edge.param}"
    return f"[{text}]" if edge.kind == "collect" else text
