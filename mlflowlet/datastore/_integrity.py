"""Integrity of recorded artifact versions: the stamp taken at write, the checks at read.

An artifact record carries the version's ``size`` and ``hash`` (``'blake3:<hex>'``,
``'sha256:<hex>'``, or a bare sha256 hex digest for versions recorded before algorithms were
named), plus a cheap stamp of the stored object: ``mtime_ns`` for local files, ``etag`` for remote
objects. Every read of a recorded version compares what is cheap (one ``stat`` or HEAD);
``verify=True`` compares the full digest, computed with the algorithm the record names. A local
file whose modification time moved but whose bytes are intact (``touch``, a copy that did not
keep times) passes after its hash is compared. Anything else raises
:class:`~mlflowlet.errors.ArtifactIntegrityError` instead of returning other bytes.
"""

from __future__ import annotations

import os
from typing import Any

from mlflowlet.datastore import _dirtree
from mlflowlet.datastore._urls import is_local, local_path
from mlflowlet.errors import ArtifactIntegrityError, DataNotFoundError


def stamp(uri: str, store: Any = None) -> dict[str, Any]:
    """Return the cheap stamp of the object just written at ``uri``, with its ``size``.

    Args:
        uri: a local path or URL.
        store: the data store of a remote ``uri`` (its ``stat`` gives the ETag).
    """
    if is_local(uri):
        st = os.stat(local_path(uri))
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    info = store.stat(uri)
    return {"size": info.get("size"), "etag": info.get("etag")}


def is_record(meta: dict[str, Any] | None, real: str) -> bool:
    """Return whether ``meta`` is the record of the version stored at ``real`` (to check)."""
    if not meta or meta.get("uri") != real:
        return False
    return meta.get("size") is not None or bool(meta.get("hash"))


def version_of(meta: dict[str, Any]) -> str:
    """Name a version for messages: its uid, and its iteration when not 0."""
    uid = str(meta.get("uid") or (meta.get("hash") or "?")[:16])
    it = meta.get("iteration") or 0
    return f"{uid} (iteration {it})" if it else uid


def _fail(meta: dict[str, Any], where: str, reason: str) -> ArtifactIntegrityError:
    return ArtifactIntegrityError(str(meta.get("key") or "?"), version_of(meta), where, reason)


def check(meta: dict[str, Any], store: Any, real: str) -> None:
    """Compare the object at ``real`` with its record cheaply (size, then mtime or ETag).

    A local file whose mtime differs is hashed: intact bytes pass.

    Raises:
        ArtifactIntegrityError: the size, ETag or (after a moved mtime) the hash differs.
        DataNotFoundError: nothing is stored at ``real`` any more.
    """
    size = meta.get("size")
    if _dirtree.is_dir_record(meta):
        _check_tree(meta, store, real)
        return
    if is_local(real):
        path = local_path(real)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise DataNotFoundError(
                f"artifact {meta.get('key')!r} version {version_of(meta)}: no such file '{path}'"
            ) from None
        if size is not None and st.st_size != size:
            raise _fail(meta, path, f"size {st.st_size} bytes, recorded {size}")
        recorded = meta.get("mtime_ns")
        if recorded is not None and st.st_mtime_ns != recorded:
            if not meta.get("hash"):
                raise _fail(meta, path, "modified after it was recorded (no hash to compare)")
            verify_file(meta, path, "modified after it was recorded and ")
        return
    info = store.stat(real)
    if size is not None and info.get("size") is not None and info["size"] != size:
        raise _fail(meta, real, f"size {info['size']} bytes, recorded {size}")
    recorded = meta.get("etag")
    if recorded and info.get("etag") and info["etag"] != recorded:
        raise _fail(
            meta,
            real,
            f"ETag {info['etag']!r}, recorded {recorded!r} (verify=True compares the hash)",
        )


def _expected(meta: dict[str, Any], where: str) -> tuple[str, str]:
    """Return the recorded ``(algorithm, hex digest)``; fail when none or an unknown one."""
    from mlflowlet.datastore._hashing import ALGOS, split

    digest = meta.get("hash")
    if not digest:
        raise _fail(meta, where, "no hash was recorded for this version, so it cannot be verified")
    algo, hexdigest = split(str(digest))
    if algo not in ALGOS:
        raise _fail(meta, where, f"recorded with hash algorithm {algo!r}, which this mlflowlet "
                                 f"cannot compute ({', '.join(ALGOS)})")  # fmt: skip
    return algo, hexdigest


