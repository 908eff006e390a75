"""The pooled ``httpx`` client of the HTTP run DB: one per server URL and process."""

from __future__ import annotations

import os
import threading
from typing import Any

from .. import _process
from ..errors import MissingDependencyError

_clients: dict[tuple[int, str, float], Any] = {}
_clients_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _clients_lock
    _clients_lock = threading.Lock()  # a parent thread may have held it; clients are per pid


_process.at_fork(child=_after_fork_in_child)


def _httpx() -> Any:
    try:
        import httpx
    except ImportError:
        raise MissingDependencyError("httpx", "server") from None
    return httpx


def shared_client(base_url: str, timeout: float = 30.0) -> Any:
    """Return this process's pooled ``httpx.Client`` for ``base_url`` (made on first use)."""
    key = (os.getpid(), base_url, timeout)
    client = _clients.get(key)
    if client is None:
        httpx = _httpx()
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                client = httpx.Client(
                    base_url=base_url,
                    timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)),
                    limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
                )
                _clients[key] = client
    return client
