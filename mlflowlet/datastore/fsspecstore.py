"""Any other scheme fsspec knows (``memory://``, ``gs://``, ``az://``...), through fsspec."""

from __future__ import annotations

from typing import Any, BinaryIO

from mlflowlet.datastore.base import DataStore
from mlflowlet.errors import DataNotFoundError, DataStoreError


class FsspecStore(DataStore):
    """Delegate to an ``fsspec`` file system.

    Args:
        secrets: a dict or ``get(key)`` object (not used by fsspec here; pass ``options``).
        protocol: the fsspec protocol, e.g. ``"memory"``.
        **options: keyword arguments for ``fsspec.filesystem(protocol, **options)``.
    """

    random_access = True  # fsspec files seek and read ranges on demand

    def __init__(self, secrets: Any = None, protocol: str = "", **options: Any) -> None:
        import fsspec

        super().__init__(secrets)
        self.protocol = protocol
        self.fs = fsspec.filesystem(protocol, **options)

    def get(self, url: str, size: int | None = None, offset: int = 0) -> bytes:
        """Return ``size`` bytes (all when None) of ``url`` from ``offset``."""
        end = None if size is None else offset + size
        try:
            return bytes(self.fs.cat_file(url, start=offset or None, end=end))
        except FileNotFoundError:
            raise DataNotFoundError(f"no such object '{url}'") from None
        except OSError as exc:
            raise DataStoreError(f"cannot read '{url}': {exc}") from exc

    def put(self, url: str, data: bytes) -> None:
        """Write ``data`` to ``url``."""
        try:
            self.fs.pipe_file(url, bytes(data))
        except OSError as exc:
            raise DataStoreError(f"cannot write '{url}': {exc}") from exc

    def stat(self, url: str) -> dict[str, Any]:
        """Return size, modification time and etag as far as the backend reports them."""
        try:
            info = self.fs.info(url)
        except FileNotFoundError:
            raise DataNotFoundError(f"no such object '{url}'") from None
        modified = info.get("mtime") or info.get("LastModified") or info.get("created")
        if hasattr(modified, "timestamp"):
            modified = modified.timestamp()
        etag = info.get("ETag") or info.get("etag")
        return {
            "size": info.get("size"),
            "modified": float(modified) if isinstance(modified, (int, float)) else None,
            "etag": etag.strip('"') if isinstance(etag, str) else None,
        }

    def listdir(self, url: str) -> list[str]:
        """Return the sorted names directly under ``url``.

        Raises:
            DataNotFoundError: nothing is at ``url``.
            DataStoreError: ``url`` is a file (fsspec lists a file as itself).
        """
        try:
            entries = self.fs.ls(url, detail=True)
        except FileNotFoundError:
            raise DataNotFoundError(f"no such directory '{url}'") from None
        names = [str(e["name"]).rstrip("/") for e in entries]
        if (
            names == [str(self.fs._strip_protocol(url)).rstrip("/")]
            and entries[0].get("type") == "file"
        ):
            raise DataStoreError(f"'{url}' is a file, not a directory")
        return sorted(n.rpartition("/")[2] for n in names)

    def walk(self, url: str) -> list[str]:
        """Return the paths of every file under the folder ``url``, relative to it, sorted.

        What a directory artifact's read, copy and ``gc`` list (as :meth:`S3Store.walk`).
        """
        prefix = str(self.fs._strip_protocol(url)).rstrip("/") + "/"
        try:
            found = self.fs.find(url.rstrip("/"), withdirs=False)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise DataStoreError(f"cannot list '{url}': {exc}") from exc
        names = (str(n)[len(prefix) :] for n in found if str(n).startswith(prefix))
        return sorted(rel for rel in names if rel and not rel.endswith("/"))

    def delete(self, url: str) -> None:
        """Delete the file at ``url`` (no error when it does not exist)."""
        try:
            self.fs.rm_file(url)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise DataStoreError(f"cannot delete '{url}': {exc}") from exc

    def open(self, url: str, mode: str = "rb") -> BinaryIO:
        """Open ``url`` through fsspec (streaming)."""
        if mode not in ("rb", "wb"):
            raise ValueError(f"mode must be 'rb' or 'wb', got {mode!r}")
        try:
            return self.fs.open(url, mode)  # type: ignore[no-any-return]
        except FileNotFoundError:
            raise DataNotFoundError(f"no such object '{url}'") from None

    def __repr__(self) -> str:
        return f"FsspecStore(protocol={self.protocol!r})"
