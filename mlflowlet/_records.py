"""Tables of run and artifact records: the text, HTML and DataFrame views of list results.

``RunTable`` and ``ArtifactTable`` are lists of record dicts; the run DB's ``RunList`` and
``ArtifactList`` (``db/lists.py``) are them with what needs the DB layer, and
``RunObject.show()`` renders a one-run ``RunTable``. They sit below the model and import nothing
of it.
"""

from __future__ import annotations

import html
import json
import sys
from typing import Any

from ._text import printable


def _cell(value: Any, width: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = printable(text)  # a name with terminal escape sequences must not drive the terminal
    return text if len(text) <= width else text[: width - 1] + "…"


class RecordTable(list[dict[str, Any]]):
    """A list of run or artifact dicts with views shared by both kinds."""

    columns: tuple[str, ...] = ()

    def to_rows(self) -> list[list[Any]]:
        """Return the table: a header row, then one row per record."""
        return [list(self.columns), *(self._row(r) for r in self)]

    def _row(self, record: dict[str, Any]) -> list[Any]:
        raise NotImplementedError

    def to_text(self) -> str:
        """Return a plain-text table."""
        rows = [[_cell(c) for c in row] for row in self.to_rows()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = self.to_rows()
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in rows[0])
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_cell(c, 200))}</td>" for c in row) + "</tr>"
            for row in rows[1:]
        )
        return (
            f"<table class='mlflowlet'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )

    def show(self, display: bool = True) -> str | None:
        """Print the table (HTML in a notebook); ``display=False`` returns the HTML instead."""
        if not display:
            return self._repr_html_()
        if "ipykernel" in sys.modules:
            try:
                import IPython.display

                shown: Any = IPython.display  # untyped: typed as Any, with or without IPython
                shown.display(shown.HTML(self._repr_html_()))
                return None
            except ImportError:
                pass
        print(self.to_text())
        return None

    def to_df(self) -> Any:
        """Return a pandas DataFrame with flat columns."""
        try:
            import pandas as pd
        except ImportError:
            from .errors import MissingDependencyError

            raise MissingDependencyError("pandas", "pandas") from None
        return pd.DataFrame([self._flat(r) for r in self])

    def _flat(self, record: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError


class RunTable(RecordTable):
    """Run records as a table (``list_runs`` returns a ``RunList``, one of these)."""

    columns = ("project", "uid", "iter", "start", "state", "name", "labels", "params", "results")

    def _row(self, run: dict[str, Any]) -> list[Any]:
        meta, spec, status = run["metadata"], run.get("spec", {}), run.get("status", {})
        return [
            meta.get("project", ""),
            meta.get("uid", ""),
            meta.get("iteration", 0),
            (status.get("start_time") or "")[:19],
            status.get("state", ""),
            meta.get("name", ""),
            meta.get("labels", {}),
            spec.get("params", {}),
            status.get("results", {}),
        ]

    def _flat(self, run: dict[str, Any]) -> dict[str, Any]:
        meta, spec, status = run["metadata"], run.get("spec", {}), run.get("status", {})
        out: dict[str, Any] = {
            "project": meta.get("project"),
            "uid": meta.get("uid"),
            "iter": meta.get("iteration", 0),
            "name": meta.get("name"),
            "state": status.get("state"),
            "start": status.get("start_time"),
            "end": status.get("end_time"),
            "error": status.get("error"),
        }
        out.update({f"label.{k}": v for k, v in meta.get("labels", {}).items()})
        out.update({f"param.{k}": v for k, v in spec.get("params", {}).items()})
        out.update({f"result.{k}": v for k, v in status.get("results", {}).items()})
        return out


class ArtifactTable(RecordTable):
    """Artifact records as a table (``list_artifacts`` returns an ``ArtifactList``)."""

    columns = (
        "project",
        "key",
        "kind",
        "iter",
        "tags",
        "uri",
        "size",
        "hash",
        "updated",
        "producer",
    )

    def _row(self, art: dict[str, Any]) -> list[Any]:
        return [
            art.get("project", ""),
            art.get("key", ""),
            art.get("kind", ""),
            art.get("iteration", 0),
            ",".join(art["tags"]) if "tags" in art else art.get("tag", ""),
            art.get("uri", ""),
            art.get("size"),
            (art.get("hash") or "").rsplit(":", 1)[-1][:12],
            (art.get("updated") or "")[:19],
            (art.get("producer") or {}).get("name", ""),
        ]

    def _flat(self, art: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in art.items() if not isinstance(v, (dict, list))}
        out.update({f"label.{k}": v for k, v in (art.get("labels") or {}).items()})
        out.update({f"producer.{k}": v for k, v in (art.get("producer") or {}).items()})
        return out
