"""The /v1/queues routes: shapes, status codes, list paging, ordering and filters."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from tests.support.server import ApiClient, expect_error, find_values, now_ms, task_body
from tests.support.targets import TargetServer

TASK_KEYS = {
    "id",
    "state",
    "createdAt",
    "statusCode",
    "estimateEndAt",
    "estimateExecutionAt",
    "response",
    "metadata",
    "retryCount",
}
LIST_KEYS = TASK_KEYS - {"response", "metadata"}
TASK_ID = re.compile(r"^[0-9A-Z]{24}$")
UNKNOWN_TASK = "191E27DB6911726081775249"
LONG = {"executionDelay": 600_000}


def test_register_answers_the_committed_task(owner: ApiClient, target: TargetServer) -> None:
    before = now_ms()
    task = owner.register_task(
        task_body(target.url(), config={"executionDelay": 60_000}, metadata={"tag": "checkout"})
    )
    after = now_ms()
    assert set(task) == TASK_KEYS
    assert TASK_ID.match(task["id"]), task["id"]
    assert task["state"] == "RUNNING"
    assert task["statusCode"] == 0
    assert task["estimateEndAt"] == 0
    assert task["response"] is None
    assert task["retryCount"] == 0
    assert task["metadata"] == {"tag": "checkout"}
    assert before - 5 <= task["createdAt"] <= after + 5
    assert task["estimateExecutionAt"] == task["createdAt"] + 60_000


def test_register_minimal_get(owner: ApiClient, target: TargetServer) -> None:
    """The original's first case: a minimal GET answers RUNNING, no response, no end yet."""
    task = owner.register_task({"httpRequest": {"url": target.url(), "method": "GET"}})
    assert task["state"] == "RUNNING"
    assert task["response"] is None
    assert task["estimateEndAt"] == 0
    assert task["metadata"] is None
    # Default executionDelay is 1 ms.
    assert task["estimateExecutionAt"] - task["createdAt"] in (0, 1, 2)


def test_metadata_is_returned_as_given(owner: ApiClient, target: TargetServer) -> None:
    metadata = {"username": "test", "tag": "checkout-notification", "unicode": "Grüße ✓"}
    task = owner.register_task(task_body(target.url(), config=LONG, metadata=metadata))
    assert task["metadata"] == metadata
    assert owner.task(task["id"])["metadata"] == metadata


def test_ids_are_unique_and_sortable_by_creation(owner: ApiClient, target: TargetServer) -> None:
    sequential = [owner.register_task(task_body(target.url(), config=LONG))["id"] for _ in range(5)]
    assert sequential == sorted(sequential)
    assert len(set(sequential)) == 5

    def register(_: int) -> int:
        response = owner.post("/v1/queues/register", json=task_body(target.url(), config=LONG))
        assert response.status_code == 201, response.text
        return 0

    # Registrations in the same millisecond must not collide (the original answered 500).
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(register, range(24)))
    ids = [t["id"] for t in owner.tasks(limit=1000)]
    assert len(ids) == 29
    assert len(set(ids)) == 29
    assert all(TASK_ID.match(i) for i in ids)


