"""URL helpers for the data stores: scheme detection, local paths, joins.

Kept free of :mod:`urllib.parse` at import time (it pulls in :mod:`re`), so
``import mlflowlet.datastore`` stays cheap; the parser is loaded on first use.
"""

from __future__ import annotations

import os

from mlflowlet.errors import DataStoreError

_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789+.-")
_COMPRESSIONS = (".gz", ".bz2", ".zip", ".xz", ".zst")


def url_scheme(url: str) -> str:
    r"""Return the lower-case scheme of ``url``, or ``''`` for a plain path.

    Only ``scheme://`` counts as a scheme, so Windows paths such as ``C:\data`` stay local.
    """
    head, sep, _ = url.partition("://")
    if not sep or not head or not head[0].isalpha():
        return ""
    head = head.lower()
    return head if set(head) <= _SCHEME_CHARS else ""


def is_local(url: str) -> bool:
    """Return True for plain paths and ``file://`` URLs."""
    return url_scheme(url) in ("", "file")


def local_path(url: str) -> str:
    """Return the absolute local path a plain path or ``file://`` URL names.

    Raises:
        DataStoreError: ``url`` is not local, or a ``file://`` URL names another host.
    """
    scheme = url_scheme(url)
    if scheme == "":
        return os.path.abspath(url)
    if scheme != "file":
        raise DataStoreError(f"not a local path: {url!r}")
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise DataStoreError(f"file URL {url!r} names host {parts.netloc!r}; only local files work")
    path = unquote(parts.path)
    if os.name == "nt" and len(path) > 2 and path[0] == "/" and path[2] == ":":
        path = path[1:]  # file:///C:/x -> C:/x
    return os.path.abspath(path)


def url_basename(url: str) -> str:
    """Return the last path segment of ``url`` (no query or fragment), or ``''``."""
    if is_local(url):
        return os.path.basename(local_path(url))
    from urllib.parse import unquote, urlsplit

    return unquote(urlsplit(url).path.rstrip("/").rpartition("/")[2])


def url_format(url: str) -> str:
    """Return the data format a URL's suffix suggests (``'csv'``, ``'parquet'``...), or ``''``.

    A compression suffix (``.gz``, ``.zip``...) is looked through: ``a.csv.gz`` is ``'csv'``.
    """
    name = url_basename(url).lower()
    for comp in _COMPRESSIONS:
        if name.endswith(comp):
            name = name[: -len(comp)]
            break
    _, dot, ext = name.rpartition(".")
    return ext if dot else ""


def join_url(base: str, name: str) -> str:
    """Join a relative ``name`` (``/`` separated) under a directory path or URL."""
    if is_local(base):
        return os.path.join(local_path(base), *name.replace("\\", "/").split("/"))
    return base.rstrip("/") + "/" + name.lstrip("/")


def check_no_credentials(url: str, what: str = "") -> str:
    """Return ``url`` unless it carries credentials (``scheme://user:secret@host/...``).

    Credentials belong in the run's secrets, never in a URL: URLs are stored with the run
    and printed in messages. The refusal never quotes the URL, so the secret goes nowhere.
    For ``s3://`` URLs any user part counts, and a secret key holding ``/`` is caught too
    (``s3://KEY:SE/CRET@bucket/key``). Plain paths and ``store://`` references are not URLs
    with a host, and pass.

    Args:
        url: the URL to check.
        what: what the URL is for, e.g. ``"input 'data'"``, to prefix the message.

    Raises:
        ConfigError: the URL holds credentials.
    """
    scheme = url_scheme(url)
    if scheme in ("", "file", "store"):
        return url
    rest = url.partition("://")[2]
    netloc = rest.partition("/")[0]
    has_userinfo = "@" in netloc
    if not has_userinfo and scheme in ("s3", "s3a") and ":" in netloc and "@" in rest:
        has_userinfo = True  # the secret key itself held a '/'
    prefix = f"{what}: " if what else ""
    if has_userinfo:
        from mlflowlet.errors import ConfigError

        raise ConfigError(
            f"{prefix}refused a {scheme}:// URL with credentials in it (user:secret@ before "
            "the host or bucket): remove them and give them as the run's secrets instead, "
            "e.g. AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in with_secrets('file', ...)"
        )
    field = _credential_field(rest)
    if field:
        from mlflowlet.errors import ConfigError

        raise ConfigError(
            f"{prefix}refused a {scheme}:// URL carrying a credential in its query or fragment "
            f"('{field}=...', a signed or token URL): it would be stored with the run; give "
            "the credentials as the run's secrets and the plain URL instead"
        )
    return url


# query/fragment fields that carry a credential: AWS SigV4/SigV2 presigned URLs, Azure SAS,
# GCS/CloudFront signed URLs, OAuth-style tokens
_CREDENTIAL_FIELDS = frozenset(
    {
        "x-amz-signature", "x-amz-credential", "x-amz-security-token", "awsaccesskeyid",
        "signature", "sig", "x-goog-signature", "x-goog-credential", "key-pair-id", "policy",
        "token", "access_token", "id_token", "refresh_token", "auth", "password", "passwd",
        "secret", "api_key", "apikey", "client_secret",
    }
)  # fmt: skip


def _credential_field(rest: str) -> str:
    """Return the first credential-carrying field name in the query or fragment of ``rest``."""
    from urllib.parse import unquote

    for part in rest.split("?", 1)[1:] + rest.split("#", 1)[1:]:
        for pair in part.replace(";", "&").replace("#", "&").split("&"):
            name = unquote(pair.partition("=")[0]).strip().lower()
            if name in _CREDENTIAL_FIELDS:
                return name
    return ""
