"""``/v1/queues`` through the ASGI app, on a frozen clock with a scripted transport."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tasks_server.clock import FrozenClock
from tasks_server.config import Settings
from tasks_server.dispatch.transport.base import Auth, Options, Proxy, Response
from tasks_server.dispatch.transport.curl import unsupported_options
from tasks_server.spec import DEFAULT_USER_AGENT

from .appkit import TASK_FIELDS, URL, Api, Owner, envelope, serve, task_body
from .fakes import FakeTransport, Script, eventually, header, hold

HOUR = 3_600_000
SUMMARY_FIELDS = TASK_FIELDS - {"response", "metadata"}


@pytest.fixture
async def owner(api: Api) -> Owner:
    return await api.owner("owner-one")


async def queued(api: Api, owner: Owner, **config: Any) -> dict[str, Any]:
    """A task that waits an hour unless told otherwise."""
    return await api.register(owner, task_body(**{"executionDelay": HOUR, **config}))


class TestRegister:
    async def test_the_task_object(self, api: Api, owner: Owner) -> None:
        t0 = api.clock.now_ms()
        body = {**task_body(executionDelay=60_000), "metadata": {"tag": "checkout"}}
        response = await api.call("POST", "/v1/queues/register", owner, json=body)
        assert response.status_code == 201
        task = response.json()
        assert set(task) == TASK_FIELDS
        assert re.fullmatch(r"[0-9A-Z]{24}", task["id"])
        assert task == {
            "id": task["id"],
            "state": "RUNNING",
            "createdAt": t0,
            "statusCode": 0,
            "estimateEndAt": 0,
            "estimateExecutionAt": t0 + 60_000,
            "response": None,
            "metadata": {"tag": "checkout"},
            "retryCount": 0,
        }

    async def test_the_default_delay_is_a_millisecond(self, api: Api, owner: Owner) -> None:
        task = await api.register(owner, task_body())
        assert task["estimateExecutionAt"] == api.clock.now_ms() + 1

    async def test_execute_at_is_the_first_due_time(self, api: Api, owner: Owner) -> None:
        t0 = api.clock.now_ms()
        task = await api.register(owner, task_body(executeAt=t0 + 5_000, executionDelay=10))
        assert task["estimateExecutionAt"] == t0 + 5_000
        task = await api.register(
            owner, task_body(executeAt="Jun 1 2030 7:00:00 AM", timeZone="Asia/Jakarta")
        )
        assert task["estimateExecutionAt"] == 1_906_502_400_000

    async def test_a_validation_error_is_a_tree(self, api: Api, owner: Owner) -> None:
        body = {
            "httpRequest": {"url": "ftp://target.test/a", "method": "GET"},
            "config": {"retry": "5", "executeAt": api.clock.now_ms()},
            "extra": True,
        }
        response = await api.call("POST", "/v1/queues/register", owner, json=body)
        assert envelope(response, 400) == {
            "_errors": ["Unrecognized key(s) in object: 'extra'"],
            "httpRequest": {
                "_errors": [],
                "url": {"_errors": ["URL must start with either http or https and name a host"]},
            },
            "config": {
                "_errors": [],
                "retry": {"_errors": ["Input should be a valid integer"]},
                "executeAt": {"_errors": ["Execution date must be greater than today"]},
            },
        }

    async def test_an_unknown_key_named_like_a_data_form(self, api: Api, owner: Owner) -> None:
        body = {**task_body(), "json": {"k": "v"}}
        response = await api.call("POST", "/v1/queues/register", owner, json=body)
        assert envelope(response, 400) == {"_errors": ["Unrecognized key(s) in object: 'json'"]}

    @pytest.mark.parametrize("content", [b"{", b"", b"[]", b"null", b"\xff\xfe"])
    async def test_a_body_that_is_no_json_object(
        self, api: Api, owner: Owner, content: bytes
    ) -> None:
        response = await api.call("POST", "/v1/queues/register", owner, content=content)
        tree = envelope(response, 400)
        assert tree["_errors"]

    async def test_a_body_over_the_limit_is_413(self, api: Api, owner: Owner) -> None:
        body = task_body()
        body["httpRequest"]["data"] = "x" * 40_000
        response = await api.call("POST", "/v1/queues/register", owner, json=body)
        assert envelope(response, 413) == "The request body is larger than 32768 bytes"

    async def test_a_streamed_body_over_the_limit_is_413(self, api: Api, owner: Owner) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(40):
                yield b" " * 1_000

        response = await api.call("POST", "/v1/queues/register", owner, content=chunks())
        envelope(response, 413)
        assert (await api.call("GET", "/v1/queues", owner)).json() == []

    async def test_the_queue_limit_is_422_and_holds_under_concurrency(
        self, db_path: Path, frozen_clock: FrozenClock
    ) -> None:
        settings = Settings(db=db_path, owner_queue_limit=5, poll_interval_ms=20)
        async with serve(settings, clock=frozen_clock, transport=FakeTransport()) as client:
            api = Api(client, frozen_clock, FakeTransport())
            owner = await api.owner("owner-one")
            body = task_body(executionDelay=HOUR)
            responses = await asyncio.gather(
                *(api.call("POST", "/v1/queues/register", owner, json=body) for _ in range(20))
            )
            codes = sorted(r.status_code for r in responses)
            assert codes == [201] * 5 + [422] * 15
            refused = next(r for r in responses if r.status_code == 422)
            assert envelope(refused, 422) == "Tasks in queue has reached it's limit"
            record = (await api.call("GET", "/v1/owners/owner-one", owner)).json()
            assert (record["tasksInQueue"], record["tasksInQueueLimit"]) == (5, 5)

            tasks = (await api.call("GET", "/v1/queues", owner)).json()
            await api.call("PATCH", f"/v1/queues/{tasks[0]['id']}/revoke", owner)
            again = await api.call("POST", "/v1/queues/register", owner, json=body)
            assert again.status_code == 201


class TestRead:
    async def test_read_back(self, api: Api, owner: Owner) -> None:
        task = await queued(api, owner)
        assert await api.task(owner, task["id"]) == task

    async def test_lowercase_ids_are_accepted(self, api: Api, owner: Owner) -> None:
        task = await queued(api, owner)
        response = await api.call("GET", f"/v1/queues/{task['id'].lower()}", owner)
        assert response.json() == task

    @pytest.mark.parametrize("bad", ["short", "A" * 25, "A" * 23 + "-", "A" * 23 + "é"])
    async def test_a_malformed_id_is_400(self, api: Api, owner: Owner, bad: str) -> None:
        response = await api.call("GET", f"/v1/queues/{bad}", owner)
        assert envelope(response, 400) == {
            "_errors": [],
            "queueId": {"_errors": ["Invalid queue id"]},
        }

    async def test_an_unknown_id_is_404(self, api: Api, owner: Owner) -> None:
        for path in ("", "/config", "/attempts"):
            response = await api.call("GET", f"/v1/queues/{'0' * 24}{path}", owner)
            assert envelope(response, 404) == "Task not found"


class TestList:
    @pytest.fixture
    async def three(self, api: Api, owner: Owner) -> list[dict[str, Any]]:
        tasks = []
        for delay in (30_000, 10_000, 20_000):
            tasks.append(await queued(api, owner, executionDelay=delay))
            api.clock.advance(10)
        return tasks

    async def ids(self, api: Api, owner: Owner, query: str = "") -> list[str]:
        response = await api.call("GET", "/v1/queues" + query, owner)
        assert response.status_code == 200, response.text
        return [task["id"] for task in response.json()]

    async def test_summaries(self, api: Api, owner: Owner, three: list[dict[str, Any]]) -> None:
        listed = (await api.call("GET", "/v1/queues", owner)).json()
        assert [set(task) for task in listed] == [SUMMARY_FIELDS] * 3
        assert listed[0] == {k: v for k, v in three[0].items() if k in SUMMARY_FIELDS}

    async def test_order_and_sort(
        self, api: Api, owner: Owner, three: list[dict[str, Any]]
    ) -> None:
        created = [task["id"] for task in three]
        assert await self.ids(api, owner) == created
        assert await self.ids(api, owner, "?sort=desc") == created[::-1]
        assert await self.ids(api, owner, "?order=estimateExecutionAt") == [
            created[1],
            created[2],
            created[0],
        ]
        assert await self.ids(api, owner, "?order=estimateExecutionAt&sort=desc") == [
            created[0],
            created[2],
            created[1],
        ]

    async def test_by_end_time(self, api: Api, owner: Owner, three: list[dict[str, Any]]) -> None:
        for task in (three[2], three[0]):
            api.clock.advance(5)
            await api.call("PATCH", f"/v1/queues/{task['id']}/revoke", owner)
        ordered = await self.ids(api, owner, "?order=estimateEndAt&sort=desc")
        assert ordered == [three[0]["id"], three[2]["id"], three[1]["id"]]

    async def test_state_filter_is_case_insensitive(
        self, api: Api, owner: Owner, three: list[dict[str, Any]]
    ) -> None:
        await api.call("PATCH", f"/v1/queues/{three[1]['id']}/pause", owner)
        assert await self.ids(api, owner, "?state=paused") == [three[1]["id"]]
        assert await self.ids(api, owner, "?state=PAUSED") == [three[1]["id"]]
        assert len(await self.ids(api, owner, "?state=Running")) == 2
        assert await self.ids(api, owner, "?state=SUCCESS") == []

    async def test_limit_and_offset(
        self, api: Api, owner: Owner, three: list[dict[str, Any]]
    ) -> None:
        created = [task["id"] for task in three]
        assert await self.ids(api, owner, "?limit=2") == created[:2]
        assert await self.ids(api, owner, "?limit=2&offset=2") == created[2:]
        assert await self.ids(api, owner, "?offset=5") == []

    async def test_ten_by_default_and_up_to_a_thousand(self, api: Api, owner: Owner) -> None:
        for _ in range(12):
            await queued(api, owner)
        assert len(await self.ids(api, owner)) == 10
        assert len(await self.ids(api, owner, "?limit=1000")) == 12

    @pytest.mark.parametrize(
        ("query", "field"),
        [
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("limit=ten", "limit"),
            ("offset=-1", "offset"),
            ("order=id", "order"),
            ("sort=up", "sort"),
            ("state=DONE", "state"),
        ],
    )
    async def test_invalid_parameters(self, api: Api, owner: Owner, query: str, field: str) -> None:
        tree = envelope(await api.call("GET", "/v1/queues?" + query, owner), 400)
        assert set(tree) == {"_errors", field}
        assert tree[field]["_errors"]

    async def test_an_unknown_parameter(self, api: Api, owner: Owner) -> None:
        response = await api.call("GET", "/v1/queues?page=2", owner)
        assert envelope(response, 400) == {"_errors": ["Unrecognized key(s) in object: 'page'"]}


class TestDelete:
    async def test_delete_in_any_state(self, api: Api, owner: Owner) -> None:
        running, revoked = await queued(api, owner), await queued(api, owner)
        await api.call("PATCH", f"/v1/queues/{revoked['id']}/revoke", owner)
        for task in (running, revoked):
            response = await api.call("DELETE", f"/v1/queues/{task['id']}", owner)
            assert (response.status_code, response.json()) == (200, {"status": "Done"})
            assert envelope(await api.call("GET", f"/v1/queues/{task['id']}", owner), 404)
            envelope(await api.call("DELETE", f"/v1/queues/{task['id']}", owner), 404)
        record = (await api.call("GET", "/v1/owners/owner-one", owner)).json()
        assert record["tasksInQueue"] == 0


class TestConfig:
    async def test_defaults_are_shown(self, api: Api, owner: Owner) -> None:
        task = await api.register(owner, task_body("http://target.test/a", "get"))
        response = await api.call("GET", f"/v1/queues/{task['id']}/config", owner)
        assert response.status_code == 200
        shown = response.json()
        assert shown["httpRequest"]["url"] == "http://target.test/a"
        assert shown["httpRequest"]["method"] == "GET"
        documented = {
            "timeZone": "UTC",
            "executionDelay": 1,
            "executeAt": None,
            "executeImmediately": False,
            "retry": 0,
            "retryAt": None,
            "retryInterval": 1,
            "retryExponential": False,
            "ignoreStatusCode": [],
            "timeout": 30_000,
            "timeoutAt": None,
            "userAgent": DEFAULT_USER_AGENT,
            "traceResponseData": True,
            "ca": None,
            "cert": None,
            "key": None,
        }
        assert {name: shown["config"].get(name, "absent") for name in documented} == documented
        assert shown["metadata"] is None

    async def test_dates_are_shown_in_milliseconds(self, api: Api, owner: Owner) -> None:
        task = await api.register(owner, task_body(executeAt="2030-06-01T00:00:00Z"))
        shown = (await api.call("GET", f"/v1/queues/{task['id']}/config", owner)).json()
        assert shown["config"]["executeAt"] == 1_906_502_400_000

    async def test_secrets_are_masked(self, api: Api, owner: Owner, tmp_path: Path) -> None:
        key_file = tmp_path / "client.key"
        key_file.write_text("-----BEGIN PRIVATE KEY-----\n")
        pem = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n").decode()
        body = task_body(
            executionDelay=HOUR,
            ca=pem,
            cert={"value": pem, "password": "hunter2"},
            key=base64.b64encode(b"-----BEGIN PRIVATE KEY-----\nsecret\n").decode(),
        )
        body["httpRequest"]["headers"] = {
            "Authorization": "Bearer secret",
            "cookie": "session=secret",
            "Proxy-Authorization": "Basic secret",
            "X-Visible": "shown",
        }
        task = await api.register(owner, body)
        shown = (await api.call("GET", f"/v1/queues/{task['id']}/config", owner)).json()
        assert shown["httpRequest"]["headers"] == {
            "Authorization": "********",
            "cookie": "********",
            "Proxy-Authorization": "********",
            "X-Visible": "shown",
        }
        assert shown["config"]["cert"] == {"value": pem, "password": "********"}
        assert shown["config"]["key"] == "********"
        assert shown["config"]["ca"] == pem
        assert "secret" not in str(shown) and "hunter2" not in str(shown)

        patch = {"config": {"key": str(key_file)}}
        await api.call("PATCH", f"/v1/queues/{task['id']}", owner, json=patch)
        shown = (await api.call("GET", f"/v1/queues/{task['id']}/config", owner)).json()
        assert shown["config"]["key"] == str(key_file)

    async def test_still_readable_after_a_ca_file_is_removed(
        self, api: Api, owner: Owner, tmp_path: Path
    ) -> None:
        ca = tmp_path / "ca.pem"
        ca.write_text("-----BEGIN CERTIFICATE-----\n")
        task = await queued(api, owner, ca=str(ca))
        ca.unlink()
        response = await api.call("GET", f"/v1/queues/{task['id']}/config", owner)
        assert response.status_code == 200, response.text
        assert response.json()["config"]["ca"] == str(ca)


class TestTransitions:
    async def test_pause(self, api: Api, owner: Owner) -> None:
        task = await queued(api, owner)
        api.clock.advance(1_234)
        response = await api.call("PATCH", f"/v1/queues/{task['id']}/pause", owner)
        assert (response.status_code, response.json()) == (200, {"status": "Done"})
        paused = await api.task(owner, task["id"])
        assert paused["state"] == "PAUSED"
        assert paused["estimateEndAt"] == api.clock.now_ms()
        assert paused["estimateExecutionAt"] == task["estimateExecutionAt"]

    async def test_revoke(self, api: Api, owner: Owner) -> None:
        task = await queued(api, owner)
        await api.call("PATCH", f"/v1/queues/{task['id']}/pause", owner)
        api.clock.advance(10)
        response = await api.call("PATCH", f"/v1/queues/{task['id']}/revoke", owner)
        assert (response.status_code, response.json()) == (200, {"status": "Done"})
        revoked = await api.task(owner, task["id"])
        assert (revoked["state"], revoked["estimateEndAt"]) == ("REVOKED", api.clock.now_ms())

    @pytest.mark.parametrize(
        ("setup", "method", "action", "message"),
        [
            ([], "PATCH", "resume", "Cannot resume a task in state RUNNING; it must be PAUSED"),
            (["pause"], "PATCH", "pause", "Cannot pause a task in state PAUSED; it must be RUN"),
            (["pause"], "POST", "execute", "Cannot execute a task in state PAUSED"),
            (["revoke"], "PATCH", "revoke", "Cannot revoke a task in state REVOKED"),
            (["revoke"], "PATCH", "resume", "Cannot resume a task in state REVOKED"),
            (["revoke"], "PATCH", "pause", "Cannot pause a task in state REVOKED"),
            (["revoke"], "POST", "execute", "Cannot execute a task in state REVOKED"),
        ],
    )
    async def test_invalid_transitions_are_422(
        self, api: Api, owner: Owner, setup: list[str], method: str, action: str, message: str
    ) -> None:
        task = await queued(api, owner)
        for step in setup:
            assert (await api.call("PATCH", f"/v1/queues/{task['id']}/{step}", owner)).is_success
        before = await api.task(owner, task["id"])
        response = await api.call(method, f"/v1/queues/{task['id']}/{action}", owner)
        assert envelope(response, 422).startswith(message)
        assert await api.task(owner, task["id"]) == before

    async def test_an_edit_of_a_finished_task_is_422(self, api: Api, owner: Owner) -> None:
        task = await queued(api, owner)
        await api.call("PATCH", f"/v1/queues/{task['id']}/revoke", owner)
        response = await api.call(
            "PATCH", f"/v1/queues/{task['id']}", owner, json={"config": {"retry": 1}}
        )
        assert envelope(response, 422).startswith("Cannot edit a task in state REVOKED")


class TestSchedule:
    async def test_resume_gives_back_the_time_that_was_left(self, api: Api, owner: Owner) -> None:
        t0 = api.clock.now_ms()
        task = await queued(api, owner, executionDelay=10_000)
        api.clock.advance(4_000)
        await api.call("PATCH", f"/v1/queues/{task['id']}/pause", owner)
        api.clock.advance(100_000)
        response = await api.call("PATCH", f"/v1/queues/{task['id']}/resume", owner)
        assert response.status_code == 200
        resumed = response.json()
        assert set(resumed) == TASK_FIELDS
        assert (resumed["state"], resumed["estimateEndAt"]) == ("RUNNING", 0)
        assert resumed["estimateExecutionAt"] == t0 + 104_000 + 6_000
        assert await api.task(owner, task["id"]) == resumed

    async def test_execute_at_still_ahead_is_kept(self, api: Api, owner: Owner) -> None:
        t0 = api.clock.now_ms()
        task = await api.register(owner, task_body(executeAt=t0 + 60_000))
        api.clock.advance(1_000)
        await api.call("PATCH", f"/v1/queues/{task['id']}/pause", owner)
        api.clock.advance(1_000)
        resumed = (await api.call("PATCH", f"/v1/queues/{task['id']}/resume", owner)).json()
        assert resumed["estimateExecutionAt"] == t0 + 60_000

    async def test_execute_at_passed_while_paused_fires_with_execute_immediately(
        self, api: Api, owner: Owner
    ) -> None:
        t0 = api.clock.now_ms()
        task = await api.register(
            owner, task_body(executeAt=t0 + 60_000, executeImmediately=True)
        )
        api.clock.advance(1_000)
        await api.call("PATCH", f"/v1/queues/{task['id']}/pause", owner)
        api.clock.advance(100_000)
        resumed = (await api.call("PATCH", f"/v1/queues/{task['id']}/resume", owner)).json()
        assert resumed["estimateExecutionAt"] == t0 + 101_000
        assert (await api.settled(owner, task["id"]))["state"] == "SUCCESS"
        assert header(api.transport.requests[0], "X-Tasks-Queue-Id") == task["id"]

    async def test_execute_at_passed_while_paused_waits_what_was_left_otherwise(
        self, api: Api, owner: Owner
    ) -> None:
        t0 = api.clock.now_ms()
        task = await api.register(owner, task_body(executeAt=t0 + 60_000))
        api.clock.advance(1_000)
        await api.call("PATCH", f"/v1/queues/{task['id']}/pause", owner)
        api.clock.advance(100_000)
        resumed = (await api.call("PATCH", f"/v1/queues/{task['id']}/resume", owner)).json()
        assert resumed["estimateExecutionAt"] == t0 + 101_000 + 59_000

    async def test_a_retry_wait_is_relative_even_after_execute_at(
        self, api: Api, owner: Owner
    ) -> None:
        t0 = api.clock.now_ms()
        api.transport.answer = Script({URL: [Response(500), Response(200)]})
        task = await api.register(
            owner, task_body(executeAt=t0 + 5_000, retry=1, retryInterval=10_000)
        )
        api.clock.advance(5_000)
        waiting = await eventually(
            lambda: api.task(owner, task["id"]), lambda t: t["retryCount"] == 1
        )
        assert (waiting["statusCode"], waiting["estimateExecutionAt"]) == (500, t0 + 15_000)
        api.clock.advance(2_000)
        await api.call("PATCH", f"/v1/queues/{task['id']}/pause", owner)
        api.clock.advance(100_000)
        resumed = (await api.call("PATCH", f"/v1/queues/{task['id']}/resume", owner)).json()
        assert resumed["estimateExecutionAt"] == t0 + 107_000 + 8_000

    async def test_execute_makes_the_next_attempt_due_now(self, api: Api, owner: Owner) -> None:
        task = await queued(api, owner)
        api.clock.advance(50)
        response = await api.call("POST", f"/v1/queues/{task['id']}/execute", owner)
        assert (response.status_code, response.json()) == (200, {"status": "Done"})
        done = await api.settled(owner, task["id"])
        assert (done["state"], done["statusCode"]) == ("SUCCESS", 200)
        assert done["estimateExecutionAt"] == api.clock.now_ms()
        assert done["response"] == base64.b64encode(b"ok").decode()


class TestEdit:
    async def patch(self, api: Api, owner: Owner, task: dict[str, Any], body: Any) -> Any:
        return await api.call("PATCH", f"/v1/queues/{task['id']}", owner, json=body)

    async def config_of(self, api: Api, owner: Owner, task: dict[str, Any]) -> dict[str, Any]:
        shown: dict[str, Any] = (
            await api.call("GET", f"/v1/queues/{task['id']}/config", owner)
        ).json()
        return shown

    async def test_a_merge_patch(self, api: Api, owner: Owner) -> None:
        body = task_body(executionDelay=HOUR, retry=1, retryInterval=500)
        body["httpRequest"]["headers"] = {"X-A": "1", "X-B": "2"}
        body["metadata"] = {"tag": "a"}
        task = await api.register(owner, body)
        patch = {
            "config": {"retry": 3},
            "httpRequest": {"headers": {"X-B": None, "X-C": "3"}},
            "metadata": None,
        }
        response = await self.patch(api, owner, task, patch)
        assert response.status_code == 200
        edited = response.json()
        assert set(edited) == TASK_FIELDS
        assert edited["metadata"] is None
        shown = await self.config_of(api, owner, task)
        assert shown["httpRequest"]["headers"] == {"X-A": "1", "X-C": "3"}
        assert (shown["config"]["retry"], shown["config"]["retryInterval"]) == (3, 500)
        assert shown["config"]["executionDelay"] == HOUR
        assert shown["metadata"] is None

    async def test_the_due_time_is_kept_unless_the_schedule_is_patched(
        self, api: Api, owner: Owner
    ) -> None:
        t0 = api.clock.now_ms()
        task = await queued(api, owner, executionDelay=10_000)
        api.clock.advance(3_000)
        kept = (await self.patch(api, owner, task, {"config": {"retry": 2}})).json()
        assert kept["estimateExecutionAt"] == t0 + 10_000
        moved = (await self.patch(api, owner, task, {"config": {"executionDelay": 5_000}})).json()
        assert moved["estimateExecutionAt"] == t0 + 3_000 + 5_000
        at = (await self.patch(api, owner, task, {"config": {"executeAt": t0 + 50_000}})).json()
        assert at["estimateExecutionAt"] == t0 + 50_000
        api.clock.advance(1_000)
        back = (await self.patch(api, owner, task, {"config": {"executeAt": None}})).json()
        assert back["estimateExecutionAt"] == t0 + 4_000 + 5_000

    async def test_a_paused_task_stays_paused_with_its_new_countdown(
        self, api: Api, owner: Owner
    ) -> None:
        task = await queued(api, owner, executionDelay=10_000)
        await api.call("PATCH", f"/v1/queues/{task['id']}/pause", owner)
        api.clock.advance(3_000)
        edited = (await self.patch(api, owner, task, {"config": {"executionDelay": 5_000}})).json()
        assert edited["state"] == "PAUSED"
        api.clock.advance(60_000)
        resumed = (await api.call("PATCH", f"/v1/queues/{task['id']}/resume", owner)).json()
        assert resumed["estimateExecutionAt"] == api.clock.now_ms() + 5_000

    async def test_the_next_delivery_uses_the_edited_request(
        self, api: Api, owner: Owner
    ) -> None:
        task = await queued(api, owner)
        patch = {"httpRequest": {"url": "http://target.test/edited", "method": "put"}}
        assert (await self.patch(api, owner, task, patch)).status_code == 200
        await api.call("POST", f"/v1/queues/{task['id']}/execute", owner)
        await api.settled(owner, task["id"])
        [request] = api.transport.requests
        assert (request.url, request.method) == ("http://target.test/edited", "PUT")

    async def test_an_invalid_result_is_400_and_changes_nothing(
        self, api: Api, owner: Owner
    ) -> None:
        task = await queued(api, owner)
        before = await self.config_of(api, owner, task)
        response = await self.patch(
            api, owner, task, {"config": {"retry": -1}, "httpRequest": {"url": None}}
        )
        tree = envelope(response, 400)
        assert tree["config"]["retry"]["_errors"]
        assert tree["httpRequest"]["url"]["_errors"] == ["Field required"]
        assert await self.config_of(api, owner, task) == before
        assert await api.task(owner, task["id"]) == task

    async def test_a_patched_date_must_lie_ahead(self, api: Api, owner: Owner) -> None:
        task = await queued(api, owner)
        response = await self.patch(
            api, owner, task, {"config": {"executeAt": api.clock.now_ms() - 1}}
        )
        assert envelope(response, 400) == {
            "_errors": [],
            "config": {
                "_errors": [],
                "executeAt": {"_errors": ["Execution date must be greater than today"]},
            },
        }

    async def test_dates_not_patched_are_not_checked_again(self, api: Api, owner: Owner) -> None:
        t0 = api.clock.now_ms()
        api.transport.answer = Script({URL: [Response(500)]})
        task = await api.register(
            owner, task_body(executeAt=t0 + 10_000, retry=1, retryInterval=HOUR)
        )
        api.clock.advance(10_000)
        await eventually(lambda: api.task(owner, task["id"]), lambda t: t["retryCount"] == 1)
        response = await self.patch(api, owner, task, {"config": {"retryInterval": 5}})
        assert response.status_code == 200, response.text

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            (b"{", "The body is not valid JSON"),
            (b"[1]", "The body must be a JSON object"),
            (b'"x"', "The body must be a JSON object"),
        ],
    )
    async def test_a_patch_that_is_no_json_object(
        self, api: Api, owner: Owner, content: bytes, message: str
    ) -> None:
        task = await queued(api, owner)
        response = await api.call("PATCH", f"/v1/queues/{task['id']}", owner, content=content)
        assert envelope(response, 400) == message

    async def test_a_task_being_delivered_is_409(self, api: Api, owner: Owner) -> None:
        api.transport.answer = hold
        task = await api.register(owner, task_body(executionDelay=0))
        await eventually(lambda: len(api.transport.held), lambda n: n == 1)
        response = await self.patch(api, owner, task, {"config": {"retry": 1}})
        assert envelope(response, 409) == (
            "The task is being delivered right now; edit it once it ends"
        )
        api.transport.release(Response(200))
        assert (await api.settled(owner, task["id"]))["state"] == "SUCCESS"
        assert (await self.config_of(api, owner, task))["config"]["retry"] == 0


class TestDeliveryOutcomes:
    async def test_attempts_oldest_first(self, api: Api, owner: Owner) -> None:
        t0 = api.clock.now_ms()
        api.transport.answer = Script({URL: [Response(503, b"busy"), Response(200, b"fine")]})
        task = await api.register(owner, task_body(executionDelay=0, retry=1, retryInterval=10))
        await eventually(lambda: api.task(owner, task["id"]), lambda t: t["retryCount"] == 1)
        api.clock.advance(10)
        done = await api.settled(owner, task["id"])
        assert done["response"] == base64.b64encode(b"fine").decode()
        attempts = (await api.call("GET", f"/v1/queues/{task['id']}/attempts", owner)).json()
        assert attempts == [
            {
                "attempt": 1,
                "startedAt": t0,
                "durationMs": 0,
                "statusCode": 503,
                "error": "HTTP 503",
                "outcome": "RETRY",
            },
            {
                "attempt": 2,
                "startedAt": t0 + 10,
                "durationMs": 0,
                "statusCode": 200,
                "error": None,
                "outcome": "SUCCESS",
            },
        ]

    async def test_a_pause_during_delivery_ignores_its_outcome(
        self, api: Api, owner: Owner
    ) -> None:
        api.transport.answer = hold
        task = await api.register(owner, task_body(executionDelay=0))
        await eventually(lambda: len(api.transport.held), lambda n: n == 1)
        assert (await api.call("PATCH", f"/v1/queues/{task['id']}/pause", owner)).is_success
        api.transport.release(Response(500))
        attempts = await eventually(
            lambda: api.call("GET", f"/v1/queues/{task['id']}/attempts", owner),
            lambda r: r.json() != [],
        )
        assert [a["outcome"] for a in attempts.json()] == ["IGNORED"]
        paused = await api.task(owner, task["id"])
        assert (paused["state"], paused["statusCode"], paused["retryCount"]) == ("PAUSED", 0, 0)


class TestIsolation:
    async def test_another_owners_task_does_not_exist(self, api: Api, owner: Owner) -> None:
        task = await queued(api, owner)
        intruder = await api.owner("owner-two")
        tid = task["id"]
        for method, path, body in [
            ("GET", f"/v1/queues/{tid}", None),
            ("PATCH", f"/v1/queues/{tid}", {"config": {"retry": 1}}),
            ("DELETE", f"/v1/queues/{tid}", None),
            ("GET", f"/v1/queues/{tid}/config", None),
            ("GET", f"/v1/queues/{tid}/attempts", None),
            ("PATCH", f"/v1/queues/{tid}/pause", None),
            ("PATCH", f"/v1/queues/{tid}/resume", None),
            ("PATCH", f"/v1/queues/{tid}/revoke", None),
            ("POST", f"/v1/queues/{tid}/execute", None),
        ]:
            response = await api.call(method, path, intruder, json=body)
            assert envelope(response, 404) == "Task not found", (method, path)
        assert (await api.call("GET", "/v1/queues", intruder)).json() == []
        assert await api.task(owner, tid) == task


class TestRestart:
    async def test_tasks_due_during_downtime_fire_at_once_on_their_own_times(
        self, db_path: Path, frozen_clock: FrozenClock
    ) -> None:
        settings = Settings(db=db_path, poll_interval_ms=20)
        t0 = frozen_clock.now_ms()
        async with serve(settings, clock=frozen_clock, transport=FakeTransport()) as client:
            api = Api(client, frozen_clock, FakeTransport())
            owner = await api.owner()
            overdue = await api.register(owner, task_body(executionDelay=60_000))
            later = await api.register(owner, task_body(executionDelay=HOUR))

        frozen_clock.advance(600_000)
        transport = FakeTransport()
        async with serve(settings, clock=frozen_clock, transport=transport) as client:
            api = Api(client, frozen_clock, transport)
            done = await api.settled(owner, overdue["id"])
            assert (done["state"], done["estimateExecutionAt"]) == ("SUCCESS", t0 + 60_000)
            waiting = await api.task(owner, later["id"])
            assert (waiting["state"], waiting["estimateExecutionAt"]) == ("RUNNING", t0 + HOUR)
            assert [header(r, "X-Tasks-Queue-Id") for r in transport.requests] == [overdue["id"]]

    async def test_a_delivery_cut_by_shutdown_is_made_again(
        self, db_path: Path, frozen_clock: FrozenClock
    ) -> None:
        settings = Settings(db=db_path, poll_interval_ms=20, shutdown_grace_s=0.1)
        first = FakeTransport(hold)
        async with serve(settings, clock=frozen_clock, transport=first) as client:
            api = Api(client, frozen_clock, first)
            owner = await api.owner()
            task = await api.register(owner, task_body(executionDelay=0))
            await eventually(lambda: len(first.held), lambda n: n == 1)
        assert first.closed

        second = FakeTransport()
        async with serve(settings, clock=frozen_clock, transport=second) as client:
            api = Api(client, frozen_clock, second)
            done = await api.settled(owner, task["id"])
            assert done["state"] == "SUCCESS"
            [again] = second.requests
            assert header(again, "X-Tasks-Queue-Id") == task["id"]


CREDENTIALS = {"username": "user", "password": "pass"}
REFUSED_SAMPLES: dict[str, tuple[str, str, Any]] = {
    "authNtlm": ("httpRequest", "authNtlm", CREDENTIALS),
    "proxyAuthNtlm": ("config", "proxyAuthNtlm", CREDENTIALS),
    "dnsServer": ("config", "dnsServer", ["1.1.1.1"]),
    "httpVersion=3": ("config", "httpVersion", "3"),
    "httpVersion=2": ("config", "httpVersion", "2"),
    "httpVersion=2-prior-knowledge": ("config", "httpVersion", "2-prior-knowledge"),
}


class TestOptions:
    def refused_bodies(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """A body per option this libcurl cannot honour, and the answer it must get."""
        found = []
        for key, reason in unsupported_options().items():
            section, field, value = REFUSED_SAMPLES[key]
            body = task_body(executionDelay=HOUR)
            if field == "proxyAuthNtlm":
                body["config"]["proxy"] = {"protocol": "http", "host": "proxy.example"}
            body.setdefault(section, {})[field] = value
            tree = {"_errors": [], section: {"_errors": [], field: {"_errors": [reason]}}}
            found.append((body, tree))
        return found

    async def test_what_this_libcurl_cannot_honour_is_refused_at_registration(
        self, api: Api, owner: Owner
    ) -> None:
        refused = self.refused_bodies()
        assert refused, "this libcurl honours every option: nothing to check"
        for body, tree in refused:
            response = await api.call("POST", "/v1/queues/register", owner, json=body)
            assert envelope(response, 400) == tree, body
        assert (await api.call("GET", "/v1/queues", owner)).json() == []

    async def test_and_by_an_edit(self, api: Api, owner: Owner) -> None:
        task = await queued(api, owner)
        before = (await api.call("GET", f"/v1/queues/{task['id']}/config", owner)).json()
        for body, tree in self.refused_bodies():
            patch = {key: body[key] for key in ("httpRequest", "config")}
            response = await api.call("PATCH", f"/v1/queues/{task['id']}", owner, json=patch)
            assert envelope(response, 400) == tree, patch
        after = (await api.call("GET", f"/v1/queues/{task['id']}/config", owner)).json()
        assert after == before

    @pytest.mark.parametrize("field", ["credentials", "referrerPolicy", "mode"])
    async def test_fetch_only_options_are_refused(
        self, api: Api, owner: Owner, field: str
    ) -> None:
        body = task_body(**{field: "same-origin"})
        response = await api.call("POST", "/v1/queues/register", owner, json=body)
        assert envelope(response, 400) == {
            "_errors": [],
            "config": {
                "_errors": [],
                field: {
                    "_errors": [
                        f"{field} is an option of the browser fetch API; libcurl has no equivalent"
                    ]
                },
            },
        }

    async def test_one_auth_scheme_only(self, api: Api, owner: Owner) -> None:
        body = task_body()
        body["httpRequest"].update(authBasic=CREDENTIALS, authDigest=CREDENTIALS)
        response = await api.call("POST", "/v1/queues/register", owner, json=body)
        assert envelope(response, 400) == {
            "_errors": [],
            "httpRequest": {
                "_errors": ["Choose one of authBasic, authDigest, authNtlm and authAwsSigv4"]
            },
        }

    async def test_a_forbidden_proxy_port(self, api: Api, owner: Owner) -> None:
        body = task_body(proxy={"protocol": "http", "host": "proxy.example", "port": 25})
        response = await api.call("POST", "/v1/queues/register", owner, json=body)
        assert envelope(response, 400) == {
            "_errors": [],
            "config": {
                "_errors": [],
                "proxy": {"_errors": [], "port": {"_errors": ["Invalid proxy port"]}},
            },
        }

    async def test_options_reach_the_transport(self, api: Api, owner: Owner) -> None:
        body = task_body(
            executionDelay=0,
            location=False,
            redirectAttempts=2,
            resolve=[{"host": "target.test", "port": 80, "address": ["127.0.0.1", "::1"]}],
            proxy={"protocol": "http", "host": "proxy.example", "port": 3128},
            proxyAuthBasic={"username": "pu", "password": "pp"},
        )
        body["httpRequest"]["authDigest"] = CREDENTIALS
        body["httpRequest"]["cookie"] = [{"name": "sid", "value": "abc"}]
        task = await api.register(owner, body)
        await api.settled(owner, task["id"])
        [request] = api.transport.requests
        assert request.options == Options(
            auth=Auth("digest", "user", "pass"),
            cookies="sid=abc",
            follow_redirects=False,
            max_redirects=2,
            resolve=("target.test:80:127.0.0.1,[::1]",),
            proxy=Proxy("http://proxy.example:3128", auth=Auth("basic", "pu", "pp")),
        )

    async def test_the_config_shows_the_options_with_their_defaults(
        self, api: Api, owner: Owner
    ) -> None:
        body = task_body(executionDelay=HOUR, proto="HTTPS", certType="pem", refererUrl="auto")
        task = await api.register(owner, body)
        shown = (await api.call("GET", f"/v1/queues/{task['id']}/config", owner)).json()
        config = shown["config"]
        assert (config["proto"], config["certType"], config["refererUrl"]) == (
            "https",
            "PEM",
            "AUTO",
        )
        assert (config["httpVersion"], config["keepAliveDuration"]) == ("1.1", 30)
        assert (config["location"], config["redirectAttempts"]) == (True, 8)
        assert (config["sessionId"], config["insecure"]) == (True, False)
        assert (config["proxy"], config["resolve"], config["dnsServer"]) == (None, None, None)
        assert shown["httpRequest"]["cookie"] is None
