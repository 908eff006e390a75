"""Streams and error messages for :mod:`mlflowlet.datastore.s3` (boto3 loaded lazily).

:class:`S3Reader` is a seekable stream of ranged GETs that resumes after a dropped
connection; :class:`S3Writer` streams a multipart upload part by part and publishes the
object only on a clean close. :func:`translate` turns boto3's errors into one-line
mlflowlet errors that name the URL and the fix, never a credential.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from mlflowlet.datastore._streams import PublishingWriter
from mlflowlet.errors import DataNotFoundError, DataStoreError

if TYPE_CHECKING:
    from mlflowlet.datastore.s3 import S3Store

ACCESS_CODES = frozenset({
    "403", "AccessDenied", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch",
    "ExpiredToken", "InvalidToken", "TokenRefreshRequired", "AuthorizationHeaderMalformed",
    "InvalidClientTokenId", "AccountProblem", "AllAccessDisabled", "MissingSecurityHeader",
})  # fmt: skip
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
SKIP_AHEAD = 256 << 10  # a forward seek this short reads on instead of a new GET


def client_errors() -> tuple[type[BaseException], ...]:
    """Return the exception types boto3/s3transfer raise for a failed request."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError
    from s3transfer.exceptions import RetriesExceededError

    return (ClientError, BotoCoreError, Boto3Error, RetriesExceededError)


def translate(store: S3Store, exc: BaseException, op: str, bucket: str, key: str) -> DataStoreError:
    """Return the mlflowlet error for a boto3 error on ``s3://bucket/key``.

    Args:
        store: the store (for the endpoint, the credentials' source, a bucket check).
        exc: the boto3/botocore/s3transfer exception.
        op: what was being done (``GET``, ``PUT``, ``HEAD``, ``LIST``...).
        bucket: the bucket.
        key: the key.
    """
    from botocore import exceptions as bx

    url = f"s3://{bucket}/{key}"
    last = getattr(exc, "last_exception", None)
    if last is not None:  # s3transfer gave up retrying a download stream
        exc = last
    if isinstance(exc, bx.ClientError):
        return _client_error(store, exc, op, bucket, key)
    if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return DataStoreError(
            f"no AWS credentials for {op} '{url}': set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY in the run's secrets (with_secrets / -s file=...), the "
            "environment, or ~/.aws/credentials"
        )
    endpoint = store.config.endpoint_url or "AWS S3"
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError)):
        return DataStoreError(
            f"cannot reach the S3 endpoint {endpoint} ({op} '{url}'): {exc}; check "
            "S3_ENDPOINT_URL / AWS_ENDPOINT_URL and that the server is up"
        )
    if isinstance(exc, bx.ReadTimeoutError):
        return DataStoreError(
            f"S3 {op} '{url}' timed out after {store.read_timeout:g} s ({endpoint})"
        )
    return DataStoreError(f"S3 {op} '{url}' failed: {type(exc).__name__}: {exc}")


def _client_error(store: S3Store, exc: Any, op: str, bucket: str, key: str) -> DataStoreError:
    url = f"s3://{bucket}/{key}"
    response = getattr(exc, "response", None) or {}
    error = response.get("Error") or {}
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    code = str(error.get("Code") or status or "")
    if code == "NoSuchBucket" or (code in NOT_FOUND_CODES and _bucket_missing(store, bucket)):
        return DataNotFoundError(
            f"no such bucket '{bucket}' ({op} '{url}'): create it or fix the URL"
        )
    if code in NOT_FOUND_CODES:
        return DataNotFoundError(f"no such object '{url}'")
    if code in ACCESS_CODES:
        hint = ""
        if op == "HEAD" and code in ("403", "Forbidden", "AccessDenied"):
            hint = " (S3 also answers 403 for a missing key when s3:ListBucket is not granted)"
        return DataStoreError(
            f"S3 refused {op} '{url}' ({code}): check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
            f" (taken from {store.config.source}){hint}"
        )
    if code in ("PreconditionFailed", "412"):
        return DataStoreError(f"'{url}' changed while it was being read; read it again")
    message = error.get("Message") or str(exc)
    return DataStoreError(f"S3 {op} '{url}' failed: {code} {message}")


def _bucket_missing(store: S3Store, bucket: str) -> bool:
    """Tell a missing bucket from a missing key after a bare 404 (HEAD has no error body)."""
    try:
        store.client.head_bucket(Bucket=bucket)
    except Exception as exc:  # noqa: BLE001 - any other answer: not known to be missing
        response = getattr(exc, "response", None) or {}
        code = str((response.get("Error") or {}).get("Code") or "")
        return code in ("404", "NoSuchBucket", "NotFound")
    return False


class _ShortRead(Exception):
    """The body ended before the bytes the object should still have."""


