"""The :class:`DataStore` base class every storage backend implements."""

from __future__ import annotations

import io
import os
from abc import ABC, abstractmethod
from typing import Any, BinaryIO

from mlflowlet.datastore._streams import CHUNK_SIZE, AtomicFile, iter_stream


class DataStore(ABC):
    """Read and write bytes at URLs of one scheme.

    Subclasses implement four methods (:meth:`get`, :meth:`put`, :meth:`stat`,
    :meth:`listdir`); :meth:`open`, :meth:`upload` and :meth:`download` work from those
    by default and should be overridden when the backend can stream.

    Args:
        secrets: credentials source: a dict or any object with a ``get(key)`` method.
    """

    chunk_size: int = CHUNK_SIZE
    #: True when ``open(url, 'rb')`` returns a seekable stream that reads byte ranges on
    #: demand, so readers such as pandas/pyarrow need no local copy.
    random_access: bool = False

    def __init__(self, secrets: Any = None) -> None:
        self.secrets = secrets

    def secret(self, key: str, default: str | None = None) -> str | None:
        """Return the secret ``key`` from :attr:`secrets`, or ``default``."""
        if self.secrets is None:
            return default
        value = self.secrets.get(key)
        return default if value is None else value

    @abstractmethod
    def get(self, url: str, size: int | None = None, offset: int = 0) -> bytes:
        """Return ``size`` bytes (all when None) of ``url`` starting at ``offset``.

        Raises:
            DataNotFoundError: nothing exists at ``url``.
            DataStoreError: ``url`` cannot be read.
        """

    @abstractmethod
    def put(self, url: str, data: bytes) -> None:
        """Write ``data`` to ``url``, replacing what is there.

        Raises:
            DataStoreError: ``url`` cannot be written.
        """

    @abstractmethod
    def stat(self, url: str) -> dict[str, Any]:
        """Return ``{'size': int | None, 'modified': float | None, 'etag': str | None}``.

        ``modified`` is a POSIX timestamp.

        Raises:
            DataNotFoundError: nothing exists at ``url``.
        """

    @abstractmethod
    def listdir(self, url: str) -> list[str]:
        """Return the sorted names directly under the directory or prefix ``url``."""

    def open(self, url: str, mode: str = "rb") -> BinaryIO:
        """Open ``url`` as a binary file object.

        The default reads the whole object into memory for ``'rb'`` and buffers writes
        until close for ``'wb'``; streaming backends override it.

        Args:
            url: the location.
            mode: ``'rb'`` or ``'wb'``.
        """
        if mode == "rb":
            return io.BytesIO(self.get(url))
        if mode == "wb":
            return _PutOnClose(self, url)
        raise ValueError(f"mode must be 'rb' or 'wb', got {mode!r}")

    def upload(self, url: str, path: str) -> None:
        """Copy the local file ``path`` to ``url`` in chunks."""
        with open(path, "rb") as src, self.open(url, "wb") as dst:
            for chunk in iter_stream(src, self.chunk_size):
                dst.write(chunk)

    def upload_hashed(self, url: str, path: str, algo: str = "sha256") -> tuple[str, int]:
        """Copy the local file ``path`` to ``url``; return its ``(hex digest, size)``.

        The file is hashed (``algo``: sha256 or blake3) while it is copied (one read). A
        subclass with its own :meth:`upload` keeps it: the file is then hashed first, in a
        separate pass.
        """
        if type(self).upload is not DataStore.upload:
            from mlflowlet.datastore._streams import hash_file

            digest = hash_file(path, algo)
            self.upload(url, path)
            return digest
        from mlflowlet.datastore._streams import HashingReader

        with open(path, "rb") as f, self.open(url, "wb") as dst:
            src = HashingReader(f, algo, os.fstat(f.fileno()).st_size)
            for chunk in iter_stream(src, self.chunk_size):  # type: ignore[arg-type]
                dst.write(chunk)
        return src.hexdigest(), src.size

    def download(self, url: str, path: str) -> None:
        """Copy ``url`` to the local file ``path`` in chunks, atomically."""
        with self.open(url, "rb") as src, AtomicFile(path) as dst:
            for chunk in iter_stream(src, self.chunk_size):
                dst.write(chunk)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _PutOnClose(io.BytesIO):
    """A write buffer that hands its bytes to ``store.put`` when closed without error."""

    def __init__(self, store: DataStore, url: str) -> None:
        super().__init__()
        self._store, self._url, self._failed = store, url, False

    def close(self) -> None:
        if not self.closed and not self._failed:
            self._store.put(self._url, self.getvalue())
        super().close()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._failed = exc_type is not None
        self.close()
