"""Directory artifacts: list a directory's content, hash it, store it as a version, fetch it.

A directory version is recorded with ``format: "dir"``; its ``size`` is the total of its files'
bytes and its ``hash`` (``'<algo>:<hex>'``) covers its content in a stable order: for every
entry, sorted by its path relative to the directory (``/``-separated, UTF-8), a file adds its
path, size and digest, an empty folder its path (a path is its bytes on disk: UTF-8, or
whatever bytes a name that is not UTF-8 has). Names, times and the directory's own location
do not count, so the same tree hashes the same wherever it is.

What a directory may hold: regular files, folders, and symlinks to files inside it (stored as
the file's bytes). A symlink leading out of the directory, a symlinked folder (it could loop),
and special files (sockets, pipes, devices) are refused naming the entry: storing them would
record other bytes than the directory shows. A remote store (S3) holds no empty folders, so
a tree with one is refused there rather than stored without it.
"""

from __future__ import annotations

import os
import posixpath
import stat as _stat
from typing import Any

from mlflowlet.errors import ArtifactError, DataNotFoundError

DIR_FORMAT = "dir"


def is_dir_record(meta: dict[str, Any] | None) -> bool:
    """Return whether ``meta`` records a directory version."""
    return bool(meta) and (meta or {}).get("format") == DIR_FORMAT


def tree(root: str, what: str) -> list[tuple[str, str | None]]:
    """Return the entries of the directory ``root``: ``(relative path, file path or None)``.

    Sorted by relative path (``/``-separated); ``None`` marks an empty folder.

    Raises:
        ArtifactError: a symlink out of ``root``, a symlinked folder or a special file, named
            with ``what`` (e.g. ``"artifact 'model'"``).
    """
    base = os.path.realpath(root)
    out: list[tuple[str, str | None]] = []
    for dirpath, dirs, files in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/")
        for name in dirs:
            if os.path.islink(os.path.join(dirpath, name)):
                raise ArtifactError(
                    f"{what}: '{posixpath.join(rel_dir, name)}' in {root!r} is a symlinked "
                    "folder; copy it into the directory"
                )
        for name in files:
            path = os.path.join(dirpath, name)
            rel = posixpath.join(rel_dir, name)
            real = os.path.realpath(path)
            if os.path.commonpath([base, real]) != base:
                raise ArtifactError(
                    f"{what}: '{rel}' in {root!r} is a symlink out of the directory (to "
                    f"{real!r}); copy the file in instead"
                )
            try:
                mode = os.stat(path).st_mode
            except FileNotFoundError:
                raise ArtifactError(f"{what}: '{rel}' in {root!r} is a broken symlink") from None
            if not _stat.S_ISREG(mode):
                raise ArtifactError(f"{what}: '{rel}' in {root!r} is not a regular file")
            out.append((rel, path))
        if not dirs and not files and rel_dir:
            out.append((rel_dir, None))
    return sorted(out, key=lambda e: e[0])


def _manifest_line(rel: str, size: int | None, hexdigest: str) -> bytes:
    if size is None:
        return b"D\0" + rel.encode("utf-8", "surrogateescape") + b"\0"
    return (
        b"F\0"
        + rel.encode("utf-8", "surrogateescape")
        + b"\0"
        + str(size).encode()
        + b"\0"
        + hexdigest.encode()
    )


def hash_tree(root: str, algo: str, what: str = "directory") -> tuple[str, int]:
    """Return ``(hex digest, total bytes)`` of a local directory's content (module doc)."""
    from mlflowlet.datastore._streams import hash_file

    if not os.path.isdir(root):
        raise DataNotFoundError(f"{what}: no such directory '{root}'")
    lines, total = [], 0
    for rel, path in tree(root, what):
        if path is None:
            lines.append(_manifest_line(rel, None, ""))
            continue
        hexdigest, size = hash_file(path, algo)
        total += size
        lines.append(_manifest_line(rel, size, hexdigest))
    return _manifest_digest(lines, algo), total


def _manifest_digest(lines: list[bytes], algo: str) -> str:
    from mlflowlet.datastore._hashing import new_hasher

    hasher = new_hasher(algo)
    hasher.update(b"\n".join(lines))
    return str(hasher.hexdigest())


def store_tree(
    key: str, src: str, dest: str, secrets: Any, claims: Any, algo: str
) -> tuple[str, str, int]:
    """Store the directory ``src`` as a new version at ``dest`` (or its first free name).

    Returns ``(uri, '<algo>:<hex>', total bytes)``. A local version is copied into a temporary
    folder beside ``dest`` and then moved onto a name claimed with ``mkdir`` (atomic), so no
    version is ever written over or seen half-copied. A directory the handler built at ``dest``
    itself is recorded in place, once.
    """
    from mlflowlet.datastore import _hashing
    from mlflowlet.datastore._urls import is_local

    what = f"artifact {key!r}"
    entries = tree(src, what)  # refuses what cannot be stored, before anything is written
    if not is_local(dest):
        return _upload_tree(key, src, entries, dest, secrets, claims, algo)
    if os.path.isdir(dest) and os.path.samefile(src, dest) and claims.take(dest):
        digest, size = hash_tree(src, algo, what)
        return dest, _hashing.label(algo, digest), size
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    import tempfile  # here: it imports shutil, bz2 and lzma (a first tracked run needs none)

    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    try:
        _copy_entries(entries, tmp)
        digest, size = hash_tree(tmp, algo, what)
        uri = _claim_dir(tmp, dest)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    claims.take(uri)
    return uri, _hashing.label(algo, digest), size


