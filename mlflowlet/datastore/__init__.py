"""Data access by URL: :class:`DataItem` handles and :class:`DataStore` backends by scheme.

Built-in schemes: plain paths and ``file://`` (:mod:`.filestore`), ``http(s)://``
(:mod:`.httpstore`, read-only), ``store://`` artifact references (:mod:`.storeref`) and
``s3://``; any other scheme fsspec knows works when fsspec is installed. Backends load on
first use; :func:`register_store` adds more; :func:`copy` moves files between any two stores.
The public names below load on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import _lazy

if TYPE_CHECKING:
    from mlflowlet.datastore._copy import copy
    from mlflowlet.datastore.base import DataStore
    from mlflowlet.datastore.dataitem import DataItem, get_dataitem
    from mlflowlet.datastore.registry import get_store, register_store

__all__ = ["DataItem", "DataStore", "copy", "get_dataitem", "get_store", "register_store"]

_WHERE = {
    "DataItem": "mlflowlet.datastore.dataitem",
    "DataStore": "mlflowlet.datastore.base",
    "copy": "mlflowlet.datastore._copy",
    "get_dataitem": "mlflowlet.datastore.dataitem",
    "get_store": "mlflowlet.datastore.registry",
    "register_store": "mlflowlet.datastore.registry",
}


def __getattr__(name: str) -> Any:
    return _lazy.load(__name__, _WHERE, globals(), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
