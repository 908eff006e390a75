"""``s3://bucket/key`` through boto3: credentials from the run's secrets, managed transfers.

Credentials resolve in this order: the run's secrets (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``), then the same environment variables, then
boto3's default chain (profiles, SSO, instance roles). ``S3_ENDPOINT_URL`` or
``AWS_ENDPOINT_URL`` (secrets first, then environment) points at an S3-compatible store
(MinIO, Ceph, R2, SeaweedFS); ``AWS_DEFAULT_REGION`` (or ``AWS_REGION``) picks the region.

Files move through boto3's managed transfers: multipart uploads and ranged, parallel
downloads, with the part size and concurrency of :attr:`S3Store.part_size` and
:attr:`S3Store.concurrency` (or ``MLFLOWLET_S3_PART_SIZE`` / ``MLFLOWLET_S3_CONCURRENCY``).
Memory stays bounded by about ``part_size * concurrency / 2`` whatever the object's size.
boto3 is imported on first use; without it, :class:`MissingDependencyError` names the
``s3`` extra.
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO

from mlflowlet.datastore._s3config import (
    MiB,
    S3Config,
    clear_clients,
    content_type,
    env_int,
    make_client,
    parse_s3_url,
    resolve_s3_config,
)
from mlflowlet.datastore._s3io import S3Reader, S3Writer, client_errors, translate
from mlflowlet.datastore._streams import HashingReader
from mlflowlet.datastore._urls import check_no_credentials
from mlflowlet.datastore.base import DataStore
from mlflowlet.errors import ConfigError, DataNotFoundError

__all__ = ["S3Config", "S3Store", "clear_clients", "parse_s3_url", "resolve_s3_config"]


class _SizeSubscriber:
    """Tell s3transfer the size of a stream it cannot seek (for part-size adjustment)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def on_queued(self, future: Any, **kwargs: Any) -> None:
        future.meta.provide_transfer_size(self.size)

    def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
        pass

    def on_done(self, future: Any, **kwargs: Any) -> None:
        pass


