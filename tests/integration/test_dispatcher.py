"""The dispatcher on a real store, with a scripted transport and a clock that moves on demand."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from tasks_server.clock import FrozenClock
from tasks_server.dispatch.dispatcher import Dispatcher
from tasks_server.dispatch.transport.base import Request, Response
from tasks_server.errors import StoreError
from tasks_server.ids import new_owner_id
from tasks_server.states import TaskState
from tasks_server.store import AttemptResult, AttemptRow, ClaimBatch, OwnerRow, TaskRow
from tasks_server.store.sqlite import SQLiteStore
from tasks_server.tasks import Tasks

from .fakes import FakeTransport, Script, eventually, header, hold
from .webhooks import OWNER_SECRET, expected_signature, signed_by

URL = "http://target.test/hook"
OTHER_URL = "http://target.test/other"


def body(url: str = URL, **config: Any) -> bytes:
    """A registration body; due at once (on a frozen clock) unless told otherwise."""
    config = {"executionDelay": 0, **config}
    return orjson.dumps({"httpRequest": {"url": url, "method": "POST"}, "config": config})


class SpyStore(SQLiteStore):
    """A real store that counts exchanges and can fail the next ones that record results."""

    exchanges = 0
    failures_left = 0

    async def exchange(
        self, results: Sequence[AttemptResult], *, now_ms: int, limit: int, claim: str
    ) -> ClaimBatch:
        if results and self.failures_left:
            self.failures_left -= 1
            raise StoreError("disk on fire")
        batch = await super().exchange(results, now_ms=now_ms, limit=limit, claim=claim)
        self.exchanges += 1
        return batch


@dataclass
class Rig:
    store: SpyStore
    tasks: Tasks
    dispatcher: Dispatcher
    transport: FakeTransport
    clock: FrozenClock
    owner: OwnerRow
    loop_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.loop_task = asyncio.create_task(self.dispatcher.run())

    async def stop(self, grace_s: float = 1.0) -> None:
        if self.loop_task is not None:
            await self.dispatcher.stop(grace_s)
            await asyncio.wait_for(self.loop_task, 5)
            self.loop_task = None

    async def register(self, url: str = URL, **config: Any) -> TaskRow:
        return await self.tasks.register(self.owner, body(url, **config))

    async def task(self, row: TaskRow) -> TaskRow:
        return await self.tasks.get(self.owner, row.id)

    async def attempts(self, row: TaskRow) -> list[AttemptRow]:
        return await self.tasks.attempts(self.owner, row.id)

    async def settled(self, row: TaskRow, *, within: float = 10.0) -> TaskRow:
        return await eventually(
            lambda: self.task(row),
            lambda t: not t.state.unfinished,
            within=within,
            what=f"task {row.id} to finish",
        )

    async def requests(self, count: int) -> None:
        await eventually(
            lambda: len(self.transport.requests),
            lambda n: n >= count,
            what=f"{count} requests",
        )

    async def exchanges(self, more: int) -> None:
        start = self.store.exchanges
        await eventually(lambda: self.store.exchanges, lambda n: n >= start + more)


async def make_rig(db_path: Path, clock: FrozenClock, **options: int) -> Rig:
    store = SpyStore(db_path, synchronous="NORMAL")
    await store.open(clock.now_ms())
    owner = OwnerRow(new_owner_id(clock.now_ms()), "rig-owner", b"k", clock.now_ms())
    await store.add_owner(owner, OWNER_SECRET)
    transport = FakeTransport()
    settings = {"poll_interval_ms": 20, **options}
    dispatcher = Dispatcher(store, transport, clock, **settings)
    tasks = Tasks(store, clock, queue_limit=100, on_due=dispatcher.notify_due)
    return Rig(store, tasks, dispatcher, transport, clock, owner)


@pytest.fixture
async def rig(db_path: Path, frozen_clock: FrozenClock) -> AsyncIterator[Rig]:
    made = await make_rig(db_path, frozen_clock)
    made.start()
    yield made
    await made.stop()
    await made.transport.aclose()
    await made.store.close()


class TestFiring:
    async def test_due_tasks_fire_and_later_ones_wait(self, rig: Rig) -> None:
        t0 = rig.clock.now_ms()
        now_a, now_b = await rig.register(executionDelay=0), await rig.register(OTHER_URL)
        later = await rig.register(executionDelay=5_000)
        await rig.requests(2)
        fired = {header(r, "X-Tasks-Queue-Id") for r in rig.transport.requests}
        assert fired == {now_a.id, now_b.id}
        assert {r.url for r in rig.transport.requests} == {URL, OTHER_URL}
        for row in (now_a, now_b):
            done = await rig.settled(row)
            assert (done.state, done.status_code, done.estimate_end_at) == (
                TaskState.SUCCESS,
                200,
                t0,
            )
            assert done.response == base64.b64encode(b"ok").decode()
        assert (await rig.task(later)).state is TaskState.RUNNING
        assert len(rig.transport.requests) == 2

        rig.clock.advance(5_000)
        assert (await rig.settled(later)).state is TaskState.SUCCESS
        assert header(rig.transport.requests[2], "X-Tasks-Queue-Id") == later.id

    async def test_a_first_attempt_carries_no_retry_headers(self, rig: Rig) -> None:
        await rig.register()
        await rig.requests(1)
        [request] = rig.transport.requests
        assert header(request, "X-Tasks-Retry-Count") is None
        assert header(request, "X-Tasks-Retry-Limit") is None
        assert header(request, "X-Tasks-Estimate-Next-Retry-At") is None

    async def test_the_request_is_the_compiled_one(self, rig: Rig) -> None:
        await rig.tasks.register(
            rig.owner,
            orjson.dumps(
                {
                    "httpRequest": {
                        "url": URL,
                        "method": "PUT",
                        "headers": {"X-A": "1"},
                        "query": {"q": "v"},
                        "data": {"k": "v"},
                    },
                    "config": {"userAgent": "Rig-Agent/1.0", "timeout": 4_000, "executionDelay": 0},
                }
            ),
        )
        await rig.requests(1)
        [request] = rig.transport.requests
        assert (request.url, request.method) == (URL + "?q=v", "PUT")
        assert (request.user_agent, request.timeout_ms) == ("Rig-Agent/1.0", 4_000)
        assert header(request, "X-A") == "1"
        assert header(request, "Content-Type") == "application/json"
        assert request.body == b'{"k":"v"}'


class TestRetries:
    async def test_retries_are_scheduled_and_carry_their_headers(self, rig: Rig) -> None:
        t0 = rig.clock.now_ms()
        rig.transport.answer = Script({URL: [Response(500), Response(502), Response(200)]})
        row = await rig.register(retry=2, retryInterval=1_000)

        waiting = await eventually(lambda: rig.task(row), lambda t: t.retry_count == 1)
        assert (waiting.state, waiting.status_code) == (TaskState.RUNNING, 500)
        assert waiting.estimate_execution_at == t0 + 1_000
        assert waiting.estimate_end_at == 0
        assert len(rig.transport.requests) == 1

        rig.clock.advance(1_000)
        await rig.requests(2)
        second = rig.transport.requests[1]
        assert header(second, "X-Tasks-Queue-Id") == row.id
        assert header(second, "X-Tasks-Retry-Count") == "1"
        assert header(second, "X-Tasks-Retry-Limit") == "2"
        assert header(second, "X-Tasks-Estimate-Next-Retry-At") == str(t0 + 1_000)
        waiting = await eventually(lambda: rig.task(row), lambda t: t.retry_count == 2)
        assert (waiting.status_code, waiting.estimate_execution_at) == (502, t0 + 2_000)

        rig.clock.advance(1_000)
        done = await rig.settled(row)
        third = rig.transport.requests[2]
        assert header(third, "X-Tasks-Retry-Count") == "2"
        assert header(third, "X-Tasks-Estimate-Next-Retry-At") == str(t0 + 2_000)
        assert (done.state, done.retry_count, done.status_code) == (TaskState.SUCCESS, 2, 200)
        assert done.estimate_end_at == t0 + 2_000
        attempts = await rig.attempts(row)
        assert [(a.attempt, a.status_code, a.error, a.outcome) for a in attempts] == [
            (1, 500, "HTTP 500", "RETRY"),
            (2, 502, "HTTP 502", "RETRY"),
            (3, 200, None, "SUCCESS"),
        ]

    async def test_linear_backoff(self, rig: Rig) -> None:
        t0 = rig.clock.now_ms()
        rig.transport.answer = Script({URL: [Response(503)]})
        row = await rig.register(retry=3, retryInterval=1_000, retryExponential=True)
        due_times = []
        for retries in (1, 2, 3):
            waiting = await eventually(
                lambda: rig.task(row), lambda t, n=retries: t.retry_count == n
            )
            due_times.append(waiting.estimate_execution_at - t0)
            rig.clock.advance(waiting.estimate_execution_at - rig.clock.now_ms())
        assert due_times == [1_000, 3_000, 6_000]
        done = await rig.settled(row)
        assert (done.state, done.retry_count) == (TaskState.ERROR, 3)

    async def test_when_retries_run_out_the_task_ends_in_error(self, rig: Rig) -> None:
        rig.transport.answer = Script({URL: [Response(503, b"busy")]})
        row = await rig.register(retry=1, retryInterval=1)
        await eventually(lambda: rig.task(row), lambda t: t.retry_count == 1)
        rig.clock.advance(1)
        done = await rig.settled(row)
        assert (done.state, done.status_code, done.retry_count) == (TaskState.ERROR, 503, 1)
        assert done.response == base64.b64encode(b"busy").decode()
        assert done.estimate_end_at == rig.clock.now_ms()
        assert [a.outcome for a in await rig.attempts(row)] == ["RETRY", "ERROR"]
        owner = await rig.store.get_owner(rig.owner.id)
        assert owner is not None
        assert owner.tasks_in_queue == 0

    async def test_no_answer_is_a_failure_with_the_error_kept(self, rig: Rig) -> None:
        rig.transport.answer = Script({URL: [Response(0, error="Connection refused")]})
        row = await rig.register()
        done = await rig.settled(row)
        assert (done.state, done.status_code) == (TaskState.ERROR, 0)
        assert done.response == base64.b64encode(b"Connection refused").decode()
        [attempt] = await rig.attempts(row)
        assert (attempt.status_code, attempt.error, attempt.outcome) == (
            0,
            "Connection refused",
            "ERROR",
        )

    async def test_an_ignored_status_code_ends_without_retry(self, rig: Rig) -> None:
        rig.transport.answer = Script({URL: [Response(404)]})
        row = await rig.register(retry=5, ignoreStatusCode=[404])
        done = await rig.settled(row)
        assert (done.state, done.retry_count) == (TaskState.ERROR, 0)
        assert len(rig.transport.requests) == 1

    async def test_retry_at_is_the_one_retry(self, rig: Rig) -> None:
        t0 = rig.clock.now_ms()
        rig.transport.answer = Script({URL: [Response(500)]})
        row = await rig.register(executionDelay=0, retry=7, retryAt=t0 + 90_000)
        waiting = await eventually(lambda: rig.task(row), lambda t: t.retry_count == 1)
        assert waiting.estimate_execution_at == t0 + 90_000
        rig.clock.advance(90_000)
        done = await rig.settled(row)
        assert header(rig.transport.requests[1], "X-Tasks-Retry-Limit") == "1"
        assert (done.state, len(rig.transport.requests)) == (TaskState.ERROR, 2)

    async def test_timeout_at_bounds_the_first_attempt_only(self, rig: Rig) -> None:
        t0 = rig.clock.now_ms()
        rig.transport.answer = Script({URL: [Response(0, error="timed out"), Response(200)]})
        row = await rig.register(
            executionDelay=0, timeout=5_000, timeoutAt=t0 + 120_000, retry=1, retryInterval=1
        )
        await eventually(lambda: rig.task(row), lambda t: t.retry_count == 1)
        rig.clock.advance(1)
        await rig.settled(row)
        assert [r.timeout_ms for r in rig.transport.requests] == [120_000, 5_000]

    async def test_trace_response_data_false_keeps_no_body(self, rig: Rig) -> None:
        rig.transport.answer = Script({URL: [Response(200, b"secret")]})
        row = await rig.register(traceResponseData=False)
        done = await rig.settled(row)
        assert (done.state, done.response) == (TaskState.SUCCESS, None)
        assert rig.transport.requests[0].keep_body is False


class TestControlWhileInFlight:
    async def test_a_result_after_a_pause_is_ignored_and_resume_sends_again(
        self, rig: Rig
    ) -> None:
        rig.transport.answer = hold
        row = await rig.register()
        await rig.requests(1)
        await rig.tasks.pause(rig.owner, row.id)
        rig.transport.release(Response(500))
        attempts = await eventually(lambda: rig.attempts(row), bool)
        assert [a.outcome for a in attempts] == ["IGNORED"]
        paused = await rig.task(row)
        assert (paused.state, paused.status_code, paused.retry_count) == (TaskState.PAUSED, 0, 0)

        rig.transport.answer = Script({})
        resumed = await rig.tasks.resume(rig.owner, row.id)
        assert resumed.estimate_execution_at == rig.clock.now_ms()
        assert (await rig.settled(resumed)).state is TaskState.SUCCESS
        assert [a.outcome for a in await rig.attempts(row)] == ["IGNORED", "SUCCESS"]

    async def test_a_result_after_a_revoke_is_ignored(self, rig: Rig) -> None:
        rig.transport.answer = hold
        row = await rig.register()
        await rig.requests(1)
        await rig.tasks.revoke(rig.owner, row.id)
        rig.transport.release(Response(200))
        await eventually(lambda: rig.attempts(row), bool)
        revoked = await rig.task(row)
        assert (revoked.state, revoked.status_code) == (TaskState.REVOKED, 0)

    async def test_execute_leaves_a_task_in_flight_alone(self, rig: Rig) -> None:
        rig.transport.answer = hold
        row = await rig.register()
        await rig.requests(1)
        await rig.tasks.execute(rig.owner, row.id)
        await rig.exchanges(3)
        assert len(rig.transport.requests) == 1
        rig.transport.release(Response(200))
        assert (await rig.settled(row)).state is TaskState.SUCCESS


class TestWaking:
    async def test_notify_due_wakes_it_for_a_sooner_task(
        self, db_path: Path, frozen_clock: FrozenClock
    ) -> None:
        rig = await make_rig(db_path, frozen_clock, poll_interval_ms=60_000)
        try:
            rig.start()
            await rig.exchanges(1)  # it has looked, found nothing, and sleeps for a minute
            started = time.monotonic()
            await rig.register(executionDelay=0)
            await rig.requests(1)
            assert time.monotonic() - started < 5
        finally:
            await rig.stop()
            await rig.store.close()

    async def test_it_sleeps_only_until_the_next_due_time(
        self, db_path: Path, frozen_clock: FrozenClock
    ) -> None:
        rig = await make_rig(db_path, frozen_clock, poll_interval_ms=60_000)
        try:
            row = await rig.register(executionDelay=300)
            rig.start()
            await rig.exchanges(1)
            rig.clock.advance(300)
            assert (await rig.settled(row, within=5)).state is TaskState.SUCCESS
        finally:
            await rig.stop()
            await rig.store.close()

    async def test_in_flight_is_bounded(self, db_path: Path, frozen_clock: FrozenClock) -> None:
        rig = await make_rig(db_path, frozen_clock, max_in_flight=2)
        rig.transport.answer = hold
        try:
            rows = [await rig.register() for _ in range(5)]
            rig.start()
            await rig.requests(2)
            await rig.exchanges(5)
            assert len(rig.transport.requests) == 2
            rig.transport.release()
            await rig.requests(3)
            await rig.exchanges(5)
            assert len(rig.transport.requests) == 3
            rig.transport.answer = Script({})
            while rig.transport.held:
                rig.transport.release()
            for row in rows:
                assert (await rig.settled(row)).state is TaskState.SUCCESS
        finally:
            await rig.stop()
            await rig.store.close()

    async def test_a_failed_exchange_loses_no_result(
        self, rig: Rig, caplog: pytest.LogCaptureFixture
    ) -> None:
        rig.store.failures_left = 2
        row = await rig.register()
        done = await rig.settled(row)
        assert (done.state, len(rig.transport.requests)) == (TaskState.SUCCESS, 1)
        assert [a.outcome for a in await rig.attempts(row)] == ["SUCCESS"]
        assert rig.store.failures_left == 0
        assert "dispatch step failed" in caplog.text


class TestStop:
    async def test_stop_waits_for_in_flight_attempts_and_records_them(self, rig: Rig) -> None:
        rig.transport.answer = hold
        row = await rig.register()
        await rig.requests(1)
        started = time.monotonic()
        stopping = asyncio.create_task(rig.dispatcher.stop(grace_s=10))
        await asyncio.sleep(0.05)
        assert not stopping.done()
        rig.transport.release(Response(201))
        await asyncio.wait_for(stopping, 5)
        assert time.monotonic() - started < 5
        done = await rig.task(row)
        assert (done.state, done.status_code) == (TaskState.SUCCESS, 201)

    async def test_stop_gives_up_after_the_grace_period(self, rig: Rig) -> None:
        rig.transport.answer = hold
        row = await rig.register()
        await rig.requests(1)
        started = time.monotonic()
        await rig.stop(grace_s=0.3)
        assert time.monotonic() - started >= 0.3
        left = await rig.task(row)
        assert left.state is TaskState.RUNNING
        assert left.claim is not None
        assert await rig.attempts(row) == []


OTHER_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()
ROTATED = "whsec_" + base64.b64encode(b"r" * 32).decode()


def signers(request: Request, secrets: list[str]) -> list[str]:
    return signed_by(lambda name: header(request, name), request.body or b"", secrets)


class TestSigning:
    async def test_every_attempt_is_signed_with_the_owners_secret(self, rig: Rig) -> None:
        row = await rig.register()
        await rig.requests(1)
        [request] = rig.transport.requests
        assert header(request, "webhook-id") == row.id
        assert header(request, "webhook-timestamp") == str(rig.clock.now_ms() // 1000)
        assert header(request, "Idempotency-Key") == row.id
        assert signers(request, [OWNER_SECRET, OTHER_SECRET]) == [OWNER_SECRET]
        assert len((header(request, "webhook-signature") or "").split(" ")) == 1

    async def test_each_header_is_sent_once(self, rig: Rig) -> None:
        await rig.register()
        await rig.requests(1)
        [request] = rig.transport.requests
        names = [line.split(":", 1)[0].lower() for line in request.headers]
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature", "idempotency-key"):
            assert names.count(name) == 1, name

    @pytest.mark.parametrize(
        ("method", "data"),
        [
            ("POST", {"k": "v", "n": {"x": 1.5}}),
            ("PUT", "plain text é"),
            ("PATCH", [{"name": 'a"b', "value": "1"}, {"name": "c", "value": "2"}]),
            ("GET", {"dropped": "for GET"}),
            ("DELETE", None),
        ],
    )
    async def test_the_signature_covers_the_body_sent(
        self, rig: Rig, method: str, data: Any
    ) -> None:
        http: dict[str, Any] = {"url": URL, "method": method}
        if data is not None:
            http["data"] = data
        spec = {"httpRequest": http, "config": {"executionDelay": 0}}
        await rig.tasks.register(rig.owner, orjson.dumps(spec))
        await rig.requests(1)
        [request] = rig.transport.requests
        if method in ("GET", "DELETE"):
            assert request.body is None
        else:
            assert request.body
        assert signers(request, [OWNER_SECRET]) == [OWNER_SECRET]

    async def test_a_retry_keeps_the_id_and_signs_its_own_time(self, rig: Rig) -> None:
        rig.transport.answer = Script({URL: [Response(500), Response(200)]})
        row = await rig.register(retry=1, retryInterval=5_000)
        first_at = rig.clock.now_ms()
        await eventually(lambda: rig.task(row), lambda t: t.retry_count == 1)
        rig.clock.advance(5_000)
        await rig.settled(row)
        first, second = rig.transport.requests
        assert header(first, "webhook-id") == header(second, "webhook-id") == row.id
        assert header(first, "Idempotency-Key") == header(second, "Idempotency-Key") == row.id
        assert header(first, "webhook-timestamp") == str(first_at // 1000)
        assert header(second, "webhook-timestamp") == str(first_at // 1000 + 5)
        assert header(first, "webhook-signature") != header(second, "webhook-signature")
        for request in (first, second):
            assert signers(request, [OWNER_SECRET]) == [OWNER_SECRET]

    async def test_owners_sign_with_their_own_secrets(self, rig: Rig) -> None:
        other = OwnerRow(new_owner_id(rig.clock.now_ms()), "rig-other", b"o", rig.clock.now_ms())
        await rig.store.add_owner(other, OTHER_SECRET)
        mine = await rig.register(URL)
        theirs = await rig.tasks.register(other, body(OTHER_URL))
        await rig.requests(2)
        by_id = {header(r, "webhook-id"): r for r in rig.transport.requests}
        assert signers(by_id[mine.id], [OWNER_SECRET, OTHER_SECRET]) == [OWNER_SECRET]
        assert signers(by_id[theirs.id], [OWNER_SECRET, OTHER_SECRET]) == [OTHER_SECRET]

    async def test_a_rotation_signs_with_both_secrets_until_the_overlap_ends(
        self, rig: Rig
    ) -> None:
        both = [ROTATED, OWNER_SECRET]
        await rig.store.rotate_signing_secret(
            rig.owner.id, ROTATED, now_ms=rig.clock.now_ms(), overlap_ms=10_000
        )
        during = await rig.register()
        await rig.settled(during)
        assert signers(rig.transport.requests[0], both) == both
        signatures = (header(rig.transport.requests[0], "webhook-signature") or "").split(" ")
        assert len(signatures) == 2
        request = rig.transport.requests[0]
        newest_first = [
            expected_signature(
                secret,
                header(request, "webhook-id") or "",
                header(request, "webhook-timestamp") or "",
                request.body or b"",
            )
            for secret in both
        ]
        assert signatures == newest_first

        rig.clock.advance(10_000)
        after = await rig.register()
        await rig.settled(after)
        assert signers(rig.transport.requests[1], both) == [ROTATED]

