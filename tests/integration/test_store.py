"""The SQLite store against the contract of ``store/base.py``, on real files in tmp_path."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tasks_server.errors import Conflict, NotFound, StoreError
from tasks_server.ids import hash_key, new_owner_id, new_task_id
from tasks_server.states import TaskState
from tasks_server.store import (
    AttemptResult,
    AttemptRow,
    Claimed,
    OwnerRow,
    SigningSecretRow,
    TaskQuery,
    TaskRow,
)
from tasks_server.store.sqlite import SQLiteStore
from tasks_server.store.sqlite.store import LEASE_MARGIN_MS
from tasks_server.store.sqlite.writer import GroupCommitWriter

from .webhooks import OWNER_SECRET

T0 = 1_900_000_000_000
SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()


def task_row(
    owner: OwnerRow,
    *,
    due_at: int = T0,
    created_at: int = T0,
    timeout_ms: int = 1_000,
    spec: str = '{"httpRequest": {}}',
) -> TaskRow:
    return TaskRow(
        id=new_task_id(created_at),
        owner_id=owner.id,
        state=TaskState.RUNNING,
        created_at=created_at,
        due_at=due_at,
        claim=None,
        estimate_execution_at=due_at,
        estimate_end_at=0,
        status_code=0,
        response=None,
        retry_count=0,
        absolute=False,
        timeout_ms=timeout_ms,
        metadata=None,
        spec=spec,
        delivery='{"url": "http://t.example/a"}',
    )


def new_owner(name: str) -> OwnerRow:
    return OwnerRow(id=new_owner_id(T0), name=name, key_hash=hash_key(name), created_at=T0)


async def add(store: SQLiteStore, owner: OwnerRow, **kwargs: int) -> TaskRow:
    row = task_row(owner, **kwargs)
    assert await store.add_task(row, queue_limit=1_000)
    return row


async def fetch(store: SQLiteStore, row: TaskRow) -> TaskRow:
    found = await store.get_task(row.owner_id, row.id)
    assert found is not None
    return found


def outcome(
    claimed: Claimed,
    *,
    state: TaskState = TaskState.SUCCESS,
    verdict: str = "SUCCESS",
    status_code: int = 200,
    next_due_at: int | None = None,
    at: int = T0,
) -> AttemptResult:
    retrying = verdict == "RETRY"
    return AttemptResult(
        task_id=claimed.id,
        claim=claimed.claim,
        attempt=claimed.retry_count + 1,
        started_at=at,
        duration_ms=12,
        status_code=status_code,
        error=None if status_code < 400 else f"HTTP {status_code}",
        response="b2s=",
        state=state,
        outcome=verdict,
        retry_count=claimed.retry_count + 1 if retrying else claimed.retry_count,
        next_due_at=next_due_at,
        end_at=0 if retrying else at,
    )


async def claim_all(
    store: SQLiteStore, now: int, claim: str = "c", limit: int = 100
) -> list[Claimed]:
    return list((await store.exchange([], now_ms=now, limit=limit, claim=claim)).tasks)


async def in_queue(store: SQLiteStore, owner: OwnerRow) -> int:
    fresh = await store.get_owner(owner.id)
    assert fresh is not None
    return fresh.tasks_in_queue


async def unfinished(store: SQLiteStore, owner: OwnerRow) -> int:
    rows = await store.list_tasks(owner.id, TaskQuery(limit=1_000))
    return sum(1 for row in rows if row.state.unfinished)


class TestOwners:
    async def test_add_and_get(self, store: SQLiteStore, owner: OwnerRow) -> None:
        assert await store.get_owner(owner.id) == owner
        assert await store.get_owner(new_owner_id(T0)) is None

    async def test_a_taken_name_is_a_conflict(self, store: SQLiteStore, owner: OwnerRow) -> None:
        twin = dataclasses.replace(new_owner("x"), name=owner.name)
        with pytest.raises(Conflict):
            await store.add_owner(twin, SECRET)
        assert await store.get_owner(twin.id) is None
        assert await store.get_owner(owner.id) == owner

    async def test_delete(self, store: SQLiteStore, owner: OwnerRow) -> None:
        assert await store.delete_owner(owner.id) is True
        assert await store.get_owner(owner.id) is None
        assert await store.delete_owner(owner.id) is False

    async def test_delete_is_refused_while_tasks_are_unfinished(
        self, store: SQLiteStore, owner: OwnerRow
    ) -> None:
        row = await add(store, owner)
        assert await store.delete_owner(owner.id) is False
        await store.modify_task(
            owner.id, row.id, lambda r: dataclasses.replace(r, state=TaskState.PAUSED, due_at=None)
        )
        assert await store.delete_owner(owner.id) is False
        assert await store.get_owner(owner.id) is not None
        await store.modify_task(
            owner.id, row.id, lambda r: dataclasses.replace(r, state=TaskState.REVOKED)
        )
        assert await store.delete_owner(owner.id) is True
        assert await store.get_task(owner.id, row.id) is None

    async def test_deleting_an_owner_removes_its_finished_tasks_and_attempts(
        self, store: SQLiteStore, owner: OwnerRow, db_path: Path
    ) -> None:
        row = await add(store, owner)
        [claimed] = await claim_all(store, T0)
        await store.exchange([outcome(claimed)], now_ms=T0, limit=0, claim="")
        assert await store.delete_owner(owner.id) is True
        with sqlite3.connect(db_path) as conn:
            assert conn.execute("SELECT count(*) FROM tasks").fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM attempts").fetchone() == (0,)
        assert await store.list_attempts(owner.id, row.id) is None


class TestQueueLimit:
    async def test_add_task_stops_at_the_limit_and_writes_nothing(
        self, store: SQLiteStore, owner: OwnerRow
    ) -> None:
        rows = [task_row(owner) for _ in range(4)]
        assert [await store.add_task(row, queue_limit=3) for row in rows] == [
            True,
            True,
            True,
            False,
        ]
        assert await store.get_task(owner.id, rows[3].id) is None
        assert await in_queue(store, owner) == 3

    async def test_concurrent_adds_never_exceed_the_limit(
        self, store: SQLiteStore, owner: OwnerRow
    ) -> None:
        rows = [task_row(owner) for _ in range(60)]
        added = await asyncio.gather(*(store.add_task(row, queue_limit=10) for row in rows))
        assert added.count(True) == 10
        assert len(await store.list_tasks(owner.id, TaskQuery(limit=1_000))) == 10
        assert await in_queue(store, owner) == 10

    async def test_the_limit_is_per_owner(self, store: SQLiteStore, owner: OwnerRow) -> None:
        other = new_owner("second-owner")
        await store.add_owner(other, SECRET)
        assert await store.add_task(task_row(owner), queue_limit=1)
        assert await store.add_task(task_row(other), queue_limit=1)
        assert not await store.add_task(task_row(owner), queue_limit=1)

    async def test_a_finished_task_frees_its_slot(
        self, store: SQLiteStore, owner: OwnerRow
    ) -> None:
        assert await store.add_task(task_row(owner), queue_limit=1)
        assert not await store.add_task(task_row(owner), queue_limit=1)
        [claimed] = await claim_all(store, T0)
        await store.exchange([outcome(claimed)], now_ms=T0, limit=0, claim="")
        assert await store.add_task(task_row(owner), queue_limit=1)


class TestTasksInQueue:
    async def test_the_counter_follows_every_path_out_of_the_queue(
        self, store: SQLiteStore, owner: OwnerRow
    ) -> None:
        rows = [await add(store, owner, due_at=T0 + i) for i in range(7)]
        succeed, fail, retry, revoke, delete, finished_then_deleted, pause = rows

        async def check(expected: int) -> None:
            assert await in_queue(store, owner) == expected
            assert await unfinished(store, owner) == expected

        await check(7)
        claimed = {c.id: c for c in await claim_all(store, T0 + 10)}
        await store.exchange(
            [
                outcome(claimed[succeed.id]),
                outcome(claimed[fail.id], state=TaskState.ERROR, verdict="ERROR", status_code=500),
                outcome(
                    claimed[retry.id],
                    state=TaskState.RUNNING,
                    verdict="RETRY",
                    status_code=503,
                    next_due_at=T0 + 60_000,
                ),
                outcome(claimed[finished_then_deleted.id]),
            ],
            now_ms=T0 + 10,
            limit=0,
            claim="",
        )
        await check(4)
        await store.modify_task(
            owner.id, revoke.id, lambda r: dataclasses.replace(r, state=TaskState.REVOKED)
        )
        await check(3)
        await store.modify_task(
            owner.id, pause.id, lambda r: dataclasses.replace(r, state=TaskState.PAUSED)
        )
        await check(3)
        assert await store.delete_task(owner.id, delete.id)
        await check(2)
        assert await store.delete_task(owner.id, finished_then_deleted.id)
        await check(2)
        assert await store.delete_task(owner.id, succeed.id)
        await check(2)

    async def test_an_ignored_result_does_not_count(
        self, store: SQLiteStore, owner: OwnerRow
    ) -> None:
        row = await add(store, owner)
        [claimed] = await claim_all(store, T0)
        await store.modify_task(
            owner.id,
            row.id,
            lambda r: dataclasses.replace(r, state=TaskState.PAUSED, due_at=None, claim=None),
        )
        await store.exchange([outcome(claimed)], now_ms=T0, limit=0, claim="")
        assert await in_queue(store, owner) == 1

    async def test_open_recounts(
        self, store: SQLiteStore, owner: OwnerRow, db_path: Path
    ) -> None:
        await add(store, owner)
        await add(store, owner)
        await store.close()
        with sqlite3.connect(db_path) as conn:
            conn.execute("UPDATE owners SET tasks_in_queue = 57")
        reopened = SQLiteStore(db_path)
        await reopened.open(T0)
        try:
            assert await in_queue(reopened, owner) == 2
        finally:
            await reopened.close()


class TestExchange:
    async def test_claims_only_due_tasks(self, store: SQLiteStore, owner: OwnerRow) -> None:
        past, now, later = (
            await add(store, owner, due_at=T0 - 10),
            await add(store, owner, due_at=T0),
            await add(store, owner, due_at=T0 + 1),
        )
        batch = await store.exchange([], now_ms=T0, limit=10, claim="n:1")
        assert {task.id for task in batch.tasks} == {past.id, now.id}
        assert batch.next_due_at == later.due_at

    async def test_the_earliest_due_are_claimed_first_up_to_the_limit(
        self, store: SQLiteStore, owner: OwnerRow
    ) -> None:
        rows = {due: await add(store, owner, due_at=T0 + due) for due in (500, 300, 400, 100, 200)}
        batch = await store.exchange([], now_ms=T0 + 1_000, limit=3, claim="n:1")
        assert sorted(task.due_at for task in batch.tasks) == [T0 + 100, T0 + 200, T0 + 300]
        assert {task.id for task in batch.tasks} == {rows[d].id for d in (100, 200, 300)}
        assert batch.next_due_at == T0 + 400
        second = await store.exchange([], now_ms=T0 + 1_000, limit=3, claim="n:2")
        assert sorted(task.due_at for task in second.tasks) == [T0 + 400, T0 + 500]

    async def test_a_claimed_task_carries_what_the_dispatcher_needs(
        self, store: SQLiteStore, owner: OwnerRow
    ) -> None:
        row = await add(store, owner, due_at=T0 - 5)
        [claimed] = await claim_all(store, T0, claim="node:7")
        assert claimed == Claimed(
            id=row.id,
            owner_id=owner.id,
            claim="node:7",
            retry_count=0,
            due_at=T0 - 5,
            delivery=row.delivery,
            first_attempt_at=T0,
        )

    async def test_a_claim_is_a_lease(self, store: SQLiteStore, owner: OwnerRow) -> None:
        row = await add(store, owner, timeout_ms=5_000)
        [first] = await claim_all(store, T0, claim="a")
        leased = await fetch(store, row)
        lease_end = T0 + 5_000 + LEASE_MARGIN_MS
        assert (leased.claim, leased.due_at) == ("a", lease_end)
        assert leased.estimate_execution_at == T0
        assert await claim_all(store, T0, claim="b") == []
        assert await claim_all(store, lease_end - 1, claim="b") == []
        [again] = await claim_all(store, lease_end, claim="c")
        assert (again.id, again.claim) == (first.id, "c")

    async def test_results_of_an_expired_lease_are_ignored(
        self, store: SQLiteStore, owner: OwnerRow
    ) -> None:
        row = await add(store, owner, timeout_ms=1_000)
        [stale] = await claim_all(store, T0, claim="old")
        [current] = await claim_all(store, T0 + 1_000 + LEASE_MARGIN_MS, claim="new")
        await store.exchange(
            [outcome(stale, state=TaskState.ERROR, verdict="ERROR", status_code=500)],
            now_ms=T0 + 70_000,
            limit=0,
            claim="",
        )
        assert (await fetch(store, row)).state is TaskState.RUNNING
        await store.exchange([outcome(current, at=T0 + 70_001)], now_ms=T0, limit=0, claim="")
        done = await fetch(store, row)
        assert (done.state, done.status_code) == (TaskState.SUCCESS, 200)
        attempts = await store.list_attempts(owner.id, row.id)
        assert attempts is not None
        assert [a.outcome for a in attempts] == ["IGNORED", "SUCCESS"]

    async def test_a_success_is_recorded(self, store: SQLiteStore, owner: OwnerRow) -> None:
        row = await add(store, owner)
        [claimed] = await claim_all(store, T0)
        batch = await store.exchange(
            [outcome(claimed, at=T0 + 7)], now_ms=T0 + 50, limit=5, claim="x"
        )
        assert batch.tasks == []
        assert batch.next_due_at is None
        done = await fetch(store, row)
        assert done.state is TaskState.SUCCESS
        assert (done.due_at, done.claim) == (None, None)
        assert (done.status_code, done.response, done.estimate_end_at) == (200, "b2s=", T0 + 7)
        assert await store.list_attempts(owner.id, row.id) == [
            AttemptRow(
                attempt=1,
                started_at=T0 + 7,
                duration_ms=12,
                status_code=200,
                error=None,
                outcome="SUCCESS",
            )
        ]

    async def test_a_retry_is_scheduled_and_claimed_when_due(
        self, store: SQLiteStore, owner: OwnerRow
    ) -> None:
        row = await add(store, owner)
        [claimed] = await claim_all(store, T0)
        retry = outcome(
            claimed,
            state=TaskState.RUNNING,
            verdict="RETRY",
            status_code=503,
            next_due_at=T0 + 30_000,
        )
        batch = await store.exchange([retry], now_ms=T0, limit=5, claim="x")
        assert batch.tasks == []
        assert batch.next_due_at == T0 + 30_000
        waiting = await fetch(store, row)
        assert (waiting.state, waiting.retry_count, waiting.claim) == (TaskState.RUNNING, 1, None)
        assert waiting.due_at == waiting.estimate_execution_at == T0 + 30_000
        assert waiting.status_code == 503
        [second] = await claim_all(store, T0 + 30_000, claim="y")
        assert (second.retry_count, second.due_at) == (1, T0 + 30_000)

    async def test_results_are_recorded_before_claiming(
        self, store: SQLiteStore, owner: OwnerRow
    ) -> None:
        """A retry already due is claimed again by the exchange that records it."""
        await add(store, owner)
        [claimed] = await claim_all(store, T0, claim="a")
        retry = outcome(
            claimed, state=TaskState.RUNNING, verdict="RETRY", status_code=500, next_due_at=T0
        )
        batch = await store.exchange([retry], now_ms=T0, limit=5, claim="b")
        assert [(task.id, task.claim, task.retry_count) for task in batch.tasks] == [
            (claimed.id, "b", 1)
        ]

    async def test_a_result_whose_claim_was_cleared_is_ignored(
        self, store: SQLiteStore, owner: OwnerRow
    ) -> None:
        row = await add(store, owner)
        [claimed] = await claim_all(store, T0)
        paused = await store.modify_task(
            owner.id,
            row.id,
            lambda r: dataclasses.replace(
                r, state=TaskState.PAUSED, due_at=None, claim=None, estimate_end_at=T0 + 1
            ),
        )
        await store.exchange(
            [outcome(claimed, state=TaskState.ERROR, verdict="ERROR", status_code=500)],
            now_ms=T0,
            limit=0,
            claim="",
        )
        assert await fetch(store, row) == paused
        attempts = await store.list_attempts(owner.id, row.id)
        assert attempts is not None
        assert [(a.outcome, a.status_code) for a in attempts] == [("IGNORED", 500)]

    async def test_a_result_for_a_deleted_task_is_dropped(
        self, store: SQLiteStore, owner: OwnerRow, db_path: Path
    ) -> None:
        row = await add(store, owner)
        [claimed] = await claim_all(store, T0)
        assert await store.delete_task(owner.id, row.id)
        await store.exchange([outcome(claimed)], now_ms=T0, limit=0, claim="")
        with sqlite3.connect(db_path) as conn:
            assert conn.execute("SELECT count(*) FROM attempts").fetchone() == (0,)

    async def test_next_due_at_counts_leases(self, store: SQLiteStore, owner: OwnerRow) -> None:
        await add(store, owner, due_at=T0, timeout_ms=2_000)
        batch = await store.exchange([], now_ms=T0, limit=1, claim="a")
        assert batch.next_due_at == T0 + 2_000 + LEASE_MARGIN_MS

    async def test_paused_and_finished_tasks_are_never_claimed(
        self, store: SQLiteStore, owner: OwnerRow
    ) -> None:
        row = await add(store, owner)
        await store.modify_task(
            owner.id, row.id, lambda r: dataclasses.replace(r, state=TaskState.PAUSED, due_at=None)
        )
        batch = await store.exchange([], now_ms=T0 + 10**9, limit=10, claim="a")
        assert (batch.tasks, batch.next_due_at) == ([], None)


class TestOpen:
    async def test_claims_of_an_earlier_process_become_due(
        self, store: SQLiteStore, owner: OwnerRow, db_path: Path
    ) -> None:
        in_flight = await add(store, owner, due_at=T0 - 100, timeout_ms=30_000)
        waiting = await add(store, owner, due_at=T0 + 500_000)
        await claim_all(store, T0, claim="old-process:1")
        await store.close()

        restarted = SQLiteStore(db_path)
        await restarted.open(T0 + 1_000)
        try:
            released = await fetch(restarted, in_flight)
            assert released.claim is None
            assert released.due_at == T0 - 100
            assert (await fetch(restarted, waiting)).due_at == T0 + 500_000
            batch = await restarted.exchange([], now_ms=T0 + 1_000, limit=10, claim="new:1")
            assert [task.id for task in batch.tasks] == [in_flight.id]
        finally:
            await restarted.close()

    async def test_everything_acknowledged_survives_a_restart(
        self, store: SQLiteStore, owner: OwnerRow, db_path: Path
    ) -> None:
        rows = [await add(store, owner, due_at=T0 + i) for i in range(5)]
        await store.close()
        restarted = SQLiteStore(db_path)
        await restarted.open(T0)
        try:
            assert [await fetch(restarted, row) for row in rows] == rows
            assert await restarted.get_owner(owner.id) == dataclasses.replace(
                owner, tasks_in_queue=5
            )
        finally:
            await restarted.close()

    async def test_an_acknowledged_write_is_on_disk(
        self, store: SQLiteStore, owner: OwnerRow, db_path: Path
    ) -> None:
        row = await add(store, owner)
        with sqlite3.connect(db_path) as conn:
            assert conn.execute("SELECT id FROM tasks").fetchall() == [(row.id,)]

    async def test_closing_a_store_never_opened(self, tmp_path: Path) -> None:
        await SQLiteStore(tmp_path / "never.db").close()
        assert not (tmp_path / "never.db").exists()

    async def test_open_creates_missing_folders(self, tmp_path: Path) -> None:
        nested = SQLiteStore(tmp_path / "a" / "b" / "tasks.db")
        await nested.open(T0)
        await nested.close()
        assert (tmp_path / "a" / "b" / "tasks.db").is_file()


class TestListTasks:
    @pytest.fixture
    async def rows(self, store: SQLiteStore, owner: OwnerRow) -> list[TaskRow]:
        rows = [
            await add(store, owner, created_at=T0 + 3, due_at=T0 + 100),
            await add(store, owner, created_at=T0 + 1, due_at=T0 + 300),
            await add(store, owner, created_at=T0 + 2, due_at=T0 + 200),
        ]
        other = new_owner("other-owner")
        await store.add_owner(other, SECRET)
        await store.add_task(task_row(other, created_at=T0), queue_limit=10)
        return rows

    async def ids(self, store: SQLiteStore, owner: OwnerRow, **query: object) -> list[str]:
        return [row.id for row in await store.list_tasks(owner.id, TaskQuery(**query))]  # type: ignore[arg-type]

    async def test_by_creation_time(
        self, store: SQLiteStore, owner: OwnerRow, rows: list[TaskRow]
    ) -> None:
        oldest_first = [rows[1].id, rows[2].id, rows[0].id]
        assert await self.ids(store, owner) == oldest_first
        assert await self.ids(store, owner, descending=True) == oldest_first[::-1]

    async def test_by_due_time(
        self, store: SQLiteStore, owner: OwnerRow, rows: list[TaskRow]
    ) -> None:
        assert await self.ids(store, owner, order="estimateExecutionAt") == [
            rows[0].id,
            rows[2].id,
            rows[1].id,
        ]

    async def test_by_end_time(
        self, store: SQLiteStore, owner: OwnerRow, rows: list[TaskRow]
    ) -> None:
        for row, end in zip(rows, (T0 + 9, T0 + 7, T0 + 8), strict=True):
            await store.modify_task(
                owner.id,
                row.id,
                lambda r, end=end: dataclasses.replace(
                    r, state=TaskState.REVOKED, due_at=None, estimate_end_at=end
                ),
            )
        assert await self.ids(store, owner, order="estimateEndAt", descending=True) == [
            rows[0].id,
            rows[2].id,
            rows[1].id,
        ]

    async def test_ties_are_broken_by_id(self, store: SQLiteStore, owner: OwnerRow) -> None:
        same = sorted([(await add(store, owner, created_at=T0)).id for _ in range(5)])
        assert await self.ids(store, owner) == same
        assert await self.ids(store, owner, descending=True) == same[::-1]

    async def test_state_filter(
        self, store: SQLiteStore, owner: OwnerRow, rows: list[TaskRow]
    ) -> None:
        await store.modify_task(
            owner.id, rows[2].id, lambda r: dataclasses.replace(r, state=TaskState.PAUSED)
        )
        assert await self.ids(store, owner, state=TaskState.PAUSED) == [rows[2].id]
        assert len(await self.ids(store, owner, state=TaskState.RUNNING)) == 2
        assert await self.ids(store, owner, state=TaskState.ERROR) == []

    async def test_limit_and_offset(
        self, store: SQLiteStore, owner: OwnerRow, rows: list[TaskRow]
    ) -> None:
        everything = await self.ids(store, owner)
        assert await self.ids(store, owner, limit=2) == everything[:2]
        assert await self.ids(store, owner, limit=2, offset=2) == everything[2:]
        assert await self.ids(store, owner, offset=3) == []

    async def test_only_the_owners_tasks(
        self, store: SQLiteStore, owner: OwnerRow, rows: list[TaskRow]
    ) -> None:
        assert sorted(await self.ids(store, owner, limit=100)) == sorted(row.id for row in rows)


class TestModifyTask:
    async def test_the_change_is_stored_and_returned(
        self, store: SQLiteStore, owner: OwnerRow
    ) -> None:
        row = await add(store, owner)
        changed = await store.modify_task(
            owner.id,
            row.id,
            lambda r: dataclasses.replace(
                r, state=TaskState.PAUSED, due_at=None, estimate_end_at=T0 + 5, metadata='{"a":"b"}'
            ),
        )
        assert changed.state is TaskState.PAUSED
        assert await fetch(store, row) == changed

    async def test_owner_and_creation_time_cannot_be_changed(
        self, store: SQLiteStore, owner: OwnerRow
    ) -> None:
        row = await add(store, owner)
        await store.modify_task(
            owner.id, row.id, lambda r: dataclasses.replace(r, created_at=1, retry_count=4)
        )
        stored = await fetch(store, row)
        assert (stored.created_at, stored.retry_count) == (T0, 4)

    async def test_not_found(self, store: SQLiteStore, owner: OwnerRow) -> None:
        row = await add(store, owner)
        other = new_owner("other-owner")
        await store.add_owner(other, SECRET)
        with pytest.raises(NotFound):
            await store.modify_task(owner.id, new_task_id(T0), lambda r: r)
        with pytest.raises(NotFound):
            await store.modify_task(other.id, row.id, lambda r: r)

    async def test_a_change_that_raises_writes_nothing(
        self, store: SQLiteStore, owner: OwnerRow
    ) -> None:
        row = await add(store, owner)

        def refuse(current: TaskRow) -> TaskRow:
            raise Conflict("no")

        with pytest.raises(Conflict):
            await store.modify_task(owner.id, row.id, refuse)
        assert await fetch(store, row) == row

    async def test_read_modify_write_is_atomic(self, store: SQLiteStore, owner: OwnerRow) -> None:
        row = await add(store, owner)

        def increment(current: TaskRow) -> TaskRow:
            return dataclasses.replace(current, retry_count=current.retry_count + 1)

        await asyncio.gather(*(store.modify_task(owner.id, row.id, increment) for _ in range(100)))
        assert (await fetch(store, row)).retry_count == 100


class TestDeleteAndAttempts:
    async def test_delete_task(self, store: SQLiteStore, owner: OwnerRow) -> None:
        row = await add(store, owner)
        other = new_owner("other-owner")
        await store.add_owner(other, SECRET)
        assert await store.delete_task(other.id, row.id) is False
        assert await store.delete_task(owner.id, row.id) is True
        assert await store.delete_task(owner.id, row.id) is False
        assert await store.get_task(owner.id, row.id) is None

    async def test_attempts_oldest_first_for_the_owner_only(
        self, store: SQLiteStore, owner: OwnerRow
    ) -> None:
        row = await add(store, owner)
        [first] = await claim_all(store, T0, claim="a")
        retry = outcome(
            first, state=TaskState.RUNNING, verdict="RETRY", status_code=500, next_due_at=T0 + 10
        )
        await store.exchange([retry], now_ms=T0, limit=0, claim="")
        [second] = await claim_all(store, T0 + 10, claim="b")
        await store.exchange([outcome(second, at=T0 + 10)], now_ms=T0 + 10, limit=0, claim="")
        attempts = await store.list_attempts(owner.id, row.id)
        assert attempts is not None
        assert [(a.attempt, a.outcome, a.started_at) for a in attempts] == [
            (1, "RETRY", T0),
            (2, "SUCCESS", T0 + 10),
        ]
        other = new_owner("other-owner")
        await store.add_owner(other, SECRET)
        assert await store.list_attempts(other.id, row.id) is None
        assert await store.list_attempts(owner.id, new_task_id(T0)) is None
        assert await store.list_attempts(owner.id, (await add(store, owner)).id) == []


class TestGroupCommit:
    async def test_many_concurrent_writes_all_commit(
        self, store: SQLiteStore, db_path: Path
    ) -> None:
        owners = [new_owner(f"owner-{i:04d}") for i in range(300)]
        await asyncio.gather(*(store.add_owner(o, SECRET) for o in owners))
        with sqlite3.connect(db_path) as conn:
            assert conn.execute("SELECT count(*) FROM owners").fetchone() == (300,)

    async def test_a_failing_write_does_not_affect_the_others(
        self, store: SQLiteStore, owner: OwnerRow, db_path: Path
    ) -> None:
        row = await add(store, owner)

        def refuse(current: TaskRow) -> TaskRow:
            raise RuntimeError("refused inside the transaction")

        writes = [store.add_owner(new_owner(f"owner-{i:04d}"), SECRET) for i in range(50)]
        writes.insert(10, store.modify_task(owner.id, row.id, refuse))
        twin = dataclasses.replace(new_owner("x"), name=owner.name)
        writes.insert(20, store.add_owner(twin, SECRET))
        results = await asyncio.gather(*writes, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        assert [type(f) for f in failures] == [RuntimeError, Conflict]
        with sqlite3.connect(db_path) as conn:
            assert conn.execute("SELECT count(*) FROM owners").fetchone() == (51,)
        assert await fetch(store, row) == row

    async def test_a_write_that_raises_after_writing_is_rolled_back_alone(
        self, tmp_path: Path
    ) -> None:
        conn = sqlite3.connect(tmp_path / "w.db", isolation_level=None, check_same_thread=False)
        conn.execute("CREATE TABLE t (v INTEGER NOT NULL)")
        writer = GroupCommitWriter(conn, synchronous="FULL")
        writer.start()

        def insert(value: int) -> Callable[[sqlite3.Connection], int]:
            return lambda c: c.execute("INSERT INTO t VALUES (?)", (value,)).rowcount

        def insert_then_fail(c: sqlite3.Connection) -> int:
            c.execute("INSERT INTO t VALUES (-1)")
            raise ValueError("after writing")

        results = await asyncio.gather(
            *(writer.run(insert(i), durable=i % 2 == 0) for i in range(20)),
            writer.run(insert_then_fail),
            *(writer.run(insert(i)) for i in range(20, 40)),
            return_exceptions=True,
        )
        await writer.stop()
        assert [type(r) for r in results if isinstance(r, BaseException)] == [ValueError]
        assert results.count(1) == 40
        with sqlite3.connect(tmp_path / "w.db") as check:
            values = [v for (v,) in check.execute("SELECT v FROM t ORDER BY v")]
        assert values == list(range(40))

    async def test_stop_commits_what_was_queued_first(self, tmp_path: Path) -> None:
        writer, path = self.writer(tmp_path)
        pending = [asyncio.ensure_future(writer.run(self.insert(i))) for i in range(1_500)]
        await asyncio.sleep(0)  # every write is queued before the stop
        await writer.stop()
        assert await asyncio.gather(*pending) == [1] * 1_500
        assert self.values(path) == list(range(1_500))

    async def test_a_failed_commit_fails_every_write_it_held(self, tmp_path: Path) -> None:
        writer, path = self.writer(tmp_path)
        dangling = "INSERT INTO child VALUES (999)"  # the deferred foreign key fails at COMMIT
        results = await asyncio.gather(
            *(writer.run(self.insert(i)) for i in range(30)),
            writer.run(lambda c: c.execute(dangling).rowcount),
            *(writer.run(self.insert(i)) for i in range(30, 60)),
            return_exceptions=True,
        )
        await writer.stop()
        others = results[:30] + results[31:]
        committed = [i for i, r in enumerate(others) if r == 1]
        failed = [r for r in results if isinstance(r, BaseException)]
        assert isinstance(results[30], StoreError)
        assert all(isinstance(r, StoreError) for r in failed)
        assert self.values(path) == committed
        with sqlite3.connect(path) as check:
            assert check.execute("SELECT count(*) FROM child").fetchone() == (0,)

    async def test_a_locked_database_fails_the_write_and_the_writer_goes_on(
        self, tmp_path: Path
    ) -> None:
        writer, path = self.writer(tmp_path, busy_timeout_s=0.05)
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StoreError, match="locked"):
                await writer.run(self.insert(1))
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert await writer.run(self.insert(2)) == 1
        await writer.stop()
        assert self.values(path) == [2]

    @staticmethod
    def writer(tmp_path: Path, busy_timeout_s: float = 5.0) -> tuple[GroupCommitWriter, Path]:
        path = tmp_path / "w.db"
        conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s
        )
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("CREATE TABLE t (v INTEGER NOT NULL)")
        conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        conn.execute(
            "CREATE TABLE child (pid INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
        )
        writer = GroupCommitWriter(conn, synchronous="NORMAL")
        writer.start()
        return writer, path

    @staticmethod
    def insert(value: int) -> Callable[[sqlite3.Connection], int]:
        return lambda c: c.execute("INSERT INTO t VALUES (?)", (value,)).rowcount

    @staticmethod
    def values(path: Path) -> list[int]:
        with sqlite3.connect(path) as check:
            return [v for (v,) in check.execute("SELECT v FROM t ORDER BY v")]


NEWER = "whsec_" + base64.b64encode(b"n" * 32).decode()
NEWEST = "whsec_" + base64.b64encode(b"N" * 32).decode()


def signing_rows(db_path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db_path) as conn:
        return list(conn.execute("SELECT owner_id, secret FROM signing_secrets ORDER BY rowid"))


class TestSigningSecrets:
    async def test_an_owner_starts_with_its_first_secret(
        self, store: SQLiteStore, owner: OwnerRow
    ) -> None:
        assert await store.signing_secrets(owner.id, T0) == [
            SigningSecretRow(secret=OWNER_SECRET, created_at=T0, expires_at=None)
        ]
        assert await store.signing_secrets(owner.id, T0 + 10**12) == [
            SigningSecretRow(OWNER_SECRET, T0, None)
        ]

    async def test_an_unknown_owner_has_none(self, store: SQLiteStore) -> None:
        assert await store.signing_secrets(new_owner_id(T0), T0) == []

    async def test_a_rotation_keeps_the_older_secret_for_the_overlap(
        self, store: SQLiteStore, owner: OwnerRow
    ) -> None:
        rotated = await store.rotate_signing_secret(
            owner.id, NEWER, now_ms=T0 + 1_000, overlap_ms=60_000
        )
        in_force = [
            SigningSecretRow(NEWER, T0 + 1_000, None),
            SigningSecretRow(OWNER_SECRET, T0, T0 + 61_000),
        ]
        assert rotated == in_force
        assert await store.signing_secrets(owner.id, T0 + 1_000) == in_force
        assert await store.signing_secrets(owner.id, T0 + 60_999) == in_force
        assert await store.signing_secrets(owner.id, T0 + 61_000) == [in_force[0]]

    async def test_an_overlap_of_zero_retires_the_older_secret_at_once(
        self, store: SQLiteStore, owner: OwnerRow, db_path: Path
    ) -> None:
        rotated = await store.rotate_signing_secret(owner.id, NEWER, now_ms=T0 + 5, overlap_ms=0)
        assert rotated == [SigningSecretRow(NEWER, T0 + 5, None)]
        assert await store.signing_secrets(owner.id, T0 + 5) == rotated
        assert signing_rows(db_path) == [(owner.id, NEWER)]

    async def test_a_second_rotation_within_the_overlap(
        self, store: SQLiteStore, owner: OwnerRow
    ) -> None:
        await store.rotate_signing_secret(owner.id, NEWER, now_ms=T0 + 1_000, overlap_ms=60_000)
        rotated = await store.rotate_signing_secret(
            owner.id, NEWEST, now_ms=T0 + 2_000, overlap_ms=10_000
        )
        assert rotated == [
            SigningSecretRow(NEWEST, T0 + 2_000, None),
            SigningSecretRow(NEWER, T0 + 1_000, T0 + 12_000),
            SigningSecretRow(OWNER_SECRET, T0, T0 + 12_000),
        ]
        assert [row.secret for row in await store.signing_secrets(owner.id, T0 + 12_000)] == [
            NEWEST
        ]

    async def test_a_longer_overlap_never_extends_an_earlier_one(
        self, store: SQLiteStore, owner: OwnerRow
    ) -> None:
        await store.rotate_signing_secret(owner.id, NEWER, now_ms=T0 + 1_000, overlap_ms=10_000)
        rotated = await store.rotate_signing_secret(
            owner.id, NEWEST, now_ms=T0 + 2_000, overlap_ms=86_400_000
        )
        assert rotated == [
            SigningSecretRow(NEWEST, T0 + 2_000, None),
            SigningSecretRow(NEWER, T0 + 1_000, T0 + 2_000 + 86_400_000),
            SigningSecretRow(OWNER_SECRET, T0, T0 + 11_000),
        ]

    async def test_secrets_past_their_overlap_are_dropped_at_the_next_rotation(
        self, store: SQLiteStore, owner: OwnerRow, db_path: Path
    ) -> None:
        await store.rotate_signing_secret(owner.id, NEWER, now_ms=T0 + 1_000, overlap_ms=1_000)
        assert len(signing_rows(db_path)) == 2
        await store.rotate_signing_secret(owner.id, NEWEST, now_ms=T0 + 5_000, overlap_ms=1_000)
        assert signing_rows(db_path) == [(owner.id, NEWER), (owner.id, NEWEST)]

    async def test_rotation_is_per_owner(self, store: SQLiteStore, owner: OwnerRow) -> None:
        other = new_owner("other-owner")
        await store.add_owner(other, SECRET)
        await store.rotate_signing_secret(owner.id, NEWER, now_ms=T0 + 1, overlap_ms=0)
        assert [row.secret for row in await store.signing_secrets(other.id, T0 + 1)] == [SECRET]

    async def test_deleting_an_owner_deletes_its_secrets(
        self, store: SQLiteStore, owner: OwnerRow, db_path: Path
    ) -> None:
        other = new_owner("other-owner")
        await store.add_owner(other, SECRET)
        await store.rotate_signing_secret(owner.id, NEWER, now_ms=T0 + 1, overlap_ms=60_000)
        assert await store.delete_owner(owner.id)
        assert signing_rows(db_path) == [(other.id, SECRET)]

    async def test_a_name_taken_adds_no_secret(
        self, store: SQLiteStore, owner: OwnerRow, db_path: Path
    ) -> None:
        twin = dataclasses.replace(new_owner("x"), name=owner.name)
        with pytest.raises(Conflict):
            await store.add_owner(twin, NEWER)
        assert signing_rows(db_path) == [(owner.id, OWNER_SECRET)]

    async def test_secrets_survive_a_restart(
        self, store: SQLiteStore, owner: OwnerRow, db_path: Path
    ) -> None:
        await store.rotate_signing_secret(owner.id, NEWER, now_ms=T0 + 1, overlap_ms=60_000)
        await store.close()
        restarted = SQLiteStore(db_path)
        await restarted.open(T0 + 2)
        try:
            assert [row.secret for row in await restarted.signing_secrets(owner.id, T0 + 2)] == [
                NEWER,
                OWNER_SECRET,
            ]
        finally:
            await restarted.close()


class TestClaimBatchSecrets:
    async def test_the_secrets_of_each_claimed_owner_newest_first(
        self, store: SQLiteStore, owner: OwnerRow
    ) -> None:
        other, idle = new_owner("other-owner"), new_owner("idle-owner")
        await store.add_owner(other, SECRET)
        await store.add_owner(idle, NEWEST)
        await add(store, owner)
        await add(store, owner)
        await add(store, other)
        await add(store, idle, due_at=T0 + 10**6)
        await store.rotate_signing_secret(owner.id, NEWER, now_ms=T0, overlap_ms=30_000)
        batch = await store.exchange([], now_ms=T0, limit=10, claim="a")
        assert len(batch.tasks) == 3
        assert {task.owner_id for task in batch.tasks} == {owner.id, other.id}
        assert {k: list(v) for k, v in batch.secrets.items()} == {
            owner.id: [NEWER, OWNER_SECRET],
            other.id: [SECRET],
        }

    async def test_a_secret_past_its_overlap_no_longer_signs(
        self, store: SQLiteStore, owner: OwnerRow
    ) -> None:
        await add(store, owner, due_at=T0 + 30_000)
        await store.rotate_signing_secret(owner.id, NEWER, now_ms=T0, overlap_ms=30_000)
        batch = await store.exchange([], now_ms=T0 + 30_000, limit=10, claim="a")
        assert len(batch.tasks) == 1
        assert {k: list(v) for k, v in batch.secrets.items()} == {owner.id: [NEWER]}

    async def test_no_task_claimed_no_secrets(self, store: SQLiteStore, owner: OwnerRow) -> None:
        await add(store, owner, due_at=T0 + 1)
        batch = await store.exchange([], now_ms=T0, limit=10, claim="a")
        assert (list(batch.tasks), dict(batch.secrets)) == ([], {})
        assert (await store.exchange([], now_ms=T0 + 1, limit=0, claim="b")).secrets == {}

    async def test_claimed_tasks_come_back_in_due_order(
        self, store: SQLiteStore, owner: OwnerRow
    ) -> None:
        dues = [T0 - 5, T0 - 50, T0, T0 - 7, T0 - 500, T0 - 1]
        rows = {due: await add(store, owner, due_at=due) for due in dues}
        batch = await store.exchange([], now_ms=T0, limit=10, claim="a")
        assert [task.due_at for task in batch.tasks] == sorted(dues)
        assert [task.id for task in batch.tasks] == [rows[due].id for due in sorted(dues)]
