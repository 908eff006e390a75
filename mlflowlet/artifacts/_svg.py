"""Render a small line, bar or scatter chart as a self-contained HTML page with inline SVG.

No scripts, fonts, stylesheets or images from elsewhere: the page renders offline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

WIDTH, HEIGHT = 720, 420
LEFT, RIGHT, TOP, BOTTOM = 64, 160, 48, 56
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
_STYLE = (
    "body{font-family:sans-serif;margin:16px;color:#222}"
    "svg text{font-family:sans-serif;font-size:12px;fill:#333}"
    "svg .title{font-size:16px;font-weight:bold}"
)
_MAX_X_LABELS = 12


def to_number(value: Any) -> float | None:
    """Return ``value`` as a finite float, or None (bools, blanks, text, NaN, inf)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Return round tick values (steps of 1, 2, 2.5 or 5 × 10^k) covering ``[low, high]``."""
    low, high = min(low, high), max(low, high)
    if high == low:
        pad = abs(low) * 0.5 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step + 1e-9) * step
    ticks = [round(first, 12)]
    while ticks[-1] < high - step * 1e-9:
        ticks.append(round(first + len(ticks) * step, 12))
    return ticks


class _Scale:
    """Map data values in ``[low, high]`` onto pixels from ``start`` over ``length``."""

    def __init__(self, low: float, high: float, start: float, length: float, flip: bool) -> None:
        self.low, self.span = low, (high - low) or 1.0
        self.start, self.length, self.flip = start, length, flip

    def __call__(self, value: float) -> float:
        fraction = (value - self.low) / self.span
        return self.start + (1 - fraction if self.flip else fraction) * self.length


def _fmt(value: float) -> str:
    text = f"{value:.6g}"
    return "0" if text == "-0" else text


def numeric_columns(header: Sequence[str], rows: Sequence[Sequence[Any]], skip: int) -> list[int]:
    """Return the indexes of columns (but ``skip``) whose non-blank cells are all numbers."""
    out = []
    for col in range(len(header)):
        cells = [row[col] for row in rows if col < len(row) and row[col] not in (None, "")]
        numeric = [c for c in cells if to_number(c) is not None or _is_nan(c)]
        if col != skip and cells and len(numeric) == len(cells):
            out.append(col)
    return out


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def render_chart_html(
    title: str, header: Sequence[str], rows: Sequence[Sequence[Any]], chart: str, x: str | None
) -> str:
    """Return a whole HTML page holding the chart as inline SVG."""
    svg = render_svg(title, header, rows, chart, x)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title or 'chart')}</title>\n<style>{_STYLE}</style>\n</head>\n"
        f"<body>\n{svg}\n</body>\n</html>\n"
    )


def render_svg(
    title: str, header: Sequence[str], rows: Sequence[Sequence[Any]], chart: str, x: str | None
) -> str:
    """Return the ``<svg>`` element: axes, ticks, grid, one series per numeric column, legend."""
    label = escape(title or "chart")
    parts = [
        f'<svg width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{label}">',
        f"<title>{label}</title>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>',
    ]
    if title:
        parts.append(
            f'<text class="title" x="{WIDTH // 2}" y="24" text-anchor="middle">{label}</text>'
        )
    x_index = list(header).index(x) if x is not None and x in header else 0
    series = numeric_columns(header, rows, x_index) if rows else []
    if not series:
        parts.append(
            f'<text x="{WIDTH // 2}" y="{HEIGHT // 2}" text-anchor="middle">no data</text>'
        )
        return "\n".join([*parts, "</svg>"])
    xs = [row[x_index] if x_index < len(row) else None for row in rows]
    x_at, x_labels, band = _x_axis(xs, chart)
    table = [[to_number(row[c]) if c < len(row) else None for row in rows] for c in series]
    finite = [v for column in table for v in column if v is not None] or [0.0, 1.0]
    low, high = min(finite), max(finite)
    if chart == "bar":
        low, high = min(low, 0.0), max(high, 0.0)
    y_ticks = nice_ticks(low, high)
    y = _Scale(y_ticks[0], y_ticks[-1], TOP, PLOT_H, flip=True)
    parts += _axes(y_ticks, y, x_labels, str(header[x_index]))
    for n, values in enumerate(table):
        color = PALETTE[n % len(PALETTE)]
        parts += _marks(chart, color, x_at, values, y, band, n, len(series))
    parts += _legend([str(header[c]) for c in series])
    return "\n".join([*parts, "</svg>"])


def _x_axis(xs: list[Any], chart: str) -> tuple[list[float], list[tuple[float, str]], float]:
    """Return each row's x pixel, the tick labels, and the category band width (0 if numeric)."""
    numbers = [n for n in map(to_number, xs) if n is not None]
    if chart != "bar" and len(numbers) == len(xs):
        ticks = nice_ticks(min(numbers), max(numbers))
        scale = _Scale(ticks[0], ticks[-1], LEFT, PLOT_W, flip=False)
        return [scale(v) for v in numbers], [(scale(t), _fmt(t)) for t in ticks], 0.0
    band = PLOT_W / len(xs)
    positions = [LEFT + band * (i + 0.5) for i in range(len(xs))]
    every = max(1, math.ceil(len(xs) / _MAX_X_LABELS))
    labels = [(positions[i], str(v)) for i, v in enumerate(xs) if i % every == 0]
    return positions, labels, band


