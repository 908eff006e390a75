"""Reading pod state: why a pod can never succeed, its terminated container, the last event.

Pure functions over the ``kubernetes`` client's models (``V1Pod``, ``CoreV1Event``) and its
``ApiException``; the API calls themselves are in :mod:`.client`.
"""

from __future__ import annotations

from typing import Any

from .checks import short

_FATAL_WAITING = {
    "ErrImagePull": "the image cannot be pulled",
    "ImagePullBackOff": "the image cannot be pulled",
    "InvalidImageName": "the image name is invalid",
    "CreateContainerConfigError": "the container's configuration refers to something missing",
    "CreateContainerError": "the container cannot be created",
}


def pod_problem(pod: Any) -> str:
    """Return why a pod can never succeed (image pull, config, OOM, eviction), else ``''``."""
    status = pod.status
    if status is None:
        return ""
    name = pod.metadata.name
    statuses = [*(status.init_container_statuses or []), *(status.container_statuses or [])]
    for cs in statuses:
        waiting = cs.state.waiting if cs.state else None
        if waiting is not None and waiting.reason in _FATAL_WAITING:
            return (
                f"pod {name}: {_FATAL_WAITING[waiting.reason]} ({waiting.reason}, image "
                f"{cs.image!r}): {short(waiting.message or 'no message')}"
            )
        term = cs.state.terminated if cs.state else None
        if term is not None and term.reason == "OOMKilled":
            return (
                f"pod {name}: container {cs.name!r} ran out of memory (OOMKilled, exit code "
                f"{term.exit_code}); raise its limit with with_limits(memory=...)"
            )
    if status.reason in ("Evicted", "DeadlineExceeded"):
        return f"pod {name} {status.reason}: {short(status.message or '')}".rstrip(": ")
    return ""


def terminated(pod: Any, container: str) -> Any:
    """Return the terminated state of ``container`` in ``pod`` (or None)."""
    for cs in (pod.status.container_statuses or []) if pod.status else []:
        if cs.name == container and cs.state is not None and cs.state.terminated is not None:
            return cs.state.terminated
    return None


def last_event(core: Any, namespace: str, names: list[str]) -> str:
    """Return the newest event about any of ``names`` as ``'Reason: message'`` (or ``''``)."""
    found = []
    for name in names:
        events = core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={name}"
        ).items
        found.extend(events)
    if not found:
        return ""

    def when(ev: Any) -> Any:
        stamp = ev.last_timestamp or ev.event_time or ev.first_timestamp
        return stamp.isoformat() if stamp is not None else ""

    ev = max(found, key=when)
    return f"{ev.reason}: {short(ev.message or '')} (on {ev.involved_object.name})"


def api_error(exc: Any) -> str:
    """Return a one-line reason from a ``kubernetes.client.ApiException``."""
    import json

    message = ""
    try:
        message = json.loads(exc.body or "{}").get("message", "")
    except (ValueError, AttributeError):
        message = str(exc.body or "")
    return f"{exc.status} {exc.reason}: {short(message)}".rstrip(": ")
