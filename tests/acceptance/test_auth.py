"""Authentication (docs/api.md "Authentication") and the open routes."""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable

import pytest
from tests.support.server import ApiClient, expect_error, task_body
from tests.support.targets import TargetServer

UNKNOWN_TASK = "191E27DB6911726081775249"
UNKNOWN_OWNER = "01JD7Q0Z2D8V3K4M5N6P7Q8R9S"


def _random_key() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(64))


# Every route that needs authentication, as (method, path template, json body).
PROTECTED: list[tuple[str, str, object]] = [
    ("GET", "/v1/queues", None),
    (
        "POST",
        "/v1/queues/register",
        {"httpRequest": {"url": "http://127.0.0.1:9/cb", "method": "GET"}},
    ),
    ("GET", "/v1/queues/{task}", None),
    ("PATCH", "/v1/queues/{task}", {"config": {"retry": 1}}),
    ("DELETE", "/v1/queues/{task}", None),
    ("GET", "/v1/queues/{task}/config", None),
    ("GET", "/v1/queues/{task}/attempts", None),
    ("PATCH", "/v1/queues/{task}/pause", None),
    ("PATCH", "/v1/queues/{task}/resume", None),
    ("PATCH", "/v1/queues/{task}/revoke", None),
    ("POST", "/v1/queues/{task}/execute", None),
    ("GET", "/v1/owners/{name}", None),
    ("DELETE", "/v1/owners/{name}", None),
]


@pytest.fixture
def victim(owner: ApiClient, target: TargetServer) -> tuple[ApiClient, str]:
    """An owner with one long-delay task, which no bad request may touch."""
    task = owner.register_task(task_body(target.url(), config={"executionDelay": 600_000}))
    return owner, task["id"]


def _fill(path: str, owner: ApiClient, task_id: str) -> str:
    return path.format(task=task_id, name=owner.name)


def test_valid_credentials_are_accepted(owner: ApiClient) -> None:
    response = owner.get("/v1/queues")
    assert response.status_code == 200, response.text
    assert response.json() == []


@pytest.mark.parametrize(
    ("method", "path", "body"), PROTECTED, ids=[f"{m} {p}" for m, p, _ in PROTECTED]
)
def test_missing_headers_are_403_on_every_route(
    victim: tuple[ApiClient, str], method: str, path: str, body: object
) -> None:
    owner, task_id = victim
    response = owner.request(method, _fill(path, owner, task_id), json=body, auth=False)
    data = expect_error(response, 403)
    assert data["action"] == "The request should not be repeated"
    assert owner.task(task_id)["state"] == "RUNNING"


@pytest.mark.parametrize(
    ("method", "path", "body"), PROTECTED, ids=[f"{m} {p}" for m, p, _ in PROTECTED]
)
def test_wrong_key_is_401_on_every_route(
    victim: tuple[ApiClient, str], method: str, path: str, body: object
) -> None:
    owner, task_id = victim
    headers = {"Authorization": f"Bearer {_random_key()}", "X-Tasks-Owner-Id": str(owner.owner_id)}
    response = owner.request(
        method, _fill(path, owner, task_id), json=body, headers=headers, auth=False
    )
    data = expect_error(response, 401)
    assert data["action"] == "The request should not be repeated"
    assert owner.task(task_id)["state"] == "RUNNING"


def _headers_cases(owner: ApiClient) -> dict[str, dict[str, str]]:
    key, owner_id = str(owner.key), str(owner.owner_id)
    return {
        "only-authorization": {"Authorization": f"Bearer {key}"},
        "only-owner-id": {"X-Tasks-Owner-Id": owner_id},
        "bearer-invalid": {"Authorization": "Bearer invalid", "X-Tasks-Owner-Id": owner_id},
        "no-scheme": {"Authorization": key, "X-Tasks-Owner-Id": owner_id},
        "basic-scheme": {"Authorization": f"Basic {key}", "X-Tasks-Owner-Id": owner_id},
        "key-63": {"Authorization": f"Bearer {key[:63]}", "X-Tasks-Owner-Id": owner_id},
        "key-65": {"Authorization": f"Bearer {key}A", "X-Tasks-Owner-Id": owner_id},
        "key-symbols": {"Authorization": f"Bearer {key[:62]}-_", "X-Tasks-Owner-Id": owner_id},
        "empty-bearer": {"Authorization": "Bearer", "X-Tasks-Owner-Id": owner_id},
        "owner-id-invalid": {"Authorization": f"Bearer {key}", "X-Tasks-Owner-Id": "invalid"},
        "owner-id-empty": {"Authorization": f"Bearer {key}", "X-Tasks-Owner-Id": ""},
        "owner-id-unknown": {"Authorization": f"Bearer {key}", "X-Tasks-Owner-Id": UNKNOWN_OWNER},
    }


@pytest.mark.parametrize(
    "case",
    [
        "only-authorization",
        "only-owner-id",
        "bearer-invalid",
        "no-scheme",
        "basic-scheme",
        "key-63",
        "key-65",
        "key-symbols",
        "empty-bearer",
        "owner-id-invalid",
        "owner-id-empty",
        "owner-id-unknown",
    ],
)
def test_malformed_credentials_are_403(owner: ApiClient, case: str) -> None:
    headers = _headers_cases(owner)[case]
    expect_error(owner.get("/v1/queues", headers=headers, auth=False), 403)


def test_another_owners_key_is_401(make_owner: Callable[..., ApiClient]) -> None:
    alice, bob = make_owner(), make_owner()
    headers = {"Authorization": f"Bearer {bob.key}", "X-Tasks-Owner-Id": str(alice.owner_id)}
    expect_error(alice.get("/v1/queues", headers=headers, auth=False), 401)


def test_auth_is_checked_before_the_parameters(owner: ApiClient) -> None:
    expect_error(owner.get("/v1/queues/invalid-queue-id", auth=False), 403)
    expect_error(owner.get("/v1/queues?limit=10000", auth=False), 403)
    headers = {"Authorization": f"Bearer {_random_key()}", "X-Tasks-Owner-Id": str(owner.owner_id)}
    expect_error(owner.get("/v1/queues/invalid-queue-id", headers=headers, auth=False), 401)


def test_x_task_id_header_alias(owner: ApiClient) -> None:
    headers = {"Authorization": f"Bearer {owner.key}", "X-Task-Id": str(owner.owner_id)}
    response = owner.get("/v1/queues", headers=headers, auth=False)
    assert response.status_code == 200, response.text


def test_status_is_open(api: ApiClient) -> None:
    response = api.get("/status", auth=False)
    assert response.status_code == 200
    assert response.text.strip() == "OK"


def test_openapi_and_docs_are_open(api: ApiClient) -> None:
    response = api.get("/openapi.json", auth=False)
    assert response.status_code == 200, response.text
    document = response.json()
    assert "paths" in document
    assert "/v1/queues/register" in document["paths"]
    response = api.get("/docs", auth=False)
    assert response.status_code == 200
    assert "html" in response.headers.get("content-type", "")


def test_unknown_route_is_404_envelope(owner: ApiClient) -> None:
    expect_error(owner.get("/v1/nothing-here"), 404)
    expect_error(owner.get("/nope"), 404)
