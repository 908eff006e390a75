"""Pipeline inputs given as URLs: a ``DataItem`` pipeline parameter feeds steps' data inputs.

A ``@pipeline`` function parameter annotated ``DataItem`` is an *input*: its value is a URL
(``s3://bucket/key``, ``s3://bucket/prefix/`` for a folder, ``file:///abs/path``, a local path,
``http(s)://``...) and each step parameter it is passed to gets a ``DataItem`` on it. Run it with
``pipe.run(data="s3://bucket/key")`` (a ``DataItem`` works too) or ``mlflowlet run pipe.py -i
data=s3://bucket/key``. Compiled pipelines carry the URL as a string parameter (KFP ``STRING``
input, an Argo workflow parameter) and the step's container opens it (``--input KEY=URL``),
exactly as the local run does.

A URL holding credentials (``s3://KEY:SECRET@bucket/key``) is refused before anything is
recorded, without quoting it: credentials come from the run's environment or secrets.
A step's cache key covers the data's version (a local file's or folder's hash, an object's ETag
and size, a remote folder's every object's name, ETag and size), so new data at the same URL
reruns the step.
"""

from __future__ import annotations

import os

from ..errors import ParameterError

URL_TYPE = "DataItem"


def is_url_param(param: object) -> bool:
    """Return whether a pipeline parameter (or its placeholder) is a URL input."""
    return getattr(param, "type", "") == URL_TYPE


def url_value(value: object, name: str) -> str:
    """Return the URL a ``DataItem`` pipeline parameter gets from ``value``.

    Accepts a URL or path string, an ``os.PathLike`` or a ``DataItem``; a relative local path is
    made absolute (the steps may run elsewhere).

    Raises:
        ParameterError: an empty or non-URL value; ConfigError: credentials in the URL.
    """
    from ..datastore._urls import check_no_credentials, url_scheme

    if hasattr(value, "url") and hasattr(value, "local"):  # a DataItem
        value = value.url
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        raise ParameterError(
            f"pipeline input {name!r} takes a URL or path (s3://bucket/key, file:///abs/path), "
            f"got {type(value).__name__ if not isinstance(value, str) else 'an empty string'}"
        )
    check_no_credentials(value, f"pipeline input {name!r}")
    if url_scheme(value) == "":
        value = os.path.abspath(value) + ("/" if value.endswith(("/", os.sep)) else "")
    return value


def url_version(url: str) -> str:
    """Return what identifies the data now at ``url``, for a step's cache key.

    A local file or folder: its content hash; a remote object: its ETag, size and time; the
    URL alone when nothing can be told (the step then reports what is missing when it reads).
    """
    from ..datastore import _hashing
    from ..datastore._urls import is_local, local_path
    from ..errors import MlflowletError

    algo = _hashing.default_algo()
    try:
        if is_local(url):
            path = local_path(url)
            if os.path.isdir(path):
                from ..datastore._dirtree import hash_tree

                return f"{url}#{_hashing.label(algo, hash_tree(path, algo)[0])}"
            if os.path.isfile(path):
                from ..datastore._streams import hash_file

                return f"{url}#{_hashing.label(algo, hash_file(path, algo)[0])}"
            return url
        from ..datastore.registry import get_store

        store = get_store(url)
        if url.endswith("/"):
            return f"{url}#{_folder_version(store, url, algo)}"
        info = store.stat(url)
        return f"{url}#{info.get('etag')}:{info.get('size')}:{info.get('modified')}"
    except (MlflowletError, OSError):
        return url


def _folder_version(store: object, url: str, algo: str) -> str:
    """Return a digest of every object under the remote folder ``url``: name, ETag and size."""
    from ..datastore._hashing import label, new_hasher

    walk = getattr(store, "walk", None)
    if walk is None:  # a store that cannot list a folder's objects: its names
        return str(store.listdir(url))  # type: ignore[attr-defined]
    hasher = new_hasher(algo)
    base = url.rstrip("/") + "/"
    for rel in walk(url):
        info = store.stat(base + rel)  # type: ignore[attr-defined]
        hasher.update(f"{rel}\0{info.get('etag')}\0{info.get('size')}\n".encode())
    return label(algo, hasher.hexdigest())
