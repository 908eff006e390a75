"""``mlflowlet serve --export nuclio``: a Nuclio ``function.yaml`` for the same handler.

The function runs :func:`handler` (this module) inside Nuclio's Python runtime; it finds the
user's handler from ``MLFLOWLET_HANDLER`` and runs each event's body as a run spec, exactly as
``mlflowlet serve`` does. For a handler in a ``.py`` file, the file's source is embedded
(``build.functionSourceCode``, base64) with a small entry function appended, so ``nuctl deploy
--file function.yaml`` needs nothing else. The build installs this mlflowlet's own version
(``mlflowlet[server]==<version>``), not whatever the index has newest; the function answers with
the run as JSON (a dict, which Nuclio's SDK sends as ``application/json``:
nuclio-sdk-py ``nuclio_sdk/response.py`` ``Response.from_entrypoint_output``), and scales
between ``min_replicas`` and ``max_replicas`` at ``target_cpu`` percent. Field reference:
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
    min_replicas: int = 1,
    max_replicas: int = 4,
    target_cpu: int = 75,
) -> dict[str, Any]:
    """Return the Nuclio function configuration for ``handler`` as a dict.

    Args:
        handler: ``'file.py:function'`` or ``'module:function'``.
        name: the function name (default: the handler function's, made DNS-safe).
        base_image: the build's base image (default ``python:<runtime version>``).
        requirements: pip requirements installed at build (this version of
            ``mlflowlet[server]`` is added).
        env: extra environment variables.
        workers: concurrent requests per replica (the HTTP trigger's ``numWorkers``).
        db: the run DB URL the function records into (``MLFLOWLET_DBPATH``).
        min_replicas: replicas kept running (``spec.minReplicas``).
        max_replicas: replicas at most under load (``spec.maxReplicas``).
        target_cpu: the CPU percentage Nuclio scales at (``spec.targetCPU``).

    Raises:
        ConfigError: the handler is not ``source:function``, its file does not exist, or the
            replica counts are not ``1 <= min_replicas <= max_replicas``.
    """
    from .. import __version__

    if not 1 <= int(min_replicas) <= int(max_replicas):
        raise ConfigError(
            f"min_replicas={min_replicas}, max_replicas={max_replicas}: need "
            "1 <= min_replicas <= max_replicas"
        )
    source, _, func = handler.rpartition(":")
    if not source or not func.isidentifier():
        raise ConfigError(f"handler {handler!r} must be 'file.py:function' or 'module:function'")
    runtime = _runtime()
    pip = [f"mlflowlet[server]=={__version__}", *(requirements or [])]
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
            "minReplicas": int(min_replicas),
            "maxReplicas": int(max_replicas),
            "targetCPU": int(target_cpu),
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


def handle(context: Any, event: Any, fn: Any) -> dict[str, Any]:
    """Run ``fn`` for one Nuclio event; return the run as a JSON-ready dict.

    Nuclio's SDK sends a dict as the body with ``Content-Type: application/json``
    (nuclio-sdk-py ``nuclio_sdk/response.py``, ``Response.from_entrypoint_output``); a string was
    sent as ``text/plain``.
    """
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
    run: dict[str, Any] = json.loads(json.dumps(execute(fn, body, ev, db)["run"], default=str))
    return run


def handler(context: Any, event: Any) -> dict[str, Any]:
    """Nuclio entry for module handlers: runs ``MLFLOWLET_HANDLER`` (``module:function``)."""
    from .._binding import resolve_handler

    target = os.environ.get("MLFLOWLET_HANDLER", "")
    if not target:
        raise ConfigError("MLFLOWLET_HANDLER is not set; it names the handler, module:function")
    return handle(context, event, resolve_handler(target))
