"""The dispatcher: claim due tasks in batches, fire them through the transport, record outcomes.

One loop, no timer per task: it sleeps until the earliest due time the store reports (at most
``poll_interval_ms``), or until something wakes it: a task registered sooner than that, a
finished attempt to record, a slot freed. Finished attempts are recorded and the next batch is
claimed in the same transaction.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import random
import secrets
from collections.abc import Sequence
from dataclasses import replace

from .. import signing
from ..clock import Clock
from ..delivery import Delivery, load_delivery
from ..retry import RETRY_AFTER_STATUSES, Verdict, decide, parse_retry_after
from ..states import TaskState
from ..store import AttemptResult, Claimed, Store
from .transport.base import Response, Transport

log = logging.getLogger(__name__)

_FINAL = {Verdict.SUCCESS: TaskState.SUCCESS, Verdict.ERROR: TaskState.ERROR}


class Dispatcher:
    def __init__(
        self,
        store: Store,
        transport: Transport,
        clock: Clock,
        *,
        max_in_flight: int = 512,
        claim_batch: int = 256,
        poll_interval_ms: int = 1000,
    ) -> None:
        self._store = store
        self._transport = transport
        self._clock = clock
        self._max_in_flight = max_in_flight
        self._claim_batch = claim_batch
        self._poll_interval_ms = poll_interval_ms
        self._node = secrets.token_hex(6)
        self._claims = itertools.count(1)
        self._results: list[AttemptResult] = []
        self._wake = asyncio.Event()
        self._finished = asyncio.Event()
        self._wake_at_ms = 0
        self._notified_ms: int | None = None
        self._stopping = False

    def notify_due(self, due_at_ms: int) -> None:
        """A task became due at ``due_at_ms``: wake up if that is sooner than planned."""
        if self._notified_ms is None or due_at_ms < self._notified_ms:
            self._notified_ms = due_at_ms
        if due_at_ms < self._wake_at_ms:
            self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            try:
                await self._step()
            except Exception:
                log.exception("dispatch step failed", extra={"action": "dispatch_failed"})
                await asyncio.sleep(self._poll_interval_ms / 1000)

    async def stop(self, grace_s: float) -> None:
        """Stop claiming; give in-flight attempts ``grace_s`` to finish; record what finished."""
        self._stopping = True
        self._wake.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while self._transport.in_flight and loop.time() < deadline:
            self._finished.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._finished.wait(), deadline - loop.time())
        left = self._transport.in_flight
        if left:
            log.warning("%d attempts still in flight at shutdown; they will run again", left)
        await self._flush()

    async def _flush(self) -> None:
        results, self._results = self._results, []
        now = self._clock.now_ms()
        await self._store.exchange(results, now_ms=now, limit=0, claim="")

    async def _step(self) -> None:
        now = self._clock.now_ms()
        free = self._max_in_flight - self._transport.in_flight
        limit = min(free, self._claim_batch)
        results, self._results = self._results, []
        claim = f"{self._node}:{next(self._claims)}"
        self._notified_ms = None
        try:
            batch = await self._store.exchange(results, now_ms=now, limit=limit, claim=claim)
        except Exception:
            self._results[:0] = results
            raise
        for task in batch.tasks:
            try:
                self._fire(task, now, batch.secrets.get(task.owner_id, ()))
            except Exception as exc:
                log.exception("cannot send task %s", task.id, extra={"action": "task_broken"})
                self._results.append(_broken(task, now, exc))
        if self._stopping or (batch.tasks and len(batch.tasks) == limit):
            return
        await self._sleep(now, batch.next_due_at, saturated=limit == 0)

    async def _sleep(self, now: int, next_due_at: int | None, *, saturated: bool) -> None:
        wait_ms = self._poll_interval_ms
        if not saturated:
            for due in (next_due_at, self._notified_ms):
                if due is not None:
                    wait_ms = min(wait_ms, max(0, due - now))
        self._wake_at_ms = now + wait_ms
        if self._results or wait_ms == 0:
            self._wake_at_ms = 0
            return
        try:
            await asyncio.wait_for(self._wake.wait(), wait_ms / 1000)
        except TimeoutError:
            pass
        self._wake.clear()
        self._wake_at_ms = 0

    def _fire(self, task: Claimed, now: int, signing_secrets: Sequence[str]) -> None:
        delivery = load_delivery(task.delivery)
        body = delivery.request.body or b""
        headers = [
            *delivery.request.headers,
            f"X-Tasks-Queue-Id: {task.id}",
            *signing.headers(signing_secrets, task.id, now // 1000, body),
        ]
        if task.retry_count:
            headers += [
                f"X-Tasks-Retry-Count: {task.retry_count}",
                f"X-Tasks-Retry-Limit: {delivery.retry.limit}",
                f"X-Tasks-Estimate-Next-Retry-At: {task.due_at}",
            ]
        request = replace(
            delivery.request,
            headers=tuple(headers),
            timeout_ms=delivery.timeout_ms(now, first_attempt=task.retry_count == 0),
        )
        self._transport.submit(request, lambda response: self._done(task, delivery, response))

    def _done(self, task: Claimed, delivery: Delivery, response: Response) -> None:
        now = self._clock.now_ms()
        status, headers = response.status_code, response.headers
        retry_after = headers.get("retry-after") if status in RETRY_AFTER_STATUSES else None
        decision = decide(
            delivery.retry,
            retries_done=task.retry_count,
            status_code=status,
            error=response.error,
            now_ms=now,
            retry_after_ms=parse_retry_after(retry_after, now),
            stop=headers.get("tasks-retry", "").lower() == "stop",
            first_attempt_at_ms=task.first_attempt_at,
            draw=random.random(),
        )
        retrying = decision.verdict is Verdict.RETRY
        self._results.append(
            AttemptResult(
                task_id=task.id,
                claim=task.claim,
                attempt=task.retry_count + 1,
                started_at=response.started_at_ms or now,
                duration_ms=response.duration_ms,
                status_code=response.status_code,
                error=response.error or _http_error(response.status_code),
                response=_stored_body(response, delivery.request.keep_body),
                state=TaskState.RUNNING if retrying else _FINAL[decision.verdict],
                outcome=str(decision.verdict),
                retry_count=task.retry_count + 1 if retrying else task.retry_count,
                next_due_at=decision.next_due_at_ms,
                end_at=0 if retrying else now,
            )
        )
        self._wake.set()
        self._finished.set()


def _broken(task: Claimed, now: int, exc: Exception) -> AttemptResult:
    """The result of a task that cannot be sent at all: it ends in ERROR, saying why."""
    return AttemptResult(
        task_id=task.id,
        claim=task.claim,
        attempt=task.retry_count + 1,
        started_at=now,
        duration_ms=0,
        status_code=0,
        error=f"Cannot send the request: {exc!r}",
        response=None,
        state=TaskState.ERROR,
        outcome=str(Verdict.ERROR),
        retry_count=task.retry_count,
        next_due_at=None,
        end_at=now,
    )


def _http_error(status_code: int) -> str | None:
    return f"HTTP {status_code}" if status_code >= 400 else None


def _stored_body(response: Response, keep_body: bool) -> str | None:
    if response.error is not None and not response.body:
        return base64.b64encode(response.error.encode()).decode()
    if not keep_body:
        return None
    return base64.b64encode(response.body).decode()
