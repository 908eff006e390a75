"""``mlflowlet serve --export nuclio``: a Nuclio ``function.yaml`` for the same handler.

The function runs :func:`handler` (this module) inside Nuclio's Python runtime; it finds the
user's handler from ``MLFLOWLET_HANDLER`` and runs each event's body as a run spec, exactly as
``mlflowlet serve`` does. For a handler in a ``.py`` file, the file's source is embedded
(``build.functionSourceCode``, base64) with a small entry function appended, so ``nuctl deploy
--file function.yaml`` needs nothing else. Field reference:
https://docs.nuclio.io/en/stable/reference/function-configuration/function-configuration-reference.html
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
from typing import Any

from ..errors import ConfigError

API_VERSION = "nuclio.io/v1"
KIND = "NuclioFunction"
PYTHON_RUNTIMES = ("python:3.9", "python:3.10", "python:3.11")
ENTRY = "mlflowlet_nuclio_handler"


def function_name(text: str) -> str:
    """Make a DNS-1123 label from ``text`` (Nuclio names its Kubernetes objects after it)."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].strip("-")
    if not name:
        raise ConfigError(f"cannot make a function name from {text!r}; pass --name")
    return name


def _runtime() -> str:
    ours = f"python:{sys.version_info.major}.{sys.version_info.minor}"
    return ours if ours in PYTHON_RUNTIMES else PYTHON_RUNTIMES[-1]


def nuclio_function(
    handler: str,
    name: str = "",
    base_image: str = "",
    requirements: list[str] | None = None,
    env: dict[str, str] | None = None,
    workers: int = 4,
    db: str = "",
) -> dict[str, Any]:
    """Return the Nuclio function configuration for ``handler`` as a dict.

    Args:
        handler: ``'file.py:function'`` or ``'module:function'``.
        name: the function name (default: the handler function's, made DNS-safe).
        base_image: the build's base image (default ``python:<runtime version>``).
        requirements: pip requirements installed at build (``mlflowlet[server]`` is added).
        env: extra environment variables.
        workers: concurrent requests per replica (the HTTP trigger's ``numWorkers``).
        db: the run DB URL the function records into (``MLFLOWLET_DBPATH``).

    Raises:
        ConfigError: the handler is not ``source:function`` or its file does not exist.
    """
    source, _, func = handler.rpartition(":")
    if not source or not func.isidentifier():
        raise ConfigError(f"handler {handler!r} must be 'file.py:function' or 'module:function'")
    runtime = _runtime()
    pip = ["mlflowlet[server]", *(requirements or [])]
    build: dict[str, Any] = {
        "baseImage": base_image or f"python:{runtime.split(':')[1]}",
        "commands": ["pip install " + " ".join(f"'{r}'" for r in pip)],
    }
    variables = {"MLFLOWLET_HANDLER": handler, **(env or {})}
    if db:
        variables["MLFLOWLET_DBPATH"] = db
    if source.endswith(".py"):
        if not os.path.isfile(source):
            raise ConfigError(f"handler file {source!r} does not exist")
        with open(source, encoding="utf-8") as fh:
            code = fh.read()
        module = os.path.splitext(os.path.basename(source))[0]
        code += (
            f"\n\ndef {ENTRY}(context, event):  # added by mlflowlet serve --export nuclio\n"
            f"    from mlflowlet.server.nuclio import handle\n\n"
            f"    return handle(context, event, {func})\n"
        )
        build["functionSourceCode"] = base64.b64encode(code.encode()).decode()
        build["codeEntryType"] = "sourceCode"
        entry = f"{module}:{ENTRY}"
        variables["MLFLOWLET_HANDLER"] = f"{module}:{func}"
    else:
        entry = "mlflowlet.server.nuclio:handler"
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": function_name(name or func),
            "labels": {"mlflowlet.io/handler": function_name(func)},
        },
        "spec": {
            "description": f"mlflowlet handler {handler}",
            "runtime": runtime,
            "handler": entry,
            "env": [{"name": k, "value": str(v)} for k, v in variables.items()],
            "minReplicas": 1,
            "maxReplicas": 1,
            "build": build,
            "triggers": {
                "http": {
                    "kind": "http",
                    "numWorkers": int(workers),
                    "attributes": {"serviceType": "ClusterIP"},
                }
            },
        },
    }


def export_nuclio(handler: str, path: str = "function.yaml", **options: Any) -> str:
    """Write the Nuclio ``function.yaml`` for ``handler`` to ``path``; returns the path."""
    import yaml

    config = nuclio_function(handler, **options)
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(config, fh, sort_keys=False, default_flow_style=False)
    return path


def handle(context: Any, event: Any, fn: Any) -> str:
    """Run ``fn`` for one Nuclio event; return the run JSON (Nuclio sends it as the response)."""
    from .serve import Event, execute

    body = getattr(event, "body", None)
    if isinstance(body, (bytes, str)):
        body = json.loads(body or b"{}")
    headers = dict(getattr(event, "headers", {}) or {})
    ev = Event(body, headers, getattr(event, "method", "POST"), getattr(event, "path", "/"))
    db = None
    if os.environ.get("MLFLOWLET_DBPATH"):
        from ..db import get_run_db

        db = get_run_db()
    return json.dumps(execute(fn, body, ev, db)["run"], default=str)


def handler(context: Any, event: Any) -> str:
    """Nuclio entry for module handlers: runs ``MLFLOWLET_HANDLER`` (``module:function``)."""
    from .._binding import resolve_handler

    target = os.environ.get("MLFLOWLET_HANDLER", "")
    if not target:
        raise ConfigError("MLFLOWLET_HANDLER is not set; it names the handler, module:function")
    return handle(context, event, resolve_handler(target))