def _copy_entries(entries: list[tuple[str, str | None]], into: str) -> None:
    import shutil

    for rel, path in entries:
        target = os.path.join(into, *rel.split("/"))
        if path is None:
            os.makedirs(target, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(path, target)


def _claim_dir(tmp: str, dest: str) -> str:
    """Move the finished folder ``tmp`` to ``dest`` or its first free versioned name."""
    from mlflowlet.datastore._streams import MAX_VERSIONS, versioned_name

    for n in range(1, MAX_VERSIONS + 1):
        candidate = versioned_name(dest, n)
        try:
            os.mkdir(candidate)  # the claim: atomic, fails when the name is taken
        except FileExistsError:
            continue
        os.rename(tmp, candidate)  # onto the empty folder just claimed (POSIX allows it)
        return candidate
    raise ArtifactError(f"no free name for {dest!r} after {MAX_VERSIONS} versions")


def _upload_tree(
    key: str,
    src: str,
    entries: list[tuple[str, str | None]],
    dest: str,
    secrets: Any,
    claims: Any,
    algo: str,
) -> tuple[str, str, int]:
    from mlflowlet.datastore import _hashing
    from mlflowlet.datastore._streams import free_remote_name
    from mlflowlet.datastore.registry import get_store

    for rel, _path in entries:
        try:
            rel.encode("utf-8")
        except UnicodeEncodeError:
            raise ArtifactError(
                f"artifact {key!r}: {rel!r} in {src!r} is not a UTF-8 name, which an object "
                f"store ({dest!r}) cannot hold; rename it"
            ) from None
    empty = [rel for rel, path in entries if path is None]
    if empty or not entries:
        where = f"folder '{empty[0]}' in it" if empty else "it"
        raise ArtifactError(
            f"artifact {key!r}: directory {src!r} cannot be stored at {dest!r}: {where} is "
            "empty, and an object store holds no empty folders; add a file"
        )
    store = get_store(dest, secrets)
    uri = free_remote_name(dest, claims, store.listdir)
    lines, size = [], 0  # the manifest of the bytes each upload read (module doc)
    for rel, path in entries:
        assert path is not None
        if hasattr(store, "upload_hashed"):
            hexdigest, n = store.upload_hashed(f"{uri}/{rel}", path, algo)
        else:
            from mlflowlet.datastore._streams import hash_file

            hexdigest, n = hash_file(path, algo)  # read just before it is sent
            store.upload(f"{uri}/{rel}", path)
        size += n
        lines.append(_manifest_line(rel, n, hexdigest))
    return uri, _hashing.label(algo, _manifest_digest(lines, algo)), size


def fetch_tree(store: Any, url: str, path: str) -> None:
    """Download every object under the prefix ``url`` into the new local folder ``path``.

    Raises:
        DataNotFoundError: nothing is stored under ``url``.
    """
    walk = getattr(store, "walk", None)
    if walk is None:
        from mlflowlet.errors import DataStoreError

        raise DataStoreError(f"'{url}': {type(store).__name__} cannot list a folder's objects")
    names = walk(url)
    if not names:
        raise DataNotFoundError(f"nothing under '{url.rstrip('/')}/'")

    def fill(tmp: str) -> None:
        for rel in names:
            parts = rel.split("/")
            if any(p in ("", ".", "..") for p in parts):
                raise ArtifactError(f"'{url}': object name {rel!r} is not a safe relative path")
            os.makedirs(os.path.join(tmp, *parts[:-1]), exist_ok=True)
            store.download(f"{url.rstrip('/')}/{rel}", os.path.join(tmp, *parts))

    _publish(path, fill)


def download_tree(store: Any, url: str, path: str, what: str) -> None:
    """Copy the directory at ``url`` (a local folder or a remote prefix) to the folder ``path``.

    ``path`` is published whole (a temporary folder beside it, then renamed), so it never
    holds half a tree; it must not exist, or be an empty folder.

    Raises:
        DataStoreError: ``path`` exists and is a file or a folder with something in it.
        DataNotFoundError: nothing is at ``url``.
    """
    from mlflowlet.datastore._urls import is_local, local_path
    from mlflowlet.errors import DataStoreError

    path = os.path.abspath(path)
    if os.path.lexists(path) and not (os.path.isdir(path) and not os.listdir(path)):
        raise DataStoreError(
            f"{what}: cannot download the directory '{url}' to {path!r}: it exists and is not "
            "an empty folder; pass a new path or remove it first"
        )
    if not is_local(url):
        fetch_tree(store, url, path)
        return
    src = local_path(url)
    if not os.path.isdir(src):
        raise DataNotFoundError(f"no such directory '{src}'")
    entries = tree(src, what)
    _publish(path, lambda tmp: _copy_entries(entries, tmp))


def _publish(path: str, fill: Any) -> None:
    """Fill a new temporary folder beside ``path`` with ``fill(tmp)``, then move it to ``path``."""
    import shutil

    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    import tempfile  # here: it imports shutil, bz2 and lzma (a first tracked run needs none)

    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    try:
        fill(tmp)
        if os.path.isdir(path):
            shutil.rmtree(path)
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def tree_stamp(root: str) -> dict[str, Any]:
    """Return the cheap stamp of a local directory: total bytes and newest ``mtime_ns``.

    The newest time covers the folders too (the directory and every folder in it), so a file
    renamed, added or removed - which moves neither the total size nor any file's time, but
    its folder's - changes the stamp.
    """
    size, newest = 0, 0
    for _rel, path in tree(root, f"directory {root!r}"):
        if path is not None:
            st = os.stat(path)
            size, newest = size + st.st_size, max(newest, st.st_mtime_ns)
    for dirpath, _dirs, _files in os.walk(root):
        newest = max(newest, os.stat(dirpath).st_mtime_ns)
    return {"size": size, "mtime_ns": newest}
