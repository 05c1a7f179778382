"""The OpenAPI 3.1 document, built from the endpoint table, and the interactive docs page."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from .endpoints import Endpoint
from .http import json_response

REF = "#/components/schemas/{model}"
ENVELOPE = {
    "type": "object",
    "properties": {
        "action": {"type": "string"},
        "message": {"anyOf": [{"type": "string"}, {"type": "object"}]},
    },
    "required": ["action", "message"],
}
ERRORS = {
    "400": "Invalid input; `message` is a tree of field errors",
    "401": "The key does not match the owner",
    "403": "Missing or malformed credentials, or an unknown owner",
    "404": "No such owner or task",
    "409": "A conflict: the name is taken, or the task is being delivered",
    "413": "The body is too large",
    "422": "An invalid state transition, or a limit reached",
}
DOCS_PAGE = """<!doctype html>
<html><head><title>Tasks Server API</title><meta charset="utf-8">
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css">
</head><body><div id="ui"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui"});</script>
</body></html>"""


def build(endpoints: list[tuple[str, Endpoint]], version: str) -> dict[str, Any]:
    models = _models(endpoint for _, endpoint in endpoints)
    refs, schema = models_json_schema(
        [(model, "serialization") for model in models], by_alias=True, ref_template=REF
    )
    components = dict(schema.get("$defs", {}))
    components["Error"] = ENVELOPE
    paths: dict[str, dict[str, Any]] = {}
    for prefix, endpoint in endpoints:
        path = prefix + endpoint.path
        operation = _operation(endpoint, refs, path)
        paths.setdefault(path, {})[endpoint.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tasks Server",
            "version": version,
            "description": "Fire HTTP requests later: after a delay, at a time, with retries.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "owner": {"type": "apiKey", "in": "header", "name": "X-Tasks-Owner-Id"},
            },
        },
    }


def _models(endpoints: Any) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    for endpoint in endpoints:
        for model in (endpoint.answer, endpoint.body):
            if model is not None and model not in found:
                found.append(model)
    return found


def _operation(endpoint: Endpoint, refs: Any, path: str) -> dict[str, Any]:
    doc = (endpoint.handler.__doc__ or "").strip()
    operation: dict[str, Any] = {
        "tags": [endpoint.tag],
        "summary": doc.split("\n")[0] or endpoint.handler.__name__.replace("_", " "),
        "operationId": f"{endpoint.handler.__name__}_{endpoint.tag.lower()}",
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", path)
        ],
        "responses": _responses(endpoint, refs),
    }
    if endpoint.auth:
        operation["security"] = [{"bearer": [], "owner": []}]
    if endpoint.body is not None:
        operation["requestBody"] = {
            "required": True,
            "description": endpoint.body_description,
            "content": {"application/json": {"schema": refs[(endpoint.body, "serialization")]}},
        }
    return operation


def _responses(endpoint: Endpoint, refs: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": "Success"}
    if endpoint.answer is not None:
        schema = refs[(endpoint.answer, "serialization")]
        if endpoint.many:
            schema = {"type": "array", "items": schema}
        answer["content"] = {"application/json": {"schema": schema}}
    responses = {str(endpoint.status): answer}
    error = {"application/json": {"schema": {"$ref": REF.format(model="Error")}}}
    for status, description in ERRORS.items():
        if endpoint.auth or status in ("400", "409", "413"):
            responses[status] = {"description": description, "content": error}
    return responses


async def openapi_json(request: Request) -> Response:
    document: dict[str, Any] = request.app.state.openapi
    return json_response(document)


async def docs(request: Request) -> Response:
    return HTMLResponse(DOCS_PAGE)
