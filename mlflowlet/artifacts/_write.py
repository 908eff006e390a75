"""Write an artifact version to a location of its own: never over another version's bytes.

A version goes to its first candidate location (``<dir>/model.pkl``) or, when that name is
taken, to the first free one of ``model.v2.pkl``, ``model.v3.pkl``... Local files are claimed
atomically (:func:`~mlflowlet.datastore._streams.publish`): concurrent writers in any process get
a name each. Remote stores have no atomic "create if absent", so a name is claimed when no object
is there (a HEAD) and this process has not claimed it; the run's own directory
(``<artifact path>/<run uid>[/<iteration>]``) keeps other runs out of it.
"""

from __future__ import annotations

import threading
from typing import Any

from mlflowlet.datastore._streams import free_remote_name
from mlflowlet.datastore._urls import is_local
from mlflowlet.errors import ArtifactError, DataNotFoundError


class Claims:
    """The remote locations a writer has claimed (thread-safe); local files claim themselves."""

    def __init__(self) -> None:
        self._taken: set[str] = set()
        self._lock = threading.Lock()

    def take(self, uri: str) -> bool:
        """Claim ``uri``; return False when it was claimed already."""
        with self._lock:
            if uri in self._taken:
                return False
            self._taken.add(uri)
            return True

    def __contains__(self, uri: object) -> bool:
        with self._lock:
            return uri in self._taken


def store_version(
    key: str,
    dest: str,
    data: bytes | None,
    src: str | None,
    secrets: Any,
    claims: Claims,
    hash_algo: str | None = None,
) -> tuple[str, str, int]:
    """Write ``data`` or copy the file ``src`` as a new version; return ``(uri, digest, size)``.

    ``dest`` is the first candidate location; the version lands there or at the first free
    versioned name. A local ``src`` that already is ``dest`` (a file the handler wrote into its
    artifact directory) is recorded in place, once. The digest is recorded with its algorithm
    (``'blake3:<hex>'``; ``hash_algo`` or ``MLFLOWLET_HASH_ALGO`` may ask for sha256), computed
    while the bytes are copied.
    """
    from mlflowlet.datastore import _hashing
    from mlflowlet.datastore._streams import CHUNK_SIZE, copy_hashed_to, hash_file, write_new

    algo = _hashing.check_algo(hash_algo) if hash_algo else _hashing.default_algo()
    if is_local(dest):
        import os

        if src is not None and os.path.exists(dest) and os.path.samefile(src, dest):
            if claims.take(dest):
                digest, size = hash_file(src, algo)
                return dest, _hashing.label(algo, digest), size
        if data is not None:
            view = memoryview(data)
            chunks = (view[i : i + CHUNK_SIZE] for i in range(0, len(view), CHUNK_SIZE))
            uri, digest, size = write_new(dest, chunks, True, algo)  # type: ignore[arg-type]
        else:
            assert src is not None
            uri, digest, size = copy_hashed_to(src, dest, exclusive=True, algo=algo)
        claims.take(uri)
        return uri, _hashing.label(algo, digest), size
    from mlflowlet.datastore.registry import get_store

    store = get_store(dest, secrets)
    uri = free_remote_name(dest, claims, store.stat)
    if data is not None:
        store.put(uri, data)
        return uri, _hashing.label(algo, _hashing.digest_bytes(algo, data)), len(data)
    assert src is not None
    digest, size = store.upload_hashed(uri, src, algo)  # hashed while it is read for the upload
    return uri, _hashing.label(algo, digest), size


def link_existing(key: str, uri: str, secrets: Any) -> tuple[None, int | None]:
    """Record an existing object at ``uri`` without writing; it must exist."""
    from mlflowlet.datastore.registry import get_store

    try:
        info = get_store(uri, secrets).stat(uri)
    except DataNotFoundError:
        raise ArtifactError(
            f"artifact {key!r}: nothing to store: pass a body or a local_path, or a "
            f"target_path that exists ({uri!r} does not)"
        ) from None
    return None, info.get("size")


def stamp_of(uri: str, secrets: Any) -> dict[str, Any]:
    """Return the cheap stamp (``mtime_ns`` or ``etag``) of the object now at ``uri``."""
    from mlflowlet.datastore._integrity import stamp

    if is_local(uri):
        return stamp(uri)
    from mlflowlet.datastore.registry import get_store

    return stamp(uri, get_store(uri, secrets))
