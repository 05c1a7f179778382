"""The ASGI app in-process: its lifespan (store, dispatcher) and an httpx client on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from tasks_server.app import create_app
from tasks_server.clock import Clock, FrozenClock
from tasks_server.config import Settings
from tasks_server.dispatch.transport.base import Transport

from .fakes import FakeTransport, eventually

FIX = "Do not retry without fixing the problem"
DONT_REPEAT = "The request should not be repeated"
URL = "http://target.test/hook"
TASK_FIELDS = {
    "id",
    "state",
    "createdAt",
    "statusCode",
    "estimateEndAt",
    "estimateExecutionAt",
    "response",
    "metadata",
    "retryCount",
}


@asynccontextmanager
async def serve(
    settings: Settings, *, clock: Clock | None = None, transport: Transport | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and yield a client talking to it (500s are answers, not raises)."""
    app = create_app(settings, clock=clock, transport=transport)
    async with app.router.lifespan_context(app):
        asgi = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=asgi, base_url="http://tasks.test") as client:
            yield client


def task_body(url: str = URL, method: str = "POST", **config: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"httpRequest": {"url": url, "method": method}}
    if config:
        body["config"] = config
    return body


@dataclass
class Owner:
    id: str
    name: str
    key: str
    signing_secret: str

    @classmethod
    def registered(cls, name: str, answer: dict[str, Any]) -> Owner:
        """From the answer of ``POST /v1/owners/register``, which must hold exactly these."""
        assert set(answer) == {"id", "key", "signingSecret"}, answer
        return cls(answer["id"], name, answer["key"], answer["signingSecret"])

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", "X-Tasks-Owner-Id": self.id}


@dataclass
class Client:
    """A caller of the API, with shortcuts for the happy paths."""

    client: httpx.AsyncClient

    async def owner(self, name: str = "owner-one") -> Owner:
        response = await self.client.post("/v1/owners/register", json={"name": name})
        assert response.status_code == 201, response.text
        return Owner.registered(name, response.json())

    async def register(self, owner: Owner, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/queues/register", headers=owner.headers, json=body or task_body()
        )
        assert response.status_code == 201, response.text
        task: dict[str, Any] = response.json()
        return task

    async def task(self, owner: Owner, task_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/v1/queues/{task_id}", headers=owner.headers)
        assert response.status_code == 200, response.text
        task: dict[str, Any] = response.json()
        return task

    async def call(self, method: str, path: str, owner: Owner, **kwargs: Any) -> httpx.Response:
        return await self.client.request(method, path, headers=owner.headers, **kwargs)

    async def settled(self, owner: Owner, task_id: str, within: float = 10) -> dict[str, Any]:
        return await eventually(
            lambda: self.task(owner, task_id),
            lambda t: t["state"] not in ("RUNNING", "PAUSED"),
            within=within,
            what=f"task {task_id} to finish",
        )


@dataclass
class Api(Client):
    """The app on a frozen clock, delivering through a fake transport."""

    clock: FrozenClock
    transport: FakeTransport


def envelope(response: httpx.Response, status: int, action: str = FIX) -> Any:
    """Assert the error envelope; return its message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"action", "message"}
    assert body["action"] == action
    return body["message"]
