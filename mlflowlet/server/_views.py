"""What the UI pages show, computed server-side: artifact previews, the DAG and scatter SVGs."""

from __future__ import annotations

import csv
import io
import os
from html import escape
from itertools import islice
from typing import Any

from ._files import relative_to_root

PREVIEW_ROWS = 50
IMAGE_FORMATS = ("png", "jpg", "jpeg", "gif", "svg", "webp")
STATE_COLORS = {
    "completed": "#2e7d32",
    "error": "#c62828",
    "running": "#1565c0",
    "created": "#757575",
    "pending": "#757575",
    "aborted": "#ef6c00",
    "skipped": "#9e9e9e",
}


def file_url(root: str, uri: str) -> str | None:
    """Return the ``/api/v1/files/...`` URL of a file under the artifact root, else None."""
    rel = relative_to_root(root, uri or "")
    return f"/api/v1/files/{rel}" if rel else None


def _csv_preview(path: str) -> dict[str, Any] | None:
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            reader = csv.reader(io.StringIO(fh.read(256 * 1024)))
            rows = list(islice(reader, PREVIEW_ROWS + 1))
    except OSError:
        return None
    return {"header": rows[0], "rows": rows[1:]} if rows else None


def artifact_preview(art: dict[str, Any], root: str) -> dict[str, Any]:
    """Decide how the run page shows an artifact: chart, table, image, html, model or link."""
    from ..artifacts._svg import render_svg

    kind, extra = art.get("kind") or "", art.get("extra") or {}
    fmt = (art.get("format") or os.path.splitext(art.get("uri") or "")[1]).lstrip(".").lower()
    url = file_url(root, art.get("uri") or "")
    out: dict[str, Any] = {"art": art, "url": url, "mode": "link"}
    if kind == "chart" and extra.get("rows"):
        out.update(
            mode="svg",
            svg=render_svg(
                extra.get("title") or art.get("key", ""),
                extra.get("header") or [],
                extra["rows"],
                extra.get("chart") or "line",
                extra.get("x"),
            ),
        )
    elif kind == "dataset" and (extra.get("preview") or {}).get("header"):
        out.update(mode="table", table=extra["preview"])
    elif (kind == "table" or art.get("viewer") == "table" or fmt == "csv") and url:
        table = _csv_preview(os.path.join(root, url[len("/api/v1/files/") :]))
        if table:
            out.update(mode="table", table=table)
    elif kind == "model":
        out.update(
            mode="model",
            metrics=extra.get("metrics") or {},
            parameters=extra.get("parameters") or {},
            framework=extra.get("framework") or "",
        )
    elif url and (fmt in IMAGE_FORMATS or kind == "plot"):
        out.update(mode="image")
    elif url and (fmt in ("html", "htm") or art.get("viewer") == "web-app"):
        out.update(mode="html")
    return out


def metric_charts(rows: list[dict[str, Any]]) -> list[str]:
    """Return one SVG line chart per metric key (value against step)."""
    from ..artifacts._svg import render_svg

    series: dict[str, list[list[Any]]] = {}
    for row in rows:
        series.setdefault(row["key"], []).append([row["step"], row["value"]])
    return [
        render_svg(key, ["step", key], points, "line", "step") for key, points in series.items()
    ]


def _levels(nodes: list[dict[str, Any]], edges: list[dict[str, Any]]) -> dict[str, int]:
    level = {n["uid"]: 0 for n in nodes}
    for _ in range(len(nodes)):  # longest-path layering; a DAG settles within len(nodes) rounds
        changed = False
        for e in edges:
            if level[e["target"]] < level[e["source"]] + 1:
                level[e["target"]] = level[e["source"]] + 1
                changed = True
        if not changed:
            break
    return level


