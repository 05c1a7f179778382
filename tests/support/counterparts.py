"""Local counterparts for the delivery options: servers a task talks to, each on 127.0.0.1.

Every counterpart runs in a background thread of the test process and records what it saw
(:class:`Seen`), so a test proves an option by what arrives on the wire, never by reading the
task's stored options back.

- :class:`HttpCounterpart`  HTTP/1.1 (optionally over TLS) answering through a handler function
- :class:`H2Counterpart`    HTTP/2 over cleartext (prior knowledge) or TLS (ALPN ``h2``); it also
  answers HTTP/1.1, recording the version, so a missed upgrade shows up as such
- :class:`ForwardProxy`     an HTTP forward proxy (absolute-form requests) with basic auth
- :class:`ProxyProtocolServer`  reads a PROXY protocol v1 line, then answers HTTP 200
- :class:`Pki`              a trustme CA issuing server contexts (TLS bounds, client certs)

and the independent verifiers the targets use: HTTP Digest (RFC 7616, MD5, ``qop=auth``),
AWS Signature Version 4 and a hand-written DNS answer for a DNS-over-HTTPS stub (RFC 8484).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import secrets
import socket
import socketserver
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Generic, Self, TypeVar
from urllib.parse import parse_qsl, quote, urlsplit

from tests.support.targets import Headers, now_ms

T = TypeVar("T")

LOOPBACK = "127.0.0.1"
HANDSHAKE_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 10.0
OK = b'{"ok":true}'


# -- records ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One request as a counterpart received it."""

    method: str
    target: str  # the request target as sent: origin-form, or absolute-form through a proxy
    headers: Headers
    body: bytes = b""
    at_ms: int = 0
    http_version: str = "1.1"  # "1.0", "1.1" or "2"
    tls_version: str | None = None  # "TLSv1.2", "TLSv1.3", or None for cleartext
    alpn: str | None = None
    client_cert: str | None = None  # the verified client certificate (subject, SAN), if any
    peer: tuple[str, int] = ("", 0)

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> str:
        return urlsplit(self.target).query

    @property
    def queue_id(self) -> str | None:
        return self.headers.get("X-Tasks-Queue-Id")


class Recorder(Generic[T]):
    """A thread-safe list of records with a deadline-bounded wait."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._items: list[T] = []

    def record(self, item: T) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()

    @property
    def items(self) -> list[T]:
        with self._cond:
            return list(self._items)

    def wait_for(
        self,
        predicate: Callable[[list[T]], bool],
        timeout: float = 10.0,
        message: str = "condition",
    ) -> list[T]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                snapshot = list(self._items)
                if predicate(snapshot):
                    return snapshot
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"{message} not met within {timeout:.1f}s; recorded: {snapshot!r}"
                    )
                self._cond.wait(min(remaining, 0.2))


@dataclass
class Reply:
    status: int = 200
    body: bytes = OK
    headers: Sequence[tuple[str, str]] = ()
    content_type: str = "application/json"


Handler = Callable[[Seen], Reply]


def always_ok(_: Seen) -> Reply:
    return Reply()


def _peer_subject(sock: ssl.SSLSocket) -> str | None:
    peer = sock.getpeercert()
    if not peer:
        return None
    return repr({"subject": peer.get("subject"), "san": peer.get("subjectAltName")})


def _close_gently(sock: socket.socket) -> None:
    """Close after reading what the client still sends, so that it gets the TLS alert (and a
    FIN) rather than a reset: a TLS 1.3 client sends its request before it learns that its
    certificate was refused, and closing with that request unread would reset the connection."""
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(2.0)
        while sock.recv(65536):
            pass
    except OSError:
        pass
    finally:
        sock.close()


def _handshake(
    context: ssl.SSLContext, sock: socket.socket, failures: Recorder[str]
) -> ssl.SSLSocket | None:
    """The server side of a TLS handshake, in the connection's thread; None when it fails."""
    sock.settimeout(HANDSHAKE_TIMEOUT_S)
    try:
        wrapped = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
    except (ssl.SSLError, OSError) as exc:
        failures.record(str(exc))
        sock.close()
        return None
    try:
        wrapped.do_handshake()
    except (ssl.SSLError, OSError) as exc:
        failures.record(str(exc))
        _close_gently(wrapped)
        return None
    wrapped.settimeout(IDLE_TIMEOUT_S)
    return wrapped


