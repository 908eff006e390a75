"""Run every ``benchmarks/bench_*.py`` module and print one table of figures.

Each module exposes ``run() -> list[tuple[name, value, unit, target]]``. Usage::

    python benchmarks/run.py              # every benchmark
    python benchmarks/run.py --only core  # modules whose name contains "core"

The "previous" column shows the figure as last recorded in ``benchmarks/previous.json`` (by
figure name; the file says when and where it was measured). Update it after a change that
moves a figure, so the next table shows before beside after.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
PREVIOUS = HERE / "previous.json"
sys.path.insert(0, str(HERE))  # bench modules share helpers from benchmarks/_common.py


def discover(only: str = "") -> list[Path]:
    """Return the benchmark module files, filtered by ``only`` (a substring of the name)."""
    files = sorted(HERE.glob("bench_*.py"))
    return [f for f in files if only in f.stem]


def load(path: Path):
    """Import a benchmark module from its file."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def fmt_value(value: float) -> str:
    """Format a figure with a sensible number of digits."""
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def previous_figures(path: Path = PREVIOUS) -> dict[str, str]:
    """Return figure name -> the previous figure as text (empty when none was recorded)."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    out = {}
    for name, entry in data.get("figures", {}).items():
        value, unit = entry.get("value"), entry.get("unit", "")
        text = fmt_value(value) if isinstance(value, (int, float)) else str(value or "")
        out[name] = f"{text} {unit}".strip()
    return out


def table(rows: list[tuple[str, ...]]) -> str:
    """Render rows ``(module, name, value, unit, target, previous)`` as an aligned table."""
    header = ("bench", "figure", "value", "unit", "target", "previous")
    allrows = [header, *rows]
    widths = [max(len(r[i]) for r in allrows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(allrows):
        cells = [
            row[i].rjust(widths[i]) if i == 2 and n else row[i].ljust(widths[i])
            for i in range(len(header))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and print the table; exit status 1 when a module failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run only modules whose name contains this")
    args = parser.parse_args(argv)
    files = discover(args.only)
    if not files:
        print(f"no benchmark module matches {args.only!r}", file=sys.stderr)
        return 1
    rows: list[tuple[str, ...]] = []
    failed = 0
    before = previous_figures()
    for path in files:
        name = path.stem.removeprefix("bench_")
        start = time.perf_counter()
        try:
            got = load(path).run()
        except Exception:
            failed += 1
            traceback.print_exc()
            rows.append((name, "FAILED (see traceback above)", "", "", "", ""))
            continue
        for figure, value, unit, target in got:
            rows.append((name, str(figure), fmt_value(value), str(unit), str(target),
                         before.get(str(figure), "")))
        took = time.perf_counter() - start
        print(f"[{name}: {len(got)} figures in {took:.1f} s]", file=sys.stderr)
    print(table(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