def dag_svg(graph: dict[str, Any]) -> str:
    """Draw the pipeline DAG: one box per step (state colour, duration), labelled edges."""
    nodes, edges = graph["nodes"], graph["edges"]
    if not nodes:
        return "<p class='muted'>This pipeline has no step runs yet.</p>"
    level = _levels(nodes, edges)
    columns: dict[int, list[dict[str, Any]]] = {}
    for node in nodes:
        columns.setdefault(level[node["uid"]], []).append(node)
    box_w, box_h, gap_x, gap_y = 170, 54, 110, 36
    pos = {}
    for col, members in columns.items():
        for row, node in enumerate(members):
            pos[node["uid"]] = (20 + col * (box_w + gap_x), 20 + row * (box_h + gap_y))
    width = 40 + (max(columns) + 1) * (box_w + gap_x) - gap_x
    height = 40 + max(len(m) for m in columns.values()) * (box_h + gap_y) - gap_y
    parts = [
        f'<svg class="dag" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        ' role="img" aria-label="pipeline graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/>'
        "</marker></defs>",
    ]
    for e in edges:
        (x1, y1), (x2, y2) = pos[e["source"]], pos[e["target"]]
        sx, sy, tx, ty = x1 + box_w, y1 + box_h / 2, x2, y2 + box_h / 2
        label = escape(e["artifact_key"] or e["output"])
        if e["param"] and e["param"] != label:
            label += f" → {escape(e['param'])}"
        parts.append(
            f'<g class="edge"><path d="M{sx},{sy} C{sx + 50},{sy} {tx - 50},{ty} '
            f'{tx},{ty}" fill="none" stroke="#555" marker-end="url(#arrow)"/>'
            f'<text x="{(sx + tx) / 2}" y="{(sy + ty) / 2 - 6}" text-anchor="middle" '
            f'class="edge-label">{label}</text></g>'
        )
    for node in nodes:
        x, y = pos[node["uid"]]
        color = STATE_COLORS.get(node["state"], "#757575")
        took = f"{node['duration']:.1f}s" if node["duration"] is not None else ""
        href = f"/runs/{escape(node['uid'])}?project={escape(node['project'])}"
        parts.append(
            f'<a href="{href}" class="step" data-uid="{escape(node["uid"])}" '
            f'data-state="{escape(node["state"])}"><g><rect x="{x}" y="{y}" width="{box_w}" '
            f'height="{box_h}" rx="6" fill="#fff" stroke="{color}" stroke-width="2"/>'
            f'<text x="{x + 10}" y="{y + 22}" class="step-name">{escape(node["name"])}</text>'
            f'<text x="{x + 10}" y="{y + 41}" fill="{color}" class="step-state">'
            f"{escape(node['state'])} {took}</text></g></a>"
        )
    parts.append("</svg>")
    return "\n".join(parts)


def scatter_svg(
    points: list[tuple[float, float, int]], best: int | None, x_name: str, y_name: str
) -> str:
    """Plot ``(x, y, iteration)`` points; the best iteration is drawn larger, in another colour."""
    from ..artifacts._svg import nice_ticks

    if not points:
        return "<p class='muted'>No numeric values to plot.</p>"
    w, h, pad = 520, 320, 50
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    xt, yt = nice_ticks(min(xs), max(xs)), nice_ticks(min(ys), max(ys))

    def sx(v: float) -> float:
        return pad + (v - xt[0]) / ((xt[-1] - xt[0]) or 1) * (w - 2 * pad)

    def sy(v: float) -> float:
        return h - pad - (v - yt[0]) / ((yt[-1] - yt[0]) or 1) * (h - 2 * pad)

    parts = [
        f'<svg class="scatter" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
        f'aria-label="{escape(y_name)} against {escape(x_name)}">',
        f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#333"/>',
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="#333"/>',
    ]
    for t in xt:
        parts.append(
            f'<text x="{sx(t)}" y="{h - pad + 16}" text-anchor="middle" class="tick">{t:g}</text>'
        )
    for t in yt:
        parts.append(
            f'<text x="{pad - 6}" y="{sy(t) + 4}" text-anchor="end" class="tick">{t:g}</text>'
        )
    parts.append(f'<text x="{w / 2}" y="{h - 10}" text-anchor="middle">{escape(x_name)}</text>')
    parts.append(
        f'<text x="14" y="{h / 2}" transform="rotate(-90 14 {h / 2})" '
        f'text-anchor="middle">{escape(y_name)}</text>'
    )
    for x, y, it in points:
        is_best = it == best
        look = 'r="8" fill="#ef6c00" data-best="1"' if is_best else 'r="5" fill="#1565c0"'
        parts.append(
            f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" {look} class="point">'
            f"<title>iteration {it}: "
            f"{escape(x_name)}={x:g}, {escape(y_name)}={y:g}</title></circle>"
        )
    parts.append("</svg>")
    return "\n".join(parts)
