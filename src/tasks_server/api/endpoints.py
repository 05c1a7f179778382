"""A route and what it takes and answers: one table drives both routing and the OpenAPI
document, so the two cannot drift apart."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    status: int = 200
    answer: type[BaseModel] | None = None
    many: bool = False
    """The answer is a list of ``answer``."""
    body: type[BaseModel] | None = None
    body_description: str = ""
    auth: bool = True
    tag: str = "Queue"
