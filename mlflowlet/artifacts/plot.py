"""Matplotlib figures, stored as an HTML page with the PNG embedded."""

from __future__ import annotations

from typing import Any

from mlflowlet.artifacts.base import Artifact
from mlflowlet.errors import ArtifactError


class PlotArtifact(Artifact, kind="plot"):
    """A matplotlib figure, saved to PNG and embedded (base64) in a self-contained HTML page.

    Args:
        key: the artifact key.
        figure: a ``matplotlib.figure.Figure`` (anything with ``savefig``).
        title: the page title.
        **kwargs: further :class:`Artifact` arguments (``labels``, ``tag``, ``target_path``...).

    Raises:
        ArtifactError: ``figure`` has no ``savefig`` method.
    """

    def __init__(self, key: str, figure: Any = None, title: str = "", **kwargs: Any) -> None:
        kwargs.setdefault("viewer", "web-app")
        kwargs.setdefault("format", "html")
        super().__init__(key, **kwargs)
        if figure is not None and not callable(getattr(figure, "savefig", None)):
            raise ArtifactError(
                f"plot {key!r}: figure must be a matplotlib Figure, got {type(figure).__name__}"
            )
        self.figure = figure
        self.title = title
        self.extra = {"title": title, "image_format": "png"}

    def get_body(self) -> bytes | None:
        """Return the HTML page with the figure as an inline PNG (``data:`` URI)."""
        if self.body is not None or self.figure is None:
            return super().get_body()
        import base64
        import io
        from html import escape

        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", bbox_inches="tight")
        data = base64.b64encode(buf.getvalue()).decode("ascii")
        title = escape(self.title or self.key)
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{title}</title>\n</head>\n<body>\n"
            f'<img alt="{title}" src="data:image/png;base64,{data}">\n</body>\n</html>\n'
        ).encode()

    def _restore(self, extra: dict[str, Any]) -> None:
        self.figure = None
        self.title = extra.get("title") or ""