# -- HTTP/1.1 -----------------------------------------------------------------------------


class _Reading(BaseHTTPRequestHandler):
    """Request reading shared by the counterpart and the proxy."""

    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""


class _HttpHandler(_Reading):
    server: _HttpServer

    def _handle(self) -> None:
        arrived = now_ms()
        body = self._body()
        sock = self.connection
        seen = Seen(
            method=self.command,
            target=self.path,
            headers=Headers(self.headers.items()),
            body=body,
            at_ms=arrived,
            http_version=self.request_version.removeprefix("HTTP/"),
            tls_version=sock.version() if isinstance(sock, ssl.SSLSocket) else None,
            alpn=sock.selected_alpn_protocol() if isinstance(sock, ssl.SSLSocket) else None,
            client_cert=_peer_subject(sock) if isinstance(sock, ssl.SSLSocket) else None,
            peer=(str(self.client_address[0]), int(self.client_address[1])),
        )
        self.server.counterpart.requests.record(seen)
        try:
            reply = self.server.counterpart.handler(seen)
        except Exception as exc:  # a bug in a test handler: answer 599 so the test sees it
            reply = Reply(599, f"handler error: {exc!r}".encode(), content_type="text/plain")
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        counterpart: HttpCounterpart,
        handler_class: type[BaseHTTPRequestHandler],
        context: ssl.SSLContext | None,
    ) -> None:
        self.counterpart = counterpart
        self.context = context
        super().__init__((LOOPBACK, 0), handler_class)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.context is None:
            super().finish_request(request, client_address)
            return
        wrapped = _handshake(self.context, request, self.counterpart.tls_failures)
        if wrapped is None:
            return
        try:
            super().finish_request(wrapped, client_address)
        finally:
            try:
                wrapped.close()
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        return


