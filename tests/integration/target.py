"""A real HTTP(S) server on 127.0.0.1, run in a thread of the test process, that records every
request it receives.

Routes (any method):

- ``/status/<code>``    answers ``<code>`` with the body ``status <code>``
- ``/big/<n>``          answers 200 with ``n`` bytes of a recognisable pattern (:func:`pattern`)
- ``/hang``             answers 200 only once :meth:`Target.release` is called
- ``/redirect/<code>``  answers 302 to ``/status/<code>``
- ``/chain/<n>``        answers 302 to ``/chain/<n-1>``, and 200 ``end of chain`` at 0
- ``/location?to=<u>``  answers 302 to ``<u>``
- ``/digest/<user>/<password>``  HTTP Digest authentication (RFC 7616, MD5, qop=auth): 401 with
  a challenge unless the request proves those credentials; then 200 ``digest ok``
- anything else         answers 200 with ``ok <path>``
"""

from __future__ import annotations

import hashlib
import re
import secrets
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

HANG_LIMIT_S = 30.0


def pattern(size: int) -> bytes:
    return (b"0123456789abcdef" * (size // 16 + 1))[:size]


@dataclass(frozen=True)
class Seen:
    """One request as the target received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: list[tuple[str, str]]
    body: bytes
    peer_cert: dict[str, Any] | None
    version: str = "HTTP/1.1"
    """The HTTP version of the request line."""
    tls_version: str | None = None
    """The TLS version of the connection (``TLSv1.2``), None over plain HTTP."""

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def header_count(self, name: str) -> int:
        return sum(1 for k, _ in self.headers if k.lower() == name.lower())


REALM = "tasks-test"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def digest_proves(seen: Seen, nonce: str, username: str, password: str) -> bool:
    """Whether the request's ``Authorization: Digest`` answers our challenge (RFC 7616 with
    MD5 and qop=auth): response = H(H(user:realm:password):nonce:nc:cnonce:qop:H(method:uri))."""
    header = seen.header("Authorization") or ""
    if not header.startswith("Digest "):
        return False
    params = {
        name: quoted if quoted else plain
        for name, quoted, plain in re.findall(r'(\w+)=(?:"([^"]*)"|([^\s,]*))', header[7:])
    }
    if params.get("username") != username or params.get("nonce") != nonce:
        return False
    if params.get("realm") != REALM or params.get("qop") != "auth":
        return False
    ha1 = _md5(f"{username}:{REALM}:{password}")
    ha2 = _md5(f"{seen.method}:{params.get('uri', '')}")
    expected = _md5(f"{ha1}:{nonce}:{params.get('nc')}:{params.get('cnonce')}:auth:{ha2}")
    return params.get("uri") == seen.path and params.get("response") == expected


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024
    target: Target

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up early (timeouts, aborts) are part of the tests."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        tls = self.connection if isinstance(self.connection, ssl.SSLSocket) else None
        peer = tls.getpeercert() if tls is not None else None
        seen = Seen(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=list(self.headers.items()),
            body=body,
            peer_cert=peer or None,
            version=self.request_version,
            tls_version=tls.version() if tls is not None else None,
        )
        target = self.server.target
        target.record(seen)
        self._answer(target, seen)

    def _answer(self, target: Target, seen: Seen) -> None:
        path = seen.path
        if match := re.fullmatch(r"/status/(\d{3})", path):
            code = int(match.group(1))
            self._send(code, f"status {code}".encode())
        elif match := re.fullmatch(r"/big/(\d+)", path):
            self._send(200, pattern(int(match.group(1))))
        elif path == "/hang":
            target.released.wait(HANG_LIMIT_S)
            self._send(200, b"late")
        elif match := re.fullmatch(r"/redirect/(\d{3})", path):
            self._send(302, b"", [("Location", f"/status/{match.group(1)}")])
        elif match := re.fullmatch(r"/chain/(\d+)", path):
            left = int(match.group(1))
            if left:
                self._send(302, b"", [("Location", f"/chain/{left - 1}")])
            else:
                self._send(200, b"end of chain")
        elif path == "/location":
            self._send(302, b"", [("Location", seen.query["to"][0])])
        elif match := re.fullmatch(r"/digest/([^/]+)/([^/]+)", path):
            if digest_proves(seen, target.nonce, match.group(1), match.group(2)):
                self._send(200, b"digest ok")
            else:
                challenge = f'Digest realm="{REALM}", nonce="{target.nonce}", qop="auth"'
                self._send(401, b"who are you", [("WWW-Authenticate", challenge)])
        else:
            self._send(200, f"ok {path}".encode())

    def _send(self, code: int, body: bytes, headers: list[tuple[str, str]] | None = None) -> None:
        self.send_response(code)
        for name, value in headers or []:
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class Target:
    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.target = self
        if ssl_context is not None:
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
        self.scheme = "https" if ssl_context is not None else "http"
        self.port: int = self._server.server_address[1]
        self.released = threading.Event()
        self.nonce = secrets.token_hex(16)
        self._lock = threading.Lock()
        self._seen: list[Seen] = []
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def record(self, seen: Seen) -> None:
        with self._lock:
            self._seen.append(seen)

    @property
    def seen(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    def seen_at(self, path: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.path == path]

    def release(self) -> None:
        """Let every ``/hang`` request, present and future, answer."""
        self.released.set()

    @contextmanager
    def running(self) -> Iterator[Target]:
        self._thread.start()
        try:
            yield self
        finally:
            self.release()
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
