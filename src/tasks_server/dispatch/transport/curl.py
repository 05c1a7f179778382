"""libcurl's multi interface driven by the asyncio event loop.

libcurl tells us which sockets to watch (``M_SOCKETFUNCTION``) and when to wake it
(``M_TIMERFUNCTION``); the loop calls ``socket_action`` back when a socket is ready. All the
HTTP work happens in C; Python runs once per readiness event and once per finished transfer.
Easy handles are reused and share the multi handle's connection cache (keep-alive).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import certifi
import pycurl

from .base import Done, Material, Request, Response, Tls

_FREE_HANDLES = 256
_PROTOCOLS = pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS
# The libcurl inside pycurl's wheels looks for Red Hat's bundle only.
_SYSTEM_CA_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
)


def default_ca_bundle() -> str:
    """The system's CA bundle, or certifi's where the system has none."""
    return next((path for path in _SYSTEM_CA_BUNDLES if os.path.isfile(path)), certifi.where())


@dataclass(slots=True)
class _Transfer:
    request: Request
    done: Done
    started_at_ms: int
    limit: int
    size: int = 0
    chunks: list[bytes] = field(default_factory=list)

    def write(self, chunk: bytes) -> None:
        if self.size < self.limit:
            self.chunks.append(chunk[: self.limit - self.size])
        self.size += len(chunk)


class CurlTransport:
    def __init__(self, *, response_max_bytes: int = 32_768, max_connections: int = 512) -> None:
        self._limit = response_max_bytes
        self._ca_bundle = default_ca_bundle()
        self._loop = asyncio.get_running_loop()
        self._multi = pycurl.CurlMulti()
        self._multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        self._multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        self._multi.setopt(pycurl.M_MAXCONNECTS, max_connections)
        self._active: dict[pycurl.Curl, _Transfer] = {}
        self._free: list[pycurl.Curl] = []
        self._watched: dict[int, int] = {}
        self._timer: asyncio.TimerHandle | None = None

    @property
    def in_flight(self) -> int:
        return len(self._active)

    def submit(self, request: Request, done: Done) -> None:
        curl = self._free.pop() if self._free else pycurl.Curl()
        transfer = _Transfer(request, done, time.time_ns() // 1_000_000, self._limit)
        try:
            _configure(curl, request, transfer.write if request.keep_body else _discard)
            if request.tls is None or request.tls.ca is None:
                curl.setopt(pycurl.CAINFO, self._ca_bundle)
        except pycurl.error as exc:
            curl.reset()
            self._free.append(curl)
            done(Response(0, error=f"Invalid request option: {exc.args[-1]}"))
            return
        self._active[curl] = transfer
        self._multi.add_handle(curl)

    async def aclose(self) -> None:
        for curl, transfer in list(self._active.items()):
            self._multi.remove_handle(curl)
            curl.close()
            transfer.done(Response(0, error="Aborted: the server is shutting down"))
        self._active.clear()
        for fd in list(self._watched):
            self._unwatch(fd)
        if self._timer is not None:
            self._timer.cancel()
        for curl in self._free:
            curl.close()
        self._free.clear()
        self._multi.close()

    # libcurl -> loop

    def _on_socket(self, event: int, fd: int, multi: Any, data: Any) -> None:
        if event == pycurl.POLL_REMOVE:
            self._unwatch(fd)
            return
        self._unwatch(fd)
        if event in (pycurl.POLL_IN, pycurl.POLL_INOUT):
            self._loop.add_reader(fd, self._act, fd, pycurl.CSELECT_IN)
        if event in (pycurl.POLL_OUT, pycurl.POLL_INOUT):
            self._loop.add_writer(fd, self._act, fd, pycurl.CSELECT_OUT)
        self._watched[fd] = event

    def _unwatch(self, fd: int) -> None:
        event = self._watched.pop(fd, None)
        if event in (pycurl.POLL_IN, pycurl.POLL_INOUT):
            self._loop.remove_reader(fd)
        if event in (pycurl.POLL_OUT, pycurl.POLL_INOUT):
            self._loop.remove_writer(fd)

    def _on_timer(self, timeout_ms: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if timeout_ms >= 0:
            self._timer = self._loop.call_later(
                timeout_ms / 1000, self._act, pycurl.SOCKET_TIMEOUT, 0
            )

    # loop -> libcurl

    def _act(self, fd: int, events: int) -> None:
        if fd == pycurl.SOCKET_TIMEOUT:
            self._timer = None
        while True:
            try:
                code, _ = self._multi.socket_action(fd, events)
            except pycurl.error as exc:
                code = exc.args[0]
            if code != pycurl.E_CALL_MULTI_PERFORM:
                break
        self._collect()

    def _collect(self) -> None:
        while True:
            queued, succeeded, failed = self._multi.info_read()
            for curl in succeeded:
                self._finish(curl, None)
            for curl, _code, message in failed:
                self._finish(curl, message or "transfer failed")
            if not queued:
                return

    def _finish(self, curl: pycurl.Curl, error: str | None) -> None:
        transfer = self._active.pop(curl)
        self._multi.remove_handle(curl)
        status = 0 if error else int(curl.getinfo(pycurl.RESPONSE_CODE))
        response = Response(
            status_code=status,
            body=b"".join(transfer.chunks),
            error=error,
            started_at_ms=transfer.started_at_ms,
            duration_ms=int(curl.getinfo(pycurl.TOTAL_TIME) * 1000),
        )
        curl.reset()
        if len(self._free) < _FREE_HANDLES:
            self._free.append(curl)
        else:
            curl.close()
        transfer.done(response)


def _discard(chunk: bytes) -> None:
    return None


def _configure(curl: pycurl.Curl, request: Request, write: Callable[[bytes], None]) -> None:
    setopt = curl.setopt
    setopt(pycurl.URL, request.url)
    setopt(pycurl.NOSIGNAL, 1)
    setopt(pycurl.PROTOCOLS, _PROTOCOLS)
    setopt(pycurl.REDIR_PROTOCOLS, _PROTOCOLS)
    setopt(pycurl.FOLLOWLOCATION, 1)
    setopt(pycurl.MAXREDIRS, 8)
    setopt(pycurl.TIMEOUT_MS, request.timeout_ms)
    setopt(pycurl.WRITEFUNCTION, write)
    setopt(pycurl.HTTPHEADER, [*request.headers, "Expect:"])
    if request.user_agent:
        setopt(pycurl.USERAGENT, request.user_agent)
    _set_method(curl, request)
    if request.tls is not None:
        _set_tls(curl, request.tls)


def _set_method(curl: pycurl.Curl, request: Request) -> None:
    method = request.method
    if request.form is not None:
        curl.setopt(
            pycurl.HTTPPOST,
            [(name, (pycurl.FORM_CONTENTS, value)) for name, value in request.form],
        )
    elif request.body is not None or method == "POST":
        curl.setopt(pycurl.POSTFIELDS, request.body or b"")
    if method != "GET" and method != "POST":
        curl.setopt(pycurl.CUSTOMREQUEST, method)


def _set_material(curl: pycurl.Curl, material: Material, path_opt: int, blob_opt: int) -> None:
    if material.path is not None:
        curl.setopt(path_opt, material.path)
    else:
        curl.setopt(blob_opt, material.blob or b"")


def _set_tls(curl: pycurl.Curl, tls: Tls) -> None:
    if tls.ca is not None:
        _set_material(curl, tls.ca, pycurl.CAINFO, pycurl.CAINFO_BLOB)
    if tls.cert is not None:
        _set_material(curl, tls.cert, pycurl.SSLCERT, pycurl.SSLCERT_BLOB)
    if tls.key is not None:
        _set_material(curl, tls.key, pycurl.SSLKEY, pycurl.SSLKEY_BLOB)
    if tls.cert_password is not None:
        curl.setopt(pycurl.KEYPASSWD, tls.cert_password)
