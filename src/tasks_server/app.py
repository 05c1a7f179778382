"""Wiring: the store, the services, the dispatcher and the ASGI app, and their lifetimes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from .api import create_api
from .clock import Clock, SystemClock
from .config import Settings
from .dispatch.dispatcher import Dispatcher
from .dispatch.transport.base import Transport
from .dispatch.transport.curl import CurlTransport, unsupported_options
from .owners import Owners
from .store.sqlite import SQLiteStore
from .tasks import Tasks

log = logging.getLogger(__name__)


class Runtime:
    """The parts that live as long as the server; the dispatcher starts with the loop."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.store = SQLiteStore(settings.db, synchronous=settings.sqlite_synchronous)
        self.owners = Owners(self.store, clock)
        self.tasks = Tasks(
            self.store,
            clock,
            queue_limit=settings.owner_queue_limit,
            on_due=self._on_due,
            unsupported=unsupported_options(),
        )
        self.dispatcher: Dispatcher | None = None

    def _on_due(self, due_at_ms: int) -> None:
        if self.dispatcher is not None:
            self.dispatcher.notify_due(due_at_ms)

    @contextlib.asynccontextmanager
    async def running(self, transport: Transport | None = None) -> AsyncIterator[None]:
        settings = self.settings
        await self.store.open(self.clock.now_ms())
        transport = transport or CurlTransport(response_max_bytes=settings.response_max_bytes)
        self.dispatcher = Dispatcher(
            self.store,
            transport,
            self.clock,
            max_in_flight=settings.max_in_flight,
            poll_interval_ms=settings.poll_interval_ms,
        )
        loop_task = asyncio.create_task(self.dispatcher.run(), name="dispatcher")
        log.info("dispatching from %s", settings.db, extra={"action": "server_started"})
        try:
            yield
        finally:
            await self.dispatcher.stop(settings.shutdown_grace_s)
            await loop_task
            await transport.aclose()
            await self.store.close()
            log.info("stopped", extra={"action": "server_stopped"})


def create_app(
    settings: Settings, *, clock: Clock | None = None, transport: Transport | None = None
) -> Starlette:
    runtime = Runtime(settings, clock or SystemClock())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with runtime.running(transport):
            yield

    app = create_api(lifespan)
    app.state.settings = settings
    app.state.owners = runtime.owners
    app.state.tasks = runtime.tasks
    app.state.runtime = runtime
    return app
