"""Run an ASGI app on uvicorn: in the foreground (CLI) or in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from ..errors import MissingDependencyError, RunDBError


def _uvicorn() -> Any:
    try:
        import uvicorn
    except ImportError:
        raise MissingDependencyError("uvicorn", "server") from None
    return uvicorn


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_ready(url: str, timeout: float = 20.0, path: str = "/health") -> None:
    """Poll ``url + path`` until it answers 200.

    Raises:
        RunDBError: it did not answer within ``timeout`` seconds.
    """
    import httpx

    deadline, delay, last = time.monotonic() + timeout, 0.01, ""
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + path, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(delay)  # polling a readiness probe, not synchronising on a guess
        delay = min(delay * 2, 0.2)
    raise RunDBError(f"server at {url} did not become ready in {timeout:.0f}s ({last})")


class ThreadedServer:
    """Serve an app with uvicorn in a daemon thread; a context manager that waits for readiness.

    Args:
        app: the ASGI app.
        host: the address to bind (loopback by default).
        port: the port (0 picks a free one).
        **config: further ``uvicorn.Config`` options.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, **config: Any) -> None:
        uvicorn = _uvicorn()
        self.host, self.port = host, port or free_port(host)
        config.setdefault("log_level", "warning")
        config.setdefault("access_log", False)
        self.config = uvicorn.Config(app, host=self.host, port=self.port, **config)
        self.server = uvicorn.Server(self.config)
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._thread = threading.Thread(
            target=self.server.run, daemon=True, name=f"uvicorn-{self.port}"
        )

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> ThreadedServer:
        """Start the thread and wait until ``/health`` answers."""
        self._thread.start()
        wait_ready(self.url, timeout)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to exit and join the thread."""
        self.server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def run_foreground(
    app: Any, host: str, port: int, access_log: bool = True, log_level: str = "info"
) -> None:
    """Serve ``app`` until interrupted (``mlflowlet server`` / ``mlflowlet serve``)."""
    _uvicorn().run(app, host=host, port=port, access_log=access_log, log_level=log_level)
