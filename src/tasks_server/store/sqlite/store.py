"""The SQLite backend: one file in WAL mode, a group-commit writer thread, a reader thread."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ...errors import Conflict, NotFound
from ...states import TaskState
from ..base import (
    AttemptResult,
    AttemptRow,
    ClaimBatch,
    Claimed,
    OwnerRow,
    SigningSecretRow,
    TaskQuery,
    TaskRow,
)
from .migrate import migrate
from .queries import QUERIES
from .writer import GroupCommitWriter

T = TypeVar("T")

LEASE_MARGIN_MS = 60_000
_ORDER_COLUMNS = {
    "createdAt": "created_at",
    "estimateEndAt": "estimate_end_at",
    "estimateExecutionAt": "estimate_execution_at",
}
_TASK_FIELDS = [field.name for field in dataclasses.fields(TaskRow)]


def _connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA temp_store = MEMORY")
    if read_only:
        conn.execute("PRAGMA query_only = ON")
    return conn


def _task(row: sqlite3.Row | tuple[Any, ...]) -> TaskRow:
    values = dict(zip(_TASK_FIELDS, row, strict=True))
    values["state"] = TaskState(values["state"])
    values["absolute"] = bool(values["absolute"])
    return TaskRow(**values)


class SQLiteStore:
    """All SQL of the SQLite dialect lives in ``queries.sql`` and ``migrations/``."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self._synchronous = synchronous.upper()
        self._writer: GroupCommitWriter | None = None
        self._reader: sqlite3.Connection | None = None
        self._read_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-reader")

    async def open(self, now_ms: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(self.path)
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        migrate(conn)
        conn.execute(QUERIES["release_claims"], {"now": now_ms})
        conn.execute(QUERIES["recount_owner_tasks"])
        self._writer = GroupCommitWriter(conn, synchronous=self._synchronous)
        self._writer.start()
        self._reader = _connect(self.path, read_only=True)

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.stop()
        self._read_pool.shutdown(wait=True)
        if self._reader is not None:
            self._reader.close()

    async def _write(self, fn: Callable[[sqlite3.Connection], T], *, durable: bool = True) -> T:
        assert self._writer is not None, "the store is not open"
        return await self._writer.run(fn, durable=durable)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        reader = self._reader
        assert reader is not None, "the store is not open"
        return await asyncio.get_running_loop().run_in_executor(self._read_pool, fn, reader)

    # owners

    async def add_owner(self, owner: OwnerRow, signing_secret: str) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(QUERIES["insert_owner"], dataclasses.asdict(owner))
            except sqlite3.IntegrityError as exc:
                raise Conflict("Owner has already registered") from exc
            params = {"owner_id": owner.id, "secret": signing_secret, "now": owner.created_at}
            conn.execute(QUERIES["insert_signing_secret"], params)

        await self._write(insert)

    async def rotate_signing_secret(
        self, owner_id: str, secret: str, *, now_ms: int, overlap_ms: int
    ) -> list[SigningSecretRow]:
        params = {
            "owner_id": owner_id,
            "secret": secret,
            "now": now_ms,
            "expires_at": now_ms + overlap_ms,
        }

        def rotate(conn: sqlite3.Connection) -> list[SigningSecretRow]:
            conn.execute(QUERIES["expire_signing_secrets"], params)
            conn.execute(QUERIES["drop_expired_signing_secrets"], params)
            conn.execute(QUERIES["insert_signing_secret"], params)
            return _active_secrets(conn, owner_id, now_ms)

        return await self._write(rotate)

    async def signing_secrets(self, owner_id: str, now_ms: int) -> list[SigningSecretRow]:
        def select(conn: sqlite3.Connection) -> list[SigningSecretRow]:
            return _active_secrets(conn, owner_id, now_ms)

        return await self._read(select)

    async def get_owner(self, owner_id: str) -> OwnerRow | None:
        def select(conn: sqlite3.Connection) -> OwnerRow | None:
            row = conn.execute(QUERIES["get_owner"], {"id": owner_id}).fetchone()
            return OwnerRow(*row) if row else None

        return await self._read(select)

    async def delete_owner(self, owner_id: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            return conn.execute(QUERIES["delete_owner"], {"id": owner_id}).rowcount == 1

        return await self._write(delete)

    # tasks

    async def add_task(self, task: TaskRow, queue_limit: int) -> bool:
        params = {
            "id": task.id,
            "owner_id": task.owner_id,
            "created_at": task.created_at,
            "due_at": task.due_at,
            "absolute": int(task.absolute),
            "timeout_ms": task.timeout_ms,
            "metadata": task.metadata,
            "spec": task.spec,
            "delivery": task.delivery,
            "queue_limit": queue_limit,
        }

        def insert(conn: sqlite3.Connection) -> bool:
            return conn.execute(QUERIES["insert_task"], params).rowcount == 1

        return await self._write(insert)

    async def get_task(self, owner_id: str, task_id: str) -> TaskRow | None:
        def select(conn: sqlite3.Connection) -> TaskRow | None:
            return _select_task(conn, owner_id, task_id)

        return await self._read(select)

    async def list_tasks(self, owner_id: str, query: TaskQuery) -> list[TaskRow]:
        sql = QUERIES["list_tasks"].format(
            state_filter="AND state = :state" if query.state else "",
            order=_ORDER_COLUMNS[query.order],
            direction="DESC" if query.descending else "ASC",
        )
        params = {
            "owner_id": owner_id,
            "state": query.state,
            "limit": query.limit,
            "offset": query.offset,
        }

        def select(conn: sqlite3.Connection) -> list[TaskRow]:
            return [_task(row) for row in conn.execute(sql, params)]

        return await self._read(select)

    async def modify_task(
        self, owner_id: str, task_id: str, change: Callable[[TaskRow], TaskRow]
    ) -> TaskRow:
        def modify(conn: sqlite3.Connection) -> TaskRow:
            current = _select_task(conn, owner_id, task_id)
            if current is None:
                raise NotFound("Task not found")
            changed = change(current)
            if changed != current:
                conn.execute(QUERIES["update_task"], _task_params(changed))
            return changed

        return await self._write(modify)

    async def delete_task(self, owner_id: str, task_id: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            params = {"id": task_id, "owner_id": owner_id}
            return conn.execute(QUERIES["delete_task"], params).rowcount == 1

        return await self._write(delete)

    async def list_attempts(self, owner_id: str, task_id: str) -> list[AttemptRow] | None:
        def select(conn: sqlite3.Connection) -> list[AttemptRow] | None:
            if _select_task(conn, owner_id, task_id) is None:
                return None
            rows = conn.execute(QUERIES["list_attempts"], {"id": task_id})
            return [AttemptRow(*row) for row in rows]

        return await self._read(select)

    # dispatch

    async def exchange(
        self,
        results: Sequence[AttemptResult],
        *,
        now_ms: int,
        limit: int,
        claim: str,
    ) -> ClaimBatch:
        def exchange(conn: sqlite3.Connection) -> ClaimBatch:
            _record(conn, results)
            claimed: list[Claimed] = []
            if limit > 0:
                params = {
                    "now": now_ms,
                    "limit": limit,
                    "claim": claim,
                    "lease_margin_ms": LEASE_MARGIN_MS,
                }
                rows = conn.execute(QUERIES["claim_due"], params).fetchall()
                claimed = [
                    Claimed(row[0], row[1], claim, row[2], row[3], row[4], row[5]) for row in rows
                ]
                claimed.sort(key=lambda task: task.due_at)
            next_due: int | None = conn.execute(QUERIES["next_due"]).fetchone()[0]
            return ClaimBatch(claimed, next_due, _secrets_of(conn, claimed, now_ms))

        return await self._write(exchange, durable=False)


def _active_secrets(conn: sqlite3.Connection, owner_id: str, now_ms: int) -> list[SigningSecretRow]:
    params = {"owner_id": owner_id, "now": now_ms}
    return [
        SigningSecretRow(*row) for row in conn.execute(QUERIES["active_signing_secrets"], params)
    ]


def _secrets_of(
    conn: sqlite3.Connection, claimed: list[Claimed], now_ms: int
) -> dict[str, list[str]]:
    if not claimed:
        return {}
    owner_ids = json.dumps(sorted({task.owner_id for task in claimed}))
    found: dict[str, list[str]] = {}
    params = {"owner_ids": owner_ids, "now": now_ms}
    for owner_id, secret in conn.execute(QUERIES["signing_secrets_of"], params):
        found.setdefault(owner_id, []).append(secret)
    return found


def _select_task(conn: sqlite3.Connection, owner_id: str, task_id: str) -> TaskRow | None:
    row = conn.execute(QUERIES["get_task"], {"id": task_id, "owner_id": owner_id}).fetchone()
    return _task(row) if row else None


def _task_params(task: TaskRow) -> dict[str, Any]:
    params = dataclasses.asdict(task)
    params["state"] = str(task.state)
    params["absolute"] = int(task.absolute)
    del params["owner_id"], params["created_at"]
    return params


def _record(conn: sqlite3.Connection, results: Sequence[AttemptResult]) -> None:
    for result in results:
        params = {
            "id": result.task_id,
            "claim": result.claim,
            "attempt": result.attempt,
            "started_at": result.started_at,
            "duration_ms": result.duration_ms,
            "status_code": result.status_code,
            "error": result.error,
            "response": result.response,
            "state": str(result.state),
            "outcome": result.outcome,
            "retry_count": result.retry_count,
            "due_at": result.next_due_at,
            "estimate_end_at": result.end_at,
        }
        applied = conn.execute(QUERIES["record_attempt_result"], params).rowcount == 1
        if not applied:
            params["outcome"] = "IGNORED"
        conn.execute(QUERIES["insert_attempt"], params)
