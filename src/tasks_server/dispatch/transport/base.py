"""The transport seam: what the dispatcher hands over to send, and what comes back.

A transport knows HTTP, never tasks or their states.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol


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
class Auth:
    scheme: Literal["basic", "digest", "ntlm", "aws-sigv4"]
    username: str
    password: str
    aws_sigv4: str | None = None
    """``provider1:provider2:region:service`` for the ``aws-sigv4`` scheme."""


@dataclass(frozen=True, slots=True)
class Proxy:
    url: str
    http10: bool = False
    headers: tuple[str, ...] = ()
    insecure: bool = False
    auth: Auth | None = None


@dataclass(frozen=True, slots=True)
class Options:
    """How to connect and what to accept; the defaults are the seed's."""

    auth: Auth | None = None
    cookies: str | None = None
    """``name=value; name2=value2`` for the request."""
    cookie_jar: tuple[str, ...] = ()
    """Cookie-jar lines (Netscape format) loaded before the request."""
    http_version: str = "1.1"
    ip_version: int | None = None
    referer: str | None = None
    auto_referer: bool = True
    keepalive_s: int = 30
    hsts: bytes | bool | None = None
    """True: keep HSTS in memory; bytes: a preloaded HSTS file's content."""
    session_id_cache: bool = True
    insecure: bool = False
    follow_redirects: bool = True
    max_redirects: int = 8
    trusted_redirect_auth: Auth | None = None
    protocols: tuple[str, ...] = ("http", "https")
    redirect_protocols: tuple[str, ...] = ("http", "https")
    dns_servers: tuple[str, ...] = ()
    resolve: tuple[str, ...] = ()
    """``host:port:address[,address]`` entries."""
    doh_url: str | None = None
    doh_insecure: bool = False
    tls_min: str | None = None
    tls_max: str | None = None
    proxy: Proxy | None = None
    haproxy_protocol: bool = False
    haproxy_client_ip: str | None = None
    cert_type: str | None = None
    key_type: str | None = None
    cert_status: bool = False


DEFAULT_OPTIONS = Options()


@dataclass(frozen=True, slots=True)
class Request:
    url: str
    method: str
    headers: tuple[str, ...] = ()
    body: bytes | None = None
    user_agent: str | None = None
    timeout_ms: int = 30_000
    tls: Tls | None = None
    keep_body: bool = True
    options: Options = DEFAULT_OPTIONS


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
