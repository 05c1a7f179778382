"""End to end in one process: the app on the real clock delivers through libcurl to a real
HTTP server on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tasks_server.config import Settings
from tasks_server.spec import DEFAULT_USER_AGENT

from .appkit import Client, Owner, serve, task_body
from .target import Target, pattern
from .webhooks import signed_by


@pytest.fixture
async def live(db_path: Path) -> AsyncIterator[Client]:
    """The app as it runs in production: the real clock, libcurl."""
    settings = Settings(db=db_path, poll_interval_ms=50, response_max_bytes=100)
    async with serve(settings) as client:
        yield Client(client)


@pytest.fixture
async def owner(live: Client) -> Owner:
    return await live.owner("live-owner")


def decoded(task: dict[str, Any]) -> bytes:
    return base64.b64decode(task["response"])


async def run(live: Client, owner: Owner, body: dict[str, Any]) -> dict[str, Any]:
    task = await live.register(owner, body)
    return await live.settled(owner, task["id"])


async def test_a_json_post_arrives_as_registered(
    live: Client, owner: Owner, target: Target
) -> None:
    body = task_body(target.url("/hook"), executionDelay=0)
    body["httpRequest"].update(
        headers={"X-Custom": "1", "user-agent": "dropped"},
        query={"q": "a b"},
        data={"k": "v", "n": {"x": 1}},
    )
    body["metadata"] = {"tag": "checkout"}
    done = await run(live, owner, body)
    assert (done["state"], done["statusCode"], done["retryCount"]) == ("SUCCESS", 200, 0)
    assert decoded(done) == b"ok /hook"
    assert done["metadata"] == {"tag": "checkout"}
    assert done["estimateEndAt"] >= done["estimateExecutionAt"] >= done["createdAt"]

    [seen] = target.seen
    assert (seen.method, seen.path, seen.query) == ("POST", "/hook", {"q": ["a b"]})
    assert seen.header("X-Custom") == "1"
    assert seen.header("X-Tasks-Queue-Id") == done["id"]
    assert seen.header("X-Tasks-Retry-Count") is None
    assert seen.header("User-Agent") == DEFAULT_USER_AGENT
    assert seen.header("Content-Type") == "application/json"
    assert json.loads(seen.body) == {"k": "v", "n": {"x": 1}}

    [attempt] = (await live.call("GET", f"/v1/queues/{done['id']}/attempts", owner)).json()
    assert (attempt["attempt"], attempt["statusCode"], attempt["outcome"]) == (1, 200, "SUCCESS")
    assert attempt["error"] is None
    assert attempt["durationMs"] >= 0


async def test_text_with_a_custom_user_agent(live: Client, owner: Owner, target: Target) -> None:
    body = task_body(target.url("/text"), "put", executionDelay=0, userAgent="Custom-Agent/2.0")
    body["httpRequest"]["data"] = "héllo"
    await run(live, owner, body)
    [seen] = target.seen
    assert (seen.method, seen.body.decode()) == ("PUT", "héllo")
    assert seen.header("Content-Type") == "text/plain; charset=utf-8"
    assert seen.header("User-Agent") == "Custom-Agent/2.0"


async def test_a_form(live: Client, owner: Owner, target: Target) -> None:
    body = task_body(target.url("/form"), executionDelay=0)
    body["httpRequest"]["data"] = [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}]
    assert (await run(live, owner, body))["state"] == "SUCCESS"
    [seen] = target.seen
    assert (seen.header("Content-Type") or "").startswith("multipart/form-data")
    assert b'name="a"\r\n\r\n1\r\n' in seen.body
    assert b'name="b"\r\n\r\n2\r\n' in seen.body


async def test_get_sends_no_data(live: Client, owner: Owner, target: Target) -> None:
    body = task_body(target.url("/get"), "get", executionDelay=0)
    body["httpRequest"]["data"] = {"k": "v"}
    await run(live, owner, body)
    [seen] = target.seen
    assert (seen.method, seen.body, seen.header("Content-Type")) == ("GET", b"", None)


async def test_failures_are_retried_then_end_in_error(
    live: Client, owner: Owner, target: Target
) -> None:
    body = task_body(target.url("/status/500"), executionDelay=0, retry=2, retryInterval=1)
    done = await run(live, owner, body)
    assert (done["state"], done["statusCode"], done["retryCount"]) == ("ERROR", 500, 2)
    assert decoded(done) == b"status 500"
    attempts = (await live.call("GET", f"/v1/queues/{done['id']}/attempts", owner)).json()
    assert [(a["attempt"], a["error"], a["outcome"]) for a in attempts] == [
        (1, "HTTP 500", "RETRY"),
        (2, "HTTP 500", "RETRY"),
        (3, "HTTP 500", "ERROR"),
    ]
    seen = target.seen_at("/status/500")
    assert [s.header("X-Tasks-Retry-Count") for s in seen] == [None, "1", "2"]
    assert [s.header("X-Tasks-Retry-Limit") for s in seen] == [None, "2", "2"]
    retry_due = [int(s.header("X-Tasks-Estimate-Next-Retry-At") or 0) for s in seen[1:]]
    assert all(due > done["createdAt"] for due in retry_due)


async def test_no_answer_keeps_the_error_text(live: Client, owner: Owner) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = await run(live, owner, task_body(f"http://127.0.0.1:{port}/x", executionDelay=0))
    assert (done["state"], done["statusCode"]) == ("ERROR", 0)
    [attempt] = (await live.call("GET", f"/v1/queues/{done['id']}/attempts", owner)).json()
    assert attempt["statusCode"] == 0
    assert attempt["error"]
    assert decoded(done).decode() == attempt["error"]


async def test_the_response_is_cut_at_response_max_bytes(
    live: Client, owner: Owner, target: Target
) -> None:
    done = await run(live, owner, task_body(target.url("/big/5000"), executionDelay=0))
    assert decoded(done) == pattern(100)


async def test_trace_response_data_false_keeps_no_response(
    live: Client, owner: Owner, target: Target
) -> None:
    body = task_body(target.url("/quiet"), executionDelay=0, traceResponseData=False)
    done = await run(live, owner, body)
    assert (done["state"], done["response"]) == ("SUCCESS", None)


async def test_what_arrives_is_signed_with_the_owners_secret(
    live: Client, owner: Owner, target: Target
) -> None:
    other = await live.owner("other-owner")
    body = task_body(target.url("/signed"), executionDelay=0)
    body["httpRequest"]["data"] = {"k": "v"}
    before = int(time.time())
    done = await run(live, owner, body)
    [seen] = target.seen
    assert seen.header("webhook-id") == seen.header("Idempotency-Key") == done["id"]
    assert before <= int(seen.header("webhook-timestamp") or 0) <= int(time.time())
    secrets = [owner.signing_secret, other.signing_secret]
    assert signed_by(seen.header, seen.body, secrets) == [owner.signing_secret]


async def test_a_form_is_signed_as_it_arrives(live: Client, owner: Owner, target: Target) -> None:
    body = task_body(target.url("/signed-form"), executionDelay=0)
    body["httpRequest"]["data"] = [{"name": 'q"uote', "value": "é"}]
    await run(live, owner, body)
    [seen] = target.seen
    assert b'name="q%22uote"\r\n\r\n' + "é".encode() + b"\r\n" in seen.body
    assert signed_by(seen.header, seen.body, [owner.signing_secret]) == [owner.signing_secret]


async def test_options_take_effect_end_to_end(live: Client, owner: Owner, target: Target) -> None:
    url = f"http://made-up.test:{target.port}/opts"
    body = task_body(
        url,
        "get",
        executionDelay=0,
        resolve=[{"host": "made-up.test", "port": target.port, "address": ["127.0.0.1"]}],
        httpVersion="1.0",
        refererUrl="https://ref.example/",
    )
    body["httpRequest"]["authBasic"] = {"username": "user", "password": "pass"}
    body["httpRequest"]["cookie"] = [{"name": "sid", "value": "abc"}]
    done = await run(live, owner, body)
    assert (done["state"], done["statusCode"]) == ("SUCCESS", 200)
    [seen] = target.seen
    assert seen.header("Host") == f"made-up.test:{target.port}"
    assert seen.version == "HTTP/1.0"
    assert seen.header("Referer") == "https://ref.example/"
    assert seen.header("Authorization") == "Basic " + base64.b64encode(b"user:pass").decode()
    assert seen.header("Cookie") == "sid=abc"
