"""mlflowlet: write a handler once, run it anywhere, and have every run recorded.

Nothing heavy happens at import: public names load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _lazy
from ._version import __version__

_LAZY: dict[str, str] = {
    "Context": "mlflowlet.context",
    "DataItem": "mlflowlet.datastore",
    "MLClientCtx": "mlflowlet.context",
    "NewRun": "mlflowlet.model",
    "NewTask": "mlflowlet.model",
    "PipelineTaskFinalStatus": "mlflowlet._final_status",
    "RunObject": "mlflowlet.model",
    "RunTemplate": "mlflowlet.model",
    "build_image": "mlflowlet.build",
    "collect": "mlflowlet.pipelines.refs",
    "compile": "mlflowlet.compilers",
    "condition": "mlflowlet.pipelines.refs",
    "container_step": "mlflowlet.pipelines.container",
    "get_or_create_ctx": "mlflowlet.context",
    "get_run_db": "mlflowlet.db",
    "item": "mlflowlet.pipelines._items",
    "mlrun_op": "mlflowlet.kfp",
    "new_function": "mlflowlet.runtimes",
    "new_runner": "mlflowlet.runtimes",
    "new_task": "mlflowlet.model",
    "on_exit": "mlflowlet.pipelines.pipeline",
    "pipeline": "mlflowlet.pipelines.pipeline",
    "step": "mlflowlet.pipelines.step",
}

__all__ = [
    "Context",
    "DataItem",
    "MLClientCtx",
    "NewRun",
    "NewTask",
    "PipelineTaskFinalStatus",
    "RunObject",
    "RunTemplate",
    "__version__",
    "build_image",
    "collect",
    "compile",
    "condition",
    "container_step",
    "get_or_create_ctx",
    "get_run_db",
    "item",
    "mlrun_op",
    "new_function",
    "new_runner",
    "new_task",
    "on_exit",
    "pipeline",
    "step",
]


def __getattr__(name: str) -> Any:
    return _lazy.load(__name__, _LAZY, globals(), name)


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover
    from ._final_status import PipelineTaskFinalStatus
    from .build import build_image
    from .compilers import compile
    from .context import Context, MLClientCtx, get_or_create_ctx
    from .datastore import DataItem
    from .db import get_run_db
    from .kfp import mlrun_op
    from .model import NewRun, NewTask, RunObject, RunTemplate, new_task
    from .pipelines._items import item
    from .pipelines.container import container_step
    from .pipelines.pipeline import on_exit, pipeline
    from .pipelines.refs import collect, condition
    from .pipelines.step import step
    from .runtimes import new_function, new_runner
