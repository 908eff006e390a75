"""Security headers and content isolation: what every response says about how it may be used.

UI pages get a strict Content-Security-Policy (scripts only from ``/static``, no inline script,
no framing), every response ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy:
no-referrer``. Artifact files are served by an allow-list (:func:`download_policy`): passive
types (images, text, CSV, JSON, parquet) whose bytes match the type, HTML and SVG under
``Content-Security-Policy: sandbox`` (an opaque origin that may not connect anywhere), and
everything else as an attachment. The file extension alone never decides: an ``.png`` that is
not a PNG, or a ``.txt`` that starts like markup, is an attachment.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

#: UI pages: our own script and stylesheet, inline SVG, sandboxed artifact frames, no framing.
UI_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
#: JSON and other API answers: nothing to run, nothing to frame.
API_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"
#: HTML/SVG artifacts: an opaque origin (no same-origin) whose inline scripts may draw but that
#: may fetch nothing (no connect, no images from the server), framed only by the UI.
SANDBOX_CSP = (
    "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; img-src data:; font-src data:; frame-ancestors 'self'"
)
#: passive files: shown by the UI (``<img>``, tables) and never run as a document.
PASSIVE_CSP = "sandbox; default-src 'none'; img-src 'self' data:; frame-ancestors 'self'"
COMMON_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
)

_IMAGES = {
    "png": ("image/png", (b"\x89PNG\r\n\x1a\n",)),
    "jpg": ("image/jpeg", (b"\xff\xd8\xff",)),
    "jpeg": ("image/jpeg", (b"\xff\xd8\xff",)),
    "gif": ("image/gif", (b"GIF87a", b"GIF89a")),
    "webp": ("image/webp", (b"RIFF",)),
}
_TEXT = {
    "txt": "text/plain",
    "log": "text/plain",
    "md": "text/plain",
    "csv": "text/csv",
    "tsv": "text/tab-separated-values",
    "json": "application/json",
    "yaml": "text/plain",
    "yml": "text/plain",
}
_SANDBOXED = {"html": "text/html", "htm": "text/html", "svg": "image/svg+xml"}
_PARQUET = b"PAR1"


def _head(path: str, size: int = 512) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except OSError:
        return b""


def looks_like_markup(head: bytes) -> bool:
    """Return True when bytes would sniff as HTML/XML: the first non-blank character is ``<``."""
    text = head.lstrip(b"\xef\xbb\xbf\xfe\xff\x00 \t\r\n\x0c")
    return text.startswith(b"<")


def download_policy(path: str) -> tuple[str, dict[str, str]]:
    """Decide how an artifact file is served: its media type and security headers.

    Returns:
        ``(media type, headers)``: a passive type inline, HTML/SVG inline under a sandbox CSP,
        or ``application/octet-stream`` as an attachment.
    """
    name = os.path.basename(path)
    ext = os.path.splitext(name)[1].lstrip(".").lower()
    head = _head(path)
    quoted = name.replace("\\", "_").replace('"', "_")
    inline = f'inline; filename="{quoted}"'
    media: str | None = None
    csp = PASSIVE_CSP
    if ext in _IMAGES:
        kind, magics = _IMAGES[ext]
        if head.startswith(magics) and (ext != "webp" or head[8:12] == b"WEBP"):
            media = kind
    elif ext in _TEXT and not looks_like_markup(head):
        media = f"{_TEXT[ext]}; charset=utf-8" if _TEXT[ext].startswith("text/") else _TEXT[ext]
    elif ext == "parquet" and head.startswith(_PARQUET):
        media = "application/vnd.apache.parquet"
    elif ext in _SANDBOXED:
        media, csp = _SANDBOXED[ext], SANDBOX_CSP
    headers = {"x-content-type-options": "nosniff", "cross-origin-resource-policy": "same-origin"}
    if media is None:
        headers.update(
            {
                "content-security-policy": API_CSP,
                "content-disposition": f'attachment; filename="{quoted}"',
            }
        )
        return "application/octet-stream", headers
    headers.update({"content-security-policy": csp, "content-disposition": inline})
    return media, headers


class SecurityHeadersMiddleware:
    """Add the security headers to every response that does not set its own policy.

    HTML answers get :data:`UI_CSP` and ``X-Frame-Options: DENY``; anything else
    :data:`API_CSP`. A response that already carries a ``Content-Security-Policy`` (an artifact
    download) keeps it. Plain ASGI: nothing is buffered.
    """

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                names = {k.lower() for k, _ in headers}
                extra = [h for h in COMMON_HEADERS if h[0] not in names]
                if b"content-security-policy" not in names:
                    ctype = dict(headers).get(b"content-type", b"")
                    policy = UI_CSP if ctype.startswith(b"text/html") else API_CSP
                    extra.append((b"content-security-policy", policy.encode()))
                    extra.append((b"x-frame-options", b"DENY"))
                message = {**message, "headers": headers + extra}
            await send(message)

        await self.app(scope, receive, with_headers)
