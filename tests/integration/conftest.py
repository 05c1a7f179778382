"""Fixtures of the integration suite: a real SQLite store in tmp_path, a real local target."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tasks_server.clock import FrozenClock
from tasks_server.config import Settings
from tasks_server.ids import hash_key, new_owner_id
from tasks_server.store import OwnerRow
from tasks_server.store.sqlite import SQLiteStore

from .appkit import Api, serve
from .fakes import FakeTransport
from .target import Target
from .webhooks import OWNER_SECRET


@pytest.fixture
def target() -> Iterator[Target]:
    """A plain-HTTP target on 127.0.0.1 that records what it receives."""
    with Target().running() as server:
        yield server


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "tasks.db"


@pytest.fixture
async def store(db_path: Path, frozen_clock: FrozenClock) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(db_path, synchronous="NORMAL")
    await opened.open(frozen_clock.now_ms())
    yield opened
    await opened.close()


@pytest.fixture
async def owner(store: SQLiteStore, frozen_clock: FrozenClock) -> OwnerRow:
    row = OwnerRow(
        id=new_owner_id(frozen_clock.now_ms()),
        name="first-owner",
        key_hash=hash_key("k" * 64),
        created_at=frozen_clock.now_ms(),
    )
    await store.add_owner(row, OWNER_SECRET)
    return row


@pytest.fixture
async def api(db_path: Path, frozen_clock: FrozenClock) -> AsyncIterator[Api]:
    """The app on a frozen clock, delivering through a fake transport that answers 200."""
    transport = FakeTransport()
    settings = Settings(db=db_path, poll_interval_ms=20, shutdown_grace_s=1)
    async with serve(settings, clock=frozen_clock, transport=transport) as client:
        yield Api(client, frozen_clock, transport)
