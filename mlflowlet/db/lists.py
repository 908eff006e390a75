"""``RunList`` and ``ArtifactList``: what list calls return; table, HTML and DataFrame views.

The views themselves are ``RunTable`` / ``ArtifactTable`` (``mlflowlet/_records.py``, below the
model, so ``RunObject.show()`` renders one too); here they gain what needs this layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._records import ArtifactTable, RunTable

if TYPE_CHECKING:
    from ..model import RunObject

__all__ = ["ArtifactList", "RunList"]


class RunList(RunTable):
    """Runs returned by ``list_runs``."""

    def objects(self) -> list[RunObject]:
        """Return the runs as ``RunObject``s."""
        from ..model import RunObject  # pydantic: loaded when the first run object is made

        return [RunObject.model_validate(r) for r in self]


class ArtifactList(ArtifactTable):
    """Artifacts returned by ``list_artifacts``."""
