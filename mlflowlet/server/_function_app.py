"""The FastAPI app behind :func:`mlflowlet.server.serve.create_function_app`."""

from __future__ import annotations

import threading
import traceback
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool

from ..db._json import loads
from ..errors import MlflowletError
from ._middleware import BodyLimitMiddleware, TokenAuthMiddleware, install_redaction
from ._security import SecurityHeadersMiddleware
from .app import json_response_class, status_for
from .serve import Event, execute

if TYPE_CHECKING:
    from ..db.base import RunDB

JSONResponse = json_response_class()


def build_function_app(
    fn: Any, db: RunDB | None, token: str, artifact_root: str, max_body: int, max_concurrency: int
) -> FastAPI:
    """Return the app: ``POST``/``PUT /`` runs ``fn`` with the body's run spec, ``GET /health``."""
    slots = threading.BoundedSemaphore(max_concurrency)
    app = FastAPI(
        title=f"mlflowlet function {getattr(fn, '__name__', 'handler')}",
        default_response_class=JSONResponse,
    )
    app.state.handler = fn

    def run_one(body: Any, event: Event, envelope: bool) -> dict[str, Any]:
        with slots:
            out = execute(fn, body, event, db, artifact_root)
        return out if envelope else out["run"]

    @app.get("/health")
    def health() -> dict:
        """Liveness (no token needed)."""
        return {"status": "ok", "handler": getattr(fn, "__name__", "")}

    @app.api_route("/", methods=["POST", "PUT"])
    async def invoke(request: Request, envelope: bool = False) -> Any:
        """Run the handler with the run spec in the body; answer the run JSON."""
        raw = await request.body()  # whole and within the limits (BodyLimitMiddleware)
        try:
            body = loads(raw) if raw.strip() else {}  # NaN/infinities tagged (db/_json.py)
        except ValueError as exc:
            return JSONResponse({"detail": f"malformed JSON body: {exc}"}, status_code=400)
        event = Event(body, _shown_headers(request.headers), request.method, request.url.path)
        try:
            out = await run_in_threadpool(run_one, body, event, envelope)
        except MlflowletError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=status_for(exc))
        except Exception as exc:  # a failure outside the handler: say what
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            return JSONResponse({"detail": detail}, status_code=500)
        return JSONResponse(out)

    install_redaction(token)
    app.add_middleware(TokenAuthMiddleware, token=token, public=("/health",))
    app.add_middleware(BodyLimitMiddleware, max_body=max_body)
    app.add_middleware(SecurityHeadersMiddleware)
    return app


_CREDENTIAL_HEADERS = ("authorization", "proxy-authorization", "cookie")


def _shown_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Return the request headers a handler sees: credentials hidden (the server checked them).

    A handler that logs its event must not record the function's bearer token in the run's
    log, results or run DB.
    """
    out = dict(headers)
    for name in _CREDENTIAL_HEADERS:
        if name in out:
            scheme, _, value = out[name].partition(" ")
            out[name] = f"{scheme} ***" if value and name != "cookie" else "***"
    return out
