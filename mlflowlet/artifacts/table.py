"""Tables stored as CSV (or TSV)."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from typing import Any

from mlflowlet.artifacts.base import Artifact, is_dataframe
from mlflowlet.errors import ArtifactError

_SEPARATORS = {"csv": ",", "tsv": "\t"}


class TableArtifact(Artifact, kind="table"):
    """A table, stored as CSV (``format='tsv'`` for tab-separated).

    The content comes from, in this order: ``body`` (CSV text or bytes), ``df`` (a pandas
    DataFrame, written without its index), or ``rows`` with ``header``.

    Args:
        key: the artifact key.
        body: ready-made CSV text or bytes (a list of rows is taken as ``rows``).
        df: a pandas DataFrame.
        header: column names for ``rows``.
        viewer: how a UI shows it (default ``'table'``).
        format: ``'csv'`` or ``'tsv'``.
        rows: a list of rows (each a sequence of cells).
        **kwargs: further :class:`Artifact` arguments (``labels``, ``tag``, ``target_path``...).

    Raises:
        ArtifactError: an unknown format, or a row whose length differs from the header.
    """

    def __init__(
        self,
        key: str,
        body: Any = None,
        df: Any = None,
        header: Sequence[str] | None = None,
        viewer: str = "table",
        format: str = "csv",
        rows: Iterable[Sequence[Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        format = (format or "csv").lower()
        if format not in _SEPARATORS:
            raise ArtifactError(f"table {key!r}: format must be 'csv' or 'tsv', got {format!r}")
        if df is not None and not is_dataframe(df):
            raise ArtifactError(
                f"table {key!r}: df must be a pandas DataFrame, got {type(df).__name__}"
            )
        if (
            rows is None
            and isinstance(body, (list, tuple))
            and all(isinstance(row, (list, tuple)) for row in body)
        ):  # a body of rows is written as CSV with the header, not as JSON
            rows, body = body, None
        super().__init__(key, body=body, viewer=viewer, format=format, **kwargs)
        self.df = df
        self.header = list(header) if header is not None else None
        self.rows = [list(r) for r in rows] if rows is not None else None
        if self.header is not None and self.rows:
            width = len(self.header)
            for i, row in enumerate(self.rows):
                if len(row) != width:
                    raise ArtifactError(
                        f"table {key!r}: row {i} has {len(row)} cells, the header has {width}"
                    )
        if df is not None:
            self.header = [str(c) for c in df.columns]
        self.extra = {"header": self.header}
        length = len(df) if df is not None else len(self.rows) if self.rows is not None else None
        if length is not None:
            self.extra["length"] = length

    def get_body(self) -> bytes | None:
        """Return the CSV bytes."""
        if self.body is not None:
            return super().get_body()
        sep = _SEPARATORS[self.format or "csv"]
        if self.df is not None:
            return str(self.df.to_csv(index=False, sep=sep)).encode("utf-8")
        if self.rows is None:
            return None
        import csv

        buf = io.StringIO()
        writer = csv.writer(buf, delimiter=sep, lineterminator="\n")
        if self.header is not None:
            writer.writerow(self.header)
        writer.writerows(self.rows)
        return buf.getvalue().encode("utf-8")

    def _restore(self, extra: dict[str, Any]) -> None:
        self.df, self.rows = None, None
        self.header = extra.get("header")
