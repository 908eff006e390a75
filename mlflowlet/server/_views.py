"""What the run page shows of artifacts and labels, computed server-side.

Artifact previews: charts as inline SVG, tables (CSV, parquet, a dataset's stored preview) as the
first 50 rows with each column's type, images inline, HTML in a sandboxed frame, models with their
metrics and parameters; everything else a link. Files are read only under the artifact root.
"""

from __future__ import annotations

import csv
import io
import os
from itertools import islice
from typing import Any

from ._files import relative_to_root

PREVIEW_ROWS = 50
IMAGE_FORMATS = ("png", "jpg", "jpeg", "gif", "svg", "webp")
#: labels mlflowlet sets for its own bookkeeping: shown behind "details", not in the table
INTERNAL_LABELS = frozenset(
    {
        "kind",
        "pipeline",
        "pipeline_uid",
        "step",
        "cache_key",
        "cached_from",
        "resumed_from",
        "exit_handler",
        "attempt",
        "retry_of",
        "owner",
        "host",
        "mlrun/client_version",
    }
)


def split_labels(labels: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``(user labels, internal labels)``."""
    user: dict[str, Any] = {}
    internal: dict[str, Any] = {}
    for key, value in (labels or {}).items():
        (internal if key in INTERNAL_LABELS else user)[key] = value
    return user, internal


def file_url(root: str, uri: str) -> str | None:
    """Return the ``/api/v1/files/...`` URL of a file under the artifact root, else None."""
    rel = relative_to_root(root, uri or "")
    return f"/api/v1/files/{rel}" if rel else None


def _cell_type(values: list[str]) -> str:
    """Name the type of a CSV column from its non-blank cells: int, float, bool or str."""
    cells = [v.strip() for v in values if v.strip()]
    if not cells:
        return "empty"
    for name, check in (("int", int), ("float", float)):
        try:
            for cell in cells:
                check(cell)
            return name
        except ValueError:
            continue
    if all(c.lower() in ("true", "false") for c in cells):
        return "bool"
    return "str"


def _csv_preview(path: str) -> dict[str, Any] | None:
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            reader = csv.reader(io.StringIO(fh.read(256 * 1024)))
            rows = list(islice(reader, PREVIEW_ROWS + 1))
    except OSError:
        return None
    if not rows:
        return None
    header, body = rows[0], rows[1:]
    types = [_cell_type([r[i] for r in body if i < len(r)]) for i in range(len(header))]
    return {"header": header, "rows": body, "types": types}


def _parquet_preview(path: str) -> dict[str, Any] | None:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return None
    try:
        handle = pq.ParquetFile(path)
        batch = next(handle.iter_batches(batch_size=PREVIEW_ROWS), None)
    except (OSError, ValueError):
        return None
    schema = handle.schema_arrow
    rows = [] if batch is None else [list(r.values()) for r in batch.to_pylist()]
    return {
        "header": schema.names,
        "rows": rows,
        "types": [str(t) for t in schema.types],
        "total": handle.metadata.num_rows,
    }


def artifact_preview(art: dict[str, Any], root: str) -> dict[str, Any]:
    """Decide how the run page shows an artifact: chart, table, image, html, model or link."""
    from ..artifacts._svg import render_svg

    kind, extra = art.get("kind") or "", art.get("extra") or {}
    fmt = (art.get("format") or os.path.splitext(art.get("uri") or "")[1]).lstrip(".").lower()
    url = file_url(root, art.get("uri") or "")
    path = os.path.join(root, url[len("/api/v1/files/") :]) if url else ""
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
        return out
    table = _table(kind, fmt, art, extra, path)
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


def _table(
    kind: str, fmt: str, art: dict[str, Any], extra: dict[str, Any], path: str
) -> dict[str, Any] | None:
    """Return the first rows of a table artifact with column types, or None."""
    preview = extra.get("preview") or {}
    if kind == "dataset" and preview.get("header"):
        schema = extra.get("schema") or {}
        header = preview["header"]
        return {
            "header": header,
            "rows": preview.get("rows", [])[:PREVIEW_ROWS],
            "types": [schema.get(h, "") for h in header],
            "total": extra.get("length"),
        }
    if not path:
        return None
    if fmt == "parquet":
        return _parquet_preview(path)
    if kind == "table" or art.get("viewer") == "table" or fmt in ("csv", "tsv"):
        return _csv_preview(path)
    return None
