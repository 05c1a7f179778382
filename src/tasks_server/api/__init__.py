"""The HTTP API: routes per resource, authentication, and the error envelope."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI
from starlette.responses import PlainTextResponse

from ..spec import TaskSpec
from . import errors, owners, queues

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_api(lifespan: Lifespan | None = None) -> FastAPI:
    app = FastAPI(
        title="Tasks Server",
        version="0.1.0",
        description="Fire HTTP requests later: after a delay, at a time, with retries.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.include_router(owners.router, prefix="/v1/owners")
    app.include_router(owners.router, prefix="/v1/tasks", include_in_schema=False)
    app.include_router(queues.router, prefix="/v1/queues")

    @app.get("/status", response_class=PlainTextResponse, tags=["Health"])
    async def status() -> str:
        return "OK"

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        spec = TaskSpec.model_json_schema(
            by_alias=True, ref_template="#/components/schemas/{model}"
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(spec.pop("$defs", {}))
        components["TaskSpec"] = spec
        app.openapi_schema = schema
    return app.openapi_schema