def _differs(algo: str, got: str, expected: str, why: str = "") -> str:
    return f"{why}{algo} {got[:16]}..., recorded {expected[:16]}..."


def verify_bytes(meta: dict[str, Any], data: bytes, where: str) -> None:
    """Compare the digest of ``data`` (the whole object) with the record's, by its algorithm.

    Raises:
        ArtifactIntegrityError: the digests differ, or none was recorded.
    """
    from mlflowlet.datastore._hashing import digest_bytes

    algo, expected = _expected(meta, where)
    got = digest_bytes(algo, data)
    if got != expected:
        raise _fail(meta, where, _differs(algo, got, expected))


def verify_file(meta: dict[str, Any], path: str, why: str = "") -> None:
    """Compare the digest (the record's algorithm) and size of the local file ``path``.

    Raises:
        ArtifactIntegrityError: the digests differ, or none was recorded.
    """
    from mlflowlet.datastore._streams import hash_file

    algo, expected = _expected(meta, path)
    if _dirtree.is_dir_record(meta):
        got, size = _dirtree.hash_tree(path, algo, f"artifact {meta.get('key')!r}")
    else:
        got, size = hash_file(path, algo)
    if got != expected:
        raise _fail(meta, path, _differs(algo, got, expected, why))
    recorded = meta.get("size")
    if recorded is not None and size != recorded:
        raise _fail(meta, path, f"size {size} bytes, recorded {recorded}")


def copy_verified(meta: dict[str, Any], src: str, path: str) -> None:
    """Copy the local version file ``src`` to ``path``, hashed beside the copy, and compare.

    One overlapped pass (:func:`~mlflowlet.datastore._streams.copy_hashed_to`: its digest is the
    published copy's) instead of a copy, then a second read to hash it. A copy whose digest or
    size differs from the record is removed.

    Raises:
        ArtifactIntegrityError: the digests or sizes differ, or no hash was recorded.
    """
    from mlflowlet.datastore._streams import copy_hashed_to

    algo, expected = _expected(meta, path)
    _, got, size = copy_hashed_to(src, path, algo=algo)
    recorded = meta.get("size")
    if got != expected or (recorded is not None and size != recorded):
        os.unlink(path)
        if got != expected:
            raise _fail(meta, path, _differs(algo, got, expected))
        raise _fail(meta, path, f"size {size} bytes, recorded {recorded}")


def verify_store(meta: dict[str, Any], store: Any, real: str) -> None:
    """Compare the digest of the object at ``real``, streamed from ``store``, with the record."""
    from mlflowlet.datastore._hashing import new_hasher
    from mlflowlet.datastore._streams import iter_stream

    algo, expected = _expected(meta, real)
    if _dirtree.is_dir_record(meta):
        import shutil
        import tempfile

        tmp = tempfile.mkdtemp(prefix="mlflowlet-verify-")
        try:
            _dirtree.fetch_tree(store, real, os.path.join(tmp, "tree"))
            verify_file(meta, os.path.join(tmp, "tree"))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    hasher = new_hasher(algo, meta.get("size"))
    with store.open(real, "rb") as f:
        for chunk in iter_stream(f):
            hasher.update(chunk)
    got = hasher.hexdigest()
    if got != expected:
        raise _fail(meta, real, _differs(algo, got, expected))


def _check_tree(meta: dict[str, Any], store: Any, real: str) -> None:
    """Run :func:`check` for a directory version.

    Local: its total size and newest file time; remote: that objects are under its prefix
    (``verify=True`` compares the content hash).
    """
    if not is_local(real):
        try:
            store.listdir(real)
        except DataNotFoundError:
            raise DataNotFoundError(
                f"artifact {meta.get('key')!r} version {version_of(meta)}: nothing under "
                f"'{real.rstrip('/')}/'"
            ) from None
        return
    path = local_path(real)
    if not os.path.isdir(path):
        raise DataNotFoundError(
            f"artifact {meta.get('key')!r} version {version_of(meta)}: no such directory '{path}'"
        )
    now = _dirtree.tree_stamp(path)
    size = meta.get("size")
    if size is not None and now["size"] != size:
        raise _fail(meta, path, f"size {now['size']} bytes, recorded {size}")
    recorded = meta.get("mtime_ns")
    if recorded is not None and now["mtime_ns"] != recorded:
        verify_file(meta, path, "modified after it was recorded and ")
