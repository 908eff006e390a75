""":class:`DataItem`: a lazy handle on the data at one URL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO

from mlflowlet.datastore import _dirtree, _integrity
from mlflowlet.datastore._urls import (
    check_no_credentials,
    is_local,
    local_path,
    url_basename,
    url_format,
    url_scheme,
)
from mlflowlet.datastore.base import DataStore
from mlflowlet.datastore.registry import get_store
from mlflowlet.errors import DataNotFoundError, DataStoreError

if TYPE_CHECKING:
    from ..db.base import RunDB

CACHE_ENV = "MLFLOWLET_CACHE_DIR"
_READERS: dict[str, tuple[str, dict[str, Any]]] = {
    "csv": ("read_csv", {}),
    "tsv": ("read_csv", {"sep": "\t"}),
    "parquet": ("read_parquet", {}),
    "pq": ("read_parquet", {}),
    "json": ("read_json", {}),
    "jsonl": ("read_json", {"lines": True}),
    "ndjson": ("read_json", {"lines": True}),
}


class DataItem:
    """A lazy handle on the data at a URL.

    URLs: local paths, ``file://``, ``http(s)://``, ``s3://``, ``store://`` artifact
    references, and whatever else a registered store handles. Nothing is read until asked;
    ``store://`` references are resolved through the run DB on first use and their record
    is then :attr:`meta`.

    Args:
        key: the name this data goes by (an input name); used in error messages.
        url: where the data is.
        store: the data store to use; found from the URL's scheme when None.
        secrets: credentials for the store (a dict or ``get(key)`` object).
        db: the run DB resolving ``store://`` references (default: ``get_run_db()``).
        artifact: the artifact record (dict or object with ``to_dict()``) when already known;
            a ``store://`` reference then needs no DB lookup.
        verify: the default of every read's ``verify``: compare the full sha256 of a recorded
            artifact version (else only its size and mtime or ETag are compared).

    Every read of a recorded artifact version (a ``store://`` reference, or a URL given with its
    ``artifact`` record) first checks the stored object against the record and raises
    :class:`~mlflowlet.errors.ArtifactIntegrityError` rather than return other bytes.
    """

    def __init__(
        self,
        key: str | None,
        url: str,
        store: DataStore | None = None,
        secrets: Any = None,
        db: RunDB | None = None,
        artifact: Any = None,
        verify: bool = False,
    ) -> None:
        self._key = key
        self._verify = verify
        self._url = check_no_credentials(os.fspath(url), f"input {key!r}" if key else "")
        self._secrets = secrets
        self._db = db
        if artifact is not None and hasattr(artifact, "to_dict"):
            artifact = artifact.to_dict()
        self._meta: dict[str, Any] | None = dict(artifact) if artifact is not None else None
        self._store = store
        self._real: str | None = None if url_scheme(self._url) == "store" else self._url
        if self._real is None and self._meta and self._meta.get("uri"):
            self._real = str(self._meta["uri"])
        self._local: str | None = None

    # identity -----------------------------------------------------------------------------
    @property
    def key(self) -> str | None:
        """The name this data goes by, or None."""
        return self._key

    @property
    def url(self) -> str:
        """The URL as given (a ``store://`` reference stays a reference)."""
        return self._url

    @property
    def meta(self) -> dict[str, Any] | None:
        """The artifact record for ``store://`` references (or as given), else None."""
        if self._meta is None and url_scheme(self._url) == "store":
            self._resolve()
        return self._meta

    @property
    def suffix(self) -> str:
        """The file extension of the (resolved) URL, e.g. ``'.csv'``, or ``''``."""
        name = url_basename(self._resolve())
        _, dot, ext = name.rpartition(".")
        return f".{ext}" if dot else ""

    def __str__(self) -> str:
        return self._url

    def __repr__(self) -> str:
        return f"DataItem(key={self._key!r}, url={self._url!r})"

    # plumbing -----------------------------------------------------------------------------
    def _resolve(self) -> str:
        """Return the real URL, looking ``store://`` references up once."""
        if self._real is None:
            from mlflowlet.datastore.storeref import StoreRefStore

            resolver = self._store
            if not isinstance(resolver, StoreRefStore):
                resolver = StoreRefStore(self._secrets, db=self._db)
            with self._named():
                meta, self._real = resolver.resolve(self._url)
            self._store = None  # the store of the resolved URI is found next
            self._meta = meta if self._meta is None else {**meta, **self._meta}
        return self._real

    def _target(self) -> tuple[DataStore, str]:
        real = self._resolve()
        if self._store is None:
            self._store = get_store(real, self._secrets)
        return self._store, real

    def _writable(self) -> tuple[DataStore, str]:
        if url_scheme(self._url) == "store":
            raise DataStoreError(
                f"cannot write '{self._url}': store:// references are read-only; "
                "log a new artifact version instead"
            )
        store, real = self._target()
        if _integrity.is_record(self._meta, real):  # e.g. run.artifact(key): a recorded version
            raise DataStoreError(
                f"cannot write '{real}': it holds a recorded version of artifact "
                f"{(self._meta or {}).get('key')!r}, which is immutable; log a new version instead"
            )
        return store, real

    @contextmanager
    def _named(self) -> Iterator[None]:
        """Prefix not-found errors with the input's key."""
        try:
            yield
        except DataNotFoundError as exc:
            if self._key is None or str(exc).startswith("input "):
                raise
            raise DataNotFoundError(f"input {self._key!r}: {exc}") from exc

    def _checked(self, verify: bool | None, full: bool = False) -> tuple[DataStore, str, bool]:
        """Return ``(store, real URL, verify)`` after the cheap check of a recorded version.

        With ``full`` and ``verify``, the whole object's sha256 is compared here too (for reads
        that do not see every byte themselves); the returned flag says a full check is still due.
        """
        store, real = self._target()
        verify = self._verify if verify is None else verify
        if not _integrity.is_record(self._meta, real):
            return store, real, False
        assert self._meta is not None
        _integrity.check(self._meta, store, real)
        if verify and full:
            if is_local(real):
                _integrity.verify_file(self._meta, local_path(real))
            else:
                _integrity.verify_store(self._meta, store, real)
            return store, real, False
        return store, real, verify

    # reading ------------------------------------------------------------------------------
    def get(self, size: int | None = None, offset: int = 0, verify: bool | None = None) -> bytes:
        """Return ``size`` bytes (all when None) from ``offset``.

        Args:
            size: how many bytes; None for all.
            offset: where to start.
            verify: compare the sha256 of a recorded version before returning (default: the
                item's ``verify``).

        Raises:
            ArtifactIntegrityError: a recorded version's bytes are not the recorded ones.
        """
        with self._named():
            whole = size is None and not offset
            store, real, verify = self._checked(verify, full=not whole)
            data = store.get(real, size=size, offset=offset)
            if verify and self._meta is not None:
                _integrity.verify_bytes(self._meta, data, real)
            return data

    def open(self, mode: str = "rb", verify: bool | None = None) -> BinaryIO:
        """Open the data as a binary file object (``'rb'`` or ``'wb'``).

        ``verify`` (reading a recorded version) compares the whole object's sha256 first.
        """
        with self._named():
            if mode != "rb":
                store, real = self._writable()
            else:
                store, real, _ = self._checked(verify, full=True)
            return store.open(real, mode)

    def stat(self) -> dict[str, Any]:
        """Return ``{'size', 'modified', 'etag'}`` (``None`` where unknown)."""
        with self._named():
            store, real = self._target()
            return store.stat(real)

    def listdir(self) -> list[str]:
        """Return the sorted names under this directory or prefix."""
        with self._named():
            store, real = self._target()
            return store.listdir(real)

    def local(self, verify: bool | None = None) -> str:
        """Return a local path holding the data.

        Local files and directories are returned as they are. A directory version (record
        format ``'dir'``) or a URL ending in ``/`` (an S3 or fsspec prefix) is downloaded as a
        folder holding every object under it (a version's folder is reused, except with
        ``verify``: the stored objects are fetched again). Anything else is downloaded once into
        the cache directory (``$MLFLOWLET_CACHE_DIR``, else ``<tmp>/mlflowlet-cache``) under a
        name derived from the URL and the object's version (ETag, size and modification
        time from :meth:`stat`), and reused by later calls and later items while that
        version is current. A store that reports none of them is downloaded again.
        ``verify`` (a recorded version) compares the file's sha256 with the record; a
        downloaded copy that differs is removed.
        """
        with self._named():
            store, real, verify = self._checked(verify)
            if self._local is not None and os.path.exists(self._local) and not verify:
                return self._local
            if is_local(real):
                path = local_path(real)
                if not os.path.exists(path):
                    raise DataNotFoundError(f"no such file '{path}'")
            elif _dirtree.is_dir_record(self._meta) or real.endswith("/"):
                path = _fetch_dir(store, real, (self._meta or {}).get("hash"), reuse=not verify)
            else:
                path = _fetch(store, real)
            if verify and self._meta is not None:
                try:
                    _integrity.verify_file(self._meta, path)
                except BaseException:
                    if not is_local(real):  # a copy of other bytes: never reused
                        _remove(path)
                    raise
        self._local = path
        return path

    def download(self, path: str, verify: bool | None = None) -> None:
        """Copy the data to the local file ``path`` (atomically).

        A directory (a directory version, a local folder, or a URL ending in ``/``) is copied
        whole to the folder ``path``, which must not exist or be empty. ``verify`` (a recorded
        version) compares the copy's digest with the record; a copy that differs is removed.
        """
        with self._named():
            store, real, verify = self._checked(verify)
            meta, path = self._meta, os.fspath(path)
            is_dir = _dirtree.is_dir_record(meta) or real.endswith("/")
            if is_dir or (is_local(real) and os.path.isdir(local_path(real))):
                what = f"input {self._key!r}" if self._key else repr(self._url)
                _dirtree.download_tree(store, real, path, what)
            elif verify and meta and is_local(real):
                src = local_path(real)  # hashed beside the copy: one overlapped pass
                return _integrity.copy_verified(meta, src, os.path.abspath(path))
            else:
                store.download(real, path)
            if verify and meta is not None:
                try:
                    _integrity.verify_file(meta, path)
                except BaseException:
                    _remove(path)
                    raise

    def as_df(self, format: str | None = None, verify: bool | None = None, **kwargs: Any) -> Any:
        """Read the data into a pandas DataFrame.

        Args:
            format: ``csv``, ``tsv``, ``parquet``/``pq``, ``json`` or ``jsonl``; guessed from
                the URL's suffix (or the artifact record's ``format``) when None.
            verify: compare a recorded version's sha256 first (default: the item's ``verify``).
            **kwargs: passed to the pandas reader.

        Raises:
            MissingDependencyError: pandas (or pyarrow, for parquet) is not installed.
            DataStoreError: the format cannot be told or is not supported.
        """
        from mlflowlet.datastore._optional import require

        with self._named():  # a missing input is the first thing to report
            store, real, _ = self._checked(verify, full=True)
        # Seekable remote streams (S3, fsspec) feed pandas/pyarrow directly: no local copy.
        stream = not is_local(real) and store.random_access
        with self._named():
            source: Any = store.open(real, "rb") if stream else self.local(verify=False)
        try:
            fmt = (format or url_format(real) or (self.meta or {}).get("format") or "").lower()
            if fmt not in _READERS:
                name = f"input {self._key!r}" if self._key else repr(self._url)
                raise DataStoreError(
                    f"{name}: cannot read format {fmt or '(unknown)'!r} as a DataFrame; "
                    f"pass format= one of {', '.join(sorted(_READERS))}"
                )
            pd = require("pandas", "pandas")
            if fmt in ("parquet", "pq"):
                require("pyarrow", "pandas")
            reader, defaults = _READERS[fmt]
            options = {**defaults, **kwargs}
            if stream and reader != "read_parquet":
                options.setdefault("compression", _compression(real))
            with self._named():
                try:
                    return getattr(pd, reader)(source, **options)
                except FileNotFoundError:
                    raise DataNotFoundError(f"no such file '{source}'") from None
        finally:
            if stream:
                source.close()

    # writing ------------------------------------------------------------------------------
    def put(self, data: bytes | str) -> None:
        """Write ``data`` (``str`` is encoded as UTF-8), replacing what is there."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        store, real = self._writable()
        store.put(real, bytes(data))
        self._local = None

    def upload(self, path: str) -> None:
        """Copy the local file ``path`` to this URL."""
        store, real = self._writable()
        with self._named():
            store.upload(real, os.fspath(path))
        self._local = None


_COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".zip": "zip", ".xz": "xz", ".zst": "zstd"}


def _compression(url: str) -> str | None:
    """Return pandas' ``compression=`` for a URL's suffix (not inferred from a stream)."""
    name = url_basename(url).lower()
    return next((kind for ext, kind in _COMPRESSION.items() if name.endswith(ext)), None)


def _fetch(store: DataStore, url: str) -> str:
    """Download ``url`` into the cache unless the same version is there; return the path."""
    try:
        info = store.stat(url)
    except DataNotFoundError:
        raise
    except DataStoreError:  # e.g. a server that refuses HEAD: the version is unknown
        info = {}
    version = [info.get("etag"), info.get("size"), info.get("modified")]
    known = any(v is not None for v in version)
    path = _cache_path(url, version)
    if known and os.path.isfile(path):
        return path
    store.download(url, path)
    size = info.get("size")
    if size is not None and os.path.getsize(path) != size:
        got = os.path.getsize(path)
        os.unlink(path)
        raise DataStoreError(f"'{url}' was cut short: got {got} of {size} bytes; try again")
    return path


def _fetch_dir(store: DataStore, url: str, recorded: str | None, reuse: bool = True) -> str:
    """Download the objects under the prefix ``url`` into the cache as one folder.

    A recorded version (``recorded``: its hash) is immutable, so its copy is reused (unless
    not ``reuse``); a plain prefix is fetched again on every call (its content has no version
    to key the cache on).
    """
    path = _cache_path(url.rstrip("/") + "/", [recorded] if recorded else None)
    if recorded and reuse and os.path.isdir(path):
        return path
    _dirtree.fetch_tree(store, url, path)
    return path


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        import shutil

        shutil.rmtree(path)
    else:
        os.unlink(path)


def _cache_path(url: str, version: list[Any] | None = None) -> str:
    import hashlib
    import tempfile

    root = os.environ.get(CACHE_ENV) or os.path.join(tempfile.gettempdir(), "mlflowlet-cache")
    ident = url if not version else "\n".join([url, *map(str, version)])
    digest = hashlib.sha256(ident.encode("utf-8")).hexdigest()[:32]
    return os.path.join(os.path.abspath(root), digest, url_basename(url) or "data")


def get_dataitem(
    url: str,
    key: str | None = None,
    secrets: Any = None,
    db: RunDB | None = None,
    artifact: Any = None,
    verify: bool = False,
) -> DataItem:
    """Return a :class:`DataItem` for ``url``.

    Args:
        url: a local path or URL.
        key: the name the data goes by, used in error messages.
        secrets: credentials for the store (a dict or ``get(key)`` object).
        db: the run DB for ``store://`` references.
        artifact: the artifact record of the version at ``url`` (its reads are then checked).
        verify: compare a recorded version's full sha256 on every read.
    """
    return DataItem(key, url, secrets=secrets, db=db, artifact=artifact, verify=verify)
