"""Datasets: a DataFrame stored as parquet, CSV or JSON, with schema, preview and stats."""

from __future__ import annotations

from typing import Any

from mlflowlet.artifacts.base import Artifact, is_dataframe, json_safe
from mlflowlet.errors import ArtifactError

FORMATS = ("parquet", "csv", "json")


class DatasetArtifact(Artifact, kind="dataset"):
    """A pandas DataFrame stored as a file, with metadata a UI can show without reading it.

    ``extra`` holds ``schema`` (column → dtype), ``preview`` (``{'header', 'rows'}`` of the
    first ``preview`` rows), ``stats`` (count/mean/std/min/max per numeric column) and
    ``length`` (row count).

    Args:
        key: the artifact key.
        df: the DataFrame.
        format: ``'parquet'`` (needs pyarrow), ``'csv'`` or ``'json'`` (records).
        preview: how many rows to keep in the preview.
        stats: compute per-column statistics.
        **kwargs: further :class:`Artifact` arguments (``labels``, ``tag``, ``target_path``...).

    Raises:
        ArtifactError: an unknown format, or ``df`` is not a DataFrame.
    """

    def __init__(
        self,
        key: str,
        df: Any = None,
        format: str = "parquet",
        preview: int = 20,
        stats: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("viewer", "table")
        format = (format or "parquet").lower()
        if format not in FORMATS:
            raise ArtifactError(f"dataset {key!r}: format must be one of {FORMATS}, got {format!r}")
        if df is not None and not is_dataframe(df):
            raise ArtifactError(
                f"dataset {key!r}: df must be a pandas DataFrame, got {type(df).__name__}"
            )
        super().__init__(key, format=format, **kwargs)
        self.df = df
        if df is not None:
            self.extra = describe(df, preview=preview, stats=stats)

    def get_body(self) -> bytes | None:
        """Return the DataFrame serialised in :attr:`format`.

        Raises:
            MissingDependencyError: parquet was asked for and pyarrow is not installed.
        """
        if self.body is not None or self.df is None:
            return super().get_body()
        if self.format == "csv":
            return str(self.df.to_csv(index=False)).encode("utf-8")
        if self.format == "json":
            return str(self.df.to_json(orient="records", date_format="iso")).encode("utf-8")
        import io

        from mlflowlet.datastore._optional import require

        require("pyarrow", "pandas")
        buf = io.BytesIO()
        self.df.to_parquet(buf, index=False, engine="pyarrow")
        return buf.getvalue()

    def _restore(self, extra: dict[str, Any]) -> None:
        self.df = None


def describe(df: Any, preview: int = 20, stats: bool = True) -> dict[str, Any]:
    """Return the JSON-safe ``schema``, ``preview``, ``stats`` and ``length`` of a DataFrame."""
    import json

    head = json.loads(
        df.head(max(preview, 0)).to_json(orient="split", index=False, date_format="iso")
    )
    out: dict[str, Any] = {
        "schema": {str(c): str(t) for c, t in df.dtypes.items()},
        "preview": {"header": [str(c) for c in head["columns"]], "rows": head["data"]},
        "length": int(len(df)),
    }
    if stats:
        out["stats"] = _stats(df)
    return out


def _stats(df: Any) -> dict[str, dict[str, Any]]:
    """Return count/mean/std/min/max of each numeric (not boolean) column."""
    numeric = df.select_dtypes(include="number")
    out: dict[str, dict[str, Any]] = {}
    for name in numeric.columns:
        col = numeric[name]
        out[str(name)] = json_safe(
            {
                "count": int(col.count()),
                "mean": col.mean(),
                "std": col.std(),
                "min": col.min(),
                "max": col.max(),
            }
        )
    return out
