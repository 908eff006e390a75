"""Charts rendered as a self-contained HTML page with an inline SVG."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from mlflowlet.artifacts.base import Artifact, json_safe
from mlflowlet.errors import ArtifactError

CHART_TYPES = ("line", "bar", "scatter")


class ChartArtifact(Artifact, kind="chart"):
    """A line, bar or scatter chart of table-like data.

    The stored page draws every numeric column (but ``x``) against ``x`` in an inline SVG,
    with no scripts or outside resources. ``extra`` keeps the header and rows so a UI can
    redraw it.

    Args:
        key: the artifact key.
        header: the column names.
        data: the rows (each a sequence of cells, as long as the header).
        title: the chart title.
        chart: ``'line'``, ``'bar'`` or ``'scatter'``.
        x: the column on the x axis (default: the first).
        **kwargs: further :class:`Artifact` arguments (``labels``, ``tag``, ``target_path``...).

    Raises:
        ArtifactError: an unknown chart type, an ``x`` not in the header, or a bad row.
    """

    def __init__(
        self,
        key: str,
        header: Sequence[str] | None = None,
        data: Iterable[Sequence[Any]] | None = None,
        title: str = "",
        chart: str = "line",
        x: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("viewer", "chart")
        kwargs.setdefault("format", "html")
        super().__init__(key, **kwargs)
        if chart not in CHART_TYPES:
            raise ArtifactError(f"chart {key!r}: chart must be one of {CHART_TYPES}, got {chart!r}")
        self.header = [str(h) for h in header] if header is not None else []
        if x is not None and x not in self.header:
            raise ArtifactError(f"chart {key!r}: x={x!r} is not a column of {self.header}")
        self.title, self.chart, self.x = title, chart, x
        self.rows: list[list[Any]] = []
        for row in data or []:
            self.add_row(row)

    def add_row(self, row: Sequence[Any]) -> None:
        """Append one row of cells (as many as the header has columns).

        Raises:
            ArtifactError: the row's length differs from the header's.
        """
        row = list(row)
        if self.header and len(row) != len(self.header):
            raise ArtifactError(
                f"chart {self.key!r}: row has {len(row)} cells, the header has {len(self.header)}"
            )
        self.rows.append(row)

    @property
    def extra(self) -> dict[str, Any]:
        """The chart's data and settings, for a UI to redraw it."""
        return {
            "header": self.header,
            "rows": json_safe(self.rows),
            "chart": self.chart,
            "title": self.title,
            "x": self.x,
        }

    @extra.setter
    def extra(self, value: dict[str, Any]) -> None:
        """Ignore assignments: the chart's own fields are the source of truth."""

    def get_body(self) -> bytes | None:
        """Return the HTML page."""
        if self.body is not None:
            return super().get_body()
        from mlflowlet.artifacts._svg import render_chart_html

        return render_chart_html(self.title, self.header, self.rows, self.chart, self.x).encode()

    def _restore(self, extra: dict[str, Any]) -> None:
        self.header = list(extra.get("header") or [])
        self.rows = [list(r) for r in extra.get("rows") or []]
        self.chart = extra.get("chart") or "line"
        self.title = extra.get("title") or ""
        self.x = extra.get("x")
