"""A pipeline run as the live page shows it: every node of the DAG with its state and duration.

Nodes come from the pipeline run's ``spec.graph`` (so steps that have not started yet show as
``pending``, conditions and maps are visible); states from its ``status.steps`` and, fresher, from
the step runs themselves (a running step is written when it starts). A pipeline recorded without
a graph (a KFP or Argo import) falls back to its step runs and lineage edges.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .._html import dag_svg
from ..model import TERMINAL_STATES
from ._graph import duration_seconds, pipeline_graph

if TYPE_CHECKING:
    from ..db.base import RunDB


def operand_text(value: Any) -> str:
    """Return a condition or operand description (``spec.graph``) as readable text."""
    if not isinstance(value, dict):
        return json.dumps(value, default=str)
    if "op" in value:
        return f"{operand_text(value.get('left'))} {value['op']} {operand_text(value.get('right'))}"
    kind = value.get("kind")
    if kind == "param":
        return str(value.get("name"))
    if kind in ("result", "artifact"):
        field = "results" if kind == "result" else "outputs"
        return f"{value.get('node')}.{field}[{value.get('result') or value.get('output')!r}]"
    if kind == "collect":
        if value.get("result") == "":  # collect(node.results): every result of each item
            return f"collect({value.get('node')}.results)"
        return f"collect({value.get('node')}.{value.get('result') or value.get('artifact')})"
    if kind == "item":
        return "item" if value.get("key") is None else f"item[{value.get('key')!r}]"
    if kind == "value":
        return json.dumps(value.get("value"), default=str)
    return json.dumps(value, default=str)


def _elapsed(status: dict[str, Any]) -> float | None:
    done = duration_seconds(status)
    if done is not None or status.get("state") in TERMINAL_STATES:
        return done
    try:
        start = datetime.fromisoformat(status["start_time"])
    except (KeyError, TypeError, ValueError):
        return None
    now = datetime.now(start.tzinfo or timezone.utc)
    return max((now - start).total_seconds(), 0.0)


def live_graph(db: RunDB, uid: str, project: str = "") -> dict[str, Any]:
    """Return ``{"pipeline", "state", "nodes", "edges"}`` of a pipeline run, as of now.

    Raises:
        NotFoundError: no such pipeline run.
    """
    base = pipeline_graph(db, uid, project)
    pipeline = base["pipeline"] or {}
    graph = pipeline.get("spec", {}).get("graph") or {}
    if not graph.get("nodes"):
        for node in base["nodes"]:
            node.update(key=node["name"], badges=[])
        state = pipeline.get("status", {}).get("state", "")
        return {**base, "state": state, "edges": _lineage_edges(base)}
    recorded = pipeline.get("status", {}).get("steps") or {}
    runs = {}
    for node in base["nodes"]:  # step runs by step name: the latest attempt wins
        runs[node["name"]] = node
    exit_ = graph.get("exit_pipeline") or {}  # its steps run after the pipeline's
    exit_names = {spec["name"] for spec in exit_.get("nodes", [])}
    nodes = []
    for spec in [*graph["nodes"], *exit_.get("nodes", [])]:
        name = spec["name"]
        entry, run = recorded.get(name) or {}, runs.get(name)
        state = (run or {}).get("state") or entry.get("state") or "pending"
        duration = entry.get("duration")
        if run is not None and state not in TERMINAL_STATES:  # still running: time so far
            duration = _elapsed({"state": state, "start_time": run.get("start_time")})
        elif run is not None and duration is None:
            duration = run.get("duration")
        badges = []
        if spec.get("condition"):
            badges.append(f"if {operand_text(spec['condition'])}")
        if spec.get("map"):
            badges.append(f"map over {operand_text(spec['map'].get('items'))}")
        if spec.get("exit_handler") or name in exit_names:
            badges.append("on exit")
        nodes.append(
            {
                "key": name,
                "name": name,
                "uid": (run or {}).get("uid") or entry.get("uid", ""),
                "project": pipeline.get("metadata", {}).get("project", project),
                "state": state,
                "start_time": entry.get("start_time") or (run or {}).get("start_time", ""),
                "duration": duration,
                "badges": badges,
            }
        )
    edges = _merged_edges([*graph.get("edges", []), *exit_.get("edges", [])])
    state = pipeline.get("status", {}).get("state", "")
    return {"pipeline": pipeline, "state": state, "nodes": nodes, "edges": edges}


def _merged_edges(edges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One edge per pair of steps, its labels joined (data, a condition, an ordering)."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for e in edges:
        pair = (e["source"], e["target"])
        label, kind = _edge_label(e), e.get("kind", "")
        if pair not in merged:
            merged[pair] = {"source": pair[0], "target": pair[1], "kind": kind, "label": label}
            continue
        seen = merged[pair]
        seen["label"] = " · ".join(x for x in (seen["label"], label) if x)
        if kind not in ("condition", "order"):
            seen["kind"] = kind  # data flows: drawn solid
    return list(merged.values())


def _edge_label(edge: dict[str, Any]) -> str:
    if edge.get("kind") in ("condition", "order"):
        return edge.get("kind", "")
    out, param = edge.get("output") or "", edge.get("param") or ""
    return f"{out} → {param}" if param and param != out else out


def _lineage_edges(base: dict[str, Any]) -> list[dict[str, Any]]:
    names = {n["uid"]: n["name"] for n in base["nodes"]}
    out = []
    for e in base["edges"]:
        label = e["artifact_key"] or e["output"]
        if e["param"] and e["param"] != label:
            label += f" → {e['param']}"
        out.append(
            {"source": names[e["source"]], "target": names[e["target"]], "kind": "", "label": label}
        )
    return out


def live_state(graph: dict[str, Any]) -> dict[str, Any]:
    """Return what the live page polls: the pipeline state and each node's state and duration."""
    return {
        "state": graph["state"],
        "terminal": graph["state"] in TERMINAL_STATES,
        "nodes": {
            n["key"]: {"state": n["state"], "duration": n["duration"], "uid": n["uid"]}
            for n in graph["nodes"]
        },
    }


__all__ = ["dag_svg", "live_graph", "live_state", "operand_text"]
