"""Retries: counts, headers, intervals, retryAt, ignoreStatusCode, the attempts history."""

from __future__ import annotations

import base64
import itertools
import json
import time
from datetime import UTC, datetime

from tests.support.server import ApiClient, error_paths, expect_error, now_ms, poll, task_body
from tests.support.targets import OK_BODY, RecordedRequest, TargetServer, closed_port

RETRY_HEADERS = ("X-Tasks-Retry-Count", "X-Tasks-Retry-Limit", "X-Tasks-Estimate-Next-Retry-At")


def gaps(requests: list[RecordedRequest]) -> list[int]:
    return [b.at_ms - a.at_ms for a, b in itertools.pairwise(requests)]


def test_retries_exhausted_then_error(owner: ApiClient, target: TargetServer) -> None:
    payload = {"order": 7, "items": {"a": "b", "ok": True}}
    task = owner.register_task(
        task_body(
            target.url("/cb/500"),
            "POST",
            headers={"X-Custom": "kept"},
            query={"q": "1"},
            data=payload,
            config={"retry": 2, "retryInterval": 100},
        )
    )
    done = owner.wait_final(task["id"])
    assert done["state"] == "ERROR"
    assert done["statusCode"] == 500
    assert done["retryCount"] == 2
    requests = target.requests_for(task["id"])
    assert len(requests) == 3

    first, *retries = requests
    for header in RETRY_HEADERS:
        assert header not in first.headers, header
    for n, request in enumerate(retries, start=1):
        assert request.headers["X-Tasks-Retry-Count"] == str(n)
        assert request.headers["X-Tasks-Retry-Limit"] == "2"
        due = int(request.headers["X-Tasks-Estimate-Next-Retry-At"])
        assert due - 20 <= request.at_ms <= due + 1500, (due, request.at_ms)
        assert due >= requests[n - 1].at_ms + 100 - 20
    # Every attempt is the same request: method, user headers, query and body survive retries.
    for request in requests:
        assert request.method == "POST"
        assert request.headers["X-Custom"] == "kept"
        assert request.headers.get_all("X-Tasks-Queue-Id") == [task["id"]]
        assert request.query == {"q": ["1"]}
        assert json.loads(request.body) == payload

    attempts = owner.attempts(task["id"])
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert [a["outcome"] for a in attempts] == ["RETRY", "RETRY", "ERROR"]
    assert [a["statusCode"] for a in attempts] == [500, 500, 500]
    assert all(a["error"] for a in attempts)
    starts = [a["startedAt"] for a in attempts]
    assert starts == sorted(starts)


def test_retry_once_after_one_second(owner: ApiClient, target: TargetServer) -> None:
    """The original's case: /cb/error with retry 1 and retryInterval 1000 hits twice."""
    task = owner.register_task(
        task_body(target.url("/cb/error"), config={"retry": 1, "retryInterval": 1000})
    )
    done = owner.wait_final(task["id"], timeout=8)
    assert done["state"] == "ERROR"
    assert done["statusCode"] == 404
    assert done["retryCount"] == 1
    requests = target.requests_for(task["id"])
    assert len(requests) == 2
    assert 980 <= gaps(requests)[0] <= 2500


def test_retry_then_success(owner: ApiClient, target: TargetServer) -> None:
    url = target.script(f"flaky-{owner.name}", [500, 500, 200])
    task = owner.register_task(task_body(url, config={"retry": 5, "retryInterval": 100}))
    done = owner.wait_final(task["id"])
    assert done["state"] == "SUCCESS"
    assert done["statusCode"] == 200
    assert done["retryCount"] == 2
    assert base64.b64decode(done["response"]) == OK_BODY
    assert len(target.requests_for(task["id"])) == 3
    attempts = owner.attempts(task["id"])
    assert [a["outcome"] for a in attempts] == ["RETRY", "RETRY", "SUCCESS"]
    assert [a["statusCode"] for a in attempts] == [500, 500, 200]


def test_ignore_status_code_ends_in_error_without_retry(
    owner: ApiClient, target: TargetServer
) -> None:
    task = owner.register_task(
        task_body(
            target.url("/cb/error"),
            config={"ignoreStatusCode": [404], "retry": 3, "retryInterval": 100},
        )
    )
    done = owner.wait_final(task["id"])
    assert done["state"] == "ERROR"
    assert done["statusCode"] == 404
    assert done["retryCount"] == 0
    target.wait_for_hits(task["id"])
    assert [a["outcome"] for a in owner.attempts(task["id"])] == ["ERROR"]
    # No retry comes later either.
    time.sleep(0.5)
    assert target.hits(task["id"]) == 1


def test_ignore_status_code_other_codes_still_retry(owner: ApiClient, target: TargetServer) -> None:
    url = target.script(f"ignore-{owner.name}", [503, 200])
    task = owner.register_task(
        task_body(url, config={"ignoreStatusCode": [404, 500], "retry": 1, "retryInterval": 100})
    )
    done = owner.wait_final(task["id"])
    assert done["state"] == "SUCCESS"
    assert len(target.requests_for(task["id"])) == 2


