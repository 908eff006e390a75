"""S3 URLs, credentials, endpoint and region resolution, and the cached boto3 clients.

Used by :mod:`mlflowlet.datastore.s3`; boto3 is imported only when a client is first made.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlflowlet.datastore._urls import check_no_credentials
from mlflowlet.errors import ConfigError, PathTraversalError

if TYPE_CHECKING:
    from mlflowlet.datastore.s3 import S3Store

KEY_ID, SECRET_KEY, TOKEN = "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"
ENDPOINT_KEYS = ("S3_ENDPOINT_URL", "AWS_ENDPOINT_URL")
REGION_KEYS = ("AWS_DEFAULT_REGION", "AWS_REGION")
MiB = 1 << 20

_clients: dict[tuple[Any, ...], Any] = {}
_clients_lock = threading.Lock()


def parse_s3_url(url: str, need_key: bool = True) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into ``(bucket, key)``, refusing malformed URLs.

    The key is taken literally (no percent-decoding; ``?`` and ``#`` are key characters).

    Args:
        url: the URL.
        need_key: False for prefixes (``listdir``), where an empty key means the bucket root.

    Raises:
        ConfigError: not ``s3://``, credentials in the URL, no bucket, or an empty key.
        PathTraversalError: a ``.`` or ``..`` segment in the key.
    """
    check_no_credentials(url)
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("s3", "s3a"):
        raise ConfigError(f"not an s3:// URL: {url!r}")
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise ConfigError(f"bad S3 URL {url!r}: no bucket; expected s3://<bucket>/<key>")
    if not all(ch.isalnum() or ch in "-._" for ch in bucket):
        raise ConfigError(f"bad S3 URL {url!r}: {bucket!r} is not a bucket name")
    if need_key and not key.strip("/"):
        raise ConfigError(f"bad S3 URL {url!r}: empty key; expected s3://{bucket}/<key>")
    if any(part in (".", "..") for part in key.split("/")) or "\x00" in key:
        raise PathTraversalError(key)
    return bucket, key


@dataclass(frozen=True)
class S3Config:
    """Where S3 credentials, endpoint and region came from (values never printed).

    Attributes:
        access_key: the access key id, or None for boto3's default chain.
        secret_key: the secret access key, or None.
        session_token: a session token, or None.
        endpoint_url: an S3-compatible endpoint, or None for AWS.
        region: the region, or None for boto3's default.
        source: where the keys came from: ``"the run's secrets"``, ``"the environment"`` or
            ``"boto3's default chain"``.
    """

    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    endpoint_url: str | None = None
    region: str | None = None
    source: str = "boto3's default chain"


def resolve_s3_config(secrets: Any = None, environ: Any = None) -> S3Config:
    """Resolve credentials, endpoint and region: run secrets, then environment, then boto3.

    The key id, secret and token are taken together from the first source that has a key
    id, so a pair is never mixed from two places.

    Args:
        secrets: a dict or ``get(key)`` object (a ``SecretsStore``), or None.
        environ: the environment mapping (default ``os.environ``).

    Raises:
        ConfigError: a source has one of ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``
            without the other, or the endpoint is not an ``http(s)://`` URL.
    """
    env = os.environ if environ is None else environ
    sources = [("the run's secrets", secrets), ("the environment", env)]
    keys: tuple[str | None, str | None, str | None] = (None, None, None)
    origin = "boto3's default chain"
    for name, source in sources:
        key_id, secret = _get(source, KEY_ID), _get(source, SECRET_KEY)
        if key_id or secret:
            if not (key_id and secret):
                missing = SECRET_KEY if key_id else KEY_ID
                have = KEY_ID if key_id else SECRET_KEY
                raise ConfigError(f"{have} is set in {name} but {missing} is not: give both")
            keys, origin = (key_id, secret, _get(source, TOKEN)), name
            break
    endpoint = _first(sources, ENDPOINT_KEYS)
    if endpoint:
        check_no_credentials(endpoint, "S3 endpoint")
        if not endpoint.lower().startswith(("http://", "https://")):
            raise ConfigError(
                f"S3 endpoint {endpoint!r} must be an http(s):// URL, e.g. http://127.0.0.1:9000"
            )
    key_id, secret, token = keys
    return S3Config(key_id, secret, token, endpoint_url=endpoint,
                    region=_first(sources, REGION_KEYS), source=origin)  # fmt: skip


def _get(source: Any, key: str) -> str | None:
    if source is None:
        return None
    value = source.get(key)
    return str(value) if value else None


def _first(sources: list[tuple[str, Any]], keys: tuple[str, ...]) -> str | None:
    for _, source in sources:
        for key in keys:
            value = _get(source, key)
            if value:
                return value
    return None


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    text = raw.strip().lower()
    scale = MiB if text.endswith(("m", "mb", "mib")) else 1
    try:
        return int(float(text.rstrip("mib")) * scale)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number (e.g. 16MB or 8)") from None


def content_type(key: str) -> dict[str, str]:
    import mimetypes

    kind, _ = mimetypes.guess_type(key)
    return {"ContentType": kind} if kind else {}


def make_client(store: S3Store) -> Any:
    """Return a cached boto3 client for the store's credentials, endpoint and timeouts."""
    cfg = store.config
    pool = max(10, store.concurrency + 2)
    key = (cfg.access_key, cfg.secret_key, cfg.session_token, cfg.endpoint_url, cfg.region,
           store.connect_timeout, store.read_timeout, store.max_attempts, pool)  # fmt: skip
    with _clients_lock:
        client = _clients.get(key)
        if client is not None:
            return client
        from mlflowlet.datastore._optional import require

        boto3 = require("boto3", "s3")
        from botocore.config import Config

        options: dict[str, Any] = {
            "connect_timeout": store.connect_timeout,
            "read_timeout": store.read_timeout,
            "retries": {"total_max_attempts": store.max_attempts, "mode": "standard"},
            "max_pool_connections": pool,
        }
        if cfg.endpoint_url:
            # S3-compatible stores want path-style URLs, and many (R2, older MinIO/Ceph)
            # reject the CRC checksums botocore >= 1.36 sends by default.
            options["s3"] = {"addressing_style": "path"}
            options["request_checksum_calculation"] = "when_required"
            options["response_checksum_validation"] = "when_required"
        try:
            config = Config(**options)
        except TypeError:  # botocore < 1.36 has no checksum options
            options.pop("request_checksum_calculation", None)
            options.pop("response_checksum_validation", None)
            config = Config(**options)
        session = boto3.session.Session(
            aws_access_key_id=cfg.access_key, aws_secret_access_key=cfg.secret_key,
            aws_session_token=cfg.session_token, region_name=cfg.region,
        )  # fmt: skip
        try:
            client = session.client("s3", endpoint_url=cfg.endpoint_url, config=config)
        except ValueError as exc:  # a malformed endpoint URL
            raise ConfigError(f"bad S3 endpoint {cfg.endpoint_url!r}: {exc}") from None
        _clients[key] = client
        return client


def clear_clients() -> None:
    """Forget the cached boto3 clients (e.g. after credentials files changed)."""
    with _clients_lock:
        _clients.clear()
