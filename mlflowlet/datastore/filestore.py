"""Local files: plain paths and ``file://`` URLs."""

from __future__ import annotations

import os
from typing import Any, BinaryIO

from mlflowlet.datastore._streams import AtomicFile, copy_atomic, copy_hashed_to, write_atomic
from mlflowlet.datastore._urls import local_path
from mlflowlet.datastore.base import DataStore
from mlflowlet.errors import DataNotFoundError, DataStoreError


def _missing(path: str) -> DataNotFoundError:
    return DataNotFoundError(f"no such file '{path}'")


class FileStore(DataStore):
    """The local file system; every write is atomic (temp file + ``os.replace``)."""

    def get(self, url: str, size: int | None = None, offset: int = 0) -> bytes:
        """Return ``size`` bytes (all when None) of the file from ``offset``."""
        path = local_path(url)
        try:
            with open(path, "rb") as f:
                if offset:
                    f.seek(offset)
                return f.read() if size is None else f.read(size)
        except FileNotFoundError:
            raise _missing(path) from None
        except IsADirectoryError:
            raise DataStoreError(f"'{path}' is a directory, not a file") from None
        except OSError as exc:
            raise DataStoreError(f"cannot read '{path}': {exc.strerror or exc}") from exc

    def put(self, url: str, data: bytes) -> None:
        """Write ``data`` to the file atomically, creating parent directories."""
        path = local_path(url)
        try:
            write_atomic(path, [bytes(data)])
        except OSError as exc:
            raise DataStoreError(f"cannot write '{path}': {exc.strerror or exc}") from exc

    def stat(self, url: str) -> dict[str, Any]:
        """Return the file's size, modification time and (unknown) etag."""
        path = local_path(url)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise _missing(path) from None
        return {"size": st.st_size, "modified": st.st_mtime, "etag": None}

    def listdir(self, url: str) -> list[str]:
        """Return the sorted entries of the directory."""
        path = local_path(url)
        try:
            return sorted(os.listdir(path))
        except FileNotFoundError:
            raise DataNotFoundError(f"no such directory '{path}'") from None
        except NotADirectoryError:
            raise DataStoreError(f"'{path}' is a file, not a directory") from None

    def open(self, url: str, mode: str = "rb") -> BinaryIO:
        """Open the file: ``'rb'`` reads it in place, ``'wb'`` writes it atomically."""
        path = local_path(url)
        if mode == "rb":
            try:
                return open(path, "rb")
            except FileNotFoundError:
                raise _missing(path) from None
        if mode == "wb":
            return AtomicFile(path)  # type: ignore[return-value]
        raise ValueError(f"mode must be 'rb' or 'wb', got {mode!r}")

    def upload(self, url: str, path: str) -> None:
        """Copy the local file ``path`` to ``url`` (a local path) atomically."""
        if not os.path.isfile(path):
            raise _missing(os.path.abspath(path))
        copy_atomic(path, local_path(url))

    def upload_hashed(self, url: str, path: str, algo: str = "sha256") -> tuple[str, int]:
        """Copy ``path`` to ``url`` atomically, hashed beside the copy; return (digest, size)."""
        if not os.path.isfile(path):
            raise _missing(os.path.abspath(path))
        _, digest, size = copy_hashed_to(path, local_path(url), algo=algo)
        return digest, size

    def download(self, url: str, path: str) -> None:
        """Copy the file at ``url`` to ``path`` atomically."""
        src = local_path(url)
        if not os.path.isfile(src):
            raise _missing(src)
        copy_atomic(src, os.path.abspath(path))
