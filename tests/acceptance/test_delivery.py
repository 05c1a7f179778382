"""Delivery: what reaches the target, and what the task records about it."""

from __future__ import annotations

import base64
import email.policy
import json
from email.parser import BytesParser

import pytest
from tests.support.server import DEFAULT_USER_AGENT, ApiClient, now_ms, task_body
from tests.support.targets import BIG_BODY, OK_BODY, TargetServer, closed_port


def parse_multipart(content_type: str, body: bytes) -> dict[str, str]:
    message = BytesParser(policy=email.policy.default).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    assert message.is_multipart(), content_type
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes), part
        fields[str(name)] = payload.decode()
    return fields


def b64decode(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def test_get_with_query_and_headers(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(
        task_body(
            target.url(),
            "GET",
            query={"q": "Test query", "page": "2", "arr[]": "x.y"},
            headers={"X-Custom-Id": "Test header", "X-Other": "2"},
        )
    )
    [request] = target.wait_for_hits(task["id"])
    assert request.method == "GET"
    assert request.path == "/cb"
    assert request.query == {"q": ["Test query"], "page": ["2"], "arr[]": ["x.y"]}
    assert request.headers["x-custom-id"] == "Test header"
    assert request.headers["X-OTHER"] == "2"
    assert request.headers["X-Tasks-Queue-Id"] == task["id"]
    assert request.headers["User-Agent"] == DEFAULT_USER_AGENT
    for header in ("X-Tasks-Retry-Count", "X-Tasks-Retry-Limit", "X-Tasks-Estimate-Next-Retry-At"):
        assert header not in request.headers, header
    assert request.body == b""


def test_get_drops_data(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(task_body(target.url(), "GET", data="Ignore data"))
    assert task["state"] == "RUNNING"
    assert task["response"] is None
    assert task["estimateEndAt"] == 0
    [request] = target.wait_for_hits(task["id"])
    assert request.method == "GET"
    assert request.body == b""
    owner.wait_for_state(task["id"], "SUCCESS")


def test_delete_drops_data(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(task_body(target.url(), "DELETE", data={"k": "v"}))
    [request] = target.wait_for_hits(task["id"])
    assert request.method == "DELETE"
    assert request.body == b""


def test_post_json_object(owner: ApiClient, target: TargetServer) -> None:
    data = {
        "string": "value",
        "number": 42,
        "float": 1.5,
        "bool": True,
        "nothing": None,
        "nested": {"level2": {"level3": "deep", "n": -1}, "flag": False},
    }
    task = owner.register_task(task_body(target.url(), "POST", data=data))
    [request] = target.wait_for_hits(task["id"])
    assert request.method == "POST"
    assert request.headers["Content-Type"].split(";")[0].strip() == "application/json"
    assert json.loads(request.body) == data


def test_post_text(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(task_body(target.url(), "POST", data="Test string data ✓"))
    [request] = target.wait_for_hits(task["id"])
    assert request.headers["Content-Type"].split(";")[0].strip() == "text/plain"
    assert request.body == "Test string data ✓".encode()


def test_post_form(owner: ApiClient, target: TargetServer) -> None:
    data = [
        {"name": "label", "value": "Test multipart/form-data"},
        {"name": "second", "value": "2"},
    ]
    task = owner.register_task(task_body(target.url(), "POST", data=data))
    [request] = target.wait_for_hits(task["id"])
    content_type = request.headers["Content-Type"]
    assert content_type.startswith("multipart/form-data"), content_type
    assert parse_multipart(content_type, request.body) == {
        "label": "Test multipart/form-data",
        "second": "2",
    }


@pytest.mark.parametrize("method", ["PUT", "PATCH", "post", "Delete"])
def test_methods(owner: ApiClient, target: TargetServer, method: str) -> None:
    task = owner.register_task(task_body(target.url(), method, data={"m": method}))
    [request] = target.wait_for_hits(task["id"])
    assert request.method == method.upper()
    if method.upper() != "DELETE":
        assert json.loads(request.body) == {"m": method}


def test_user_agent(owner: ApiClient, target: TargetServer) -> None:
    custom = owner.register_task(
        task_body(target.url(), config={"userAgent": "Acceptance-Agent/2.0"})
    )
    dropped = owner.register_task(
        task_body(target.url(), headers={"User-Agent": "evil/1.0", "X-Keep": "1"})
    )
    [request] = target.wait_for_hits(custom["id"])
    assert request.headers["User-Agent"] == "Acceptance-Agent/2.0"
    [request] = target.wait_for_hits(dropped["id"])
    assert request.headers.get_all("User-Agent") == [DEFAULT_USER_AGENT]
    assert request.headers["X-Keep"] == "1"


def test_success_records_the_response(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(task_body(target.url()))
    done = owner.wait_for_state(task["id"], ["SUCCESS", "ERROR"])
    [request] = target.requests_for(task["id"])
    assert done["state"] == "SUCCESS"
    assert done["statusCode"] == 200
    assert b64decode(done["response"]) == OK_BODY
    assert done["retryCount"] == 0
    assert done["estimateEndAt"] >= request.at_ms - 5
    assert done["estimateEndAt"] <= now_ms()
    [attempt] = owner.attempts(task["id"])
    assert attempt["attempt"] == 1
    assert attempt["statusCode"] == 200
    assert attempt["outcome"] == "SUCCESS"
    assert isinstance(attempt["durationMs"], int) and attempt["durationMs"] >= 0
    assert abs(attempt["startedAt"] - request.at_ms) < 1000
    assert {"attempt", "startedAt", "durationMs", "statusCode", "error", "outcome"} <= set(attempt)


def test_not_found_is_error(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(task_body(target.url("/cb/error")))
    assert task["state"] == "RUNNING"
    done = owner.wait_for_state(task["id"], ["SUCCESS", "ERROR"])
    assert done["state"] == "ERROR"
    assert done["statusCode"] == 404
    assert b64decode(done["response"]) == b'{"error":"not found"}'
    assert done["estimateEndAt"] != 0
    assert target.hits(task["id"]) == 1
    [attempt] = owner.attempts(task["id"])
    assert attempt["outcome"] == "ERROR"
    assert attempt["statusCode"] == 404
    assert attempt["error"]


@pytest.mark.parametrize(
    ("code", "state"),
    [
        (200, "SUCCESS"),
        (201, "SUCCESS"),
        (202, "SUCCESS"),
        (204, "SUCCESS"),
        (400, "ERROR"),
        (401, "ERROR"),
        (403, "ERROR"),
        (409, "ERROR"),
        (429, "ERROR"),
        (500, "ERROR"),
        (502, "ERROR"),
        (503, "ERROR"),
        (599, "ERROR"),
    ],
)
def test_status_code_outcomes(
    owner: ApiClient, target: TargetServer, code: int, state: str
) -> None:
    task = owner.register_task(task_body(target.url(f"/cb/status/{code}")))
    done = owner.wait_final(task["id"])
    assert (done["state"], done["statusCode"]) == (state, code)
    assert target.hits(task["id"]) == 1


def test_response_body_is_cut_at_32768_bytes(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(task_body(target.url("/cb/big")))
    done = owner.wait_final(task["id"])
    assert done["state"] == "SUCCESS"
    assert done["statusCode"] == 200
    assert b64decode(done["response"]) == BIG_BODY[:32768]


def test_trace_response_data_false(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(task_body(target.url(), config={"traceResponseData": False}))
    done = owner.wait_final(task["id"])
    assert done["state"] == "SUCCESS"
    assert done["statusCode"] == 200
    assert done["response"] is None


def test_refused_connection_is_a_failure(owner: ApiClient) -> None:
    task = owner.register_task(task_body(f"http://127.0.0.1:{closed_port()}/cb"))
    done = owner.wait_final(task["id"])
    assert done["state"] == "ERROR"
    assert done["statusCode"] == 0
    assert done["response"] is not None and b64decode(done["response"])  # the error text
    [attempt] = owner.attempts(task["id"])
    assert attempt["statusCode"] == 0
    assert attempt["outcome"] == "ERROR"
    assert isinstance(attempt["error"], str) and attempt["error"]


def test_timeout_is_a_failure(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(task_body(target.url("/cb/slow?ms=6000"), config={"timeout": 1000}))
    done = owner.wait_final(task["id"], timeout=8)
    assert done["state"] == "ERROR"
    assert done["statusCode"] == 0
    assert target.hits(task["id"]) == 1
    [attempt] = owner.attempts(task["id"])
    assert attempt["statusCode"] == 0
    assert attempt["outcome"] == "ERROR"
    assert attempt["error"]
    assert 900 <= attempt["durationMs"] <= 4000, attempt
    assert done["estimateEndAt"] - done["createdAt"] < 5000


def test_timeout_at_bounds_the_first_attempt(owner: ApiClient, target: TargetServer) -> None:
    deadline = now_ms() + 1500
    task = owner.register_task(
        task_body(target.url("/cb/slow?ms=6000"), config={"timeoutAt": deadline, "timeout": 30000})
    )
    done = owner.wait_final(task["id"], timeout=8)
    assert done["state"] == "ERROR"
    assert done["statusCode"] == 0
    assert deadline - 100 <= done["estimateEndAt"] <= deadline + 2500, (deadline, done)


def test_slow_success_within_timeout(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(task_body(target.url("/cb/slow?ms=500"), config={"timeout": 3000}))
    done = owner.wait_final(task["id"])
    assert done["state"] == "SUCCESS"
    [attempt] = owner.attempts(task["id"])
    assert attempt["durationMs"] >= 450
