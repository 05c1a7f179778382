"""``/v1/owners`` and authentication, through the ASGI app."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tasks_server.clock import FrozenClock
from tasks_server.config import Settings
from tasks_server.dispatch.transport.base import Request

from .appkit import DONT_REPEAT, Api, Owner, envelope, serve, task_body
from .fakes import FakeTransport, header
from .webhooks import signed_by


@pytest.fixture
async def api(tmp_path: Path, frozen_clock: FrozenClock) -> AsyncIterator[Api]:
    """With a queue limit of 3."""
    transport = FakeTransport()
    settings = Settings(db=tmp_path / "tasks.db", owner_queue_limit=3, poll_interval_ms=20)
    async with serve(settings, clock=frozen_clock, transport=transport) as client:
        yield Api(client, frozen_clock, transport)


class TestRegister:
    async def test_an_owner_gets_an_id_and_a_key_once(self, api: Api) -> None:
        response = await api.client.post("/v1/owners/register", json={"name": "notif-handler"})
        assert response.status_code == 201
        created = response.json()
        assert set(created) == {"id", "key", "signingSecret"}
        assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", created["id"])
        assert re.fullmatch(r"[A-Za-z0-9]{64}", created["key"])
        assert created["signingSecret"].startswith("whsec_")
        key = base64.b64decode(created["signingSecret"].removeprefix("whsec_"), validate=True)
        assert len(key) == 32

    async def test_a_taken_name_is_a_conflict(self, api: Api) -> None:
        await api.owner("notif-handler")
        response = await api.client.post("/v1/owners/register", json={"name": "notif-handler"})
        assert envelope(response, 409) == "Owner has already registered"

    @pytest.mark.parametrize(
        ("name", "message"),
        [
            ("abcd", "Name must be a string of 5 to 32 characters"),
            ("a" * 33, "Name must be a string of 5 to 32 characters"),
            (12345, "Name must be a string of 5 to 32 characters"),
            ("1abcde", "String cannot start or end with a hyphen"),
            ("-abcde", "String cannot start or end with a hyphen"),
            ("abcde-", "String cannot start or end with a hyphen"),
            ("ab--cd", "String cannot start or end with a hyphen"),
            ("Abcdef", "String cannot start or end with a hyphen"),
            ("ab_cde", "String cannot start or end with a hyphen"),
        ],
    )
    async def test_name_rules(self, api: Api, name: object, message: str) -> None:
        response = await api.client.post("/v1/owners/register", json={"name": name})
        tree = envelope(response, 400)
        assert tree["_errors"] == []
        [error] = tree["name"]["_errors"]
        assert error.startswith(message)

    @pytest.mark.parametrize("name", ["abcde", "a" * 32, "a1-b2-c3", "n0tif-handler-2"])
    async def test_valid_names(self, api: Api, name: str) -> None:
        response = await api.client.post("/v1/owners/register", json={"name": name})
        assert response.status_code == 201

    @pytest.mark.parametrize(
        ("content", "where"),
        [
            (b'{"name": "valid-name", "role": "admin"}', "_errors"),
            (b"{}", "name"),
            (b"not json", "_errors"),
            (b"", "_errors"),
        ],
    )
    async def test_malformed_bodies(self, api: Api, content: bytes, where: str) -> None:
        response = await api.client.post("/v1/owners/register", content=content)
        tree = envelope(response, 400)
        node = tree if where == "_errors" else tree[where]
        assert node["_errors"]

    async def test_an_unknown_field_is_named(self, api: Api) -> None:
        response = await api.client.post(
            "/v1/owners/register", json={"name": "valid-name", "role": "admin"}
        )
        assert envelope(response, 400) == {"_errors": ["Unrecognized key(s) in object: 'role'"]}

    async def test_the_tasks_alias(self, api: Api) -> None:
        response = await api.client.post("/v1/tasks/register", json={"name": "alias-owner"})
        assert response.status_code == 201
        owner = Owner.registered("alias-owner", response.json())
        response = await api.client.get("/v1/tasks/alias-owner", headers=owner.headers)
        assert response.status_code == 200
        assert response.json()["id"] == owner.id


class TestReadAndDelete:
    async def test_read_the_own_record(self, api: Api) -> None:
        owner = await api.owner("owner-one")
        await api.register(owner, task_body(executionDelay=60_000))
        response = await api.client.get("/v1/owners/owner-one", headers=owner.headers)
        assert response.status_code == 200
        assert response.json() == {
            "id": owner.id,
            "name": "owner-one",
            "createdAt": api.clock.now_ms(),
            "tasksInQueue": 1,
            "tasksInQueueLimit": 3,
        }

    async def test_another_owners_record_is_not_found(self, api: Api) -> None:
        owner = await api.owner("owner-one")
        await api.owner("owner-two")
        for method in ("GET", "DELETE"):
            response = await api.call(method, "/v1/owners/owner-two", owner)
            assert envelope(response, 404) == "Owner not found"
        response = await api.call("GET", "/v1/owners/nobody-here", owner)
        assert envelope(response, 404) == "Owner not found"

    async def test_an_invalid_name_in_the_path(self, api: Api) -> None:
        owner = await api.owner("owner-one")
        response = await api.call("GET", "/v1/owners/Bad_Name", owner)
        tree = envelope(response, 400)
        assert set(tree) == {"_errors", "name"}
        [error] = tree["name"]["_errors"]
        assert error.startswith("String cannot start or end with a hyphen")

    async def test_delete_is_refused_while_tasks_are_unfinished(self, api: Api) -> None:
        owner = await api.owner("owner-one")
        running = await api.register(owner, task_body(executionDelay=60_000))
        paused = await api.register(owner, task_body(executionDelay=60_000))
        await api.call("PATCH", f"/v1/queues/{paused['id']}/pause", owner)
        response = await api.call("DELETE", "/v1/owners/owner-one", owner)
        assert envelope(response, 422) == "The owner still has unfinished tasks in queue"

        await api.call("PATCH", f"/v1/queues/{running['id']}/revoke", owner)
        response = await api.call("DELETE", "/v1/owners/owner-one", owner)
        envelope(response, 422)
        await api.call("PATCH", f"/v1/queues/{paused['id']}/revoke", owner)

        response = await api.call("DELETE", "/v1/owners/owner-one", owner)
        assert (response.status_code, response.json()) == (200, {"status": "Done"})
        response = await api.call("GET", "/v1/owners/owner-one", owner)
        message = envelope(response, 403, DONT_REPEAT)
        assert message == "The server did not accept valid authentication"
        again = await api.client.post("/v1/owners/register", json={"name": "owner-one"})
        assert again.status_code == 201


class TestAuthentication:
    @pytest.fixture
    async def owner(self, api: Api) -> Owner:
        return await api.owner("owner-one")

    async def answer(self, api: Api, headers: dict[str, str]) -> int:
        response = await api.client.get("/v1/queues", headers=headers)
        if response.status_code != 200:
            envelope(response, response.status_code, DONT_REPEAT)
        return response.status_code

    async def test_valid_credentials(self, api: Api, owner: Owner) -> None:
        assert await self.answer(api, owner.headers) == 200

    async def test_the_x_task_id_alias(self, api: Api, owner: Owner) -> None:
        headers = {"Authorization": f"Bearer {owner.key}", "X-Task-Id": owner.id}
        assert await self.answer(api, headers) == 200

    async def test_a_wrong_key_is_401(self, api: Api, owner: Owner) -> None:
        headers = {**owner.headers, "Authorization": "Bearer " + "x" * 64}
        assert await self.answer(api, headers) == 401
        other = await api.owner("owner-two")
        stolen = {**owner.headers, "Authorization": f"Bearer {other.key}"}
        assert await self.answer(api, stolen) == 401

    @pytest.mark.parametrize(
        "change",
        [
            {"Authorization": None},
            {"X-Tasks-Owner-Id": None},
            {"Authorization": "Basic dXNlcjpwYXNz"},
            {"Authorization": "Bearer short"},
            {"Authorization": "Bearer " + "x" * 65},
            {"X-Tasks-Owner-Id": "not-a-ulid"},
            {"X-Tasks-Owner-Id": "01ARZ3NDEKTSV4RRFFQ69G5FAL"},  # L is not Crockford
            {"X-Tasks-Owner-Id": "01ARZ3NDEKTSV4RRFFQ69G5FAV"},  # well formed, unknown
        ],
    )
    async def test_missing_malformed_or_unknown_is_403(
        self, api: Api, owner: Owner, change: dict[str, str | None]
    ) -> None:
        headers = {**owner.headers, **change}
        sent = {name: value for name, value in headers.items() if value is not None}
        assert await self.answer(api, sent) == 403

    async def test_every_owner_route_needs_credentials(self, api: Api, owner: Owner) -> None:
        for method, path in [
            ("GET", "/v1/owners/owner-one"),
            ("DELETE", "/v1/owners/owner-one"),
            ("GET", "/v1/owners/owner-one/signing-secrets"),
            ("POST", "/v1/owners/owner-one/signing-secrets/rotate"),
            ("GET", "/v1/queues"),
            ("POST", "/v1/queues/register"),
            ("GET", f"/v1/queues/{'A' * 24}"),
            ("PATCH", f"/v1/queues/{'A' * 24}"),
            ("DELETE", f"/v1/queues/{'A' * 24}"),
            ("GET", f"/v1/queues/{'A' * 24}/config"),
            ("GET", f"/v1/queues/{'A' * 24}/attempts"),
            ("PATCH", f"/v1/queues/{'A' * 24}/pause"),
            ("PATCH", f"/v1/queues/{'A' * 24}/resume"),
            ("PATCH", f"/v1/queues/{'A' * 24}/revoke"),
            ("POST", f"/v1/queues/{'A' * 24}/execute"),
        ]:
            response = await api.client.request(method, path)
            assert response.status_code == 403, (method, path)
            envelope(response, 403, DONT_REPEAT)


DAY_MS = 86_400_000


class TestSigningSecrets:
    @pytest.fixture
    async def owner(self, api: Api) -> Owner:
        return await api.owner("owner-one")

    async def secrets(self, api: Api, owner: Owner, prefix: str = "/v1/owners") -> Any:
        response = await api.call("GET", f"{prefix}/{owner.name}/signing-secrets", owner)
        assert response.status_code == 200, response.text
        return response.json()

    async def rotate(self, api: Api, owner: Owner, body: Any = None) -> httpx.Response:
        path = f"/v1/owners/{owner.name}/signing-secrets/rotate"
        if body is None:
            return await api.call("POST", path, owner)
        return await api.call("POST", path, owner, json=body)

    async def test_the_registration_secret_is_the_one_in_force(
        self, api: Api, owner: Owner
    ) -> None:
        assert await self.secrets(api, owner) == [
            {"secret": owner.signing_secret, "createdAt": api.clock.now_ms(), "expiresAt": None}
        ]

    async def test_each_owner_has_its_own(self, api: Api, owner: Owner) -> None:
        other = await api.owner("owner-two")
        assert other.signing_secret != owner.signing_secret
        assert [s["secret"] for s in await self.secrets(api, other)] == [other.signing_secret]

    async def test_a_rotation_keeps_the_old_secret_a_day_by_default(
        self, api: Api, owner: Owner
    ) -> None:
        t0 = api.clock.now_ms()
        api.clock.advance(5_000)
        response = await self.rotate(api, owner)
        assert response.status_code == 201, response.text
        rotated = response.json()
        new = rotated[0]["secret"]
        assert new.startswith("whsec_") and new != owner.signing_secret
        assert len(base64.b64decode(new.removeprefix("whsec_"), validate=True)) == 32
        assert rotated == [
            {"secret": new, "createdAt": t0 + 5_000, "expiresAt": None},
            {"secret": owner.signing_secret, "createdAt": t0, "expiresAt": t0 + 5_000 + DAY_MS},
        ]
        assert await self.secrets(api, owner) == rotated
        api.clock.advance(DAY_MS - 1)
        assert await self.secrets(api, owner) == rotated
        api.clock.advance(1)
        assert await self.secrets(api, owner) == rotated[:1]

    async def test_an_empty_object_is_the_default_too(self, api: Api, owner: Owner) -> None:
        response = await self.rotate(api, owner, {})
        assert response.status_code == 201
        assert response.json()[1]["expiresAt"] == api.clock.now_ms() + DAY_MS

    async def test_overlap_seconds(self, api: Api, owner: Owner) -> None:
        response = await self.rotate(api, owner, {"overlapSeconds": 90})
        assert response.status_code == 201
        assert response.json()[1]["expiresAt"] == api.clock.now_ms() + 90_000

    async def test_an_overlap_of_zero_retires_the_old_secret_at_once(
        self, api: Api, owner: Owner
    ) -> None:
        response = await self.rotate(api, owner, {"overlapSeconds": 0})
        assert response.status_code == 201
        [only] = response.json()
        assert only["secret"] != owner.signing_secret
        assert only["expiresAt"] is None
        assert await self.secrets(api, owner) == [only]

    async def test_the_longest_overlap_is_thirty_days(self, api: Api, owner: Owner) -> None:
        response = await self.rotate(api, owner, {"overlapSeconds": 30 * 86_400})
        assert response.status_code == 201
        assert response.json()[1]["expiresAt"] == api.clock.now_ms() + 30 * DAY_MS

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ({"overlapSeconds": 30 * 86_400 + 1}, "Input should be less than or equal to 2592000"),
            ({"overlapSeconds": -1}, "Input should be greater than or equal to 0"),
            ({"overlapSeconds": "60"}, "Input should be a valid integer"),
            ({"overlapSeconds": 1.5}, "Input should be a valid integer"),
        ],
    )
    async def test_invalid_overlaps(
        self, api: Api, owner: Owner, body: dict[str, Any], message: str
    ) -> None:
        tree = envelope(await self.rotate(api, owner, body), 400)
        assert tree == {"_errors": [], "overlapSeconds": {"_errors": [message]}}
        assert [s["secret"] for s in await self.secrets(api, owner)] == [owner.signing_secret]

    @pytest.mark.parametrize("content", [b"{", b"[]", b"null", b'{"overlap": 5}'])
    async def test_a_body_that_is_no_rotation(
        self, api: Api, owner: Owner, content: bytes
    ) -> None:
        path = f"/v1/owners/{owner.name}/signing-secrets/rotate"
        tree = envelope(await api.call("POST", path, owner, content=content), 400)
        assert tree["_errors"]
        assert [s["secret"] for s in await self.secrets(api, owner)] == [owner.signing_secret]

    async def test_another_owners_secrets_are_not_found(self, api: Api, owner: Owner) -> None:
        other = await api.owner("owner-two")
        for method, path in [
            ("GET", "/v1/owners/owner-two/signing-secrets"),
            ("POST", "/v1/owners/owner-two/signing-secrets/rotate"),
        ]:
            response = await api.call(method, path, owner)
            assert envelope(response, 404) == "Owner not found"
        assert [s["secret"] for s in await self.secrets(api, other)] == [other.signing_secret]

    async def test_an_invalid_name_in_the_path(self, api: Api, owner: Owner) -> None:
        for method, path in [
            ("GET", "/v1/owners/Bad_Name/signing-secrets"),
            ("POST", "/v1/owners/Bad_Name/signing-secrets/rotate"),
        ]:
            tree = envelope(await api.call(method, path, owner), 400)
            assert set(tree) == {"_errors", "name"}

    async def test_the_tasks_alias(self, api: Api, owner: Owner) -> None:
        path = f"/v1/tasks/{owner.name}/signing-secrets"
        rotated = await api.call("POST", path + "/rotate", owner, json={"overlapSeconds": 0})
        assert rotated.status_code == 201
        assert await self.secrets(api, owner, "/v1/tasks") == rotated.json()

    async def test_a_deleted_owner_registered_again_gets_a_new_secret(
        self, api: Api, owner: Owner
    ) -> None:
        response = await api.call("DELETE", f"/v1/owners/{owner.name}", owner)
        assert response.status_code == 200
        again = await api.owner(owner.name)
        assert again.signing_secret != owner.signing_secret
        assert [s["secret"] for s in await self.secrets(api, again)] == [again.signing_secret]


class TestSignedDeliveries:
    """What the fake transport is handed carries signatures a receiver can check."""

    async def delivered(self, api: Api, owner: Owner) -> Request:
        sent = len(api.transport.requests)
        task = await api.register(owner, task_body(executionDelay=0))
        await api.settled(owner, task["id"])
        request = api.transport.requests[sent]
        assert header(request, "webhook-id") == task["id"]
        return request

    async def signers(self, api: Api, owner: Owner, candidates: list[str]) -> list[str]:
        request = await self.delivered(api, owner)
        return signed_by(lambda name: header(request, name), request.body or b"", candidates)

    async def test_signed_with_the_secret_given_at_registration(self, api: Api) -> None:
        owner = await api.owner("owner-one")
        other = await api.owner("owner-two")
        candidates = [owner.signing_secret, other.signing_secret]
        assert await self.signers(api, owner, candidates) == [owner.signing_secret]
        assert await self.signers(api, other, candidates) == [other.signing_secret]

    async def test_both_secrets_sign_during_the_overlap_then_only_the_new_one(
        self, api: Api
    ) -> None:
        owner = await api.owner("owner-one")
        path = f"/v1/owners/{owner.name}/signing-secrets/rotate"
        response = await api.call("POST", path, owner, json={"overlapSeconds": 60})
        new = response.json()[0]["secret"]
        both = [new, owner.signing_secret]
        assert await self.signers(api, owner, both) == both
        api.clock.advance(59_999)
        request = await self.delivered(api, owner)
        offered = (header(request, "webhook-signature") or "").split(" ")
        assert len(offered) == 2
        assert signed_by(lambda name: header(request, name), request.body or b"", both) == both
        api.clock.advance(1)
        assert await self.signers(api, owner, both) == [new]

    async def test_an_overlap_of_zero_stops_the_old_secret_at_once(self, api: Api) -> None:
        owner = await api.owner("owner-one")
        path = f"/v1/owners/{owner.name}/signing-secrets/rotate"
        response = await api.call("POST", path, owner, json={"overlapSeconds": 0})
        [new] = [row["secret"] for row in response.json()]
        request = await self.delivered(api, owner)
        assert len((header(request, "webhook-signature") or "").split(" ")) == 1
        assert signed_by(
            lambda name: header(request, name), request.body or b"", [new, owner.signing_secret]
        ) == [new]