def test_get_task(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(task_body(target.url(), config=LONG, metadata={"k": "v"}))
    response = owner.get(f"/v1/queues/{task['id']}")
    assert response.status_code == 200, response.text
    assert response.json() == task
    # Lowercase ids are accepted in paths.
    response = owner.get(f"/v1/queues/{task['id'].lower()}")
    assert response.status_code == 200, response.text
    assert response.json()["id"] == task["id"]


@pytest.mark.parametrize(
    "bad_id",
    [
        "invalid-queue-id",
        "191E27DB691172608177524",
        "191E27DB69117260817752490",
        "191E27DB6911726081775_49",
    ],
    ids=["words", "23-chars", "25-chars", "underscore"],
)
def test_malformed_id_is_400(owner: ApiClient, bad_id: str) -> None:
    expect_error(owner.get(f"/v1/queues/{bad_id}"), 400)


def test_unknown_id_is_404(owner: ApiClient) -> None:
    expect_error(owner.get(f"/v1/queues/{UNKNOWN_TASK}"), 404)
    expect_error(owner.get(f"/v1/queues/{UNKNOWN_TASK}/config"), 404)
    expect_error(owner.get(f"/v1/queues/{UNKNOWN_TASK}/attempts"), 404)


def test_empty_list_with_explicit_defaults(owner: ApiClient) -> None:
    assert owner.tasks(limit=10, offset=0, order="createdAt", sort="asc") == []
    assert owner.tasks(limit=20, offset=0, order="createdAt", sort="asc", state="SUCCESS") == []


def test_list_shape_and_default_limit(owner: ApiClient, target: TargetServer) -> None:
    ids = [
        owner.register_task(task_body(target.url(), config=LONG, metadata={"a": "b"}))["id"]
        for _ in range(12)
    ]
    listed = owner.tasks()
    assert len(listed) == 10  # default limit
    for item in listed:
        assert set(item) == LIST_KEYS, item
    assert [t["id"] for t in listed] == ids[:10]  # default order createdAt asc
    assert [t["id"] for t in owner.tasks(limit=1000)] == ids


def test_list_paging(owner: ApiClient, target: TargetServer) -> None:
    ids = [owner.register_task(task_body(target.url(), config=LONG))["id"] for _ in range(12)]
    pages = [[t["id"] for t in owner.tasks(limit=5, offset=offset)] for offset in (0, 5, 10, 15)]
    assert pages[0] == ids[0:5]
    assert pages[1] == ids[5:10]
    assert pages[2] == ids[10:12]
    assert pages[3] == []
    assert [t["id"] for t in owner.tasks(limit=1, offset=3)] == [ids[3]]
    assert [t["id"] for t in owner.tasks(limit=5, sort="desc")] == ids[::-1][:5]
    assert [t["id"] for t in owner.tasks(limit=5, offset=5, sort="desc")] == ids[::-1][5:10]


def test_list_order_by_estimate_execution_at(owner: ApiClient, target: TargetServer) -> None:
    delays = [50_000, 10_000, 40_000, 20_000, 30_000]
    ids = {}
    for delay in delays:
        ids[delay] = owner.register_task(task_body(target.url(), config={"executionDelay": delay}))[
            "id"
        ]
    by_delay = [ids[d] for d in sorted(delays)]
    listed = owner.tasks(order="estimateExecutionAt")
    assert [t["id"] for t in listed] == by_delay
    listed = owner.tasks(order="estimateExecutionAt", sort="desc")
    assert [t["id"] for t in listed] == by_delay[::-1]
    # And createdAt order is the registration order, not the due order.
    assert [t["id"] for t in owner.tasks(order="createdAt")] == [ids[d] for d in delays]
    times = [t["estimateExecutionAt"] for t in owner.tasks(order="estimateExecutionAt")]
    assert times == sorted(times)


def test_list_order_by_estimate_end_at(owner: ApiClient, target: TargetServer) -> None:
    ids = [owner.register_task(task_body(target.url(), config=LONG))["id"] for _ in range(4)]
    owner.revoke(ids[2])
    time.sleep(0.02)
    owner.pause(ids[0])
    time.sleep(0.02)
    owner.revoke(ids[3])
    ascending = [t["id"] for t in owner.tasks(order="estimateEndAt")]
    assert ascending[0] == ids[1]  # still 0
    assert ascending[1:] == [ids[2], ids[0], ids[3]]
    descending = [t["id"] for t in owner.tasks(order="estimateEndAt", sort="desc")]
    assert descending == [ids[3], ids[0], ids[2], ids[1]]


def test_list_state_filter(owner: ApiClient, target: TargetServer) -> None:
    running = owner.register_task(task_body(target.url(), config=LONG))["id"]
    paused = owner.register_task(task_body(target.url(), config=LONG))["id"]
    revoked = owner.register_task(task_body(target.url(), config=LONG))["id"]
    success = owner.register_task(task_body(target.url()))["id"]
    error = owner.register_task(task_body(target.url("/cb/error")))["id"]
    owner.pause(paused)
    owner.revoke(revoked)
    owner.wait_for_state(success, "SUCCESS")
    owner.wait_for_state(error, "ERROR")

    def ids(state: str) -> list[str]:
        return [t["id"] for t in owner.tasks(state=state)]

    assert ids("RUNNING") == [running]
    assert ids("PAUSED") == [paused]
    assert ids("REVOKED") == [revoked]
    assert ids("SUCCESS") == [success]
    assert ids("ERROR") == [error]
    assert ids("paused") == [paused]  # case-insensitive
    assert ids("Success") == [success]
    assert len(owner.tasks()) == 5
    for item in owner.tasks(state="SUCCESS"):
        assert item["state"] == "SUCCESS"
        assert item["statusCode"] == 200


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 1001},
        {"limit": 10000},
        {"limit": "abc"},
        {"limit": -1},
        {"offset": -1},
        {"offset": "x"},
        {"order": "id"},
        {"order": "bogus"},
        {"sort": "sideways"},
        {"state": "DONE"},
        {"foo": "1"},
        {"pretty": ""},
    ],
    ids=repr,
)
def test_list_bad_query_is_400(owner: ApiClient, params: dict[str, Any]) -> None:
    expect_error(owner.get("/v1/queues", params=params), 400)


