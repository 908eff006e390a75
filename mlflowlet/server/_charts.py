"""Inline SVG charts for the UI: metric series against their step, overlays, parallel coordinates.

No script runs inside an SVG; ``static/app.js`` reads each series' ``data-points`` for the hover
readout. Long series are thinned for display only (the min and max of each bucket are kept, so a
spike never disappears); the page says so and links the exact rows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from ..artifacts._svg import PALETTE, nice_ticks

W, H = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 42
#: most points drawn per series; a longer series keeps its min and max per bucket
DISPLAY_POINTS = 400
#: series up to this many points get one marker (with a native tooltip) per point
MARKERS = 200
Point = tuple[float, float]


def thin(points: Sequence[Point], limit: int = DISPLAY_POINTS) -> list[Point]:
    """Return at most ``limit`` of ``points`` in order: first, last, each bucket's extremes."""
    count = len(points)
    if count <= limit:
        return list(points)
    values = [p[1] for p in points]
    buckets = max(1, (limit - 2) // 2)
    keep = {0, count - 1}
    for b in range(buckets):
        lo = 1 + (count - 2) * b // buckets
        hi = max(1 + (count - 2) * (b + 1) // buckets, lo + 1)
        chunk = values[lo:hi]
        keep.add(lo + chunk.index(min(chunk)))
        keep.add(lo + chunk.index(max(chunk)))
    return [points[i] for i in sorted(keep)]


class _Axis:
    def __init__(self, low: float, high: float, start: float, length: float, flip: bool) -> None:
        self.ticks = nice_ticks(low, high)
        self.low, self.span = self.ticks[0], (self.ticks[-1] - self.ticks[0]) or 1.0
        self.start, self.length, self.flip = start, length, flip

    def __call__(self, value: float) -> float:
        frac = (value - self.low) / self.span
        return self.start + (1 - frac if self.flip else frac) * self.length


def _fmt(value: float) -> str:
    text = f"{value:.6g}"
    return "0" if text == "-0" else text


def series_points(rows: Iterable[Sequence[Any]]) -> tuple[dict[str, list[Point]], dict[str, int]]:
    """Group ``(key, step, value)`` rows into ``(step, value)`` points per key.

    Non-finite or missing values are counted, not drawn; a row without a step is placed at its
    position in the series.
    """
    grouped: dict[str, list[tuple[Any, Any]]] = {}
    for key, step, value in rows:
        grouped.setdefault(key, []).append((step, value))
    series: dict[str, list[Point]] = {}
    skipped: dict[str, int] = {}
    for key, pairs in grouped.items():
        points = [
            (float(i) if step is None else float(step), float(value))
            for i, (step, value) in enumerate(pairs)
            if type(value) in (int, float) and math.isfinite(value)  # not bools, not NaN
        ]
        series[key] = points
        if len(points) < len(pairs):
            skipped[key] = len(pairs) - len(points)
    return series, skipped


def line_chart(
    title: str, named: Sequence[tuple[str, Sequence[Point]]], x_name: str = "step", total: int = 0
) -> str:
    """Return an ``<svg>`` line chart of one or more named series (legend when more than one).

    Args:
        title: the chart title (the metric key).
        named: ``(series name, points)`` pairs, points in logging order.
        x_name: the x axis title.
        total: points logged in all (shown when the series were thinned).
    """
    shown = [(name, thin(points)) for name, points in named]
    every = [p for _, pts in shown for p in pts]
    if not every:
        return f'<p class="muted">{escape(title)}: no finite values to plot.</p>'
    xs, ys = [p[0] for p in every], [p[1] for p in every]
    x = _Axis(min(xs), max(xs), LEFT, W - LEFT - RIGHT, flip=False)
    y = _Axis(min(ys), max(ys), TOP, H - TOP - BOTTOM, flip=True)
    drawn = sum(len(p) for _, p in shown)
    logged = total or sum(len(p) for _, p in named)
    tall = H + (16 * len(shown) + 4 if len(shown) > 1 else 0)  # the legend goes underneath
    parts = [
        f'<svg class="metric" width="{W}" height="{tall}" viewBox="0 0 {W} {tall}" role="img" '
        f'aria-label="{escape(title)} against {escape(x_name)}" data-key="{escape(title)}" '
        f'data-x0="{x.low}" data-x1="{x.low + x.span}" data-px0="{LEFT}" '
        f'data-px1="{W - RIGHT}" data-logged="{logged}" data-drawn="{drawn}">',
        f'<text class="title" x="{LEFT}" y="16">{escape(title)}</text>',
        *_grid(x, y, x_name),
    ]
    for n, (name, points) in enumerate(shown):
        parts.append(_series(name, points, x, y, PALETTE[n % len(PALETTE)]))
    if len(shown) > 1:
        parts += _legend([name for name, _ in shown])
    parts.append("</svg>")
    return "".join(parts)


def _grid(x: _Axis, y: _Axis, x_name: str) -> list[str]:
    bottom, right = H - BOTTOM, W - RIGHT
    out = ['<g class="grid">']
    out += [f'<line x1="{LEFT}" y1="{y(t):.1f}" x2="{right}" y2="{y(t):.1f}"/>' for t in y.ticks]
    out.append("</g>")
    out.append(
        f'<g class="axis"><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}"/>'
        f'<line x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}"/></g>'
    )
    out += [
        f'<text class="tick" x="{LEFT - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{_fmt(t)}</text>'
        for t in y.ticks
    ]
    out += [
        f'<text class="tick" x="{x(t):.1f}" y="{bottom + 16}" text-anchor="middle">{_fmt(t)}</text>'
        for t in x.ticks
    ]
    out.append(
        f'<text class="axis-name" x="{(LEFT + right) / 2}" y="{H - 6}" text-anchor="middle">'
        f"{escape(x_name)}</text>"
    )
    return out


def _series(name: str, points: list[Point], x: _Axis, y: _Axis, color: str) -> str:
    path = " ".join(
        f"{'M' if i == 0 else 'L'}{x(px):.1f},{y(py):.1f}" for i, (px, py) in enumerate(points)
    )
    data = json.dumps([[px, py] for px, py in points], separators=(",", ":"))
    out = [
        f'<g class="series" data-name="{escape(name)}" data-color="{color}" '
        f"data-points='{escape(data)}'>",
        f'<path d="{path}" fill="none" stroke="{color}" stroke-width="1.8"/>',
    ]
    if len(points) <= MARKERS:
        for px, py in points:
            out.append(
                f'<circle class="pt" cx="{x(px):.1f}" cy="{y(py):.1f}" r="2.5" fill="{color}" '
                f'data-step="{_fmt(px)}" data-value="{py!r}"><title>{escape(name)} · step '
                f"{_fmt(px)}: {py!r}</title></circle>"
            )
    out.append("</g>")
    return "".join(out)


def _legend(names: list[str]) -> list[str]:
    out = ['<g class="legend">']
    left = LEFT
    for n, name in enumerate(names):
        color = PALETTE[n % len(PALETTE)]
        top = H + 2 + n * 16
        out.append(
            f'<rect x="{left}" y="{top}" width="10" height="10" fill="{color}"/>'
            f'<text x="{left + 14}" y="{top + 9}">{escape(name[:40])}</text>'
        )
    out.append("</g>")
    return out


def metric_charts(series: dict[str, tuple[list[Point], int, int]]) -> list[dict[str, Any]]:
    """Return one chart per metric key from ``_query.metric_series``.

    Each chart is ``{"key", "svg", "logged", "drawn", "skipped"}``.
    """
    out = []
    for key, (points, logged, skipped) in series.items():
        out.append(
            {
                "key": key,
                "svg": line_chart(key, [(key, points)], total=logged),
                "logged": logged,
                "drawn": len(points),
                "skipped": skipped,
            }
        )
    return out


def overlay_charts(
    per_run: Sequence[tuple[str, dict[str, tuple[list[Point], int, int]]]],
) -> list[dict[str, Any]]:
    """Return one chart per metric key with a series per run (the compare page)."""
    grouped: dict[str, list[tuple[str, list[Point]]]] = {}
    for run_name, series in per_run:
        for key, (points, _, _) in series.items():
            grouped.setdefault(key, []).append((run_name, points))
    return [{"key": key, "svg": line_chart(key, named)} for key, named in sorted(grouped.items())]


def sparkline(points: Sequence[Point], width: int = 120, height: int = 28) -> str:
    """Return a tiny axis-less line of a series (tables, notebooks)."""
    pts = thin(points, 60)
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