def _marks(
    chart: str,
    color: str,
    x_at: list[float],
    values: list[float | None],
    y: _Scale,
    band: float,
    n: int,
    count: int,
) -> list[str]:
    """Return the SVG elements of series ``n`` of ``count``: bars, dots or a broken line."""
    points = [(x_at[i], v) for i, v in enumerate(values) if v is not None]
    if chart == "bar":
        width = band * 0.8 / count
        out = []
        for px, v in points:
            top, bottom = sorted((y(v), y(0.0)))
            left = px - band * 0.4 + n * width
            out.append(
                f'<rect x="{left:.2f}" y="{top:.2f}" width="{width:.2f}" '
                f'height="{bottom - top:.2f}" fill="{color}"/>'
            )
        return out
    if chart == "scatter":
        return [f'<circle cx="{px:.2f}" cy="{y(v):.2f}" r="3" fill="{color}"/>' for px, v in points]
    steps, pen_down = [], False
    for i, value in enumerate(values):  # a missing value lifts the pen: the line breaks there
        if value is not None:
            steps.append(f"{'L' if pen_down else 'M'}{x_at[i]:.2f},{y(value):.2f}")
        pen_down = value is not None
    return [f'<path d="{" ".join(steps)}" fill="none" stroke="{color}" stroke-width="2"/>']


def _axes(
    y_ticks: list[float], y: _Scale, x_labels: list[tuple[float, str]], x_name: str
) -> list[str]:
    """Return the grid, both axis lines, tick marks and labels, and the x axis name."""
    bottom, right = TOP + PLOT_H, LEFT + PLOT_W
    out = ['<g stroke="#e5e5e5">']
    out += [f'<line x1="{LEFT}" y1="{y(t):.2f}" x2="{right}" y2="{y(t):.2f}"/>' for t in y_ticks]
    out.append("</g>")
    out.append(
        f'<g stroke="#333"><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}"/>'
        f'<line x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}"/></g>'
    )
    out += [
        f'<text x="{LEFT - 6}" y="{y(t) + 4:.2f}" text-anchor="end">{_fmt(t)}</text>'
        for t in y_ticks
    ]
    for pos, text in x_labels:
        out.append(
            f'<line x1="{pos:.2f}" y1="{bottom}" x2="{pos:.2f}" y2="{bottom + 5}" stroke="#333"/>'
        )
        out.append(
            f'<text x="{pos:.2f}" y="{bottom + 18}" text-anchor="middle">{escape(text)}</text>'
        )
    out.append(
        f'<text x="{LEFT + PLOT_W / 2:.2f}" y="{HEIGHT - 12}" text-anchor="middle">'
        f"{escape(x_name)}</text>"
    )
    return out


def _legend(names: list[str]) -> list[str]:
    """Return one colour swatch and name per series, right of the plot."""
    left = WIDTH - RIGHT + 16
    out = ["<g>"]
    for n, name in enumerate(names):
        y = TOP + 8 + n * 20
        color = PALETTE[n % len(PALETTE)]
        out.append(f'<rect x="{left}" y="{y - 9}" width="12" height="12" fill="{color}"/>')
        out.append(f'<text x="{left + 18}" y="{y + 1}">{escape(name)}</text>')
    out.append("</g>")
    return out
