"""Owner routes: register, read, delete (docs/api.md "Owners")."""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Callable

import pytest
from tests.support.server import (
    ApiClient,
    expect_error,
    now_ms,
    task_body,
    unique_name,
)
from tests.support.targets import TargetServer

OWNER_KEYS = {"id", "name", "createdAt", "tasksInQueue", "tasksInQueueLimit"}
ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
KEY = re.compile(r"^[0-9A-Za-z]{64}$")


def _letters(n: int) -> str:
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(n))


def test_register_returns_id_and_key_once(api: ApiClient) -> None:
    response = api.post("/v1/owners/register", json={"name": unique_name()}, auth=False)
    assert response.status_code == 201, response.text
    data = response.json()
    assert set(data) == {"id", "key", "signingSecret"}
    assert ULID.match(data["id"]), data["id"]
    assert KEY.match(data["key"]), data["key"]
    assert data["signingSecret"].startswith("whsec_"), data["signingSecret"]


def test_register_name_with_spaces_is_400(api: ApiClient) -> None:
    response = api.post("/v1/owners/register", json={"name": "invalid task name"}, auth=False)
    data = expect_error(response, 400)
    assert isinstance(data["message"], dict) and "name" in data["message"], data


def test_register_taken_name_is_409(api: ApiClient) -> None:
    name = unique_name()
    api.register_owner(name)
    response = api.post("/v1/owners/register", json={"name": name}, auth=False)
    expect_error(response, 409)


@pytest.mark.parametrize(
    "body",
    [
        {"name": "test"},  # 4 characters
        {"name": "a" * 33},
        {"name": "1abcde"},
        {"name": "-abcde"},
        {"name": "abcde-"},
        {"name": "ab--cde"},
        {"name": "Abcdef"},
        {"name": "abc_def"},
        {"name": ""},
        {"name": 12345},
        {"name": None},
        {},
        {"name": "valid-name", "extra": 1},
    ],
    ids=repr,
)
def test_register_invalid_names_are_400(api: ApiClient, body: dict[str, object]) -> None:
    expect_error(api.post("/v1/owners/register", json=body, auth=False), 400)


def test_register_malformed_json_is_400(api: ApiClient) -> None:
    response = api.post(
        "/v1/owners/register",
        content=b'{"name": ',
        headers={"Content-Type": "application/json"},
        auth=False,
    )
    expect_error(response, 400)


@pytest.mark.parametrize(
    "make",
    [
        lambda: "a" + _letters(4),  # exactly 5
        lambda: "z" + _letters(31),  # exactly 32
        lambda: f"a1-b2-{_letters(8)}",
        lambda: f"n{secrets.randbelow(10**6):06d}",
    ],
    ids=["5-chars", "32-chars", "digits-and-hyphens", "trailing-digits"],
)
def test_register_valid_names(api: ApiClient, make: Callable[[], str]) -> None:
    name = make()
    response = api.post("/v1/owners/register", json={"name": name}, auth=False)
    assert response.status_code == 201, response.text


def test_get_own_owner(api: ApiClient) -> None:
    name = unique_name()
    before = now_ms()
    with api.new_owner(name) as me:
        response = me.get(f"/v1/owners/{name}")
        assert response.status_code == 200, response.text
        data = response.json()
        assert set(data) == OWNER_KEYS
        assert data["id"] == me.owner_id
        assert data["name"] == name
        assert before - 1000 <= data["createdAt"] <= now_ms() + 1000
        assert data["tasksInQueue"] == 0
        assert data["tasksInQueueLimit"] == 1000
        assert str(me.key) not in response.text


def test_get_owner_name_too_short_is_400(owner: ApiClient) -> None:
    expect_error(owner.get("/v1/owners/test"), 400)


def test_get_unknown_owner_name_is_404(owner: ApiClient) -> None:
    expect_error(owner.get("/v1/owners/unavailable-task"), 404)


def test_get_another_owners_name_is_404(make_owner: Callable[..., ApiClient]) -> None:
    alice, bob = make_owner(), make_owner()
    expect_error(bob.get(f"/v1/owners/{alice.name}"), 404)
    assert alice.owner()["name"] == alice.name


def test_tasks_in_queue_counts_running_and_paused(owner: ApiClient, target: TargetServer) -> None:
    slow = task_body(target.url(), config={"executionDelay": 600_000})
    first = owner.register_task(slow)["id"]
    second = owner.register_task(slow)["id"]
    done = owner.register_task(task_body(target.url()))["id"]
    owner.wait_for_state(done, "SUCCESS")
    assert owner.owner()["tasksInQueue"] == 2
    owner.pause(second)
    assert owner.owner()["tasksInQueue"] == 2
    owner.revoke(first)
    assert owner.owner()["tasksInQueue"] == 1
    owner.revoke(second)  # a PAUSED task revoked is no longer counted
    assert owner.owner()["tasksInQueue"] == 0


def test_delete_owner_name_too_short_is_400(owner: ApiClient) -> None:
    expect_error(owner.delete("/v1/owners/test"), 400)


def test_delete_owner_lifecycle(api: ApiClient, target: TargetServer) -> None:
    name = unique_name()
    with api.new_owner(name) as me:
        running = me.register_task(task_body(target.url(), config={"executionDelay": 600_000}))[
            "id"
        ]
        paused = me.register_task(task_body(target.url(), config={"executionDelay": 600_000}))["id"]
        me.pause(paused)

        expect_error(me.delete(f"/v1/owners/{name}"), 422)  # a RUNNING and a PAUSED task
        me.revoke(running)
        expect_error(me.delete(f"/v1/owners/{name}"), 422)  # still the PAUSED one
        me.delete_task(paused)

        response = me.delete(f"/v1/owners/{name}")
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "Done"}

        # The owner is gone: its credentials name an unknown owner.
        expect_error(me.get("/v1/queues"), 403)
        expect_error(me.get(f"/v1/owners/{name}"), 403)

    # The name is free again.
    response = api.post("/v1/owners/register", json={"name": name}, auth=False)
    assert response.status_code == 201, response.text


def test_delete_another_owners_name_is_404(make_owner: Callable[..., ApiClient]) -> None:
    alice, bob = make_owner(), make_owner()
    expect_error(bob.delete(f"/v1/owners/{alice.name}"), 404)
    expect_error(bob.delete("/v1/owners/nobody-here"), 404)
    assert alice.owner()["id"] == alice.owner_id


def test_owner_routes_under_tasks_alias(api: ApiClient) -> None:
    """The /v1/tasks/* owner routes and the X-Task-Id header are accepted as aliases."""
    name = unique_name()
    response = api.post("/v1/tasks/register", json={"name": name}, auth=False)
    assert response.status_code == 201, response.text
    creds = response.json()
    headers = {"Authorization": f"Bearer {creds['key']}", "X-Task-Id": creds["id"]}
    response = api.get(f"/v1/tasks/{name}", headers=headers, auth=False)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == creds["id"]
    response = api.delete(f"/v1/tasks/{name}", headers=headers, auth=False)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "Done"}
