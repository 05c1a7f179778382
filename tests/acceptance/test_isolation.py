"""Tenant isolation: another owner's task is "no such task" on every route."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.support.server import ApiClient, expect_error, task_body
from tests.support.targets import TargetServer

ROUTES = [
    ("GET", "/v1/queues/{id}", None),
    ("PATCH", "/v1/queues/{id}", {"config": {"retry": 1}}),
    ("GET", "/v1/queues/{id}/config", None),
    ("GET", "/v1/queues/{id}/attempts", None),
    ("PATCH", "/v1/queues/{id}/pause", None),
    ("PATCH", "/v1/queues/{id}/resume", None),
    ("PATCH", "/v1/queues/{id}/revoke", None),
    ("POST", "/v1/queues/{id}/execute", None),
    ("DELETE", "/v1/queues/{id}", None),
]


@pytest.mark.parametrize("lowercase", [False, True], ids=["upper", "lower"])
def test_other_owner_gets_404_everywhere(
    make_owner: Callable[..., ApiClient], target: TargetServer, lowercase: bool
) -> None:
    alice, bob = make_owner(), make_owner()
    running = alice.register_task(
        task_body(target.url(), config={"executionDelay": 2_000}, metadata={"who": "alice"})
    )
    paused = alice.register_task(task_body(target.url(), config={"executionDelay": 600_000}))
    alice.pause(paused["id"])

    for task in (running, paused):
        task_id = task["id"].lower() if lowercase else task["id"]
        for method, path, body in ROUTES:
            response = bob.request(method, path.format(id=task_id), json=body)
            data = expect_error(response, 404)
            assert "alice" not in response.text, (method, path, data)

    # Bob does not see Alice's tasks in his list, in any state filter.
    assert bob.tasks(limit=1000) == []
    assert bob.tasks(state="RUNNING") == []
    assert bob.tasks(state="PAUSED") == []

    # Nothing Bob did had an effect: the tasks are as Alice left them.
    assert alice.task(paused["id"])["state"] == "PAUSED"
    current = alice.task(running["id"])
    assert current["state"] == "RUNNING"
    assert current["estimateExecutionAt"] == running["estimateExecutionAt"]
    assert target.hits(running["id"]) == 0  # Bob's execute did not fire it
    assert {t["id"] for t in alice.tasks(limit=1000)} == {running["id"], paused["id"]}


def test_other_owner_cannot_fire_or_see_results(
    make_owner: Callable[..., ApiClient], target: TargetServer
) -> None:
    alice, bob = make_owner(), make_owner()
    done = alice.register_task(task_body(target.url()))
    alice.wait_for_state(done["id"], "SUCCESS")
    expect_error(bob.get(f"/v1/queues/{done['id']}"), 404)
    expect_error(bob.get(f"/v1/queues/{done['id']}/attempts"), 404)
    expect_error(bob.delete(f"/v1/queues/{done['id']}"), 404)
    assert bob.tasks(state="SUCCESS") == []
    assert alice.task(done["id"])["state"] == "SUCCESS"
