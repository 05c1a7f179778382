"""Group commit: one thread owns the write connection and runs every queued write of a burst in
one transaction, so a burst costs one fsync, not one per request.

Each write runs inside a savepoint: one that raises is rolled back alone and its caller gets the
exception; the others commit. Callers are answered only after the COMMIT returned.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ...errors import StoreError

T = TypeVar("T")
log = logging.getLogger(__name__)

MAX_BATCH = 1024


@dataclass(slots=True)
class _Write:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    durable: bool


_Answer = tuple[asyncio.Future[Any], Any, BaseException | None]


class GroupCommitWriter:
    def __init__(self, conn: sqlite3.Connection, *, synchronous: str) -> None:
        self._conn = conn
        self._synchronous = synchronous
        self._current_sync = ""
        self._queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="sqlite-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    async def stop(self) -> None:
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)

    async def run(self, fn: Callable[[sqlite3.Connection], T], *, durable: bool = True) -> T:
        """Run ``fn`` in the next transaction; ``durable=False`` may skip the fsync (claims)."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put(_Write(fn, future, durable))
        return await future

    def _run(self) -> None:
        while (first := self._queue.get()) is not None:
            batch = [first]
            stop = self._drain(batch)
            self._execute(batch)
            if stop:
                break
        self._conn.close()

    def _drain(self, batch: list[_Write]) -> bool:
        while len(batch) < MAX_BATCH:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return False
            if item is None:
                return True
            batch.append(item)
        return False

    def _execute(self, batch: list[_Write]) -> None:
        self._set_synchronous(any(write.durable for write in batch))
        conn = self._conn
        answers: list[_Answer] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            answers = [self._apply(write) for write in batch]
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.exception("write transaction failed", extra={"action": "store_write_failed"})
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            error = StoreError(f"The database write failed: {exc}")
            answers = [(write.future, None, error) for write in batch]
        self._answer(answers)

    def _apply(self, write: _Write) -> _Answer:
        conn = self._conn
        conn.execute("SAVEPOINT w")
        try:
            result = write.fn(conn)
        except Exception as exc:
            conn.execute("ROLLBACK TO w")
            conn.execute("RELEASE w")
            return write.future, None, exc
        conn.execute("RELEASE w")
        return write.future, result, None

    def _set_synchronous(self, durable: bool) -> None:
        wanted = self._synchronous if durable else "NORMAL"
        if wanted != self._current_sync:
            self._conn.execute(f"PRAGMA synchronous = {wanted}")
            self._current_sync = wanted

    @staticmethod
    def _answer(answers: list[_Answer]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Answer]] = {}
        for answer in answers:
            by_loop.setdefault(answer[0].get_loop(), []).append(answer)
        for loop, items in by_loop.items():
            if not loop.is_closed():
                loop.call_soon_threadsafe(_settle, items)


def _settle(answers: list[_Answer]) -> None:
    for future, result, error in answers:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
