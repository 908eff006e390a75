"""``mlflowlet.datastore.copy``: copy files and directories between any two stores, streaming.

Lives in ``_copy`` (not ``copy.py``) so the submodule never shadows the function on the
package: ``mlflowlet.datastore.copy`` is always the function.
"""

from __future__ import annotations

import os
from typing import Any

from mlflowlet.datastore._streams import AtomicFile, HashingReader, iter_stream
from mlflowlet.datastore._urls import is_local, join_url, local_path, url_basename
from mlflowlet.datastore.registry import get_store
from mlflowlet.errors import DataNotFoundError


def copy(
    src_url: str, dst_url: str, secrets: Any = None, dst_secrets: Any = None
) -> list[dict[str, Any]]:
    """Copy a file, or every file under a directory or remote prefix, to another URL.

    Bytes stream through in chunks (memory does not grow with the size) and are hashed
    while they are copied. A ``dst_url`` ending with ``/`` (or an existing local directory)
    receives the source's basename. A local directory, or an ``s3://`` (or fsspec, e.g.
    ``gs://``) URL ending with ``/``, is copied recursively, keeping relative paths. S3 to
    S3 on the same endpoint and credentials copies server-side (then ``hash`` is None: no
    bytes pass through here). Use it to move a run's artifacts, e.g.
    ``copy('artifacts/run1/', 's3://bucket/run1/')``.

    Args:
        src_url: the source path or URL.
        dst_url: the destination path or URL.
        secrets: credentials for both stores (a dict or ``get(key)`` object).
        dst_secrets: credentials for the destination when they differ from ``secrets``.

    Returns:
        One ``{'src', 'dst', 'size', 'hash'}`` dict per file copied (``hash`` is sha256).

    Raises:
        DataNotFoundError: the source does not exist (or a prefix holds nothing).
        DataStoreError: a side cannot be read or written.
    """
    src_url, dst_url = os.fspath(src_url), os.fspath(dst_url)
    dst_secrets = secrets if dst_secrets is None else dst_secrets
    src_store = get_store(src_url, secrets)
    files = _expand(src_store, src_url)
    if files is None:  # a single file
        if dst_url.endswith(("/", os.sep)) or (is_local(dst_url) and os.path.isdir(dst_url)):
            dst_url = join_url(dst_url, url_basename(src_url))
        return [_copy_one(src_store, src_url, dst_url, dst_secrets)]
    if not files:
        raise DataNotFoundError(f"nothing to copy under '{src_url}'")
    return [_copy_one(src_store, url, join_url(dst_url, rel), dst_secrets) for url, rel in files]


def _expand(store: Any, url: str) -> list[tuple[str, str]] | None:
    """Return ``(url, relative path)`` of every file under a directory/prefix, else None."""
    if is_local(url):
        root = local_path(url)
        if not os.path.isdir(root):
            return None
        out = []
        for base, dirs, names in os.walk(root):
            dirs.sort()
            for name in sorted(names):
                path = os.path.join(base, name)
                out.append((path, os.path.relpath(path, root).replace(os.sep, "/")))
        return out
    if url.endswith("/") and hasattr(store, "walk"):  # a prefix: S3, an fsspec store
        return [(f"{url}{rel}", rel) for rel in store.walk(url)]
    return None


def _copy_one(src_store: Any, src: str, dst: str, dst_secrets: Any) -> dict[str, Any]:
    dst_store = get_store(dst, dst_secrets)
    digest: str | None
    if is_local(src):
        path = local_path(src)
        if not os.path.isfile(path):
            raise DataNotFoundError(f"no such file '{path}'")
        digest, size = dst_store.upload_hashed(dst, path)
    elif _same_s3(src_store, dst_store):
        src_store.copy_object(src, dst)
        digest, size = None, src_store.stat(dst)["size"]
    elif is_local(dst):
        with src_store.open(src, "rb") as reader, AtomicFile(local_path(dst)) as out:
            for chunk in iter_stream(reader, src_store.chunk_size):
                out.write(chunk)
        digest, size = out.sha256, out.size
    else:
        digest, size = _stream(src_store, src, dst_store, dst)
    return {"src": src, "dst": dst, "size": size, "hash": digest}


def _stream(src_store: Any, src: str, dst_store: Any, dst: str) -> tuple[str, int]:
    """Remote to remote through this process, one chunk at a time."""
    with src_store.open(src, "rb") as reader:
        upload = getattr(dst_store, "upload_fileobj", None)
        if upload is not None:
            return upload(dst, reader)  # type: ignore[no-any-return]
        hashed = HashingReader(reader)
        with dst_store.open(dst, "wb") as out:
            for chunk in iter_stream(hashed, dst_store.chunk_size):  # type: ignore[arg-type]
                out.write(chunk)
        return hashed.sha256, hashed.size


def _same_s3(a: Any, b: Any) -> bool:
    from mlflowlet.datastore.s3 import S3Store

    return isinstance(a, S3Store) and isinstance(b, S3Store) and a.config == b.config
