"""Helpers for tests that start real processes: wait on the pid files they write, check pids."""

from __future__ import annotations

import time
from pathlib import Path

import pytest


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (FileNotFoundError, ProcessLookupError):
        return False


def wait_for(path: Path, limit: float = 60) -> int:
    """Wait until a process wrote its pid to ``path`` (bounded); return it."""
    end = time.monotonic() + limit
    while not path.exists():
        assert time.monotonic() < end, f"{path.name} never appeared"
        time.sleep(0.01)
    return int(path.read_text())


def wait_gone(pids: list[int], limit: float) -> float:
    """Wait until none of ``pids`` runs; return how long it took (fails past ``limit``)."""
    start = time.monotonic()
    while any(alive(p) for p in pids):
        if time.monotonic() - start > limit:
            pytest.fail(f"processes still running: {[p for p in pids if alive(p)]}")
        time.sleep(0.02)
    return time.monotonic() - start


def stop_while_waiting(child, folder: Path, signum: int, limit: float = 60) -> None:
    """Signal ``child`` (a caller waiting on a remote run) once its handler wrote ``started``.

    The handler waits for a ``go`` file: it is written whatever happens, freeing its thread.
    """
    import os

    try:
        wait_for(folder / "started", limit)  # the handler runs elsewhere: the caller waits
        os.kill(child.pid, signum)
        child.wait(timeout=30)
    finally:
        (folder / "go").write_text("go")
        if child.poll() is None:
            child.kill()
            child.wait()


def served_functions(handlers: Path):
    """Yield ``url(name)``: the handler ``name`` of file ``handlers`` served on 127.0.0.1.

    Each function starts at its first use and is kept until the generator is closed.
    """
    from mlflowlet.server._uvicorn import ThreadedServer
    from mlflowlet.server.serve import create_function_app

    servers: dict[str, ThreadedServer] = {}

    def url(name: str) -> str:
        if name not in servers:
            app = create_function_app(f"{handlers}:{name}", token="")
            servers[name] = ThreadedServer(app).start()
        return servers[name].url

    try:
        yield url
    finally:
        for server in servers.values():
            server.stop()
