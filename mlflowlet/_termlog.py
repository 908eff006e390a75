"""The run's outcome as a container's termination message: compact JSON under 4 KiB.

Kubernetes reads a container's ``/dev/termination-log`` when it ends and keeps at most 4096 bytes
of it in the pod's status (``state.terminated.message``), where the runtime that submitted the
pod reads it back when no shared run DB holds the run and the log's last line is lost (a log
that could not be followed; ``FallbackToLogsOnError`` keeps only the log's last 2048 bytes or 80
lines, and only on failure). The message is one line: the ``MLFLOWLET_RUN_JSON=`` marker and the
run's identity and outcome: state, error (its last line), results and artifact locations, made
smaller until it fits, never cut mid-JSON; ``"truncated"`` lists what was left out.

Reference: https://kubernetes.io/docs/tasks/debug/debug-application/determine-reason-pod-failure/
#customizing-the-termination-message
"""

from __future__ import annotations

import json
import os
from typing import Any

MARKER = "MLFLOWLET_RUN_JSON="  # the entrypoint's run-record marker (read_run_json parses it)
DEFAULT_PATH = "/dev/termination-log"
LIMIT = 4096  # bytes Kubernetes keeps of one container's termination message
_ERROR_CHARS = 400

__all__ = ["LIMIT", "compact_record", "termination_path", "write_termination_log"]


def termination_path() -> str:
    """Return where the termination message goes (``''``: not in a pod).

    ``MLFLOWLET_TERMINATION_LOG`` when set, else Kubernetes' ``/dev/termination-log`` when it
    exists.
    """
    path = os.environ.get("MLFLOWLET_TERMINATION_LOG") or DEFAULT_PATH
    return path if os.path.exists(path) or path != DEFAULT_PATH else ""


def compact_record(record: dict[str, Any], limit: int = LIMIT) -> str:
    """Return ``MLFLOWLET_RUN_JSON=<compact run>`` of at most ``limit`` bytes (UTF-8)."""
    meta, status = record.get("metadata") or {}, record.get("status") or {}
    error = str(status.get("error") or "").strip().splitlines()[-1:] or [""]
    data: dict[str, Any] = {
        "metadata": {k: meta.get(k) for k in ("uid", "project", "iteration", "name")},
        "status": {
            "state": status.get("state"),
            "error": error[0][:_ERROR_CHARS],
            "results": dict(status.get("results") or {}),
            "artifacts": [
                {k: a.get(k) for k in ("key", "uri", "kind", "hash", "size") if k in a}
                for a in status.get("artifacts") or []
                if isinstance(a, dict)
            ],
            "start_time": status.get("start_time"),
            "end_time": status.get("end_time"),
        },
        "compact": True,
    }
    for shrink in (_keep, _no_artifacts, _short_results, _numeric_results):
        shrink(data)
        line = _line(data)
        if len(line.encode("utf-8")) <= limit:
            return line
    return _fit_results(data, limit)


def _line(data: dict[str, Any]) -> str:
    return MARKER + json.dumps(data, separators=(",", ":"), default=str)


def _keep(data: dict[str, Any]) -> None:
    """Leave the record as it is (the first try)."""


def _no_artifacts(data: dict[str, Any]) -> None:
    if data["status"]["artifacts"]:
        data["status"]["artifacts"] = []
        data.setdefault("truncated", []).append("artifacts")


def _keep_results(data: dict[str, Any], keep: Any) -> None:
    results = data["status"]["results"]
    kept = {k: v for k, v in results.items() if keep(v)}
    if kept != results:
        data["status"]["results"] = kept
        if "results" not in data.get("truncated", []):
            data.setdefault("truncated", []).append("results")


def _short_results(data: dict[str, Any]) -> None:
    _keep_results(
        data, lambda v: isinstance(v, (int, float)) or (isinstance(v, str) and len(v) <= 64)
    )


def _numeric_results(data: dict[str, Any]) -> None:
    _keep_results(data, lambda v: isinstance(v, (int, float)))


def _fit_results(data: dict[str, Any], limit: int) -> str:
    """Keep the first numeric results that fit (in the order they were logged)."""
    results, data["status"]["results"] = data["status"]["results"], {}
    if "results" not in data.get("truncated", []):
        data.setdefault("truncated", []).append("results")
    line = _line(data)
    if len(line.encode("utf-8")) > limit:
        raise ValueError("the run's identity alone does not fit a termination message")
    for key, value in results.items():
        data["status"]["results"][key] = value
        longer = _line(data)
        if len(longer.encode("utf-8")) > limit:
            del data["status"]["results"][key]
            break
        line = longer
    return line


def write_termination_log(record: dict[str, Any], path: str | None = None) -> bool:
    """Write the compact record to the termination log; return whether it was written.

    Nothing is written outside a pod (no ``/dev/termination-log`` and no
    ``MLFLOWLET_TERMINATION_LOG``); a write that fails is not the run's failure.
    """
    target = path if path is not None else termination_path()
    if not target:
        return False
    try:
        with open(target, "w", encoding="utf-8") as fh:
            fh.write(compact_record(record))
    except (OSError, ValueError):
        return False
    return True
