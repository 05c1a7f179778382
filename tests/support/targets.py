"""A real local HTTP(S) target for the tasks to hit, run in the test process.

The target records every request it receives (method, path, query, headers, body and arrival
time in epoch milliseconds) and lets a test wait for a condition with a deadline.

Routes:

- ``/cb``                 200 ``{"ok":true}`` (application/json)
- ``/cb/error``           404
- ``/cb/500``             500
- ``/cb/slow?ms=N``       sleeps N ms, then 200 ``{"ok":true}``
- ``/cb/big``             200 with a 40 kB body (:data:`BIG_BODY`)
- ``/cb/status/<code>``   answers ``<code>``
- ``/prog/<name>``        the next scripted response of ``<name>`` (see :meth:`TargetServer.script`)
- anything else           404
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

OK_BODY = b'{"ok":true}'
BIG_BODY = (b"0123456789abcdef" * 2560)[:40960]  # 40 kB, a recognisable pattern
SLOW_MAX_MS = 60_000
ENCRYPTED_KEY_PASSWORD = "k3y-Pa55word"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Headers(Mapping[str, str]):
    """An immutable, case-insensitive view of the request headers (first value wins)."""

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self._items: list[tuple[str, str]] = list(items)
        self._first: dict[str, str] = {}
        for name, value in self._items:
            self._first.setdefault(name.lower(), value)

    def __getitem__(self, name: str) -> str:
        return self._first[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    def get_all(self, name: str) -> list[str]:
        lowered = name.lower()
        return [value for key, value in self._items if key.lower() == lowered]

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    raw_query: str
    query: dict[str, list[str]]
    headers: Headers
    body: bytes
    at_ms: int
    tls: bool = False
    client_cert: str | None = None  # the verified client certificate (subject and SAN), if any

    @property
    def queue_id(self) -> str | None:
        return self.headers.get("X-Tasks-Queue-Id")

    def json(self) -> Any:
        return json.loads(self.body)

    def query_one(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class ScriptedResponse:
    status: int = 200
    body: bytes = OK_BODY
    delay_ms: int = 0
    content_type: str = "application/json"


@dataclass
class _Script:
    responses: list[ScriptedResponse]
    served: int = 0

    def next(self) -> ScriptedResponse:
        # Once the script is exhausted its last response repeats.
        index = min(self.served, len(self.responses) - 1)
        self.served += 1
        return self.responses[index]


@dataclass
class TlsMaterial:
    """The CA and the client certificate a task presents to the HTTPS target."""

    directory: Path
    ca_path: Path
    client_cert_path: Path
    client_key_path: Path
    ca_pem: bytes
    client_cert_pem: bytes
    client_key_pem: bytes
    extra: dict[str, Path] = field(default_factory=dict)

    @staticmethod
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    @property
    def ca_b64(self) -> str:
        return self.b64(self.ca_pem)

    @property
    def client_cert_b64(self) -> str:
        return self.b64(self.client_cert_pem)

    @property
    def client_key_b64(self) -> str:
        return self.b64(self.client_key_pem)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _TargetHTTPServer
    timeout = 30  # idle keep-alive connections are dropped after this many seconds

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        arrived = now_ms()
        body = self._read_body()
        parts = urlsplit(self.path)
        client_cert: str | None = None
        tls = isinstance(self.connection, ssl.SSLSocket)
        if tls:
            peer = self.connection.getpeercert()
            if peer:
                client_cert = repr(
                    {"subject": peer.get("subject"), "san": peer.get("subjectAltName")}
                )
        record = RecordedRequest(
            method=self.command,
            path=parts.path,
            raw_query=parts.query,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=Headers(self.headers.items()),
            body=body,
            at_ms=arrived,
            tls=tls,
            client_cert=client_cert,
        )
        self.server.target._record(record)
        response = self.server.target._route(record)
        if response.delay_ms > 0 and self.server.target._stopping.wait(response.delay_ms / 1000):
            self.close_connection = True
            return
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class _TargetHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, target: TargetServer, ssl_context: ssl.SSLContext | None) -> None:
        self.target = target
        self.ssl_context = ssl_context
        super().__init__(("127.0.0.1", 0), _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        # The TLS handshake runs here, in the connection's own thread, so a client that
        # fails it never blocks the accept loop.
        request.settimeout(10)
        try:
            wrapped = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            self.target._record_tls_failure(str(exc))
            return
        try:
            super().finish_request(wrapped, client_address)
        finally:
            try:
                wrapped.close()
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients (the server under test) may drop connections, e.g. when killed mid-request.
        return


class TargetServer:
    """A recording HTTP or HTTPS target on 127.0.0.1, served from a background thread."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._lock = threading.Condition()
        self._requests: list[RecordedRequest] = []
        self._tls_failures: list[tuple[int, str]] = []
        self._scripts: dict[str, _Script] = {}
        self._stopping = threading.Event()
        self._httpd = _TargetHTTPServer(self, ssl_context)
        self.port: int = self._httpd.server_address[1]
        self.scheme = "https" if ssl_context is not None else "http"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> TargetServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> TargetServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses --------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def url(self, path: str = "/cb") -> str:
        return self.base_url + path

    # -- scripting --------------------------------------------------------------------------

    def script(self, name: str, responses: Iterable[int | ScriptedResponse]) -> str:
        """Program ``/prog/<name>``: one response per request, the last one repeating.

        Returns the URL of the route.
        """
        items = [
            r if isinstance(r, ScriptedResponse) else ScriptedResponse(status=r) for r in responses
        ]
        if not items:
            raise ValueError("a script needs at least one response")
        with self._lock:
            self._scripts[name] = _Script(items)
        return self.url(f"/prog/{name}")

    def _route(self, request: RecordedRequest) -> ScriptedResponse:
        path = request.path
        if path == "/cb":
            return ScriptedResponse()
        if path == "/cb/error":
            return ScriptedResponse(404, b'{"error":"not found"}')
        if path == "/cb/500":
            return ScriptedResponse(500, b'{"error":"internal"}')
        if path == "/cb/slow":
            try:
                delay = int(request.query_one("ms") or "1000")
            except ValueError:
                delay = 1000
            return ScriptedResponse(delay_ms=max(0, min(delay, SLOW_MAX_MS)))
        if path == "/cb/big":
            return ScriptedResponse(200, BIG_BODY, content_type="application/octet-stream")
        if path.startswith("/cb/status/"):
            try:
                code = int(path.rsplit("/", 1)[1])
            except ValueError:
                return ScriptedResponse(400, b'{"error":"bad code"}')
            body = b"" if code in (204, 304) or code < 200 else f'{{"status":{code}}}'.encode()
            return ScriptedResponse(code, body)
        if path.startswith("/prog/"):
            with self._lock:
                script = self._scripts.get(path[len("/prog/") :])
                if script is not None:
                    return script.next()
        return ScriptedResponse(404, b'{"error":"no such route"}')

    # -- records ----------------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)
            self._lock.notify_all()

    def _record_tls_failure(self, error: str) -> None:
        with self._lock:
            self._tls_failures.append((now_ms(), error))
            self._lock.notify_all()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def tls_failures(self) -> list[tuple[int, str]]:
        with self._lock:
            return list(self._tls_failures)

    def requests_for(self, queue_id: str) -> list[RecordedRequest]:
        """Every request that carried ``X-Tasks-Queue-Id: <queue_id>``, in arrival order."""
        return [r for r in self.requests if r.queue_id == queue_id]

    def hits(self, queue_id: str) -> int:
        return len(self.requests_for(queue_id))

    def wait_until(
        self,
        predicate: Callable[[list[RecordedRequest]], bool],
        timeout: float = 10.0,
        message: str = "condition",
    ) -> list[RecordedRequest]:
        """Wait until ``predicate(all requests)`` holds; fail the test at the deadline."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                snapshot = list(self._requests)
                if predicate(snapshot):
                    return snapshot
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"target: {message} not met within {timeout:.1f}s; "
                        f"{len(snapshot)} requests recorded"
                    )
                self._lock.wait(min(remaining, 0.2))

    def wait_for_hits(
        self, queue_id: str, count: int = 1, timeout: float = 10.0
    ) -> list[RecordedRequest]:
        """Wait until the task ``queue_id`` reached the target at least ``count`` times."""
        self.wait_until(
            lambda reqs: sum(1 for r in reqs if r.queue_id == queue_id) >= count,
            timeout=timeout,
            message=f"{count} request(s) for task {queue_id}",
        )
        return self.requests_for(queue_id)

    def wait_for_tls_failure(self, after_ms: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not any(at >= after_ms for at, _ in self._tls_failures):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("target: no failed TLS handshake recorded")
                self._lock.wait(min(remaining, 0.2))


# -- TLS ----------------------------------------------------------------------------------


def make_tls_material(directory: Path) -> tuple[ssl.SSLContext, TlsMaterial]:
    """A fresh CA, a server certificate for 127.0.0.1/localhost and a client certificate.

    Returns the server's SSL context, which REQUIRES a client certificate signed by the CA,
    and the client-side material, written to files under ``directory``.
    """
    import trustme
    from cryptography.hazmat.primitives import serialization

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="Tasks Server acceptance CA")
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    client_cert = ca.issue_cert("client.tasks-server.test")

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_cert.configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED

    ca_pem = ca.cert_pem.bytes()
    cert_pem = client_cert.cert_chain_pems[0].bytes()
    key_pem = client_cert.private_key_pem.bytes()
    paths = {
        "ca": directory / "ca.pem",
        "cert": directory / "client-cert.pem",
        "key": directory / "client-key.pem",
    }
    paths["ca"].write_bytes(ca_pem)
    paths["cert"].write_bytes(cert_pem)
    paths["key"].write_bytes(key_pem)

    # The same client key, encrypted with a password (for config.cert.password).
    private_key = serialization.load_pem_private_key(key_pem, password=None)
    encrypted = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(ENCRYPTED_KEY_PASSWORD.encode()),
    )
    extra = {
        "encrypted_key": directory / "client-key-encrypted.pem",
        "empty": directory / "empty.pem",
    }
    extra["encrypted_key"].write_bytes(encrypted)
    extra["empty"].write_bytes(b"")

    material = TlsMaterial(
        directory=directory,
        ca_path=paths["ca"],
        client_cert_path=paths["cert"],
        client_key_path=paths["key"],
        ca_pem=ca_pem,
        client_cert_pem=cert_pem,
        client_key_pem=key_pem,
        extra=extra,
    )
    return context, material


def closed_port() -> int:
    """A local TCP port with nothing listening on it (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
