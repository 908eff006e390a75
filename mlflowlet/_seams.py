"""Seams: the few places a lower layer offers an operation that a higher layer implements.

Layers only import downwards (``docs/architecture.md``). Yet users expect MLRun's conveniences on
the objects they hold: ``run.abort()`` and ``run.artifact(key)`` on a ``RunObject`` (the model,
below the run DB, the data stores and the runtimes), ``pipe.submit()`` on a ``Pipeline`` (below
the compilers), ``runner.build_image()`` on a Kubernetes job runtime (below the image builders,
which run kaniko as a Job through the runtimes). Those methods reach the implementation through
:data:`SEAMS`: a callable of a higher layer named by dotted path and imported on first use, as
runtime kinds and DB backends are. The table is the whole list; ``tests/test_layers.py`` checks
that each entry names a callable in a layer above every module that calls :func:`seam` for it.

A run also reads itself back through the run DB it was recorded in (:class:`RunReader`, which
every ``RunDB`` is), so only a run that kept none opens one by URL through the ``run_db`` seam.

Imports nothing from mlflowlet, so every layer may use it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol, cast

SEAMS: dict[str, str] = {
    "run_db": "mlflowlet.db:get_run_db",  # the run DB at a URL ('' = the default)
    "dataitem": "mlflowlet.datastore:get_dataitem",  # an artifact version as a DataItem
    "abort": "mlflowlet.runtimes:abort_run",  # stop a run where it runs
    "submit": "mlflowlet.compilers.submit:submit",  # compile and submit a pipeline
    "build_runner_image": "mlflowlet._jobimage:build_runner_image",  # a job runtime's own image
}


def seam(name: str) -> Callable[..., Any]:
    """Return the callable :data:`SEAMS` names for ``name``, importing its module."""
    module, _, attr = SEAMS[name].partition(":")
    return cast(Callable[..., Any], getattr(importlib.import_module(module), attr))


class RunReader(Protocol):
    """What a run reads itself back through: the part of a ``RunDB`` a ``RunObject`` uses."""

    @property
    def url(self) -> str:
        """Where the DB lives, as ``get_run_db(url)`` accepts it."""
        ...

    def read_run(self, uid: str, project: str = "", iter: int = 0) -> dict[str, Any]:
        """Return a stored run."""
        ...

    def get_log(self, uid: str, project: str = "", offset: int = 0, size: int = 0) -> bytes:
        """Return a run's captured output."""
        ...

    def get_metrics(
        self, uid: str, key: str | None = None, iter: int = 0, project: str = ""
    ) -> list[dict[str, Any]]:
        """Return a run's metric rows."""
        ...
