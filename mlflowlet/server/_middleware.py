"""ASGI middleware shared by the run DB server and HTTP functions: token auth and a body limit.

Both are plain ASGI (no Starlette ``BaseHTTPMiddleware``) so they cost almost nothing per request
and never buffer a response. Tokens are compared in constant time and never logged:
:class:`RedactFilter` scrubs them from any log record, in case a client put one in a URL.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from ..errors import BodyTimeout, BodyTooLarge

COOKIE = "mlflowlet_token"
DEFAULT_MAX_BODY = 64 * 1024 * 1024
#: deepest JSON nesting a request body may have (a run's params sit 3 levels down)
MAX_JSON_DEPTH = 64

Scope = dict[str, Any]
ASGIApp = Callable[..., Any]


async def _send_json(
    send: Callable[..., Any],
    status: int,
    detail: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Read each request body whole before the app sees it, within the server's limits.

    Answers itself, naming the limit: 413 for a body over ``max_body`` bytes (by
    ``Content-Length`` or while a chunked body streams in), 408 for a client stalling mid-body,
    400 for a JSON body nested deeper than ``max_depth``. The app then gets the body in one
    piece, so no limit is ever reported as a parse error.

    Args:
        app: the wrapped ASGI app.
        max_body: largest body in bytes.
        body_timeout: seconds to wait for each chunk of a body still being sent.
        max_depth: deepest JSON nesting accepted (objects and arrays).
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body: int = DEFAULT_MAX_BODY,
        body_timeout: float = 60.0,
        max_depth: int = MAX_JSON_DEPTH,
    ) -> None:
        self.app, self.max_body, self.body_timeout = app, max_body, body_timeout
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Callable[..., Any], send: Callable[..., Any]):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body
            except ValueError:
                return await _send_json(send, 400, "bad Content-Length header")
            if too_big:
                return await _send_json(send, 413, str(BodyTooLarge(self.max_body)))
        elif b"transfer-encoding" not in headers:
            return await self.app(scope, receive, send)  # no body at all
        chunks: list[bytes] = []
        seen = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), self.body_timeout)
            except asyncio.TimeoutError:
                return await _send_json(send, 408, str(BodyTimeout(self.body_timeout)))
            if message["type"] != "http.request":
                return None  # the client went away
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_body:
                return await _send_json(send, 413, str(BodyTooLarge(self.max_body)))
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        ctype = headers.get(b"content-type", b"")
        if (not ctype or b"json" in ctype) and json_too_deep(body, self.max_depth):
            return await _send_json(
                send,
                400,
                f"the JSON body nests deeper than the server's limit of {self.max_depth} levels",
            )
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:  # later calls only wait for a disconnect
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


_JSON_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_too_deep(body: bytes, limit: int) -> bool:
    """Return True when the JSON text ``body`` nests objects/arrays deeper than ``limit``.

    Strings are skipped whole (brackets inside them do not count); a body with fewer brackets
    than the limit is not scanned at all.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for match in _JSON_TOKENS.finditer(body):
        char = match.group()[0]
        if char in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif char in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


def _is_html_get(scope: Scope) -> bool:
    accept = dict(scope.get("headers") or []).get(b"accept", b"")
    return scope.get("method") == "GET" and b"text/html" in accept


class TokenAuthMiddleware:
    """Demand ``Authorization: Bearer <token>`` (or the UI's login cookie) on every request.

    Args:
        app: the wrapped ASGI app.
        token: the expected token; empty disables auth (the server then binds to loopback).
        public: path prefixes served without a token (health, static files, login).
    """

    def __init__(self, app: ASGIApp, token: str, public: tuple[str, ...] = ()) -> None:
        self.app, self.public = app, public
        self._token = token.encode()

    def _valid(self, scope: Scope) -> tuple[bool, str]:
        headers = dict(scope.get("headers") or [])
        auth = headers.get(b"authorization")
        if auth is not None:
            scheme, _, value = auth.partition(b" ")
            if scheme.lower() != b"bearer":
                return False, "send the token as 'Authorization: Bearer <token>'"
            return hmac.compare_digest(value.strip(), self._token), "invalid token"
        cookie = _cookie(headers.get(b"cookie", b""), COOKIE.encode())
        if cookie is not None:
            return hmac.compare_digest(cookie, self._token), "invalid token"
        return False, (
            "missing token: send 'Authorization: Bearer <token>' (the server's MLFLOWLET_API_TOKEN)"
        )

    async def __call__(self, scope: Scope, receive: Callable[..., Any], send: Callable[..., Any]):
        if scope["type"] != "http" or not self._token:
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if any(path == p or (p.endswith("/") and path.startswith(p)) for p in self.public):
            return await self.app(scope, receive, send)
        ok, why = self._valid(scope)
        if ok:
            return await self.app(scope, receive, send)
        if _is_html_get(scope):
            return await _send_login_page(send, path)
        await _send_json(send, 401, why, [(b"www-authenticate", b'Bearer realm="mlflowlet"')])


def _cookie(raw: bytes, name: bytes) -> bytes | None:
    for part in raw.split(b";"):
        key, _, value = part.strip().partition(b"=")
        if key == name:
            return value
    return None


async def _send_login_page(send: Callable[..., Any], path: str) -> None:
    target = quote(path or "/", safe="/")
    body = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>mlflowlet login"
        "</title><link rel='stylesheet' href='/static/style.css'></head><body><main>"
        "<h1>mlflowlet</h1><p>This server needs its API token (MLFLOWLET_API_TOKEN).</p>"
        f"<form method='post' action='/login?next={target}'>"
        "<input type='password' name='token' placeholder='token' autocomplete='off'>"
        "<button type='submit'>Log in</button></form></main></body></html>"
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b'Bearer realm="mlflowlet"'),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RedactFilter(logging.Filter):
    """Replace a secret with ``***`` in every log record that passes through."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secret:
            return True
        text = record.getMessage()
        if self.secret in text:
            record.msg, record.args = text.replace(self.secret, "***"), ()
        return True


def install_redaction(
    secret: str,
    names: tuple[str, ...] = ("uvicorn", "uvicorn.access", "uvicorn.error", "mlflowlet"),
) -> None:
    """Attach a :class:`RedactFilter` for ``secret`` to the server's loggers and their handlers."""
    if not secret:
        return
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactFilter) and f.secret == secret for f in logger.filters):
            logger.addFilter(RedactFilter(secret))
        for handler in logger.handlers:
            if not any(isinstance(f, RedactFilter) and f.secret == secret for f in handler.filters):
                handler.addFilter(RedactFilter(secret))
