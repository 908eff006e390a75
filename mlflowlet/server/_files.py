"""Artifact file download: a path under the artifact root, streamed, honouring ``Range``."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

from ..errors import DataNotFoundError, PathTraversalError
from ._confine import inside
from ._security import download_policy

CHUNK = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def safe_join(root: str, rel: str) -> str:
    """Return ``root/rel`` after refusing absolute paths, ``..``, NUL, and symlinks escaping root.

    Raises:
        PathTraversalError: ``rel`` would leave ``root``.
    """
    if not rel or "\x00" in rel or rel.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", rel):
        raise PathTraversalError(rel)
    parts = rel.replace("\\", "/").split("/")
    if any(p == ".." for p in parts):
        raise PathTraversalError(rel)
    full = os.path.realpath(os.path.join(os.path.realpath(root), *parts))
    if not inside(root, full):
        raise PathTraversalError(rel)
    return full


def relative_to_root(root: str, uri: str) -> str | None:
    """Return ``uri`` relative to ``root`` when it is a local file inside it, else None."""
    if not uri or not root:
        return None
    path = uri[len("file://") :] if uri.startswith("file://") else uri
    if "://" in path:
        return None
    base, full = os.path.realpath(root), os.path.realpath(path)
    if full == base or not inside(base, full):
        return None
    return os.path.relpath(full, base).replace(os.sep, "/")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Turn a ``Range: bytes=a-b`` header into an inclusive ``(start, end)``; None for no range.

    Raises:
        ValueError: the range cannot be satisfied (the caller answers 416).
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        raise ValueError(header)
    first, last = match.group(1), match.group(2)
    if not first:  # suffix: the last N bytes
        length = int(last)
        if length == 0:
            raise ValueError(header)
        return max(size - length, 0), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise ValueError(header)
    return start, end


def _stream(path: str, start: int, end: int) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        fh.seek(start)
        left = end - start + 1
        while left > 0:
            chunk = fh.read(min(CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


def file_response(root: str, rel: str, range_header: str | None) -> Any:
    """Build a streamed response for ``root/rel`` (206 with ``Content-Range`` for a range).

    Raises:
        DataNotFoundError: no such file under the root (a path leaving it included).
    """
    from fastapi.responses import Response, StreamingResponse

    try:
        path = safe_join(root, rel)
    except PathTraversalError as exc:  # nothing outside the root exists, as far as clients go
        raise DataNotFoundError(f"{exc}; only files under the artifact root are served") from None
    if not os.path.isfile(path):
        raise DataNotFoundError(f"artifact file {rel!r} not found under the artifact root")
    size = os.path.getsize(path)
    media, headers = download_policy(path)
    headers["accept-ranges"] = "bytes"
    try:
        span = parse_range(range_header, size)
    except ValueError:
        return Response(status_code=416, headers={"content-range": f"bytes */{size}"})
    if span is None:
        headers["content-length"] = str(size)
        return StreamingResponse(_stream(path, 0, size - 1), media_type=media, headers=headers)
    start, end = span
    headers["content-range"] = f"bytes {start}-{end}/{size}"
    headers["content-length"] = str(end - start + 1)
    return StreamingResponse(
        _stream(path, start, end), status_code=206, media_type=media, headers=headers
    )
