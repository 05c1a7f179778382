"""The HTTP API: routes per resource, authentication, the error envelope, the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from .. import __version__
from . import errors, openapi, owners, queues
from .endpoints import Endpoint

Lifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]

PUBLISHED: list[tuple[str, Endpoint]] = [
    *(("/v1/owners", endpoint) for endpoint in owners.ENDPOINTS),
    *(("/v1/queues", endpoint) for endpoint in queues.ENDPOINTS),
]
ALIASES: list[tuple[str, Endpoint]] = [("/v1/tasks", endpoint) for endpoint in owners.ENDPOINTS]


async def status(request: Request) -> Response:
    return PlainTextResponse("OK")


def create_api(lifespan: Lifespan | None = None) -> Starlette:
    routes = [
        Route(prefix + endpoint.path, endpoint.handler, methods=[endpoint.method])
        for prefix, endpoint in PUBLISHED + ALIASES
    ]
    routes += [
        Route("/status", status, methods=["GET"]),
        Route("/openapi.json", openapi.openapi_json, methods=["GET"]),
        Route("/docs", openapi.docs, methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers=errors.HANDLERS, lifespan=lifespan)
    app.state.openapi = openapi.build(PUBLISHED, __version__)
    return app
