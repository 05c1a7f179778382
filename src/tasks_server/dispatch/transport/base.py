"""The transport seam: what the dispatcher hands over to send, and what comes back.

A transport knows HTTP, never tasks or their states.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Material:
    """A certificate or key, either a file on the server or its content."""

    path: str | None = None
    blob: bytes | None = None


@dataclass(frozen=True, slots=True)
class Tls:
    ca: Material | None = None
    cert: Material | None = None
    cert_password: str | None = None
    key: Material | None = None


@dataclass(frozen=True, slots=True)
class Request:
    url: str
    method: str
    headers: tuple[str, ...] = ()
    body: bytes | None = None
    form: tuple[tuple[str, str], ...] | None = None
    user_agent: str | None = None
    timeout_ms: int = 30_000
    tls: Tls | None = None
    keep_body: bool = True


@dataclass(slots=True)
class Response:
    status_code: int
    """0 when no HTTP answer came back (see ``error``)."""
    body: bytes = b""
    error: str | None = None
    started_at_ms: int = 0
    duration_ms: int = 0
    headers: dict[str, str] = field(default_factory=dict)


Done = Callable[[Response], None]


class Transport(Protocol):
    """Sends requests concurrently; calls ``done`` once per request, on the event loop."""

    @property
    def in_flight(self) -> int: ...

    def submit(self, request: Request, done: Done) -> None: ...

    async def aclose(self) -> None:
        """Abort what is still in flight and release every resource."""
        ...
