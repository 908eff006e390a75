"""Request bodies of the REST API are read with the run DB's JSON (``{"$float": "NaN"}`` tags).

Responses are written the same way (``app.json_response_class``), so a NaN or infinite result,
param or metric crosses the API exactly, as strict JSON any client can parse.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from ..db._json import loads


class _TaggedJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


class TaggedJSONRoute(APIRoute):
    """An ``APIRoute`` whose JSON bodies decode non-finite float tags."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap FastAPI's handler so it reads the body through :class:`_TaggedJSONRequest`."""
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(_TaggedJSONRequest(request.scope, request.receive))

        return route
