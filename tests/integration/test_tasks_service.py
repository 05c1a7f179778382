"""The tasks service on a real store: what the API cannot time precisely."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from tasks_server.clock import FrozenClock
from tasks_server.errors import Conflict
from tasks_server.store import OwnerRow, TaskRow
from tasks_server.store.sqlite import SQLiteStore
from tasks_server.tasks import Tasks

from .webhooks import OWNER_SECRET

BODY = orjson.dumps(
    {"httpRequest": {"url": "http://t.test/a", "method": "POST"}, "config": {"retry": 0}}
)


class GatedStore(SQLiteStore):
    """Holds the first ``modify_task`` until the gate opens."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, synchronous="NORMAL")
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()
        self._held = False

    async def modify_task(
        self, owner_id: str, task_id: str, change: Callable[[TaskRow], TaskRow]
    ) -> TaskRow:
        if not self._held:
            self._held = True
            self.waiting.set()
            await self.gate.wait()
        return await super().modify_task(owner_id, task_id, change)


async def test_an_edit_racing_another_edit_is_a_conflict(
    tmp_path: Path, frozen_clock: FrozenClock
) -> None:
    store = GatedStore(tmp_path / "tasks.db")
    await store.open(frozen_clock.now_ms())
    try:
        owner = OwnerRow("0" * 26, "owner-one", b"k", frozen_clock.now_ms())
        await store.add_owner(owner, OWNER_SECRET)
        tasks = Tasks(store, frozen_clock, queue_limit=10, on_due=lambda due: None)
        task = await tasks.register(owner, BODY)

        slow = asyncio.create_task(tasks.edit(owner, task.id, b'{"config": {"retry": 1}}'))
        await store.waiting.wait()
        await tasks.edit(owner, task.id, b'{"config": {"retry": 2}}')
        store.gate.set()
        with pytest.raises(Conflict, match="changed during the edit"):
            await slow
        stored = await tasks.config(owner, task.id)
        assert stored["config"]["retry"] == 2
    finally:
        await store.close()
