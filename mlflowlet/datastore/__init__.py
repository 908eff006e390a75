"""Data access by URL: :class:`DataItem` handles and :class:`DataStore` backends by scheme.

Built-in schemes: plain paths and ``file://`` (:mod:`.filestore`), ``http(s)://``
(:mod:`.httpstore`, read-only), ``store://`` artifact references (:mod:`.storeref`) and
``s3://``; any other scheme fsspec knows works when fsspec is installed. Backends load on
first use; :func:`register_store` adds more.
"""

from mlflowlet.datastore.base import DataStore
from mlflowlet.datastore.dataitem import DataItem, get_dataitem
from mlflowlet.datastore.registry import get_store, register_store

__all__ = ["DataItem", "DataStore", "get_dataitem", "get_store", "register_store"]
