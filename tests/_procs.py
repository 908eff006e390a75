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
