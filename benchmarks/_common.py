"""Helpers shared by the benchmark modules (not a benchmark itself: run.py loads bench_*.py)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

PYCACHE = os.path.join(tempfile.gettempdir(), "mlflowlet-bench-pycache")


def python_env() -> dict[str, str]:
    """The environment of a timed child interpreter: no MLFLOWLET_* and bytecode cached.

    An installed package has its bytecode (pip compiles it; an editable install writes it on
    first import), so a child compiling every module from source would time what users never
    pay: ``PYTHONDONTWRITEBYTECODE`` is dropped and the bytecode goes to a temporary folder
    (``PYTHONPYCACHEPREFIX``), not into the source tree.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOWLET_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = PYCACHE
    return env


@contextmanager
def fresh_dir(prefix: str = "mlflowlet-bench-") -> Iterator[str]:
    """A temporary directory holding the run DB, with MLFLOWLET_* cleared meanwhile."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("MLFLOWLET_")}
    for key in saved:
        del os.environ[key]
    folder = tempfile.mkdtemp(prefix=prefix)
    os.environ["MLFLOWLET_DBPATH"] = folder
    try:
        yield folder
    finally:
        os.environ.pop("MLFLOWLET_DBPATH", None)
        os.environ.update(saved)
        from mlflowlet import _process

        _process.reset()  # closes the cached run DB connections
        shutil.rmtree(folder, ignore_errors=True)
