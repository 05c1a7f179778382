"""A scripted transport for the dispatcher, and small polling helpers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import pytest

from tasks_server.dispatch.transport.base import Done, Request, Response

T = TypeVar("T")
Answer = Callable[[Request], Response | None]
"""How the fake target answers a request; None holds it in flight until released."""


def ok(request: Request) -> Response:
    return Response(200, b"ok")


def hold(request: Request) -> None:
    return None


def header(request: Request, name: str) -> str | None:
    """The value of a header the dispatcher put on a request."""
    prefix = name.lower() + ":"
    for line in request.headers:
        if line.lower().startswith(prefix):
            return line.split(":", 1)[1].strip()
    return None


@dataclass
class Held:
    request: Request
    done: Done


class FakeTransport:
    """Implements the Transport protocol; answers as ``answer`` says, on the event loop."""

    def __init__(self, answer: Answer = ok) -> None:
        self.answer = answer
        self.requests: list[Request] = []
        self.held: list[Held] = []
        self.closed = False
        self._answering = 0

    @property
    def in_flight(self) -> int:
        return len(self.held) + self._answering

    def submit(self, request: Request, done: Done) -> None:
        self.requests.append(request)
        response = self.answer(request)
        if response is None:
            self.held.append(Held(request, done))
            return
        self._answering += 1
        asyncio.get_running_loop().call_soon(self._finish, done, response)

    def _finish(self, done: Done, response: Response) -> None:
        self._answering -= 1
        done(response)

    def release(self, response: Response | None = None, index: int = 0) -> Request:
        held = self.held.pop(index)
        held.done(response or Response(200, b"released"))
        return held.request

    async def aclose(self) -> None:
        self.closed = True
        while self.held:
            self.release(Response(0, error="Aborted: the server is shutting down"))


class Script:
    """Answers per URL, in order; the last answer repeats. Unlisted URLs answer 200."""

    def __init__(self, answers: dict[str, list[Response | None]]) -> None:
        self._answers = {url: list(responses) for url, responses in answers.items()}

    def __call__(self, request: Request) -> Response | None:
        url = request.url.split("?", 1)[0]
        answers = self._answers.get(url)
        if not answers:
            return Response(200, b"ok")
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if answer is None:
            return None
        return Response(answer.status_code, answer.body, answer.error)


async def eventually(
    probe: Callable[[], Awaitable[T]] | Callable[[], T],
    accept: Callable[[T], object] = bool,
    *,
    within: float = 10.0,
    what: str = "the condition",
) -> T:
    """Poll ``probe`` until ``accept`` holds for its value; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if asyncio.iscoroutine(value):
            value = await value
        if accept(value):  # type: ignore[arg-type]
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within} s waiting for {what}; last value: {value!r}")
        await asyncio.sleep(0.005)