def test_list_limit_bounds_are_accepted(owner: ApiClient) -> None:
    assert owner.tasks(limit=1) == []
    assert owner.tasks(limit=1000) == []
    assert owner.tasks(offset=5000) == []


def test_config_route_shows_the_effective_request(owner: ApiClient, target: TargetServer) -> None:
    body = task_body(
        target.url(),
        "POST",
        headers={"X-Custom": "header-value-1"},
        query={"q": "query-value-1"},
        data={"k": "data-value-1"},
        config={"executionDelay": 600_000, "retry": 4, "retryInterval": 1234},
    )
    task = owner.register_task(body)
    response = owner.get(f"/v1/queues/{task['id']}/config")
    assert response.status_code == 200, response.text
    text = response.text
    config = response.json()
    assert isinstance(config, dict)
    for expected in (target.url(), "header-value-1", "query-value-1", "data-value-1"):
        assert expected in text, (expected, config)
    assert "POST" in text.upper()
    assert 4 in find_values(config, "retry")
    assert 1234 in find_values(config, "retryInterval")
    # The effective configuration includes the defaults.
    assert 30000 in find_values(config, "timeout")


def test_attempts_empty_before_the_first_attempt(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(task_body(target.url(), config=LONG))
    assert owner.attempts(task["id"]) == []


def test_delete_task(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(task_body(target.url(), config={"executionDelay": 1_000}))
    response = owner.delete(f"/v1/queues/{task['id']}")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "Done"}
    expect_error(owner.get(f"/v1/queues/{task['id']}"), 404)
    expect_error(owner.get(f"/v1/queues/{task['id']}/attempts"), 404)
    expect_error(owner.get(f"/v1/queues/{task['id']}/config"), 404)
    expect_error(owner.delete(f"/v1/queues/{task['id']}"), 404)  # again
    assert owner.tasks() == []
    time.sleep(1.5)
    assert target.hits(task["id"]) == 0  # a deleted task never fires


def test_delete_malformed_id_is_400(owner: ApiClient) -> None:
    expect_error(owner.delete("/v1/queues/invalid-queue-id"), 400)


def test_delete_finished_task_removes_its_attempts(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(task_body(target.url()))
    owner.wait_for_state(task["id"], "SUCCESS")
    assert len(owner.attempts(task["id"])) == 1
    owner.delete_task(task["id"])
    expect_error(owner.get(f"/v1/queues/{task['id']}/attempts"), 404)
    assert owner.tasks(state="SUCCESS") == []
