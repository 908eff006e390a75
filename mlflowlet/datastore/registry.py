"""Find the data store for a URL scheme: registered plugins, built-ins, entry points, fsspec.

Nothing is imported until a scheme is first asked for, so an unused backend costs nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from mlflowlet.datastore._urls import url_scheme
from mlflowlet.datastore.base import DataStore
from mlflowlet.errors import ConfigError, DataStoreError, UnknownBackendError

ENTRY_POINT_GROUP = "mlflowlet.datastores"

_BUILTIN: dict[str, str] = {
    "": "mlflowlet.datastore.filestore:FileStore",
    "file": "mlflowlet.datastore.filestore:FileStore",
    "http": "mlflowlet.datastore.httpstore:HttpStore",
    "https": "mlflowlet.datastore.httpstore:HttpStore",
    "store": "mlflowlet.datastore.storeref:StoreRefStore",
    "s3": "mlflowlet.datastore.s3:S3Store",
}
_plugins: dict[str, str | type[DataStore]] = {}
_loaded: dict[str, Callable[..., DataStore]] = {}


def register_store(scheme: str, store: str | type[DataStore]) -> None:
    """Register a data store class for a URL scheme (it replaces a built-in one).

    Args:
        scheme: the URL scheme, e.g. ``"gs"`` (case-insensitive; ``""`` is plain paths).
        store: a :class:`DataStore` subclass, or its ``"dotted.module:Class"`` path.

    Raises:
        ConfigError: ``store`` is neither a class nor a ``module:Class`` string.
    """
    if isinstance(store, str):
        if ":" not in store:
            raise ConfigError(f"store for {scheme!r} must be 'dotted.module:Class', got {store!r}")
    elif not (isinstance(store, type) and issubclass(store, DataStore)):
        raise ConfigError(f"store for {scheme!r} must be a DataStore subclass, got {store!r}")
    key = scheme.lower()
    _plugins[key] = store
    _loaded.pop(key, None)


def available_schemes() -> list[str]:
    """Return the schemes with a registered, built-in or entry-point store."""
    return sorted({*_BUILTIN, *_plugins, *_entry_points()} - {""})


def get_store(url: str, secrets: Any = None, **options: Any) -> DataStore:
    """Return a data store for the scheme of ``url``.

    Args:
        url: a plain path or ``scheme://...`` URL.
        secrets: credentials source handed to the store (a dict or ``get(key)`` object).
        **options: store-specific options, e.g. ``timeout=`` for HTTP, ``db=`` for
            ``store://`` references.

    Raises:
        UnknownBackendError: no store knows the scheme.
        MissingDependencyError: the store needs an extra that is not installed.
    """
    scheme = url_scheme(url)
    factory = _loaded.get(scheme)
    if factory is None:
        # Two threads may both look a scheme up; they find the same class, so no lock.
        factory = _loaded[scheme] = _find(scheme)
    return factory(secrets=secrets, **options)


def _find(scheme: str) -> Callable[..., DataStore]:
    target = _plugins.get(scheme) or _BUILTIN.get(scheme)
    if target is not None:
        return _load(scheme, target)
    eps = _entry_points()
    if scheme in eps:
        return eps[scheme].load()  # type: ignore[no-any-return]
    fsspec_factory = _fsspec_factory(scheme)
    if fsspec_factory is not None:
        return fsspec_factory
    raise UnknownBackendError("data store scheme", scheme, available_schemes())


def _load(scheme: str, target: str | type[DataStore]) -> Callable[..., DataStore]:
    if not isinstance(target, str):
        return target
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigError(
                f"the data store for {scheme!r} URLs ({target}) is not available in this "
                f"installation: {exc}"
            ) from exc
        raise
    return getattr(module, attr)  # type: ignore[no-any-return]


def _entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name.lower(): ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _fsspec_factory(scheme: str) -> Callable[..., DataStore] | None:
    """Return an fsspec-backed factory when fsspec imports and knows ``scheme``."""
    try:
        import fsspec
    except ImportError:
        return None
    from fsspec.registry import known_implementations, registry

    if scheme not in known_implementations and scheme not in registry:
        return None
    try:
        fsspec.get_filesystem_class(scheme)
    except ImportError as exc:
        raise DataStoreError(
            f"fsspec knows {scheme!r} URLs but its backend is not installed: {exc}"
        ) from exc
    from functools import partial

    from mlflowlet.datastore.fsspecstore import FsspecStore

    return partial(FsspecStore, protocol=scheme)
