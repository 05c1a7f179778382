"""Bad input: every mistake is a 4xx with the JSON envelope, never a 500, and leaves no trace."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from tests.support.server import ApiClient, error_paths, expect_envelope, expect_error, task_body
from tests.support.targets import TargetServer

URL = "http://127.0.0.1:9/cb"  # never contacted: every body below is refused
LONG = {"executionDelay": 600_000}
JSON = {"Content-Type": "application/json"}


def with_http(**fields: Any) -> dict[str, Any]:
    return {"httpRequest": {"url": URL, "method": "POST", **fields}, "config": LONG}


def with_config(**fields: Any) -> dict[str, Any]:
    return {"httpRequest": {"url": URL, "method": "GET"}, "config": {**LONG, **fields}}


def with_metadata(metadata: Any) -> dict[str, Any]:
    return {"httpRequest": {"url": URL, "method": "GET"}, "config": LONG, "metadata": metadata}


# (case id, body, the field path expected to carry the error, or None to skip that check)
INVALID_BODIES: list[tuple[str, Any, tuple[str, ...] | None]] = [
    ("empty-object", {}, ("httpRequest",)),
    ("array", [], None),
    ("string", "hello", None),
    ("null", None, None),
    ("http-not-object", {"httpRequest": "x"}, ("httpRequest",)),
    ("unknown-top-level", {**with_http(), "extra": 1}, None),
    ("unknown-http-field", with_http(body="x"), None),
    ("unknown-config-field", with_config(retries=1), None),
    ("missing-url", {"httpRequest": {"method": "GET"}}, ("httpRequest", "url")),
    ("missing-method", {"httpRequest": {"url": URL}}, ("httpRequest", "method")),
    ("url-ftp", with_http(url="ftp://127.0.0.1/cb"), ("httpRequest", "url")),
    ("url-not-url", with_http(url="not a url"), ("httpRequest", "url")),
    ("url-bad-ipv6", with_http(url="http://[::1/cb"), ("httpRequest", "url")),
    ("url-port-out-of-range", with_http(url="http://127.0.0.1:99999/cb"), ("httpRequest", "url")),
    ("url-too-long", with_http(url="http://127.0.0.1:9/" + "a" * 1006), ("httpRequest", "url")),
    ("url-number", with_http(url=42), ("httpRequest", "url")),
    ("method-head", with_http(method="HEAD"), ("httpRequest", "method")),
    ("method-options", with_http(method="OPTIONS"), ("httpRequest", "method")),
    ("method-bogus", with_http(method="FETCH"), ("httpRequest", "method")),
    ("method-number", with_http(method=1), ("httpRequest", "method")),
    ("query-empty-value", with_http(query={"q": ""}), ("httpRequest", "query")),
    ("query-long-value", with_http(query={"q": "x" * 1025}), ("httpRequest", "query")),
    ("query-bad-key", with_http(query={"a b": "1"}), ("httpRequest", "query")),
    ("query-long-key", with_http(query={"k" * 65: "1"}), ("httpRequest", "query")),
    ("query-number-value", with_http(query={"q": 1}), ("httpRequest", "query")),
    ("query-array", with_http(query=["a"]), ("httpRequest", "query")),
    ("headers-empty-value", with_http(headers={"X-A": ""}), ("httpRequest", "headers")),
    ("headers-bad-key", with_http(headers={"X A": "1"}), ("httpRequest", "headers")),
    ("headers-object-value", with_http(headers={"X-A": {"b": "c"}}), ("httpRequest", "headers")),
    ("data-empty-string", with_http(data=""), ("httpRequest", "data")),
    ("data-long-string", with_http(data="x" * 4097), ("httpRequest", "data")),
    ("data-empty-array", with_http(data=[]), ("httpRequest", "data")),
    (
        "data-65-pairs",
        with_http(data=[{"name": f"n{i}", "value": "v"} for i in range(65)]),
        ("httpRequest", "data"),
    ),
    ("data-pair-missing-value", with_http(data=[{"name": "a"}]), ("httpRequest", "data")),
    (
        "data-pair-extra-key",
        with_http(data=[{"name": "a", "value": "b", "x": "c"}]),
        ("httpRequest", "data"),
    ),
    ("data-four-levels", with_http(data={"a": {"b": {"c": {"d": "e"}}}}), ("httpRequest", "data")),
    ("data-number", with_http(data=5), ("httpRequest", "data")),
    ("transport-grpc", with_http(transport="grpc"), ("httpRequest", "transport")),
    ("delay-negative", with_config(executionDelay=-1), ("config", "executionDelay")),
    ("delay-string", with_config(executionDelay="100"), ("config", "executionDelay")),
    ("delay-bool", with_config(executionDelay=True), ("config", "executionDelay")),
    ("delay-2^53", with_config(executionDelay=2**53), ("config", "executionDelay")),
    ("retry-negative", with_config(retry=-1), ("config", "retry")),
    ("retry-2^53", with_config(retry=2**53), ("config", "retry")),
    ("retry-string", with_config(retry="3"), ("config", "retry")),
    ("retry-interval-zero", with_config(retryInterval=0), ("config", "retryInterval")),
    (
        "retry-exponential-string",
        with_config(retryExponential="yes"),
        ("config", "retryExponential"),
    ),
    ("ignore-399", with_config(ignoreStatusCode=[399]), ("config", "ignoreStatusCode")),
    ("ignore-600", with_config(ignoreStatusCode=[600]), ("config", "ignoreStatusCode")),
    (
        "ignore-41-codes",
        with_config(ignoreStatusCode=[400 + i for i in range(41)]),
        ("config", "ignoreStatusCode"),
    ),
    ("ignore-not-array", with_config(ignoreStatusCode=404), ("config", "ignoreStatusCode")),
    ("timeout-999", with_config(timeout=999), ("config", "timeout")),
    ("user-agent-short", with_config(userAgent="short"), ("config", "userAgent")),
    ("user-agent-long", with_config(userAgent="u" * 257), ("config", "userAgent")),
    ("trace-string", with_config(traceResponseData="no"), ("config", "traceResponseData")),
    (
        "execute-immediately-string",
        with_config(executeImmediately="true"),
        ("config", "executeImmediately"),
    ),
    ("execute-at-past", with_config(executeAt="Dec 12 2024"), ("config", "executeAt")),
    ("execute-at-garbage", with_config(executeAt="someday"), ("config", "executeAt")),
    ("execute-at-bool", with_config(executeAt=True), ("config", "executeAt")),
    ("time-zone-unknown", with_config(timeZone="Nowhere/Land"), ("config", "timeZone")),
    ("ca-missing-file", with_config(ca="/nonexistent/ca.pem"), ("config", "ca")),
    ("cert-missing-file", with_config(cert={"value": "/nonexistent/cert.pem"}), ("config", "cert")),
    ("cert-no-value", with_config(cert={"password": "x"}), ("config", "cert")),
    (
        "cert-extra-key",
        with_config(cert={"value": "/nonexistent/cert.pem", "x": 1}),
        ("config", "cert"),
    ),
    ("key-missing-file", with_config(key="/nonexistent/key.pem"), ("config", "key")),
    (
        "config-not-object",
        {"httpRequest": {"url": URL, "method": "GET"}, "config": []},
        ("config",),
    ),
    ("metadata-empty", with_metadata({}), ("metadata",)),
    ("metadata-9-keys", with_metadata({f"k{i}": "v" for i in range(9)}), ("metadata",)),
    ("metadata-empty-value", with_metadata({"k": ""}), ("metadata",)),
    ("metadata-long-value", with_metadata({"k": "v" * 513}), ("metadata",)),
    ("metadata-number-value", with_metadata({"k": 1}), ("metadata",)),
    ("metadata-string", with_metadata("tag"), ("metadata",)),
]


def _prefix_in(paths: set[tuple[str, ...]], expected: tuple[str, ...]) -> bool:
    """The error sits at ``expected`` or below it."""
    return any(path[: len(expected)] == expected for path in paths)


@pytest.mark.parametrize(
    ("body", "field"), [(b, f) for _, b, f in INVALID_BODIES], ids=[c for c, _, _ in INVALID_BODIES]
)
def test_invalid_registration_is_400(
    owner: ApiClient, body: Any, field: tuple[str, ...] | None
) -> None:
    response = owner.post("/v1/queues/register", content=json.dumps(body).encode(), headers=JSON)
    data = expect_error(response, 400)
    if field is not None:
        assert isinstance(data["message"], dict), data
        assert _prefix_in(error_paths(data["message"]), field), (field, data["message"])
    assert owner.tasks(limit=1000) == []
    assert owner.owner()["tasksInQueue"] == 0


def test_unknown_field_error_is_reported(owner: ApiClient) -> None:
    data = expect_error(owner.post("/v1/queues/register", json={**with_http(), "surprise": 1}), 400)
    assert isinstance(data["message"], dict)
    assert "surprise" in json.dumps(data["message"]), data


@pytest.mark.parametrize(
    "body",
    [
        with_http(url="http://127.0.0.1:9/" + "a" * 1005),  # exactly 1024 characters
        with_http(data="x" * 4096),
        with_http(data=[{"name": f"n{i}", "value": "v"} for i in range(64)]),
        with_http(data={"a": {"b": {"c": "d"}}}),
        with_http(query={"k" * 64: "v" * 1024, "a$_.-[]": "1"}),
        with_http(transport="curl"),
        with_http(transport="fetch"),
        with_http(transport=None),
        with_config(executionDelay=2**53 - 1 - 4_200_000_000_000),
        with_config(retry=0, retryInterval=1, timeout=1000),
        with_config(userAgent="u" * 8),
        with_config(userAgent="u" * 256),
        with_config(ignoreStatusCode=[400 + i for i in range(40)]),
        with_config(ignoreStatusCode=[599]),
        with_metadata({f"k{i}": "v" * 512 for i in range(8)}),
    ],
    ids=[
        "url-1024",
        "data-4096",
        "data-64-pairs",
        "data-3-levels",
        "query-edges",
        "transport-curl",
        "transport-fetch",
        "transport-null",
        "big-delay",
        "minimums",
        "user-agent-8",
        "user-agent-256",
        "ignore-40-codes",
        "ignore-599",
        "metadata-8-keys",
    ],
)
def test_boundary_values_are_accepted(owner: ApiClient, body: dict[str, Any]) -> None:
    task = owner.register_task(body)
    owner.delete_task(task["id"])


def test_malformed_json_is_400(owner: ApiClient) -> None:
    for raw in (b'{"httpRequest":', b"{'a': 1}", b"", b"\xff\xfe", b"[1, 2"):
        response = owner.post(
            "/v1/queues/register", content=raw, headers={"Content-Type": "application/json"}
        )
        expect_error(response, 400)


def test_oversized_body_is_413(owner: ApiClient) -> None:
    body = with_http(data="x" * 4000)
    body["padding"] = "p" * 33_000  # > 32768 bytes in all
    raw = json.dumps(body).encode()
    assert len(raw) > 32768
    data = expect_error(
        owner.post(
            "/v1/queues/register", content=raw, headers={"Content-Type": "application/json"}
        ),
        413,
    )
    assert data["action"] == "Do not retry without fixing the problem"
    # Also when the size is not announced up front (chunked upload).
    chunks = iter([raw[:20000], raw[20000:]])
    response = owner.post(
        "/v1/queues/register", content=chunks, headers={"Content-Type": "application/json"}
    )
    expect_error(response, 413)
    assert owner.tasks() == []


def test_oversized_owner_registration_is_413(api: ApiClient) -> None:
    raw = json.dumps({"name": "n" * 40_000}).encode()
    expect_error(
        api.post(
            "/v1/owners/register",
            content=raw,
            headers={"Content-Type": "application/json"},
            auth=False,
        ),
        413,
    )


BadRequest = tuple[str, str, str, dict[str, Any]]  # (label, method, path, httpx arguments)


def _bad_requests() -> list[BadRequest]:
    """A mix of bad requests on every kind of route."""
    requests: list[BadRequest] = [
        (
            case,
            "POST",
            "/v1/queues/register",
            {"content": json.dumps(body).encode(), "headers": JSON},
        )
        for case, body, _ in INVALID_BODIES
    ]
    oversized = json.dumps(with_http(data="x" * 40_000)).encode()
    form = {"content": b"name=x", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}
    unknown = "191E27DB6911726081775249"
    requests += [
        (
            "truncated-json",
            "POST",
            "/v1/queues/register",
            {"content": b'{"httpRequest":', "headers": JSON},
        ),
        ("binary", "POST", "/v1/queues/register", {"content": b"\x00\x01\x02", "headers": JSON}),
        ("oversized", "POST", "/v1/queues/register", {"content": oversized, "headers": JSON}),
        ("form-body", "POST", "/v1/queues/register", form),
        ("limit-0", "GET", "/v1/queues", {"params": {"limit": "0"}}),
        ("limit-huge", "GET", "/v1/queues", {"params": {"limit": "9" * 23}}),
        ("order-sql", "GET", "/v1/queues", {"params": {"order": "'; DROP TABLE queue; --"}}),
        ("state-bad", "GET", "/v1/queues", {"params": {"state": "nope"}}),
        ("id-words", "GET", "/v1/queues/invalid-queue-id", {}),
        ("id-nul", "GET", "/v1/queues/%00%00", {}),
        ("id-long", "GET", "/v1/queues/" + "A" * 300, {}),
        ("pause-bad-id", "PATCH", "/v1/queues/invalid-queue-id/pause", {}),
        ("resume-unknown", "PATCH", f"/v1/queues/{unknown}/resume", {}),
        ("execute-unknown", "POST", f"/v1/queues/{unknown}/execute", {}),
        ("edit-unknown", "PATCH", f"/v1/queues/{unknown}", {"json": {"config": {"retry": 1}}}),
        ("delete-bad-id", "DELETE", "/v1/queues/zzz", {}),
        ("owner-short", "GET", "/v1/owners/x", {}),
        ("owner-long", "GET", "/v1/owners/" + "a" * 200, {}),
        ("owner-bad-name", "POST", "/v1/owners/register", {"json": {"name": "Bad Name"}}),
        ("owner-name-list", "POST", "/v1/owners/register", {"json": {"name": ["x"]}}),
        ("no-route", "GET", "/v1/no-such-route", {}),
    ]
    return requests


def test_bad_input_burst(owner: ApiClient, target: TargetServer) -> None:
    requests = _bad_requests() * 4
    random.Random(7).shuffle(requests)
    assert len(requests) >= 300

    def send(item: BadRequest) -> tuple[str, int, str]:
        label, method, path, kwargs = item
        response = owner.request(method, path, **kwargs)
        try:
            expect_envelope(response, range(400, 500))
        except AssertionError:
            return label, response.status_code, response.text[:160]
        return label, response.status_code, ""

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(send, requests))
    failures = sorted({(label, code) for label, code, text in results if text})
    samples = {label: text for label, _, text in results if text}
    assert not failures, "\n".join(f"{label}: {code} {samples[label]}" for label, code in failures)

    # The server is still healthy and nothing half-written appeared.
    status = httpx.get(owner.base_url + "/status", timeout=5)
    assert status.status_code == 200
    assert owner.tasks(limit=1000) == []
    assert owner.owner()["tasksInQueue"] == 0
    task = owner.register_task(task_body(target.url()))
    assert owner.wait_final(task["id"])["state"] == "SUCCESS"
    assert [t["id"] for t in owner.tasks(limit=1000)] == [task["id"]]


def test_malformed_ids_on_every_route(owner: ApiClient) -> None:
    calls: list[Callable[[str], httpx.Response]] = [
        lambda i: owner.get(f"/v1/queues/{i}"),
        lambda i: owner.patch(f"/v1/queues/{i}", json={"config": {"retry": 1}}),
        lambda i: owner.delete(f"/v1/queues/{i}"),
        lambda i: owner.get(f"/v1/queues/{i}/config"),
        lambda i: owner.get(f"/v1/queues/{i}/attempts"),
        lambda i: owner.patch(f"/v1/queues/{i}/pause"),
        lambda i: owner.patch(f"/v1/queues/{i}/resume"),
        lambda i: owner.patch(f"/v1/queues/{i}/revoke"),
        lambda i: owner.post(f"/v1/queues/{i}/execute"),
    ]
    for bad in (
        "invalid-queue-id",
        "191E27DB691172608177524",
        "191E27DB6911726081775249X",
        "191E27DB69117260817752!9",
    ):
        for call in calls:
            expect_error(call(bad), 400)
