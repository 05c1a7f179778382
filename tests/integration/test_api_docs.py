"""The open routes: health, the OpenAPI document, the docs page, and unknown routes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .appkit import Api, envelope

ROUTES = {
    ("post", "/v1/owners/register"),
    ("get", "/v1/owners/{name}"),
    ("delete", "/v1/owners/{name}"),
    ("get", "/v1/owners/{name}/signing-secrets"),
    ("post", "/v1/owners/{name}/signing-secrets/rotate"),
    ("post", "/v1/queues/register"),
    ("get", "/v1/queues"),
    ("get", "/v1/queues/{id}"),
    ("patch", "/v1/queues/{id}"),
    ("delete", "/v1/queues/{id}"),
    ("get", "/v1/queues/{id}/config"),
    ("get", "/v1/queues/{id}/attempts"),
    ("patch", "/v1/queues/{id}/pause"),
    ("patch", "/v1/queues/{id}/resume"),
    ("patch", "/v1/queues/{id}/revoke"),
    ("post", "/v1/queues/{id}/execute"),
}


@pytest.fixture
async def document(api: Api) -> dict[str, Any]:
    response = await api.client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    found: dict[str, Any] = response.json()
    return found


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


async def test_status_is_open(api: Api) -> None:
    response = await api.client.get("/status")
    assert (response.status_code, response.text) == (200, "OK")


async def test_every_route_is_documented(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.")
    documented = {
        (method, path)
        for path, operations in document["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert ROUTES <= documented
    assert not any(path.startswith("/v1/tasks") for path in document["paths"])


async def test_the_task_spec_schema_is_included(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    spec = schemas["TaskSpec"]
    assert {"httpRequest", "config", "metadata"} <= set(spec["properties"])
    assert spec.get("required") == ["httpRequest"]
    assert spec.get("additionalProperties") is False
    register = document["paths"]["/v1/queues/register"]["post"]
    body_schema = register["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema == {"$ref": "#/components/schemas/TaskSpec"}
    config = schemas[spec["properties"]["config"]["$ref"].rsplit("/", 1)[1]]
    assert {"executionDelay", "executeAt", "retry", "timeZone", "userAgent"} <= set(
        config["properties"]
    )


async def test_every_reference_resolves(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    found = set(refs(document))
    assert found
    for ref in found:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in schemas, ref


async def test_operations_declare_their_security_and_errors(document: dict[str, Any]) -> None:
    for method, path in ROUTES:
        operation = document["paths"][path][method]
        if path == "/v1/owners/register":
            assert "security" not in operation
        else:
            assert operation["security"], (method, path)
            assert {"401", "403", "404"} <= set(operation["responses"]), (method, path)


async def test_operation_ids_are_unique(document: dict[str, Any]) -> None:
    ids = [
        operation["operationId"]
        for operations in document["paths"].values()
        for operation in operations.values()
    ]
    assert len(ids) == len(set(ids)) >= len(ROUTES)


async def test_the_docs_page(api: Api) -> None:
    response = await api.client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in response.text


async def test_an_unknown_route_is_a_404_envelope(api: Api) -> None:
    assert envelope(await api.client.get("/v1/nothing"), 404) == "Not found"
    assert envelope(await api.client.get("/"), 404) == "Not found"


async def test_a_wrong_method_is_an_envelope_too(api: Api) -> None:
    response = await api.client.put("/status")
    assert response.status_code == 405
    assert set(response.json()) == {"action", "message"}