def test_retry_interval_is_constant(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(
        task_body(target.url("/cb/500"), config={"retry": 3, "retryInterval": 300})
    )
    done = owner.wait_final(task["id"], timeout=8)
    assert done["state"] == "ERROR"
    assert done["retryCount"] == 3
    requests = target.requests_for(task["id"])
    assert len(requests) == 4
    for gap in gaps(requests):
        assert 280 <= gap <= 900, gaps(requests)


def test_retry_exponential_is_linear_in_n(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(
        task_body(
            target.url("/cb/500"),
            config={"retry": 3, "retryInterval": 250, "retryExponential": True},
        )
    )
    done = owner.wait_final(task["id"], timeout=10)
    assert done["state"] == "ERROR"
    requests = target.requests_for(task["id"])
    assert len(requests) == 4
    measured = gaps(requests)
    for n, gap in enumerate(measured, start=1):
        assert n * 250 - 20 <= gap <= n * 250 + 600, measured
    assert measured[0] < measured[1] < measured[2], measured
    dues = [int(r.headers["X-Tasks-Estimate-Next-Retry-At"]) for r in requests[1:]]
    assert [r.headers["X-Tasks-Retry-Count"] for r in requests[1:]] == ["1", "2", "3"]
    assert [r.headers["X-Tasks-Retry-Limit"] for r in requests[1:]] == ["3", "3", "3"]
    for n, (due, previous) in enumerate(zip(dues, requests, strict=False), start=1):
        assert due - previous.at_ms >= n * 250 - 20, (n, due, previous.at_ms)


def test_retry_at_epoch_ms(owner: ApiClient, target: TargetServer) -> None:
    retry_at = now_ms() + 1500
    task = owner.register_task(task_body(target.url("/cb/500"), config={"retryAt": retry_at}))
    done = owner.wait_final(task["id"], timeout=8)
    assert done["state"] == "ERROR"
    assert done["retryCount"] == 1
    requests = target.requests_for(task["id"])
    assert len(requests) == 2
    first, retry = requests
    assert first.at_ms < retry_at - 500
    assert retry_at - 20 <= retry.at_ms <= retry_at + 1500
    assert retry.headers["X-Tasks-Estimate-Next-Retry-At"] == str(retry_at)
    assert retry.headers["X-Tasks-Retry-Count"] == "1"
    assert retry.headers["X-Tasks-Retry-Limit"] == "1"


def test_retry_at_date_string(owner: ApiClient, target: TargetServer) -> None:
    """The original's case: retryAt formatted like 'Apr 18 2025 1:47:03 PM' (here: UTC)."""
    due = (now_ms() + 2000) // 1000 * 1000 + 1000
    moment = datetime.fromtimestamp(due / 1000, tz=UTC)
    hour, ampm = moment.hour % 12 or 12, "AM" if moment.hour < 12 else "PM"
    text = f"{moment:%b} {moment.day} {moment.year} {hour}:{moment:%M:%S} {ampm}"
    task = owner.register_task(task_body(target.url("/cb/error"), config={"retryAt": text}))
    done = owner.wait_final(task["id"], timeout=8)
    assert done["state"] == "ERROR"
    assert done["retryCount"] == 1
    _, retry = target.requests_for(task["id"])
    assert due - 20 <= retry.at_ms <= due + 1500, (text, due, retry.at_ms)


def test_retry_at_must_be_a_second_after_the_first_attempt(
    owner: ApiClient, target: TargetServer
) -> None:
    soon = now_ms() + 5000
    body = task_body(target.url(), config={"executionDelay": 5000, "retryAt": soon + 500})
    data = expect_error(owner.post("/v1/queues/register", json=body), 400)
    assert ("config", "retryAt") in error_paths(data["message"]), data
    body = task_body(target.url(), config={"executeAt": soon, "timeoutAt": soon + 200})
    data = expect_error(owner.post("/v1/queues/register", json=body), 400)
    assert ("config", "timeoutAt") in error_paths(data["message"]), data


def test_retry_on_refused_connection(owner: ApiClient) -> None:
    task = owner.register_task(
        task_body(f"http://127.0.0.1:{closed_port()}/cb", config={"retry": 1, "retryInterval": 100})
    )
    done = owner.wait_final(task["id"])
    assert done["state"] == "ERROR"
    assert done["statusCode"] == 0
    assert done["retryCount"] == 1
    attempts = owner.attempts(task["id"])
    assert [(a["statusCode"], a["outcome"]) for a in attempts] == [(0, "RETRY"), (0, "ERROR")]
    assert all(a["error"] for a in attempts)


def test_waiting_retry_is_visible_and_execute_fires_it_now(
    owner: ApiClient, target: TargetServer
) -> None:
    task = owner.register_task(
        task_body(target.url("/cb/500"), config={"retry": 1, "retryInterval": 5000})
    )
    [first] = target.wait_for_hits(task["id"])
    waiting = poll(
        lambda: owner.task(task["id"]),
        lambda t: t["statusCode"] == 500,
        timeout=5,
        message="first attempt recorded",
    )
    assert waiting["state"] == "RUNNING"
    assert first.at_ms + 4500 <= waiting["estimateExecutionAt"] <= first.at_ms + 6500, waiting
    assert [a["outcome"] for a in owner.attempts(task["id"])] == ["RETRY"]

    owner.execute(task["id"])
    executed_at = now_ms()
    requests = target.wait_for_hits(task["id"], 2, timeout=3)
    assert requests[1].at_ms - executed_at < 2000
    assert requests[1].headers["X-Tasks-Retry-Count"] == "1"
    done = owner.wait_final(task["id"])
    assert done["state"] == "ERROR"
    assert done["retryCount"] == 1
