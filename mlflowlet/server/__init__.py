"""The mlflowlet server: the run DB over REST (token auth), the web UI, and HTTP functions.

Nothing here imports FastAPI until an app is built, so ``import mlflowlet.server`` stays light.

- :func:`create_app` builds the run DB server (REST under ``/api/v1``, UI at ``/``).
- :func:`create_function_app` hosts one handler as an HTTP function (``mlflowlet serve``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "create_function_app"]


def create_app(*args: Any, **kwargs: Any) -> Any:
    """Build the run DB server app; see :func:`mlflowlet.server.app.create_app`."""
    from .app import create_app as _create

    return _create(*args, **kwargs)


def create_function_app(*args: Any, **kwargs: Any) -> Any:
    """Build an HTTP function app; see :func:`mlflowlet.server.serve.create_function_app`."""
    from .serve import create_function_app as _create

    return _create(*args, **kwargs)
