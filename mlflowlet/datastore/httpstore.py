"""Read-only ``http://`` and ``https://`` URLs through :mod:`urllib.request`."""

from __future__ import annotations

from typing import Any, BinaryIO

from mlflowlet.datastore.base import DataStore
from mlflowlet.errors import DataNotFoundError, DataStoreError

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class _Retryable(Exception):
    """A failure worth another try: a connection error, a 5xx, a body cut short."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class HttpStore(DataStore):
    """Fetch web resources; writes are refused.

    Reads stream (``open`` returns the live response), ``get`` asks for a byte range and
    slices locally when the server ignores it, and every request is bounded by
    :attr:`timeout`. Connection errors and 429/5xx answers are retried up to
    :attr:`retries` times with exponential backoff; :meth:`download` also resumes a body
    cut short with a ``Range`` request when the server supports it. A timeout is not
    retried: it already is the bound on waiting.

    Args:
        secrets: a dict or ``get(key)`` object; ``HTTP_TOKEN`` becomes a bearer token.
        timeout: seconds to wait for a connection or for data (default 30).
        retries: further attempts after a retryable failure (default 3).
        backoff: seconds before the first retry, doubled each time (default 0.1, at most 5).
    """

    default_timeout: float = 30.0
    default_retries: int = 3
    default_backoff: float = 0.1

    def __init__(
        self,
        secrets: Any = None,
        timeout: float | None = None,
        retries: int | None = None,
        backoff: float | None = None,
    ) -> None:
        super().__init__(secrets)
        self.timeout = self.default_timeout if timeout is None else float(timeout)
        self.retries = self.default_retries if retries is None else max(0, int(retries))
        self.backoff = self.default_backoff if backoff is None else max(0.0, float(backoff))

    def _pause(self, attempt: int) -> None:
        """Sleep before retry ``attempt`` (1-based): exponential backoff with jitter."""
        import random
        import time

        time.sleep(min(5.0, self.backoff * 2 ** (attempt - 1)) * (0.5 + random.random() / 2))

    def _request(self, url: str, method: str = "GET", headers: dict[str, str] | None = None) -> Any:
        for attempt in range(self.retries + 1):
            try:
                return self._request_once(url, method, headers)
            except _Retryable as exc:
                if attempt == self.retries:
                    tries = f" (after {attempt + 1} attempts)" if attempt else ""
                    raise DataStoreError(f"{exc.message}{tries}") from None
                self._pause(attempt + 1)
        raise AssertionError("unreachable")  # pragma: no cover

    def _request_once(self, url: str, method: str, headers: dict[str, str] | None) -> Any:
        import urllib.error
        import urllib.request

        req = urllib.request.Request(url, method=method, headers=dict(headers or {}))
        token = self.secret("HTTP_TOKEN")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)  # noqa: S310 (http only)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 404:
                raise DataNotFoundError(f"no such URL '{url}' (HTTP 404)") from None
            message = f"{method} '{url}' failed: HTTP {exc.code} {exc.reason}"
            if exc.code in RETRY_STATUS:
                raise _Retryable(message) from None
            raise DataStoreError(message) from None
        except TimeoutError:
            raise DataStoreError(f"{method} '{url}' timed out after {self.timeout:g} s") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                raise DataStoreError(
                    f"{method} '{url}' timed out after {self.timeout:g} s"
                ) from None
            raise _Retryable(f"cannot reach '{url}': {reason}") from None
        except OSError as exc:  # reset, refused, or the server closed without answering
            raise _Retryable(f"cannot reach '{url}': {exc}") from None

    def _read(self, url: str, resp: Any, size: int | None = None) -> bytes:
        try:
            with resp:
                data: bytes = resp.read() if size is None else resp.read(size)
                return data
        except TimeoutError:
            raise DataStoreError(f"GET '{url}' timed out after {self.timeout:g} s") from None
        except OSError as exc:
            raise DataStoreError(f"cannot read '{url}': {exc}") from None

    def get(self, url: str, size: int | None = None, offset: int = 0) -> bytes:
        """Return ``size`` bytes (all when None) from ``offset``, using a Range request."""
        if size == 0:
            return b""
        headers = {}
        if offset or size is not None:
            end = "" if size is None else str(offset + size - 1)
            headers["Range"] = f"bytes={offset}-{end}"
        resp = self._request(url, headers=headers)
        if resp.status == 206 or not headers:
            return self._read(url, resp, size)
        # The server ignored the Range header: skip to offset while streaming.
        with resp:
            remaining = offset
            while remaining:
                skipped = resp.read(min(remaining, self.chunk_size))
                if not skipped:
                    return b""
                remaining -= len(skipped)
            return self._read(url, resp, size)

    def put(self, url: str, data: bytes) -> None:
        """Refuse: HTTP URLs are read-only here."""
        raise DataStoreError(f"cannot write '{url}': the http(s) data store is read-only")

    def upload(self, url: str, path: str) -> None:
        """Refuse: HTTP URLs are read-only here."""
        self.put(url, b"")

    def stat(self, url: str) -> dict[str, Any]:
        """Return size, modification time and etag from a HEAD request."""
        from email.utils import parsedate_to_datetime

        with self._request(url, method="HEAD") as resp:
            length = resp.headers.get("Content-Length")
            modified = resp.headers.get("Last-Modified")
            etag = resp.headers.get("ETag")
        try:
            mtime = parsedate_to_datetime(modified).timestamp() if modified else None
        except (TypeError, ValueError):
            mtime = None
        return {
            "size": int(length) if length and length.isdigit() else None,
            "modified": mtime,
            "etag": etag.strip('"') if etag else None,
        }

    def download(self, url: str, path: str) -> None:
        """Stream ``url`` to the local file ``path`` (atomically), resuming when cut short.

        A body that ends early or a dropped connection is picked up where it stopped with
        ``Range: bytes=<n>-`` (guarded by ``If-Range`` so a changed resource starts over);
        a server that ignores ranges sends the whole body again. At most :attr:`retries`
        resumptions, with backoff.
        """
        from mlflowlet.datastore._resume import resumable_download

        resumable_download(self, url, path)

    def listdir(self, url: str) -> list[str]:
        """Refuse: HTTP has no directory listing."""
        raise DataStoreError(f"cannot list '{url}': HTTP has no directory listing")

    def open(self, url: str, mode: str = "rb") -> BinaryIO:
        """Return the streaming response for ``url`` (``'rb'`` only)."""
        if mode != "rb":
            self.put(url, b"")
        return self._request(url)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"HttpStore(timeout={self.timeout:g})"
