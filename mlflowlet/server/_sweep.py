"""The sweep (hyper-parameter) page: one page of iterations, a scatter and parallel coordinates.

However many iterations a sweep has, the page holds one page of the table and at most
``SAMPLE`` iterations in the charts (spread evenly, the best always among them): the child runs
are read from the store page by page, never the parent's whole iteration table.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

from ..artifacts._svg import nice_ticks, to_number
from ._query import iteration_page, iteration_sample, light_run

if TYPE_CHECKING:
    from ..db.base import RunDB

PER_PAGE = 100
SAMPLE = 1000


def sweep_view(
    db: RunDB, uid: str, project: str, page: int, x: str, y: str, per_page: int = PER_PAGE
) -> dict[str, Any]:
    """Return what the sweep page shows (see the module docstring)."""
    run, table_rows = light_run(db, uid, project)
    project = run["metadata"].get("project", project)
    results = run.get("status", {}).get("results", {})
    best = results.get("best_iteration")
    children, total = iteration_page(db, uid, project, (page - 1) * per_page, per_page)
    if total:
        sample = iteration_sample(db, uid, project, total, SAMPLE, best)
    elif table_rows > 1:  # only the parent's table (an imported sweep): read it once
        every = _from_table(db.read_run(uid, project)["status"]["iterations"])
        total, children = len(every), every[(page - 1) * per_page : page * per_page]
        stride = max(1, -(-total // SAMPLE))
        sample = [r for i, r in enumerate(every) if i % stride == 0 or _it(r) == best]
    else:
        sample = []
    params = _keys(r.get("spec", {}).get("params", {}) for r in sample or children)
    outputs = _keys(r.get("status", {}).get("results", {}) for r in sample or children)
    selected = (run.get("spec", {}).get("selector") or "").partition(".")[2]
    x = x if x in params else (params[0] if params else "")
    y = y if y in outputs else (selected if selected in outputs else (outputs[:1] or [""])[0])
    rows = [_row(r, params, outputs) for r in children]
    points = [(_value(r, "params", x), _value(r, "results", y), _it(r)) for r in sample]
    return {
        "run": run,
        "best": best,
        "total": total,
        "pages": max(1, -(-total // per_page)),
        "header": [
            "iter",
            "state",
            *(f"param.{p}" for p in params),
            *(f"output.{o}" for o in outputs),
        ],  # fmt: skip
        "rows": rows,
        "params": params,
        "outputs": outputs,
        "x": x,
        "y": y,
        "sampled": len(sample),
        "scatter": scatter_svg(
            [(px, py, it) for px, py, it in points if px is not None and py is not None], best, x, y
        ),
        "parallel": parallel_svg(sample, params, y, best),
    }


def _from_table(table: list[list[Any]]) -> list[dict[str, Any]]:
    """Turn an iteration table (header ``iter, state, param.*, output.*``) into run-like dicts."""
    header, out = [str(h) for h in table[0]], []
    for row in table[1:]:
        cells = dict(zip(header, row, strict=False))
        out.append(
            {
                "metadata": {"iteration": cells.get("iter", 0)},
                "spec": {"params": _prefixed(cells, "param.")},
                "status": {"state": cells.get("state", ""), "results": _prefixed(cells, "output.")},
            }
        )
    return out


def _prefixed(cells: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix) :]: v for k, v in cells.items() if k.startswith(prefix)}


def _keys(dicts: Any) -> list[str]:
    seen: dict[str, None] = {}
    for d in dicts:
        for key in d:
            seen.setdefault(str(key), None)
    return list(seen)


def _it(run: dict[str, Any]) -> int:
    return int(run["metadata"].get("iteration", 0))


def _field(run: dict[str, Any], field: str, key: str) -> Any:
    """Return ``spec.params[key]`` (field ``params``) or ``status.results[key]``."""
    return run.get("spec" if field == "params" else "status", {}).get(field, {}).get(key)


def _value(run: dict[str, Any], field: str, key: str) -> float | None:
    return to_number(_field(run, field, key))


def _row(run: dict[str, Any], params: list[str], outputs: list[str]) -> list[Any]:
    spec, status = run.get("spec", {}), run.get("status", {})
    return [
        _it(run),
        status.get("state", ""),
        *(spec.get("params", {}).get(p, "") for p in params),
        *(status.get("results", {}).get(o, "") for o in outputs),
    ]


def _scale(lo: float, hi: float, start: float, length: float, flip: bool = False) -> Any:
    span = (hi - lo) or 1.0
    return lambda v: start + ((1 - (v - lo) / span) if flip else (v - lo) / span) * length


def scatter_svg(
    points: list[tuple[float, float, int]], best: int | None, x_name: str, y_name: str
) -> str:
    """Plot ``(x, y, iteration)`` points; the best iteration is drawn larger, in another colour."""
    if not points:
        return "<p class='muted'>No numeric values to plot.</p>"
    w, h, pad = 480, 320, 50
    xt = nice_ticks(min(p[0] for p in points), max(p[0] for p in points))
    yt = nice_ticks(min(p[1] for p in points), max(p[1] for p in points))
    sx, sy = _scale(xt[0], xt[-1], pad, w - 2 * pad), _scale(yt[0], yt[-1], pad, h - 2 * pad, True)
    parts = [
        f'<svg class="scatter" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
        f'aria-label="{escape(y_name)} against {escape(x_name)}">',
        f'<g class="axis"><line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}"/>'
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}"/></g>',
    ]
    parts += [
        f'<text x="{sx(t):.1f}" y="{h - pad + 16}" text-anchor="middle" class="tick">{t:g}</text>'
        for t in xt
    ]
    parts += [
        f'<text x="{pad - 6}" y="{sy(t) + 4:.1f}" text-anchor="end" class="tick">{t:g}</text>'
        for t in yt
    ]
    parts.append(f'<text x="{w / 2}" y="{h - 10}" text-anchor="middle">{escape(x_name)}</text>')
    parts.append(
        f'<text x="14" y="{h / 2}" transform="rotate(-90 14 {h / 2})" text-anchor="middle">'
        f"{escape(y_name)}</text>"
    )
    for x, y, it in sorted(points, key=lambda p: p[2] == best):  # the best on top
        look = 'r="7" class="point best" data-best="1"' if it == best else 'r="4" class="point"'
        parts.append(
            f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" {look}><title>iteration {it}: '
            f"{escape(x_name)}={x:g}, {escape(y_name)}={y:g}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _axis(values: list[Any]) -> tuple[Any, list[tuple[float, str]]]:
    """Return ``value -> 0..1`` for one axis and its labelled ticks (numbers or categories)."""
    numbers = [to_number(v) for v in values]
    if values and all(n is not None for n in numbers):
        lo, hi = min(numbers), max(numbers)  # type: ignore[type-var]
        span = (hi - lo) or 1.0  # type: ignore[operator]
        ticks = [(0.0, f"{lo:g}"), (1.0, f"{hi:g}")] if hi != lo else [(0.5, f"{lo:g}")]
        return (lambda v: (to_number(v) - lo) / span if hi != lo else 0.5), ticks  # type: ignore[operator]
    cats = sorted({str(v) for v in values})
    pos = {c: (i / (len(cats) - 1) if len(cats) > 1 else 0.5) for i, c in enumerate(cats)}
    return (lambda v: pos[str(v)]), [(p, c[:12]) for c, p in pos.items()]


def parallel_svg(runs: list[dict[str, Any]], params: list[str], y: str, best: int | None) -> str:
    """Draw params → the selected result, one line per iteration, the best highlighted."""
    lines = [r for r in runs if y and _value(r, "results", y) is not None]
    if not lines or not params:
        return "<p class='muted'>No iterations with a numeric result to draw.</p>"
    columns = [("params", p) for p in params] + [("results", y)]
    w, h, top, bottom, side = max(360, 130 * len(columns)), 320, 30, 40, 60
    xs = [side + i * (w - 2 * side) / max(1, len(columns) - 1) for i in range(len(columns))]
    get = [[_field(r, field, key) for r in lines] for field, key in columns]
    axes = [_axis([v for v in col if v is not None]) for col in get]
    py = _scale(0.0, 1.0, top, h - top - bottom, flip=True)
    parts = [
        f'<svg class="parallel" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
        f'aria-label="parameters against {escape(y)}">'
    ]
    order = sorted(range(len(lines)), key=lambda i: _it(lines[i]) == best)  # the best on top
    for i in order:
        it = _it(lines[i])
        pts = [
            f"{xs[c]:.1f},{py(axes[c][0](get[c][i])):.1f}"
            for c in range(len(columns))
            if get[c][i] is not None
        ]
        cls = "pline best" if it == best else "pline"
        parts.append(
            f'<polyline class="{cls}" data-iter="{it}" points="{" ".join(pts)}">'
            f"<title>iteration {it}</title></polyline>"
        )
    for c, (_, key) in enumerate(columns):
        parts.append(
            f'<g class="paxis"><line x1="{xs[c]:.1f}" y1="{top}" x2="{xs[c]:.1f}" '
            f'y2="{h - bottom}"/><text x="{xs[c]:.1f}" y="{h - bottom + 18}" '
            f'text-anchor="middle" class="axis-name">{escape(key)}</text>'
        )
        for frac, label in axes[c][1]:
            parts.append(
                f'<text x="{xs[c] + 4:.1f}" y="{py(frac) + 4:.1f}" class="tick">'
                f"{escape(label)}</text>"
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)
