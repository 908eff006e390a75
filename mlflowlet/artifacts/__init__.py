"""Artifacts: versioned run outputs (files, tables, charts, plots, datasets, models, pages).

:class:`ArtifactManager` stores them under a run's artifact path, each version at a location of
its own; each kind renders its own body. :func:`verify_artifacts` compares stored versions with
their sha256, :func:`collect_garbage` removes what deleted runs left behind. The public names
below load on first access, so importing this package is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import _lazy

if TYPE_CHECKING:
    from mlflowlet.artifacts._keys import validate_key
    from mlflowlet.artifacts._maintenance import collect_garbage, verify_artifacts
    from mlflowlet.artifacts.base import Artifact, artifact_from_dict
    from mlflowlet.artifacts.chart import ChartArtifact
    from mlflowlet.artifacts.dataset import DatasetArtifact
    from mlflowlet.artifacts.manager import ArtifactManager
    from mlflowlet.artifacts.model import ModelArtifact
    from mlflowlet.artifacts.plot import PlotArtifact
    from mlflowlet.artifacts.table import TableArtifact

__all__ = [
    "Artifact",
    "ArtifactManager",
    "ChartArtifact",
    "DatasetArtifact",
    "ModelArtifact",
    "PlotArtifact",
    "TableArtifact",
    "artifact_from_dict",
    "collect_garbage",
    "validate_key",
    "verify_artifacts",
]

_WHERE = {
    "Artifact": "mlflowlet.artifacts.base",
    "ArtifactManager": "mlflowlet.artifacts.manager",
    "ChartArtifact": "mlflowlet.artifacts.chart",
    "DatasetArtifact": "mlflowlet.artifacts.dataset",
    "ModelArtifact": "mlflowlet.artifacts.model",
    "PlotArtifact": "mlflowlet.artifacts.plot",
    "TableArtifact": "mlflowlet.artifacts.table",
    "artifact_from_dict": "mlflowlet.artifacts.base",
    "collect_garbage": "mlflowlet.artifacts._maintenance",
    "validate_key": "mlflowlet.artifacts._keys",
    "verify_artifacts": "mlflowlet.artifacts._maintenance",
}


def __getattr__(name: str) -> Any:
    return _lazy.load(__name__, _WHERE, globals(), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