class _Background:
    """Serve a ``socketserver`` server from a daemon thread; a context manager."""

    _server: socketserver.BaseServer
    scheme = "http"

    def _start_thread(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        address = self._server.server_address
        assert isinstance(address, tuple)
        return int(address[1])

    def url(self, path: str = "/hook", host: str = LOOPBACK) -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class HttpCounterpart(_Background):
    """An HTTP/1.1 server (HTTPS with ``context``) answering each request with ``handler``."""

    def __init__(self, handler: Handler = always_ok, context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.requests: Recorder[Seen] = Recorder()
        self.tls_failures: Recorder[str] = Recorder()
        self.scheme = "https" if context is not None else "http"
        self._server = _HttpServer(self, _HttpHandler, context)
        self._start_thread()

    def seen_by(self, queue_id: str) -> list[Seen]:
        return [r for r in self.requests.items if r.queue_id == queue_id]

    def wait_for_tls_failure(self, timeout: float = 10.0) -> str:
        return self.tls_failures.wait_for(bool, timeout, "a failed TLS handshake")[-1]


# -- HTTP/2 -------------------------------------------------------------------------------

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class H2Counterpart(_Background):
    """HTTP/2 with the ``h2`` library: h2c by prior knowledge, or TLS with ALPN ``h2``.

    A connection that does not open with the HTTP/2 preface is answered as HTTP/1.1 (200),
    recorded with ``http_version`` "1.1"; HTTP/2 requests are recorded with "2".
    """

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.requests: Recorder[Seen] = Recorder()
        self.tls_failures: Recorder[str] = Recorder()
        self.errors: Recorder[str] = Recorder()
        self.context = context
        if context is not None:
            context.set_alpn_protocols(["h2", "http/1.1"])
        self.scheme = "https" if context is not None else "http"
        outer = self

        class _Conn(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer._serve(self.request, self.client_address)

        self._server = _TcpServer(_Conn)
        self._start_thread()

    def seen_by(self, queue_id: str) -> list[Seen]:
        return [r for r in self.requests.items if r.queue_id == queue_id]

    def _serve(self, raw: socket.socket, peer: tuple[str, int]) -> None:
        sock: socket.socket = raw
        if self.context is not None:
            wrapped = _handshake(self.context, raw, self.tls_failures)
            if wrapped is None:
                return
            sock = wrapped
        else:
            sock.settimeout(IDLE_TIMEOUT_S)
        try:
            first = _recv_at_least(sock, len(H2_PREFACE))
            if first.startswith(H2_PREFACE):
                self._serve_h2(sock, first, peer)
            else:
                self._serve_h1(sock, first, peer)
        except Exception as exc:  # recorded, so that a failing test can show it
            self.errors.record(repr(exc))
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def _tls_facts(self, sock: socket.socket) -> dict[str, Any]:
        if not isinstance(sock, ssl.SSLSocket):
            return {}
        return {"tls_version": sock.version(), "alpn": sock.selected_alpn_protocol()}

    def _serve_h2(self, sock: socket.socket, first: bytes, peer: tuple[str, int]) -> None:
        import h2.config
        import h2.connection
        import h2.events

        conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        streams: dict[int, tuple[list[tuple[str, str]], bytearray, int]] = {}
        data = first
        while data:
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    pairs = [(str(k), str(v)) for k, v in event.headers or []]
                    streams[event.stream_id] = (pairs, bytearray(), now_ms())
                elif isinstance(event, h2.events.DataReceived):
                    streams[event.stream_id][1].extend(event.data or b"")
                    conn.acknowledge_received_data(
                        event.flow_controlled_length or 0, event.stream_id
                    )
                elif isinstance(event, h2.events.StreamEnded):
                    pairs, body, arrived = streams.pop(event.stream_id)
                    self._record_h2(sock, peer, pairs, bytes(body), arrived)
                    conn.send_headers(
                        event.stream_id,
                        [
                            (":status", "200"),
                            ("content-type", "application/json"),
                            ("content-length", str(len(OK))),
                        ],
                    )
                    conn.send_data(event.stream_id, OK, end_stream=True)
                elif isinstance(event, h2.events.ConnectionTerminated):
                    sock.sendall(conn.data_to_send())
                    return
            sock.sendall(conn.data_to_send())
            data = sock.recv(65536)

    def _record_h2(
        self,
        sock: socket.socket,
        peer: tuple[str, int],
        pairs: list[tuple[str, str]],
        body: bytes,
        arrived: int,
    ) -> None:
        pseudo = {k: v for k, v in pairs if k.startswith(":")}
        regular = [(k, v) for k, v in pairs if not k.startswith(":")]
        if ":authority" in pseudo:
            regular.append(("host", pseudo[":authority"]))
        self.requests.record(
            Seen(
                method=pseudo.get(":method", ""),
                target=pseudo.get(":path", ""),
                headers=Headers(regular),
                body=body,
                at_ms=arrived,
                http_version="2",
                peer=peer,
                **self._tls_facts(sock),
            )
        )

    def _serve_h1(self, sock: socket.socket, first: bytes, peer: tuple[str, int]) -> None:
        buffer = first
        while True:
            while b"\r\n\r\n" not in buffer:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ", 2)
            headers = Headers(_header_pairs(lines[1:]))
            length = int(headers.get("Content-Length") or 0)
            while len(buffer) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            body, buffer = buffer[:length], buffer[length:]
            self.requests.record(
                Seen(
                    method=method,
                    target=target,
                    headers=headers,
                    body=body,
                    at_ms=now_ms(),
                    http_version=version.removeprefix("HTTP/"),
                    peer=peer,
                    **self._tls_facts(sock),
                )
            )
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(OK)}\r\n\r\n".encode()
                + OK
            )


def _recv_at_least(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
        if not H2_PREFACE.startswith(data[: len(H2_PREFACE)]) and b"\r\n" in data:
            break  # clearly not the preface: an HTTP/1.x request line
    return data


def _header_pairs(lines: Iterable[str]) -> list[tuple[str, str]]:
    pairs = []
    for line in lines:
        name, _, value = line.partition(":")
        pairs.append((name.strip(), value.strip()))
    return pairs


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, handler_class: type[socketserver.BaseRequestHandler]) -> None:
        super().__init__((LOOPBACK, 0), handler_class)

    def handle_error(self, request: Any, client_address: Any) -> None:
        return


# -- forward proxy ------------------------------------------------------------------------

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "proxy-authenticate",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


class _ProxyHandler(_Reading):
    server: _ProxyServer

    def _handle(self) -> None:
        body = self._body()
        proxy = self.server.proxy
        seen = Seen(
            method=self.command,
            target=self.path,
            headers=Headers(self.headers.items()),
            body=body,
            at_ms=now_ms(),
            http_version=self.request_version.removeprefix("HTTP/"),
            peer=(str(self.client_address[0]), int(self.client_address[1])),
        )
        proxy.requests.record(seen)
        if self.headers.get("Proxy-Authorization") != proxy.expected_authorization:
            self._answer(407, b"proxy authentication required", [
                ("Proxy-Authenticate", 'Basic realm="tasks-test-proxy"'),
            ])  # fmt: skip
            return
        parts = urlsplit(self.path)
        if parts.scheme != "http" or parts.hostname not in (LOOPBACK, "localhost"):
            # Only absolute-form requests to this machine are forwarded.
            self._answer(502, f"refusing to forward {self.path!r}".encode(), [])
            return
        forwarded = {
            k: v
            for k, v in self.headers.items()
            if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"
        }
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        upstream = http.client.HTTPConnection(LOOPBACK, parts.port or 80, timeout=10)
        try:
            upstream.request(self.command, path or "/", body=body or None, headers=forwarded)
            answer = upstream.getresponse()
            payload = answer.read()
            headers = [
                (k, v)
                for k, v in answer.getheaders()
                if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"
            ]
            self._answer(answer.status, payload, headers)
        except OSError as exc:
            self._answer(502, f"upstream failed: {exc}".encode(), [])
        finally:
            upstream.close()

    def _answer(self, status: int, body: bytes, headers: Sequence[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, proxy: ForwardProxy) -> None:
        self.proxy = proxy
        super().__init__((LOOPBACK, 0), _ProxyHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        return


class ForwardProxy(_Background):
    """An HTTP forward proxy demanding ``Proxy-Authorization: Basic`` with these credentials.

    It forwards absolute-form requests (``GET http://127.0.0.1:port/path``) to this machine
    only, and records each request as it arrived (:attr:`requests`).
    """

    def __init__(self, username: str, password: str) -> None:
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self.expected_authorization = f"Basic {token}"
        self.requests: Recorder[Seen] = Recorder()
        self._server = _ProxyServer(self)
        self._start_thread()

    def seen_by(self, queue_id: str) -> list[Seen]:
        return [r for r in self.requests.items if r.queue_id == queue_id]


# -- PROXY protocol -----------------------------------------------------------------------


@dataclass(frozen=True)
class ProxyLine:
    """What a PROXY-protocol server saw on one connection."""

    line: str  # the first line, without CRLF
    request: Seen | None

    @property
    def fields(self) -> list[str]:
        return self.line.split(" ")


class ProxyProtocolServer(_Background):
    """Reads ``PROXY TCP4 <src> <dst> <sport> <dport>``, then answers the HTTP request 200.

    A connection that does not start with a PROXY line is answered 400, as HAProxy's
    ``accept-proxy`` would refuse it.
    """

    def __init__(self) -> None:
        self.connections: Recorder[ProxyLine] = Recorder()
        outer = self

        class _Conn(socketserver.StreamRequestHandler):
            timeout = IDLE_TIMEOUT_S

            def handle(self) -> None:
                outer._serve(self.rfile, self.wfile, self.client_address)

        self._server = _TcpServer(_Conn)
        self._start_thread()

    def _serve(self, rfile: Any, wfile: Any, peer: tuple[str, int]) -> None:
        first = rfile.readline(256).decode("latin-1").rstrip("\r\n")
        if first.startswith("PROXY "):
            request_line = rfile.readline(8192).decode("latin-1").rstrip("\r\n")
        else:
            request_line = first
        lines = []
        while True:
            line = rfile.readline(8192).decode("latin-1").rstrip("\r\n")
            if not line:
                break
            lines.append(line)
        headers = Headers(_header_pairs(lines))
        length = int(headers.get("Content-Length") or 0)
        body = rfile.read(length) if length else b""
        parts = request_line.split(" ")
        request = Seen(
            method=parts[0],
            target=parts[1] if len(parts) > 1 else "",
            headers=headers,
            body=body,
            at_ms=now_ms(),
            peer=(str(peer[0]), int(peer[1])),
        )
        self.connections.record(ProxyLine(first if first.startswith("PROXY ") else "", request))
        status = b"200 OK" if first.startswith("PROXY ") else b"400 Bad Request"
        wfile.write(
            b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + f"Content-Length: {len(OK)}\r\n\r\n".encode()
            + OK
        )  # fmt: skip
        wfile.flush()

    def seen_by(self, queue_id: str) -> list[ProxyLine]:
        return [c for c in self.connections.items if c.request and c.request.queue_id == queue_id]


# -- PKI ----------------------------------------------------------------------------------


class Pki:
    """A trustme CA with its certificate written to ``directory``: server contexts and clients."""

    def __init__(self, directory: Path, name: str = "Tasks Server counterparts CA") -> None:
        import trustme

        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.ca = trustme.CA(organization_name=name)
        self.ca_path = directory / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_path))
        self._server_cert = self.ca.issue_cert(LOOPBACK, "localhost")

    @property
    def ca_pem(self) -> bytes:
        return bytes(self.ca.cert_pem.bytes())

    def server_context(
        self,
        *,
        minimum: ssl.TLSVersion | None = None,
        maximum: ssl.TLSVersion | None = None,
        client_ca: Any = None,
        hosts: Sequence[str] = (),
    ) -> ssl.SSLContext:
        """A server context for 127.0.0.1 and localhost (and ``hosts``); with ``client_ca``
        (a ``trustme.CA``) it demands a client certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert = self.ca.issue_cert(LOOPBACK, "localhost", *hosts) if hosts else self._server_cert
        cert.configure_cert(context)
        if minimum is not None:
            context.minimum_version = minimum
        if maximum is not None:
            context.maximum_version = maximum
        if client_ca is not None:
            client_ca.configure_trust(context)
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def client_pem(self, common_name: str) -> tuple[bytes, bytes]:
        """A client certificate issued by this CA: (certificate PEM, private key PEM)."""
        issued = self.ca.issue_cert(common_name)
        return bytes(issued.cert_chain_pems[0].bytes()), bytes(issued.private_key_pem.bytes())

    def client_cert(self, common_name: str) -> ClientCert:
        """A client certificate issued by this CA, also written to files."""
        cert_pem, key_pem = self.client_pem(common_name)
        cert_path = self.directory / f"{common_name}.cert.pem"
        key_path = self.directory / f"{common_name}.key.pem"
        cert_path.write_bytes(cert_pem)
        key_path.write_bytes(key_pem)
        return ClientCert(common_name, cert_pem, key_pem, cert_path, key_path)


@dataclass(frozen=True)
class ClientCert:
    common_name: str
    cert_pem: bytes
    key_pem: bytes
    cert_path: Path
    key_path: Path


def p12_bundle(cert_pem: bytes, key_pem: bytes, password: str | None) -> bytes:
    """A PKCS#12 file holding the certificate and its key (encrypted when ``password``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    key = serialization.load_pem_private_key(key_pem, password=None)
    cert = x509.load_pem_x509_certificate(cert_pem)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    return pkcs12.serialize_key_and_certificates(
        b"tasks-client",
        key,  # type: ignore[arg-type]
        cert,
        None,
        encryption,
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# -- HTTP authentication ------------------------------------------------------------------


def basic_handler(username: str, password: str) -> Handler:
    """A handler answering 200 to ``Authorization: Basic`` with these credentials, else 401."""
    expected = "Basic " + b64(f"{username}:{password}".encode())

    def handle(seen: Seen) -> Reply:
        if seen.headers.get("Authorization") == expected:
            return Reply()
        return Reply(401, b"{}", [("WWW-Authenticate", 'Basic realm="tasks-test"')])

    return handle


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def parse_auth_params(value: str) -> dict[str, str]:
    """``a="x", b=y`` (quoted strings may hold commas) into a dict with lowercase keys."""
    params: dict[str, str] = {}
    i = 0
    while i < len(value):
        while i < len(value) and value[i] in " ,":
            i += 1
        eq = value.find("=", i)
        if eq < 0:
            break
        name = value[i:eq].strip().lower()
        i = eq + 1
        if i < len(value) and value[i] == '"':
            i += 1
            out = []
            while i < len(value) and value[i] != '"':
                if value[i] == "\\" and i + 1 < len(value):
                    i += 1
                out.append(value[i])
                i += 1
            i += 1
            params[name] = "".join(out)
        else:
            end = value.find(",", i)
            end = len(value) if end < 0 else end
            params[name] = value[i:end].strip()
            i = end
    return params


@dataclass
class DigestVerifier:
    """RFC 7616 Digest with MD5 and ``qop=auth``: challenges, then checks ``response``."""

    username: str
    password: str
    realm: str = "tasks-test@127.0.0.1"
    nonces: set[str] = field(default_factory=set)
    verified: Recorder[dict[str, str]] = field(default_factory=Recorder)
    opaque: str = field(default_factory=lambda: secrets.token_hex(8))

    def challenge(self) -> Reply:
        nonce = secrets.token_hex(16)
        self.nonces.add(nonce)
        value = (
            f'Digest realm="{self.realm}", qop="auth", algorithm=MD5, '
            f'nonce="{nonce}", opaque="{self.opaque}"'
        )
        return Reply(401, b"{}", [("WWW-Authenticate", value)])

    def check(self, seen: Seen) -> bool:
        header = seen.headers.get("Authorization", "")
        scheme, _, rest = header.partition(" ")
        if scheme.lower() != "digest":
            return False
        p = parse_auth_params(rest)
        required = ("username", "realm", "nonce", "uri", "response", "qop", "nc", "cnonce")
        if any(k not in p for k in required):
            return False
        if p.get("algorithm", "MD5").upper() != "MD5" or p["qop"] != "auth":
            return False
        if p["nonce"] not in self.nonces or p.get("opaque") != self.opaque:
            return False
        if p["username"] != self.username or p["realm"] != self.realm or p["uri"] != seen.target:
            return False
        ha1 = _md5(f"{self.username}:{self.realm}:{self.password}")
        ha2 = _md5(f"{seen.method}:{p['uri']}")
        expected = _md5(f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:{p['qop']}:{ha2}")
        ok = hmac.compare_digest(expected, p["response"].lower())
        if ok:
            self.verified.record(p)
        return ok

    def handler(self, seen: Seen) -> Reply:
        return Reply() if self.check(seen) else self.challenge()


# -- AWS Signature Version 4 --------------------------------------------------------------


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def _aws_encode(text: str) -> str:
    return quote(text, safe="-_.~")


@dataclass
class SigV4Verifier:
    """Verifies ``Authorization: <P1>4-HMAC-SHA256 Credential=..., SignedHeaders=...,
    Signature=...`` and ``X-<P2>-Date`` after the AWS Signature Version 4 recipe.

    With provider1 ``aws`` and provider2 ``amz`` that is AWS itself: algorithm
    ``AWS4-HMAC-SHA256``, date header ``X-Amz-Date``, key prefix ``AWS4``, scope terminator
    ``aws4_request``. Every failure reason is recorded in :attr:`rejections`.
    """

    key: str
    secret: str
    region: str
    service: str
    provider1: str = "aws"
    provider2: str = "amz"
    max_skew_s: int = 300
    verified: Recorder[dict[str, str]] = field(default_factory=Recorder)
    rejections: Recorder[str] = field(default_factory=Recorder)

    @property
    def algorithm(self) -> str:
        return f"{self.provider1.upper()}4-HMAC-SHA256"

    @property
    def date_header(self) -> str:
        return f"X-{self.provider2.capitalize()}-Date"

    def canonical_request(self, seen: Seen, signed_headers: list[str]) -> str:
        parts = urlsplit(seen.target)
        path = "/".join(_aws_encode(segment) for segment in parts.path.split("/")) or "/"
        pairs = sorted(
            (_aws_encode(k), _aws_encode(v))
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        )
        query = "&".join(f"{k}={v}" for k, v in pairs)
        canonical_headers = "".join(
            f"{name}:{' '.join(','.join(seen.headers.get_all(name)).split())}\n"
            for name in signed_headers
        )
        return "\n".join(
            [
                seen.method,
                path,
                query,
                canonical_headers,
                ";".join(signed_headers),
                _sha256_hex(seen.body),
            ]
        )

    def signature(self, seen: Seen, stamp: str, signed_headers: list[str]) -> str:
        day = stamp[:8]
        terminator = f"{self.provider1.lower()}4_request"
        scope = f"{day}/{self.region}/{self.service}/{terminator}"
        string_to_sign = "\n".join(
            [
                self.algorithm,
                stamp,
                scope,
                _sha256_hex(self.canonical_request(seen, signed_headers).encode()),
            ]
        )
        k_date = _hmac(f"{self.provider1.upper()}4{self.secret}".encode(), day)
        k_region = _hmac(k_date, self.region)
        k_service = _hmac(k_region, self.service)
        k_signing = _hmac(k_service, terminator)
        return hmac.new(k_signing, string_to_sign.encode(), hashlib.sha256).hexdigest()

    def check(self, seen: Seen) -> str | None:
        """None when the request is correctly signed, else the reason."""
        header = seen.headers.get("Authorization", "")
        algorithm, _, rest = header.partition(" ")
        if algorithm != self.algorithm:
            return f"algorithm {algorithm!r}, expected {self.algorithm!r}"
        fields = {}
        for item in rest.split(","):
            name, _, value = item.strip().partition("=")
            fields[name] = value
        stamp = seen.headers.get(self.date_header)
        if stamp is None:
            return f"no {self.date_header} header"
        try:
            moment = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            return f"malformed {self.date_header}: {stamp!r}"
        if abs(moment.timestamp() - time.time()) > self.max_skew_s:
            return f"{self.date_header} {stamp} is too far from now"
        terminator = f"{self.provider1.lower()}4_request"
        expected_credential = f"{self.key}/{stamp[:8]}/{self.region}/{self.service}/{terminator}"
        if fields.get("Credential") != expected_credential:
            return f"Credential {fields.get('Credential')!r}, expected {expected_credential!r}"
        signed_headers = fields.get("SignedHeaders", "").split(";")
        for needed in ("host", self.date_header.lower()):
            if needed not in signed_headers:
                return f"{needed} is not signed: {signed_headers}"
        if signed_headers != sorted(signed_headers):
            return f"SignedHeaders are not sorted: {signed_headers}"
        expected = self.signature(seen, stamp, signed_headers)
        if not hmac.compare_digest(expected, fields.get("Signature", "")):
            return f"signature mismatch: {fields.get('Signature')!r} != {expected!r}"
        self.verified.record(fields)
        return None

    def handler(self, seen: Seen) -> Reply:
        reason = self.check(seen)
        if reason is None:
            return Reply()
        self.rejections.record(reason)
        return Reply(403, reason.encode(), content_type="text/plain")


# -- DNS-over-HTTPS -----------------------------------------------------------------------

DNS_A = 1
DNS_AAAA = 28
DNS_CLASS_IN = 1


@dataclass(frozen=True)
class DnsQuestion:
    query_id: int
    name: str
    qtype: int
    qclass: int
    question: bytes  # the question section, as sent


def parse_dns_query(message: bytes) -> DnsQuestion:
    """The first question of a DNS query message (RFC 1035 section 4.1)."""
    query_id, _flags, qdcount, _an, _ns, _ar = struct.unpack("!HHHHHH", message[:12])
    if qdcount < 1:
        raise ValueError("no question")
    offset = 12
    labels = []
    while True:
        length = message[offset]
        offset += 1
        if length == 0:
            break
        labels.append(message[offset : offset + length].decode("ascii"))
        offset += length
    qtype, qclass = struct.unpack("!HH", message[offset : offset + 4])
    offset += 4
    return DnsQuestion(query_id, ".".join(labels).lower(), qtype, qclass, message[12:offset])


def dns_answer(question: DnsQuestion, records: Mapping[str, str]) -> bytes:
    """An answer to ``question``: an A record from ``records`` (name → IPv4), else none.

    Flags: QR, RD, RA; NXDOMAIN for a name not in ``records``.
    """
    address = records.get(question.name.rstrip("."))
    answers = b""
    if address is not None and question.qtype == DNS_A and question.qclass == DNS_CLASS_IN:
        rdata = socket.inet_aton(address)
        # A pointer (0xC00C) to the name in the question, type A, class IN, TTL 60 s.
        answers = struct.pack("!HHHIH", 0xC00C, DNS_A, DNS_CLASS_IN, 60, len(rdata)) + rdata
    rcode = 0 if address is not None else 3
    flags = 0x8000 | 0x0100 | 0x0080 | rcode
    header = struct.pack("!HHHHHH", question.query_id, flags, 1, 1 if answers else 0, 0, 0)
    return header + question.question + answers


def doh_handler(records: Mapping[str, str], asked: Recorder[DnsQuestion]) -> Handler:
    """RFC 8484: POST (body) or GET (``?dns=`` base64url) with ``application/dns-message``."""

    def handle(seen: Seen) -> Reply:
        if seen.method == "POST":
            if seen.headers.get("Content-Type") != "application/dns-message":
                return Reply(415, b"", content_type="text/plain")
            message = seen.body
        else:
            encoded = dict(parse_qsl(seen.query)).get("dns", "")
            message = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        question = parse_dns_query(message)
        asked.record(question)
        return Reply(200, dns_answer(question, records), content_type="application/dns-message")

    return handle


# -- scripted answers ---------------------------------------------------------------------


class Script:
    """A handler answering with ``replies`` in order, the last one repeating.

    An item may also be a function of the request (a :data:`Handler`), for answers that depend
    on the moment (an HTTP date in ``Retry-After``). Each reply actually sent is kept in
    :attr:`sent`, beside the request it answered.
    """

    def __init__(self, replies: Sequence[Reply | Handler]) -> None:
        if not replies:
            raise ValueError("a script needs at least one reply")
        self._replies = list(replies)
        self._lock = threading.Lock()
        self.sent: list[tuple[Seen, Reply]] = []

    def __call__(self, seen: Seen) -> Reply:
        with self._lock:
            item = self._replies[min(len(self.sent), len(self._replies) - 1)]
            reply = item if isinstance(item, Reply) else item(seen)
            self.sent.append((seen, reply))
            return reply
