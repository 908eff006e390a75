"""Pipelines: ``@step``, ``@pipeline``, ``condition``, ``collect`` and the local DAG executor.

The DAG accessor API for compilers is documented in :mod:`mlflowlet.pipelines.graph`. Names load
on first access; networkx loads only when a pipeline is traced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# The decorators are imported eagerly (they are light): importing a submodule binds its name on
# the package, so ``step`` and ``pipeline`` must be rebound to the functions here, once.
from mlflowlet.pipelines._items import MapItem, item
from mlflowlet.pipelines.pipeline import NodeHandle, Pipeline, on_exit, pipeline
from mlflowlet.pipelines.refs import (
    Collected,
    Condition,
    OutputRef,
    PipelineParam,
    collect,
    condition,
)
from mlflowlet.pipelines.step import HyperSpec, ParamSpec, Step, StepSpec, step

from .. import _lazy

if TYPE_CHECKING:
    from mlflowlet.pipelines.container import ContainerStep, container_step
    from mlflowlet.pipelines.graph import Edge, MapSpec, Node, PipelineGraph
    from mlflowlet.pipelines.run import PipelineRun

_WHERE = {
    "ContainerStep": "mlflowlet.pipelines.container",
    "container_step": "mlflowlet.pipelines.container",
    "Edge": "mlflowlet.pipelines.graph",
    "MapSpec": "mlflowlet.pipelines.graph",
    "Node": "mlflowlet.pipelines.graph",
    "PipelineGraph": "mlflowlet.pipelines.graph",
    "PipelineRun": "mlflowlet.pipelines.run",
}

__all__ = [
    "Collected",
    "Condition",
    "ContainerStep",
    "Edge",
    "HyperSpec",
    "MapItem",
    "MapSpec",
    "Node",
    "NodeHandle",
    "OutputRef",
    "ParamSpec",
    "Pipeline",
    "PipelineGraph",
    "PipelineParam",
    "PipelineRun",
    "Step",
    "StepSpec",
    "collect",
    "condition",
    "container_step",
    "item",
    "on_exit",
    "pipeline",
    "step",
]


def __getattr__(name: str) -> Any:
    return _lazy.load(__name__, _WHERE, globals(), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
