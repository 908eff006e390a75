"""Resumable HTTP downloads: stream to an atomic file, pick up a cut body with ``Range``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlflowlet.datastore._streams import AtomicFile, iter_stream
from mlflowlet.errors import DataStoreError

if TYPE_CHECKING:
    from mlflowlet.datastore.httpstore import HttpStore


class _CutShort(Exception):
    """The body ended before the length the server announced."""


def resumable_download(store: HttpStore, url: str, path: str) -> None:
    """Stream ``url`` into ``path`` atomically, resuming a body that was cut short.

    Each resumption asks for ``Range: bytes=<received>-`` with ``If-Range`` (the first
    answer's strong ETag or Last-Modified), so a resource that changed meanwhile comes back
    whole (200) and the download starts over instead of splicing two versions. Attempts
    that bring no new bytes are bounded by ``store.retries``; one that made progress
    starts the count again.

    Args:
        store: the HTTP store (timeout, retries, backoff, credentials).
        url: the URL.
        path: the local file to write.

    Raises:
        DataNotFoundError: HTTP 404.
        DataStoreError: still failing after ``store.retries`` resumptions, a timeout, or
            another HTTP error.
    """
    import http.client

    out = AtomicFile(path)
    validator: str | None = None
    failures = 0
    try:
        while True:
            headers: dict[str, str] = {}
            before = out.size
            if out.size:
                headers["Range"] = f"bytes={out.size}-"
                if validator:
                    headers["If-Range"] = validator
            try:
                with store._request(url, headers=headers) as resp:
                    if out.size and resp.status != 206:  # no range support, or it changed
                        out.abort()
                        out = AtomicFile(path)
                    total = _expected_total(resp, out.size)
                    validator = validator or _validator(resp)
                    for chunk in iter_stream(resp, store.chunk_size):
                        out.write(chunk)
                if total is not None and out.size < total:
                    raise _CutShort(f"the body ended at byte {out.size} of {total}")
                out.close()
                return
            except DataStoreError:
                raise
            except TimeoutError:
                raise DataStoreError(f"GET '{url}' timed out after {store.timeout:g} s") from None
            except (_CutShort, http.client.HTTPException, ConnectionError) as exc:
                failures = 1 if out.size > before else failures + 1  # progress: keep going
                if failures > store.retries:
                    raise DataStoreError(
                        f"GET '{url}' kept failing after {failures} attempts without progress "
                        f"({out.size} bytes received): {type(exc).__name__}: {exc}"
                    ) from None
                store._pause(failures)
    except BaseException:
        out.abort()
        raise


def _expected_total(resp: Any, start: int) -> int | None:
    """Return the full size the response promises (None when it does not say)."""
    if resp.status == 206:
        content_range = resp.headers.get("Content-Range") or ""
        span, _, total = content_range.partition("/")
        if total.strip().isdigit():
            return int(total)
        _, _, end = span.partition("-")
        if end.strip().isdigit():
            return int(end) + 1
    length = resp.headers.get("Content-Length")
    if length and length.strip().isdigit():
        return (start if resp.status == 206 else 0) + int(length)
    return None


def _validator(resp: Any) -> str | None:
    """Return a strong ETag or the Last-Modified date, for ``If-Range``."""
    etag = resp.headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return str(etag)
    modified = resp.headers.get("Last-Modified")
    return str(modified) if modified else None