class S3Reader(io.RawIOBase):
    """A seekable, read-only stream over one object, fetched with ranged GETs.

    Sequential reads use one GET; a seek starts a new ranged GET at the next read. A
    connection dropped mid-body is resumed from the current offset (``max_attempts`` tries
    per read). Every GET carries ``If-Match: <etag>``, so a concurrent overwrite is an error
    instead of a mix of two versions.

    Args:
        store: the :class:`~mlflowlet.datastore.s3.S3Store`.
        bucket: the bucket.
        key: the key.
        size: the object's size (from HEAD).
        etag: the object's ETag (from HEAD), or None.
    """

    def __init__(self, store: S3Store, bucket: str, key: str, size: int, etag: str | None) -> None:
        super().__init__()
        self._store, self._bucket, self._key = store, bucket, key
        self._size, self._etag = size, etag
        self._pos = 0
        self._body: Any = None
        self._body_pos = 0

    @property
    def size(self) -> int:
        """The object's size in bytes."""
        return self._size

    def readable(self) -> bool:
        """Return True."""
        return True

    def seekable(self) -> bool:
        """Return True."""
        return True

    def tell(self) -> int:
        """Return the current offset."""
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to ``offset`` (relative to start, current position or end)."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        """Read into ``buffer`` from the current offset; 0 at the end."""
        from s3transfer.utils import S3_RETRYABLE_DOWNLOAD_ERRORS

        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._pos)
        if want <= 0:
            return 0
        attempts = max(1, self._store.max_attempts)
        for attempt in range(1, attempts + 1):
            try:
                data = self._stream().read(want)
                if not data:
                    raise _ShortRead()
                break
            except (_ShortRead, *S3_RETRYABLE_DOWNLOAD_ERRORS) as exc:
                self._drop()
                if attempt == attempts:
                    raise DataStoreError(
                        f"reading 's3://{self._bucket}/{self._key}' failed at byte {self._pos} "
                        f"after {attempts} attempts: {type(exc).__name__}: {exc}"
                    ) from None
        n = len(data)
        view[:n] = data
        self._pos += n
        self._body_pos += n
        return n

    def _stream(self) -> Any:
        ahead = self._pos - self._body_pos
        if self._body is not None and 0 < ahead <= SKIP_AHEAD:
            while ahead:
                skipped = self._body.read(ahead)
                if not skipped:
                    raise _ShortRead()
                ahead -= len(skipped)
                self._body_pos += len(skipped)
        if self._body is None or self._body_pos != self._pos:
            self._drop()
            kwargs: dict[str, Any] = {
                "Bucket": self._bucket, "Key": self._key, "Range": f"bytes={self._pos}-",
            }  # fmt: skip
            if self._etag:
                kwargs["IfMatch"] = self._etag
            try:
                resp = self._store.client.get_object(**kwargs)
            except client_errors() as exc:
                raise translate(self._store, exc, "GET", self._bucket, self._key) from None
            self._body, self._body_pos = resp["Body"], self._pos
        return self._body

    def _drop(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            try:
                body.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass

    def close(self) -> None:
        """Release the connection."""
        self._drop()
        super().close()


class S3Writer(PublishingWriter):
    """A write stream that becomes one object when closed without error.

    Bytes are buffered up to the store's part size; each full part is sent as a multipart
    upload part, so memory stays at one part whatever the size. Small objects are a single
    PUT. An exception inside ``with``, or :meth:`abort`, aborts the multipart upload and
    leaves any existing object as it was. It hashes (sha256) and counts what is written.

    Args:
        store: the :class:`~mlflowlet.datastore.s3.S3Store`.
        bucket: the bucket.
        key: the key.
    """

    def __init__(self, store: S3Store, bucket: str, key: str) -> None:
        super().__init__()
        self._store, self._bucket, self._key = store, bucket, key
        self._buf = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._upload_id: str | None = None

    def _put(self, view: memoryview) -> None:
        """Buffer the bytes; every full part goes up at once."""
        if self._done:
            raise ValueError("write to a closed S3 writer")
        self._buf += view
        part = self._store.part_size
        while len(self._buf) >= part:
            chunk = bytes(self._buf[:part])
            del self._buf[:part]
            self._send(chunk)

    def _send(self, chunk: bytes) -> None:
        client = self._store.client
        where = {"Bucket": self._bucket, "Key": self._key}
        try:
            if self._upload_id is None:
                from mlflowlet.datastore._s3config import content_type

                resp = client.create_multipart_upload(**where, **content_type(self._key))
                self._upload_id = resp["UploadId"]
            number = len(self._parts) + 1
            resp = client.upload_part(**where, UploadId=self._upload_id, PartNumber=number,
                                      Body=chunk)  # fmt: skip
            self._parts.append({"ETag": resp["ETag"], "PartNumber": number})
        except client_errors() as exc:
            self.abort()
            raise translate(self._store, exc, "PUT", self._bucket, self._key) from None

    def close(self) -> None:
        """Publish the object (once): the last part and the completion, or one PUT."""
        if self._done:
            super().close()
            return
        where = {"Bucket": self._bucket, "Key": self._key}
        try:
            if self._upload_id is None:
                from mlflowlet.datastore._s3config import content_type

                self._store.client.put_object(**where, Body=bytes(self._buf),
                                              **content_type(self._key))  # fmt: skip
            else:
                if self._buf:
                    self._send(bytes(self._buf))
                self._store.client.complete_multipart_upload(
                    **where, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
                )
        except client_errors() as exc:
            self.abort()
            raise translate(self._store, exc, "PUT", self._bucket, self._key) from None
        finally:
            self._done = True
            self._buf = bytearray()
            super().close()

    def abort(self) -> None:
        """Drop what was written; the object is not created or changed."""
        self._done = True
        self._buf = bytearray()
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is not None:
            try:
                self._store.client.abort_multipart_upload(
                    Bucket=self._bucket, Key=self._key, UploadId=upload_id
                )
            except Exception:  # noqa: BLE001 - best effort; S3 lifecycle rules clean up too
                pass
        super().close()
