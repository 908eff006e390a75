"""The integrity hashes of artifact versions: which algorithm, and how a digest is recorded.

New versions are hashed with BLAKE3 (the ``blake3`` package, several times faster than sha256 and
multi-threaded on large inputs) and recorded with the algorithm's name: ``"blake3:<hex>"``.
``MLFLOWLET_HASH_ALGO=sha256`` (or ``hash_algo='sha256'`` where a call takes it) records
``"sha256:<hex>"`` instead. A bare hex digest, as versions recorded before algorithms were named
carry, is a sha256. Every check of a recorded version uses the algorithm its record names.

A hasher for a large input gets a thread pool of its own (never the process-wide one, which a
forked child would inherit without its threads); a small input is hashed in the calling thread.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from mlflowlet.errors import ConfigError

ALGOS = ("blake3", "sha256")
DEFAULT = "blake3"
#: Inputs at least this big are hashed with a thread pool (BLAKE3 only).
THREADED_BYTES = 8 << 20


def default_algo() -> str:
    """Return the algorithm for new versions (``MLFLOWLET_HASH_ALGO``, else blake3).

    Where the ``blake3`` package cannot be imported (a platform without its wheel) and no
    algorithm was asked for, versions are recorded with sha256 (and say so).

    Raises:
        ConfigError: the setting names an algorithm mlflowlet does not record.
    """
    asked = os.environ.get("MLFLOWLET_HASH_ALGO")  # = get_settings().hash_algo, read alone
    algo = check_algo((asked or DEFAULT).strip().lower(), "MLFLOWLET_HASH_ALGO")
    if algo == "blake3" and asked is None and not _have_blake3():
        return "sha256"
    return algo


def _have_blake3() -> bool:
    if not _found:
        import importlib.util

        _found.append(importlib.util.find_spec("blake3") is not None)
    return _found[0]


_found: list[bool] = []


def check_algo(algo: str, where: str = "hash_algo") -> str:
    """Return ``algo`` when it is one mlflowlet records.

    Raises:
        ConfigError: it is not (naming ``where`` it came from and the choices).
    """
    if algo not in ALGOS:
        raise ConfigError(f"{where}={algo!r} is not a hash algorithm mlflowlet records; use one "
                          f"of {', '.join(ALGOS)}")  # fmt: skip
    return algo


def new_hasher(algo: str, size: int | None = None) -> Any:
    """Return a fresh hasher (``update``/``hexdigest``) for ``algo``.

    Args:
        algo: ``'blake3'`` or ``'sha256'``.
        size: the input's size when known: a large input gets a thread pool (BLAKE3); an
            unknown size is hashed in the calling thread.
    """
    if algo == "sha256":
        return hashlib.sha256()
    if algo == "blake3":
        from blake3 import blake3

        threads = 1
        if size is not None and size >= THREADED_BYTES:
            threads = max(1, min(os.cpu_count() or 1, 8))
        return blake3(max_threads=threads)
    raise ConfigError(f"unknown hash algorithm {algo!r}; use one of {', '.join(ALGOS)}")


def label(algo: str, hexdigest: str) -> str:
    """Return the recorded form of a digest: ``'<algo>:<hex>'``."""
    return f"{algo}:{hexdigest}"


def split(recorded: str) -> tuple[str, str]:
    """Return ``(algorithm, hex digest)`` of a recorded digest (bare hex: sha256)."""
    algo, sep, hexdigest = recorded.partition(":")
    return (algo, hexdigest) if sep else ("sha256", recorded)


def digest_bytes(algo: str, data: Any) -> str:
    """Return the hex digest of ``data`` (bytes-like) with ``algo``."""
    hasher = new_hasher(algo, len(memoryview(data).cast("B")))
    hasher.update(data)
    return str(hasher.hexdigest())


def short(recorded: str, n: int = 12) -> str:
    """Return the first ``n`` hex digits of a recorded digest (for tables and uids)."""
    return split(recorded)[1][:n]
