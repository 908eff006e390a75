"""HTML and SVG snippets shared by the web UI and notebooks (``_repr_html_``); stdlib only.

``dag_svg`` draws a pipeline's DAG (states as stroke colours, which the UI's stylesheet may
override by ``data-state``); ``sparkline`` a tiny line of a metric series; ``run_card`` and
``pipeline_card`` what a ``RunObject`` and a ``PipelineRun`` show in Jupyter. Every value is
escaped; nothing is fetched from elsewhere.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from html import escape
from typing import Any

STATE_COLORS = {
    "completed": "#2e7d32",
    "error": "#c62828",
    "running": "#1565c0",
    "created": "#757575",
    "pending": "#9e9e9e",
    "aborted": "#ef6c00",
    "skipped": "#bdbdbd",
}


def _levels(nodes: list[dict[str, Any]], edges: list[dict[str, Any]]) -> dict[str, int]:
    level = {n["key"]: 0 for n in nodes}
    for _ in range(len(nodes)):  # longest-path layering; a DAG settles within len(nodes) rounds
        changed = False
        for e in edges:
            if e["source"] in level and e["target"] in level:
                if level[e["target"]] < level[e["source"]] + 1:
                    level[e["target"]] = level[e["source"]] + 1
                    changed = True
        if not changed:
            break
    return level


def dag_svg(graph: dict[str, Any]) -> str:
    """Draw the DAG: one box per step (state colour, duration, badges), labelled edges."""
    nodes, edges = graph["nodes"], graph["edges"]
    if not nodes:
        return "<p class='muted'>This pipeline has no steps yet.</p>"
    level = _levels(nodes, edges)
    columns: dict[int, list[dict[str, Any]]] = {}
    for node in nodes:
        columns.setdefault(level[node["key"]], []).append(node)
    box_w, box_h, gap_x, gap_y = 190, 62, 150, 30
    pos = {
        node["key"]: (20 + col * (box_w + gap_x), 20 + row * (box_h + gap_y))
        for col, members in columns.items()
        for row, node in enumerate(members)
    }
    width = 40 + (max(columns) + 1) * (box_w + gap_x) - gap_x
    height = 40 + max(len(m) for m in columns.values()) * (box_h + gap_y) - gap_y
    parts = [
        f'<svg class="dag" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        ' role="img" aria-label="pipeline graph"><defs><marker id="arrow" viewBox="0 0 10 10" '
        'refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto">'
        '<path d="M0,0 L10,5 L0,10 z" class="arrowhead" fill="#555"/></marker></defs>'
    ]
    for e in edges:
        if e["source"] not in pos or e["target"] not in pos:
            continue
        (x1, y1), (x2, y2) = pos[e["source"]], pos[e["target"]]
        dash = ' stroke-dasharray="4 3"' if e["kind"] in ("condition", "order") else ""
        sx, sy, tx, ty = x1 + box_w, y1 + box_h / 2, x2, y2 + box_h / 2
        parts.append(
            f'<g class="edge edge-{escape(e["kind"] or "data")}"><path d="M{sx},{sy} '
            f'C{sx + 45},{sy} {tx - 45},{ty} {tx},{ty}" fill="none" stroke="#555"{dash} '
            'marker-end="url(#arrow)"/>'
            f'<text x="{(sx + tx) / 2}" y="{(sy + ty) / 2 - 6}" text-anchor="middle" '
            f'class="edge-label">{escape(_short(e["label"], 24))}<title>{escape(e["label"])}'
            "</title></text></g>"
        )
    for node in nodes:
        parts.append(_node_svg(node, *pos[node["key"]], box_w, box_h))
    parts.append("</svg>")
    return "".join(parts)


def _node_svg(node: dict[str, Any], x: float, y: float, w: int, h: int) -> str:
    color = STATE_COLORS.get(node["state"], "#757575")
    took = f" {node['duration']:.1f}s" if node["duration"] is not None else ""
    badge = " · ".join(node["badges"])
    inner = (
        f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6" fill="#fff" stroke="{color}" '
        'stroke-width="2"/>'
        f'<text x="{x + 10}" y="{y + 20}" class="step-name" font-weight="600">'
        f"{escape(node['name'][:24])}<title>{escape(node['name'])}</title></text>"
        f'<text x="{x + 10}" y="{y + 38}" fill="{color}" class="step-state">'
        f"{escape(node['state'])}{took}</text>"
        f'<text x="{x + 10}" y="{y + 54}" class="step-badge" fill="#555" font-size="11">'
        f"{escape(_short(badge, 30))}"
        f"<title>{escape(badge)}</title></text>"
    )
    attrs = (
        f'class="step" data-key="{escape(node["key"])}" data-uid="{escape(node["uid"])}" '
        f'data-state="{escape(node["state"])}"'
    )
    if not node["uid"]:
        return f"<g {attrs}>{inner}</g>"
    href = f"/runs/{escape(node['uid'])}?project={escape(node['project'])}"
    return f'<a href="{href}" {attrs}><g>{inner}</g></a>'


def _short(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def sparkline(points: Sequence[tuple[float, float]], width: int = 120, height: int = 28) -> str:
    """Return a tiny axis-less line of ``(step, value)`` points (at most 60 drawn)."""
    pts = [(x, y) for x, y in points if math.isfinite(x) and math.isfinite(y)]
    if len(pts) > 60:
        stride = len(pts) / 60
        pts = [pts[int(i * stride)] for i in range(60)] + [pts[-1]]
    if len(pts) < 2:
        return ""
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, xspan = min(xs), (max(xs) - min(xs)) or 1.0
    y0, yspan = min(ys), (max(ys) - min(ys)) or 1.0
    path = " ".join(
        f"{'M' if i == 0 else 'L'}{(px - x0) / xspan * (width - 2) + 1:.1f},"
        f"{height - 1 - (py - y0) / yspan * (height - 2):.1f}"
        for i, (px, py) in enumerate(pts)
    )
    return (
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
        f'<path d="{path}" fill="none" stroke="#1565c0" stroke-width="1.5"/></svg>'
    )


_CELL = "padding:2px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:top"


def _text(value: Any, most: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return escape(text if len(text) <= most else text[: most - 1] + "…")


def _badge(state: str) -> str:
    color = STATE_COLORS.get(state, "#757575")
    return (
        f'<span style="background:{color};color:#fff;border-radius:8px;padding:1px 8px;'
        f'font-size:12px">{escape(state or "?")}</span>'
    )


def _table(title: str, rows: list[tuple[str, str]]) -> str:
    if not rows:
        return ""
    body = "".join(
        f'<tr><th style="{_CELL};color:#555">{k}</th><td style="{_CELL}">{v}</td></tr>'
        for k, v in rows
    )
    return f'<div style="margin:6px 0"><b>{title}</b><table>{body}</table></div>'


def _link(uri: str, base: str, key: str, project: str) -> str:
    if base.startswith(("http://", "https://")):
        href = f"{base}/api/v1/download?key={escape(key)}&project={escape(project)}"
    elif "://" in uri:
        href = uri
    else:
        href = "file://" + uri
    return f'<a href="{escape(href)}">{_text(uri, 70)}</a>'


def _artifact_row(art: dict[str, Any], base: str, project: str) -> tuple[str, str]:
    key = art.get("key", "")
    return _text(key), _link(art.get("uri") or "", base, key, project)


def run_card(
    run: dict[str, Any],
    metrics: dict[str, list[tuple[float, float]]],
    base: str = "",
    extra: str = "",
) -> str:
    """Return a run as HTML: state, params, results, artifacts with links, metric sparklines.

    Args:
        run: the run as a dict.
        metrics: metric key to its ``(step, value)`` points.
        base: the run DB's URL; a server URL makes artifact and run links point at it.
        extra: HTML shown under the title (a pipeline's DAG).
    """
    meta, spec, status = run.get("metadata", {}), run.get("spec", {}), run.get("status", {})
    project, uid = meta.get("project", ""), meta.get("uid", "")
    title = f"<b>{_text(meta.get('name', ''))}</b> {_badge(status.get('state', ''))}"
    if base.startswith(("http://", "https://")):
        title += f' <a href="{escape(base)}/runs/{escape(uid)}?project={escape(project)}">open</a>'
    parts = [
        '<div class="mlflowlet-run" style="font-family:sans-serif;font-size:13px">',
        f'<div>{title} <span style="color:#777">{escape(project)} / {escape(uid)}</span></div>',
        extra,
        _table("params", [(escape(str(k)), _text(v)) for k, v in spec.get("params", {}).items()]),
        _table(
            "results", [(escape(str(k)), _text(v)) for k, v in status.get("results", {}).items()]
        ),
        _table("artifacts", [_artifact_row(a, base, project) for a in status.get("artifacts", [])]),
        _table(
            "metrics",
            [
                (escape(k), f"{sparkline(pts)} {_text(pts[-1][1]) if pts else ''}")
                for k, pts in metrics.items()
            ],
        ),
    ]
    table = status.get("iterations") or []
    if len(table) > 1:
        best = status.get("results", {}).get("best_iteration")
        note = f"{len(table) - 1} iterations" + (f", best #{best}" if best else "")
        parts.insert(2, f'<div style="color:#555">{escape(note)}</div>')
    if status.get("error"):
        parts.append(f'<pre style="color:#c62828">{_text(status["error"], 2000)}</pre>')
    parts.append("</div>")
    return "".join(parts)


def pipeline_card(run: dict[str, Any], base: str = "") -> str:
    """Return a pipeline run as HTML: its card and its DAG (from ``spec.graph``) as inline SVG."""
    graph = run.get("spec", {}).get("graph") or {}
    steps = run.get("status", {}).get("steps") or {}
    nodes = []
    for spec in graph.get("nodes", []):
        entry = steps.get(spec["name"]) or {}
        badges = ["condition"] if spec.get("condition") else []
        badges += ["map"] if spec.get("map") else []
        nodes.append(
            {
                "key": spec["name"],
                "name": spec["name"],
                "uid": "",
                "project": "",
                "state": entry.get("state") or "pending",
                "duration": entry.get("duration"),
                "badges": badges,
            }
        )
    edges = [
        {"source": e["source"], "target": e["target"], "kind": e.get("kind", ""),
         "label": e.get("output") or e.get("kind", "")}
        for e in graph.get("edges", [])
    ]  # fmt: skip
    svg = dag_svg({"nodes": nodes, "edges": edges})
    return run_card(run, {}, base, f'<div style="overflow:auto">{svg}</div>')
