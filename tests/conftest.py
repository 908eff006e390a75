"""Shared fixtures: every test runs in a clean environment of its own.

The autouse fixture chdirs into ``tmp_path``, points ``MLFLOWLET_DBPATH`` at a fresh directory,
drops every other ``MLFLOWLET_*`` variable, and resets per-process state (cached DB connections,
the active run's ``ContextVar`` and the capture sink) before and after each test.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from fake_builders import bare_path, fake_docker  # noqa: F401 - FAKE image builders, as fixtures

EXAMPLES = Path(__file__).parents[1] / "examples"


def _reset_process_state() -> None:
    db = sys.modules.get("mlflowlet.db")
    if db is not None:
        with db._cache_lock:
            cached = list(db._cache.values())
            db._cache.clear()
        for conn in cached:
            close = getattr(conn, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # a connection already closed by the test
                    pass
    context = sys.modules.get("mlflowlet.context")
    if context is not None:
        context._active.set(None)
    capture = sys.modules.get("mlflowlet._capture")
    if capture is not None:
        capture._sink.set(None)


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test in ``tmp_path`` with its own run DB directory and no other settings."""
    for name in list(os.environ):
        if name.startswith("MLFLOWLET_"):
            monkeypatch.delenv(name)
    dbdir = tmp_path / "rundb"
    dbdir.mkdir()
    monkeypatch.setenv("MLFLOWLET_DBPATH", str(dbdir))
    monkeypatch.chdir(tmp_path)
    _reset_process_state()
    yield dbdir
    _reset_process_state()


@pytest.fixture
def dbdir(clean_env: Path) -> Path:
    """The directory ``MLFLOWLET_DBPATH`` points at for this test."""
    return clean_env


@pytest.fixture
def examples_dir(tmp_path: Path) -> Path:
    """A private copy of the repository's ``examples/`` directory."""
    target = tmp_path / "examples"
    shutil.copytree(
        EXAMPLES, target, ignore=shutil.ignore_patterns("mlflowlet.db*", "artifacts", "__pycache__")
    )
    return target
