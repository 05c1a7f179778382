"""A minimal HTTP/1.1 server: asyncio raw protocol on uvloop, requests parsed by httptools.

It exists to be as cheap as possible per request, so that the processes built on it (the
do-nothing endpoint and the delivery sink) are never the bottleneck of a measurement. It keeps
connections alive, answers pipelined requests in order, and hands each complete request to a
handler that returns the full response bytes.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import cast

import httptools
import uvloop

OK_EMPTY = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

Handler = Callable[[bytes, dict[bytes, bytes]], bytes]
"""(request target, wanted headers with lower-case names) -> full response bytes."""


def text_response(body: str, status: str = "200 OK") -> bytes:
    """A small `text/plain` response with a body."""
    data = body.encode()
    head = f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(data)}\r\n\r\n"
    return head.encode() + data


class _Connection(asyncio.Protocol):
    """One client connection; also the httptools parser's callback object."""

    def __init__(
        self, handler: Handler, wanted: frozenset[bytes], on_connect: Callable[[], None] | None
    ) -> None:
        self._handler = handler
        self._on_connect = on_connect
        self._wanted = wanted
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._headers: dict[bytes, bytes] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        if self._on_connect is not None:
            self._on_connect()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            if self._transport is not None:
                self._transport.write(BAD_REQUEST)
                self._transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower in self._wanted:
            self._headers[lower] = value

    def on_message_complete(self) -> None:
        if self._transport is None:
            return
        self._transport.write(self._handler(self._url, self._headers))
        if not self._parser.should_keep_alive():
            self._transport.close()


async def _serve(
    host: str,
    port: int,
    handler: Handler,
    wanted: frozenset[bytes],
    on_connect: Callable[[], None] | None,
) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Connection(handler, wanted, on_connect),
        host,
        port,
        backlog=4096,
        reuse_address=True,
    )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def serve(
    host: str,
    port: int,
    handler: Handler,
    wanted: frozenset[bytes] = frozenset(),
    on_connect: Callable[[], None] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT; `on_connect` is called for every accepted connection."""
    if host != "127.0.0.1":
        raise ValueError("benchmark helpers listen on 127.0.0.1 only")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve(host, port, handler, wanted, on_connect))