class S3Store(DataStore):
    """Objects in S3 or an S3-compatible store, through boto3.

    Args:
        secrets: a dict or ``get(key)`` object (the run's secrets) with the AWS variables.
        endpoint_url: overrides ``S3_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL``.
        region: overrides ``AWS_DEFAULT_REGION``.
        part_size: multipart part size in bytes (default 8 MiB; at least 5 MiB).
        concurrency: parallel part transfers (default 8).
        connect_timeout: seconds to wait for a connection (default 10).
        read_timeout: seconds to wait for data (default 60).
        max_attempts: attempts per request, retrying throttling, 5xx and connection
            errors with backoff (default 3); access errors are never retried.
    """

    part_size: int = 8 * MiB
    concurrency: int = 8
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_attempts: int = 3
    random_access = True  # open('rb') is a seekable stream of ranged GETs

    def __init__(
        self,
        secrets: Any = None,
        endpoint_url: str | None = None,
        region: str | None = None,
        part_size: int | None = None,
        concurrency: int | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        max_attempts: int | None = None,
    ) -> None:
        super().__init__(secrets)
        cfg = resolve_s3_config(secrets)
        if endpoint_url:
            check_no_credentials(endpoint_url, "S3 endpoint")
        self.config = S3Config(
            cfg.access_key, cfg.secret_key, cfg.session_token,
            endpoint_url=endpoint_url or cfg.endpoint_url, region=region or cfg.region,
            source=cfg.source,
        )  # fmt: skip
        self.part_size = int(part_size or env_int("MLFLOWLET_S3_PART_SIZE", type(self).part_size))
        if self.part_size < 5 * MiB:
            raise ConfigError(f"S3 part size {self.part_size} is below S3's minimum of 5 MiB")
        self.concurrency = max(
            1, int(concurrency or env_int("MLFLOWLET_S3_CONCURRENCY", type(self).concurrency))
        )
        for name, value in (("connect_timeout", connect_timeout), ("read_timeout", read_timeout),
                            ("max_attempts", max_attempts)):  # fmt: skip
            if value is not None:
                setattr(self, name, value)
        self._client: Any = None

    def __repr__(self) -> str:
        where = self.config.endpoint_url or "AWS"
        return f"S3Store(endpoint={where!r}, credentials from {self.config.source})"

    # plumbing -------------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The boto3 S3 client (shared by stores with the same credentials and endpoint)."""
        if self._client is None:
            self._client = make_client(self)
        return self._client

    def transfer_config(self) -> Any:
        """Return the boto3 ``TransferConfig`` of this store's part size and concurrency.

        For a transfer of known size, s3transfer grows the part size when the object would
        need more than S3's 10,000 parts.
        """
        from mlflowlet.datastore._optional import require

        transfer = require("boto3.s3.transfer", "s3", "boto3")
        cfg = transfer.TransferConfig(
            multipart_threshold=self.part_size, multipart_chunksize=self.part_size,
            max_concurrency=self.concurrency, num_download_attempts=self.max_attempts + 2,
        )  # fmt: skip
        # A streamed (hashed) upload holds each part in memory until it is sent: at most
        # half the concurrency of parts (32 MiB at the defaults; measured, 2 GB: +40-50 MiB
        # peak RSS). Downloads queue 256 KiB writes: at most 4 per worker.
        cfg.max_in_memory_upload_chunks = max(2, self.concurrency // 2)
        cfg.max_in_memory_download_chunks = 4 * self.concurrency
        return cfg

    def _transfer(self) -> Any:
        from s3transfer.manager import TransferManager

        return TransferManager(self.client, self.transfer_config())

    def _call(self, op: str, url: str, bucket: str, key: str, fn: Any, **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except client_errors() as exc:
            raise translate(self, exc, op, bucket, key) from None

    # DataStore ------------------------------------------------------------------------------
    def get(self, url: str, size: int | None = None, offset: int = 0) -> bytes:
        """Return ``size`` bytes (all when None) of the object from ``offset`` (one GET)."""
        bucket, key = parse_s3_url(url)
        if size == 0:
            return b""
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if offset or size is not None:
            end = "" if size is None else str(offset + size - 1)
            kwargs["Range"] = f"bytes={offset}-{end}"
        try:
            resp = self.client.get_object(**kwargs)
            with resp["Body"] as body:
                return bytes(body.read())
        except client_errors() as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") == "InvalidRange":
                return b""  # offset at or past the end
            raise translate(self, exc, "GET", bucket, key) from None

    def put(self, url: str, data: bytes) -> None:
        """Write ``data``; large bodies go up as a multipart upload, part by part."""
        import io

        bucket, key = parse_s3_url(url)
        if len(data) < self.part_size:
            self._call(
                "PUT",
                url,
                bucket,
                key,
                self.client.put_object,
                Bucket=bucket,
                Key=key,
                Body=bytes(data),
                **content_type(key),
            )
            return
        self._upload_stream(bucket, key, io.BytesIO(data), len(data))

    def stat(self, url: str) -> dict[str, Any]:
        """Return size, modification time and ETag from a HEAD request."""
        bucket, key = parse_s3_url(url)
        head = self._call("HEAD", url, bucket, key, self.client.head_object,
                          Bucket=bucket, Key=key)  # fmt: skip
        modified = head.get("LastModified")
        return {
            "size": head.get("ContentLength"),
            "modified": modified.timestamp() if modified is not None else None,
            "etag": str(head.get("ETag") or "").strip('"') or None,
        }

    def listdir(self, url: str) -> list[str]:
        """Return the sorted names (objects and sub-prefixes) directly under a prefix.

        Raises:
            DataNotFoundError: the bucket does not exist, or nothing is under the prefix.
        """
        bucket, key = parse_s3_url(url, need_key=False)
        prefix = key.rstrip("/") + "/" if key.strip("/") else ""
        names: set[str] = set()
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix, Delimiter="/"
            )
            for page in pages:
                for entry in page.get("CommonPrefixes") or []:
                    names.add(entry["Prefix"][len(prefix) :].rstrip("/"))
                for entry in page.get("Contents") or []:
                    names.add(entry["Key"][len(prefix) :])
        except client_errors() as exc:
            raise translate(self, exc, "LIST", bucket, prefix) from None
        names.discard("")
        if not names and prefix:
            raise DataNotFoundError(f"nothing under 's3://{bucket}/{prefix}'")
        return sorted(names)

    def walk(self, url: str) -> list[str]:
        """Return the keys of every object under a prefix, relative to it, sorted."""
        bucket, key = parse_s3_url(url, need_key=False)
        prefix = key.rstrip("/") + "/" if key.strip("/") else ""
        found: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix
            )
            for page in pages:
                found.extend(entry["Key"][len(prefix) :] for entry in page.get("Contents") or [])
        except client_errors() as exc:
            raise translate(self, exc, "LIST", bucket, prefix) from None
        return sorted(rel for rel in found if rel and not rel.endswith("/"))

    def open(self, url: str, mode: str = "rb") -> BinaryIO:
        """Open the object: ``'rb'`` streams ranged GETs (seekable); ``'wb'`` streams parts.

        A writer publishes the object only when closed without error; leaving a ``with``
        block on an exception aborts the upload.
        """
        import io

        bucket, key = parse_s3_url(url)
        if mode == "rb":
            head = self._call("HEAD", url, bucket, key, self.client.head_object,
                              Bucket=bucket, Key=key)  # fmt: skip
            raw = S3Reader(self, bucket, key, int(head["ContentLength"]), head.get("ETag"))
            return io.BufferedReader(raw, buffer_size=self.chunk_size)
        if mode == "wb":
            return S3Writer(self, bucket, key)  # type: ignore[return-value]
        raise ValueError(f"mode must be 'rb' or 'wb', got {mode!r}")

    def upload(self, url: str, path: str) -> None:
        """Copy the local file ``path`` to ``url`` (multipart, parallel)."""
        self.upload_hashed(url, path)

    def upload_hashed(self, url: str, path: str, algo: str = "sha256") -> tuple[str, int]:
        """Upload ``path`` (multipart, parallel), hashing it as it is read; ``(digest, size)``."""
        bucket, key = parse_s3_url(url)
        if not os.path.isfile(path):
            raise DataNotFoundError(f"no such file '{os.path.abspath(path)}'")
        with open(path, "rb") as f:
            return self._upload_stream(bucket, key, f, os.fstat(f.fileno()).st_size, algo)

    def upload_fileobj(
        self, url: str, fileobj: BinaryIO, size: int | None = None
    ) -> tuple[str, int]:
        """Upload a readable stream (read once, in order); return its ``(sha256, size)``.

        Args:
            url: the destination.
            fileobj: a binary stream.
            size: its size when known (lets the part size grow for very large streams).
        """
        bucket, key = parse_s3_url(url)
        return self._upload_stream(bucket, key, fileobj, size)

    def _upload_stream(
        self, bucket: str, key: str, fileobj: BinaryIO, size: int | None, algo: str = "sha256"
    ) -> tuple[str, int]:
        reader = HashingReader(fileobj, algo, size)
        subscribers = [_SizeSubscriber(size)] if size is not None else None
        try:
            with self._transfer() as manager:
                future = manager.upload(reader, bucket, key, extra_args=content_type(key),
                                        subscribers=subscribers)  # fmt: skip
                future.result()
        except client_errors() as exc:
            raise translate(self, exc, "PUT", bucket, key) from None
        return reader.hexdigest(), reader.size

    def download(self, url: str, path: str) -> None:
        """Copy the object to the local file ``path`` (ranged, parallel GETs), atomically."""
        bucket, key = parse_s3_url(url)
        path = os.path.abspath(os.fspath(path))
        parent = os.path.dirname(path)
        os.makedirs(parent, exist_ok=True)
        tmp = os.path.join(parent, f".{os.path.basename(path)}.{os.urandom(6).hex()}.tmp")
        try:
            with self._transfer() as manager:
                manager.download(bucket, key, tmp).result()
            os.replace(tmp, path)
        except client_errors() as exc:
            raise translate(self, exc, "GET", bucket, key) from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def copy_object(self, src_url: str, dst_url: str) -> None:
        """Copy an object to another key of the same endpoint, server-side (no bytes here)."""
        src_bucket, src_key = parse_s3_url(src_url)
        bucket, key = parse_s3_url(dst_url)
        try:
            with self._transfer() as manager:
                source = {"Bucket": src_bucket, "Key": src_key}
                manager.copy(source, bucket, key).result()
        except client_errors() as exc:
            raise translate(self, exc, "COPY", src_bucket, src_key) from None

    def delete(self, url: str) -> None:
        """Delete the object (no error when it does not exist)."""
        bucket, key = parse_s3_url(url)
        self._call("DELETE", url, bucket, key, self.client.delete_object, Bucket=bucket, Key=key)
