"""libcurl's multi interface on the event loop, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from tasks_server.delivery import Delivery, compile_delivery
from tasks_server.dispatch.transport.base import Request, Response
from tasks_server.dispatch.transport.curl import CurlTransport
from tasks_server.spec import TaskSpec

from .fakes import eventually
from .target import Target, pattern


@pytest.fixture
async def curl() -> AsyncIterator[CurlTransport]:
    transport = CurlTransport(response_max_bytes=1_000)
    yield transport
    await transport.aclose()


def send(transport: CurlTransport, request: Request) -> asyncio.Future[Response]:
    answered: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
    transport.submit(request, answered.set_result)
    return answered


async def fetch(transport: CurlTransport, request: Request, within: float = 10) -> Response:
    return await asyncio.wait_for(send(transport, request), within)


def compiled(url: str, method: str = "GET", **http: Any) -> Delivery:
    """The delivery of a task whose ``httpRequest`` and ``config`` are given."""
    config = http.pop("config", {})
    body = {"httpRequest": {"url": url, "method": method, **http}, "config": config}
    return compile_delivery(TaskSpec.model_validate_json(orjson.dumps(body)))


def refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestRequests:
    async def test_a_get(self, curl: CurlTransport, target: Target) -> None:
        before = time.time_ns() // 1_000_000
        response = await fetch(curl, Request(url=target.url("/hello"), method="GET"))
        assert (response.status_code, response.body, response.error) == (200, b"ok /hello", None)
        assert before <= response.started_at_ms <= time.time_ns() // 1_000_000
        assert response.duration_ms >= 0
        [seen] = target.seen
        assert (seen.method, seen.path, seen.body) == ("GET", "/hello", b"")

    @pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
    async def test_methods_with_a_body(
        self, curl: CurlTransport, target: Target, method: str
    ) -> None:
        request = Request(
            url=target.url("/m"),
            method=method,
            body=b'{"k":"v"}',
            headers=("Content-Type: application/json",),
        )
        assert (await fetch(curl, request)).status_code == 200
        [seen] = target.seen
        assert (seen.method, seen.body) == (method, b'{"k":"v"}')
        assert seen.header("Content-Type") == "application/json"
        assert seen.header("Expect") is None

    @pytest.mark.parametrize("method", ["GET", "DELETE", "POST", "PUT"])
    async def test_methods_without_a_body(
        self, curl: CurlTransport, target: Target, method: str
    ) -> None:
        assert (await fetch(curl, Request(url=target.url("/m"), method=method))).status_code == 200
        [seen] = target.seen
        assert (seen.method, seen.body) == (method, b"")

    async def test_query_and_headers_arrive(self, curl: CurlTransport, target: Target) -> None:
        request = Request(
            url=target.url("/q?a=1&b=x+y"),
            method="GET",
            headers=("X-Custom: value", "X-Tasks-Queue-Id: ABC"),
        )
        await fetch(curl, request)
        [seen] = target.seen
        assert seen.query == {"a": ["1"], "b": ["x y"]}
        assert seen.header("X-Custom") == "value"
        assert seen.header("X-Tasks-Queue-Id") == "ABC"

    async def test_the_user_agent(self, curl: CurlTransport, target: Target) -> None:
        request = Request(url=target.url("/ua"), method="GET", user_agent="Tasks-Test/1.0 (x)")
        await fetch(curl, request)
        assert target.seen[0].header("User-Agent") == "Tasks-Test/1.0 (x)"
        assert target.seen[0].header_count("User-Agent") == 1

    async def test_text_body(self, curl: CurlTransport, target: Target) -> None:
        request = Request(
            url=target.url("/t"),
            method="POST",
            body="héllo".encode(),
            headers=("Content-Type: text/plain; charset=utf-8",),
        )
        await fetch(curl, request)
        [seen] = target.seen
        assert seen.body.decode() == "héllo"
        assert seen.header("Content-Type") == "text/plain; charset=utf-8"

    @pytest.mark.parametrize("method", ["POST", "PUT"])
    async def test_form_body(self, curl: CurlTransport, target: Target, method: str) -> None:
        """Form data is encoded by delivery.py (so that it can be signed); libcurl sends it."""
        form = [{"name": "a", "value": "1"}, {"name": "b", "value": "two words"}]
        request = compiled(target.url("/f"), method, data=form).request
        await fetch(curl, request)
        [seen] = target.seen
        assert seen.method == method
        content_type = seen.header("Content-Type") or ""
        assert content_type.startswith("multipart/form-data; boundary=")
        assert b'name="a"\r\n\r\n1\r\n' in seen.body
        assert b'name="b"\r\n\r\ntwo words\r\n' in seen.body

    async def test_redirects_are_followed(self, curl: CurlTransport, target: Target) -> None:
        response = await fetch(curl, Request(url=target.url("/redirect/204"), method="GET"))
        assert response.status_code == 204
        assert [seen.path for seen in target.seen] == ["/redirect/204", "/status/204"]


class TestResponses:
    @pytest.mark.parametrize("code", [201, 301, 404, 500, 503])
    async def test_any_status_is_an_answer(
        self, curl: CurlTransport, target: Target, code: int
    ) -> None:
        response = await fetch(curl, Request(url=target.url(f"/status/{code}"), method="GET"))
        assert (response.status_code, response.error) == (code, None)
        assert response.body == f"status {code}".encode()

    async def test_the_body_is_cut_at_response_max_bytes(
        self, curl: CurlTransport, target: Target
    ) -> None:
        response = await fetch(curl, Request(url=target.url("/big/100000"), method="GET"))
        assert response.status_code == 200
        assert response.body == pattern(1_000)

    async def test_a_body_under_the_limit_is_whole(
        self, curl: CurlTransport, target: Target
    ) -> None:
        response = await fetch(curl, Request(url=target.url("/big/999"), method="GET"))
        assert response.body == pattern(999)

    async def test_keep_body_false_discards_it(self, curl: CurlTransport, target: Target) -> None:
        request = Request(url=target.url("/big/500"), method="GET", keep_body=False)
        response = await fetch(curl, request)
        assert (response.status_code, response.body) == (200, b"")


class TestFailures:
    async def test_a_timeout_is_no_answer(self, curl: CurlTransport, target: Target) -> None:
        started = time.monotonic()
        response = await fetch(curl, Request(url=target.url("/hang"), method="GET", timeout_ms=300))
        assert time.monotonic() - started < 5
        assert response.status_code == 0
        assert response.error is not None
        assert "timed out" in response.error.lower()

    async def test_a_refused_connection_is_no_answer(self, curl: CurlTransport) -> None:
        url = f"http://127.0.0.1:{refused_port()}/x"
        response = await fetch(curl, Request(url=url, method="GET"))
        assert response.status_code == 0
        assert response.error

    async def test_an_unknown_host_is_no_answer(self, curl: CurlTransport) -> None:
        response = await fetch(curl, Request(url="http://no-such-host.invalid/x", method="GET"))
        assert (response.status_code, bool(response.error)) == (0, True)

    async def test_other_protocols_are_refused(self, curl: CurlTransport, target: Target) -> None:
        response = await fetch(curl, Request(url=f"file://{__file__}", method="GET"))
        assert response.status_code == 0
        assert response.error
        assert response.body == b""


    async def test_a_request_libcurl_refuses_is_answered_not_raised(
        self, curl: CurlTransport, target: Target
    ) -> None:
        answers: list[Response] = []
        too_long = Request(url=target.url("/" + "a" * 9_000_000), method="GET")
        curl.submit(too_long, answers.append)
        assert curl.in_flight == 0
        [refused] = answers
        assert refused.status_code == 0
        assert (refused.error or "").startswith("Invalid request option")
        response = await fetch(curl, Request(url=target.url("/after"), method="GET"))
        assert response.status_code == 200
        assert [seen.path for seen in target.seen] == ["/after"]


class TestConcurrency:
    async def test_many_concurrent_requests_all_complete(self, target: Target) -> None:
        transport = CurlTransport()
        try:
            answers = [
                send(transport, Request(url=target.url(f"/n/{i}"), method="GET"))
                for i in range(500)
            ]
            assert transport.in_flight == 500
            responses = await asyncio.wait_for(asyncio.gather(*answers), 30)
        finally:
            await transport.aclose()
        assert [r.status_code for r in responses] == [200] * 500
        assert [r.body for r in responses] == [f"ok /n/{i}".encode() for i in range(500)]
        assert len({seen.path for seen in target.seen}) == 500

    async def test_in_flight_counts_down_before_done_is_called(
        self, curl: CurlTransport, target: Target
    ) -> None:
        counts: list[int] = []
        answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def done(response: Response) -> None:
            counts.append(curl.in_flight)
            answered.set_result(None)

        curl.submit(Request(url=target.url("/c"), method="GET"), done)
        assert curl.in_flight == 1
        await asyncio.wait_for(answered, 10)
        assert counts == [0]

    async def test_handles_are_reused_across_requests(
        self, curl: CurlTransport, target: Target
    ) -> None:
        for i in range(3):
            request = Request(
                url=target.url(f"/r/{i}"),
                method="POST" if i == 1 else "GET",
                body=b"only once" if i == 1 else None,
                headers=("X-Once: 1",) if i == 1 else (),
            )
            assert (await fetch(curl, request)).status_code == 200
        _, second, third = target.seen
        assert (second.method, second.body, second.header("X-Once")) == ("POST", b"only once", "1")
        assert (third.method, third.body, third.header("X-Once")) == ("GET", b"", None)

    async def test_aclose_aborts_what_is_in_flight(self, target: Target) -> None:
        transport = CurlTransport()
        hanging = Request(url=target.url("/hang"), method="GET")
        answers = [send(transport, hanging) for _ in range(3)]
        await eventually(lambda: len(target.seen), lambda n: n == 3, what="3 arrivals")
        await transport.aclose()
        assert transport.in_flight == 0
        for answer in answers:
            assert answer.done()
            response = answer.result()
            assert response.status_code == 0
            assert response.error is not None
            assert "shutting down" in response.error
