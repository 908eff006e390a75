"""The run DB server app: REST under ``/api/v1``, health and version, the web UI at ``/``."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..errors import (
    ConflictError,
    DataNotFoundError,
    MissingDependencyError,
    MlflowletError,
    NotFoundError,
    RunDBError,
)
from ._middleware import (
    DEFAULT_MAX_BODY,
    BodyLimitMiddleware,
    TokenAuthMiddleware,
    install_redaction,
)
from ._security import SecurityHeadersMiddleware

if TYPE_CHECKING:
    from ..db.base import RunDB

log = logging.getLogger("mlflowlet.server")
PUBLIC_PATHS = ("/health", "/api/v1/health", "/login", "/static/", "/favicon.ico")


def require_fastapi() -> None:
    """Raise ``MissingDependencyError`` naming the ``server`` extra when FastAPI is missing."""
    try:
        import fastapi  # noqa: F401
    except ImportError:
        raise MissingDependencyError("fastapi", "server") from None


def status_for(exc: Exception) -> int:
    """Return the HTTP status that stands for an mlflowlet error."""
    if isinstance(exc, (NotFoundError, DataNotFoundError)):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, (ValueError, KeyError, TypeError)) and not isinstance(exc, RunDBError):
        return 400
    return 500


_RESPONSE_CLASS: list[Any] = []


def json_response_class() -> Any:
    """Return the JSON response class of the API: strict JSON, NaN/infinities tagged.

    Results, params and metrics may be NaN or infinite; they are written as
    ``{"$float": "NaN"}`` (see ``mlflowlet/db/_json.py``), never as ``NaN`` tokens that
    browsers and other strict parsers refuse, nor as ``null``.
    """
    if _RESPONSE_CLASS:
        return _RESPONSE_CLASS[0]
    from fastapi.responses import JSONResponse

    from ..db._json import dumps

    class NaNJSONResponse(JSONResponse):
        def render(self, content: Any) -> bytes:
            text = dumps(content, ensure_ascii=False, separators=(",", ":"))
            try:
                return text.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate somewhere: escape it (still JSON)
                return dumps(content, separators=(",", ":")).encode("ascii")

    _RESPONSE_CLASS.append(NaNJSONResponse)
    return NaNJSONResponse


def create_app(
    db: RunDB | str | None = None,
    token: str | None = None,
    artifact_root: str | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    ui: bool = True,
    body_timeout: float = 60.0,
) -> Any:
    """Build the FastAPI app of ``mlflowlet server``.

    Args:
        db: the run DB the server stores into (a ``RunDB`` or a URL/path for ``get_run_db``;
            default: ``MLFLOWLET_DBPATH``, else the current directory's SQLite file).
        token: the bearer token clients must send; None reads ``MLFLOWLET_API_TOKEN``; empty
            disables auth.
        artifact_root: directory whose files ``/api/v1/files/...`` serves (default: the DB's).
        max_body: largest accepted request body in bytes (413 above).
        ui: serve the web UI at ``/``.
        body_timeout: seconds a client may stall while sending a body (408 after).

    Returns:
        The ASGI app (FastAPI), with ``app.state.db`` and ``app.state.artifact_root`` set.
    """
    require_fastapi()
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from ..db import RunDB, get_run_db
    from . import _api_data, api

    if not isinstance(db, RunDB):
        db = get_run_db(db or "", cached=False)
    if token is None:
        from ..settings import get_settings

        token = get_settings().api_token
    app = FastAPI(
        title="mlflowlet",
        version=__version__,
        default_response_class=json_response_class(),
        description="The mlflowlet run DB over REST. Send 'Authorization: Bearer "
        "<MLFLOWLET_API_TOKEN>' when the server has a token.",
    )
    app.state.db = db
    app.state.artifact_root = os.path.abspath(artifact_root or db.artifact_root or "artifacts")
    app.state.auth = bool(token)

    @app.exception_handler(MlflowletError)
    async def _mlflowlet_error(_request: Request, exc: MlflowletError) -> JSONResponse:
        code = status_for(exc)
        if code == 500:
            log.error("run DB error: %s", exc)
        return JSONResponse({"detail": str(exc)}, status_code=code)

    @app.exception_handler(OverflowError)
    async def _overflow(_request: Request, exc: OverflowError) -> JSONResponse:
        return JSONResponse({"detail": f"a number is out of range: {exc}"}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            msg = next(e for e in errors if e.get("type") == "json_invalid").get("ctx", {})
            return JSONResponse(
                {"detail": f"malformed JSON body: {msg.get('error', 'cannot parse')}"},
                status_code=400,
            )
        slim = [{"loc": e.get("loc"), "msg": e.get("msg"), "type": e.get("type")} for e in errors]
        return JSONResponse({"detail": slim}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
        if exc.status_code == 405:  # every method of the path, not only the first route's
            routes = [*app.router.routes, *api.router.routes, *_api_data.router.routes]
            headers["allow"] = ", ".join(allowed_methods(routes, request.scope))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    @app.get("/health", tags=["server"], summary="health")
    @app.get("/api/v1/health", tags=["server"], include_in_schema=False)
    def health() -> dict:
        """Liveness: ``{"status": "ok"}`` (no token needed)."""
        return {"status": "ok"}

    @app.get("/api/v1/version", tags=["server"], summary="version")
    def version() -> dict:
        """Server version, API version, artifact root, store kind and body limit."""
        return {
            "version": __version__,
            "api": "v1",
            "artifact_root": app.state.artifact_root,
            "db": type(app.state.db).__name__,
            "auth": app.state.auth,
            "max_body": max_body,  # clients split a run's log into requests below it
        }

    app.include_router(api.router)
    app.include_router(_api_data.router)
    if ui:
        from .ui import mount_ui

        mount_ui(app, token or "")
    install_redaction(token or "")
    app.add_middleware(TokenAuthMiddleware, token=token or "", public=PUBLIC_PATHS)
    app.add_middleware(BodyLimitMiddleware, max_body=max_body, body_timeout=body_timeout)
    app.add_middleware(SecurityHeadersMiddleware)  # outermost: covers the login page and errors
    return app


def allowed_methods(routes: list[Any], scope: Any) -> list[str]:
    """Return the methods some of ``routes`` answers at the request's path (for ``Allow``)."""
    from starlette.routing import Match

    methods: set[str] = set()
    for route in routes:  # PARTIAL: the path matches, the method does not
        if getattr(route, "methods", None) and route.matches(scope)[0] != Match.NONE:
            methods |= set(route.methods)
    return sorted(methods)


def check_bind(host: str, token: str) -> str:
    """Return the host to bind: without a token only loopback is allowed (and said so)."""
    loopback = host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")
    if token or loopback:
        return host
    log.warning(
        "no MLFLOWLET_API_TOKEN set: listening on 127.0.0.1 only instead of %s; set a "
        "token to serve other hosts",
        host,
    )
    return "127.0.0.1"
