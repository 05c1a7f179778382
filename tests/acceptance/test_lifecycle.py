"""Pause, resume, revoke, execute, edit and delete: transitions, refusals and their effects."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from tests.support.server import ApiClient, expect_error, find_values, now_ms, poll, task_body
from tests.support.targets import TargetServer

UNKNOWN_TASK = "191E27DB6911726081775249"
LONG = {"executionDelay": 600_000}


def _finished(owner: ApiClient, target: TargetServer, state: str) -> str:
    """A task in the final state ``state``."""
    if state == "SUCCESS":
        task_id = owner.register_task(task_body(target.url()))["id"]
    elif state == "ERROR":
        task_id = owner.register_task(task_body(target.url("/cb/error")))["id"]
    else:
        task_id = owner.register_task(task_body(target.url(), config=LONG))["id"]
        owner.revoke(task_id)
    owner.wait_for_state(task_id, state)
    return str(task_id)


# -- pause ----------------------------------------------------------------------------------


def test_pause(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(task_body(target.url(), config={"executionDelay": 5000}))
    before = now_ms()
    response = owner.action(task["id"], "pause")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "Done"}
    paused = owner.task(task["id"])
    assert paused["state"] == "PAUSED"
    assert before - 5 <= paused["estimateEndAt"] <= now_ms() + 5
    assert owner.owner()["tasksInQueue"] == 1


def test_paused_task_does_not_fire(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(task_body(target.url(), config={"executionDelay": 700}))
    owner.pause(task["id"])
    time.sleep(1.5)
    assert target.hits(task["id"]) == 0
    assert owner.task(task["id"])["state"] == "PAUSED"


@pytest.mark.parametrize("action", ["pause", "resume", "revoke", "execute"])
def test_actions_on_malformed_and_unknown_ids(
    owner: ApiClient, target: TargetServer, action: str
) -> None:
    method = "POST" if action == "execute" else "PATCH"
    expect_error(owner.request(method, f"/v1/queues/invalid-queue-id/{action}"), 400)
    expect_error(owner.request(method, f"/v1/queues/{UNKNOWN_TASK}/{action}"), 404)
    # A deleted task is an unknown task.
    task = owner.register_task(task_body(target.url(), config=LONG))
    owner.delete_task(task["id"])
    expect_error(owner.request(method, f"/v1/queues/{task['id']}/{action}"), 404)


@pytest.mark.parametrize("state", ["PAUSED", "SUCCESS", "ERROR", "REVOKED"])
def test_pause_refused_unless_running(owner: ApiClient, target: TargetServer, state: str) -> None:
    if state == "PAUSED":
        task_id = owner.register_task(task_body(target.url(), config=LONG))["id"]
        owner.pause(task_id)
    else:
        task_id = _finished(owner, target, state)
    expect_error(owner.action(task_id, "pause"), 422)
    assert owner.task(task_id)["state"] == state


# -- resume ---------------------------------------------------------------------------------


def test_resume_answers_the_running_task(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(
        task_body(target.url(), config={"executionDelay": 5000}, metadata={"m": "1"})
    )
    owner.pause(task["id"])
    resumed = owner.resume(task["id"])
    assert resumed["id"] == task["id"]
    assert resumed["state"] == "RUNNING"
    assert resumed["estimateEndAt"] == 0
    assert resumed["response"] is None
    assert resumed["metadata"] == {"m": "1"}
    assert resumed == owner.task(task["id"])


def test_resume_keeps_the_time_that_was_left(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(task_body(target.url(), config={"executionDelay": 1500}))
    time.sleep(0.4)
    paused_at = now_ms()
    owner.pause(task["id"])
    left = task["estimateExecutionAt"] - paused_at
    time.sleep(1.5)  # past the original due time
    assert target.hits(task["id"]) == 0
    resumed_at = now_ms()
    resumed = owner.resume(task["id"])
    assert abs(resumed["estimateExecutionAt"] - (resumed_at + left)) <= 250, (
        resumed,
        resumed_at,
        left,
    )
    [request] = target.wait_for_hits(task["id"], timeout=5)
    assert request.at_ms >= resumed["estimateExecutionAt"] - 20
    assert owner.wait_final(task["id"])["state"] == "SUCCESS"


def test_resume_keeps_a_future_execute_at(owner: ApiClient, target: TargetServer) -> None:
    execute_at = now_ms() + 60_000
    task = owner.register_task(task_body(target.url(), config={"executeAt": execute_at}))
    owner.pause(task["id"])
    time.sleep(0.3)
    assert owner.resume(task["id"])["estimateExecutionAt"] == execute_at


def test_resume_passed_execute_at_with_execute_immediately(
    owner: ApiClient, target: TargetServer
) -> None:
    execute_at = now_ms() + 1000
    task = owner.register_task(
        task_body(target.url(), config={"executeAt": execute_at, "executeImmediately": True})
    )
    owner.pause(task["id"])
    time.sleep(max(0.0, (execute_at - now_ms()) / 1000) + 0.3)
    resumed_at = now_ms()
    resumed = owner.resume(task["id"])
    assert resumed["state"] == "RUNNING"
    [request] = target.wait_for_hits(task["id"], timeout=3)
    assert request.at_ms - resumed_at < 1000
    assert owner.wait_final(task["id"])["state"] == "SUCCESS"


def test_resume_passed_execute_at_without_execute_immediately(
    owner: ApiClient, target: TargetServer
) -> None:
    execute_at = now_ms() + 1200
    task = owner.register_task(task_body(target.url(), config={"executeAt": execute_at}))
    time.sleep(0.2)
    paused_at = now_ms()
    owner.pause(task["id"])
    left = execute_at - paused_at
    time.sleep(max(0.0, (execute_at - now_ms()) / 1000) + 0.3)
    resumed_at = now_ms()
    resumed = owner.resume(task["id"])
    assert abs(resumed["estimateExecutionAt"] - (resumed_at + left)) <= 250, (
        resumed,
        resumed_at,
        left,
    )
    [request] = target.wait_for_hits(task["id"], timeout=5)
    assert request.at_ms >= resumed["estimateExecutionAt"] - 20


def test_pause_and_resume_while_waiting_for_a_retry(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(
        task_body(target.url("/cb/500"), config={"retry": 1, "retryInterval": 1500})
    )
    [first] = target.wait_for_hits(task["id"])
    poll(lambda: owner.task(task["id"]), lambda t: t["statusCode"] == 500, timeout=5)
    owner.pause(task["id"])
    paused_at = now_ms()
    time.sleep(1.6)
    assert target.hits(task["id"]) == 1  # the retry waits while paused
    resumed_at = now_ms()
    resumed = owner.resume(task["id"])
    left = first.at_ms + 1500 - paused_at
    assert resumed["estimateExecutionAt"] - resumed_at <= left + 500, (resumed, left)
    requests = target.wait_for_hits(task["id"], 2, timeout=5)
    assert requests[1].headers["X-Tasks-Retry-Count"] == "1"
    done = owner.wait_final(task["id"])
    assert (done["state"], done["retryCount"]) == ("ERROR", 1)


@pytest.mark.parametrize("state", ["RUNNING", "SUCCESS", "ERROR", "REVOKED"])
def test_resume_refused_unless_paused(owner: ApiClient, target: TargetServer, state: str) -> None:
    if state == "RUNNING":
        task_id = owner.register_task(task_body(target.url(), config=LONG))["id"]
    else:
        task_id = _finished(owner, target, state)
    expect_error(owner.action(task_id, "resume"), 422)
    assert owner.task(task_id)["state"] == state


# -- revoke ---------------------------------------------------------------------------------


def test_revoke_running(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(task_body(target.url(), config={"executionDelay": 700}))
    response = owner.action(task["id"], "revoke")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "Done"}
    revoked = owner.task(task["id"])
    assert revoked["state"] == "REVOKED"
    assert revoked["statusCode"] == 0
    assert revoked["response"] is None
    assert revoked["estimateEndAt"] != 0
    time.sleep(1.2)
    assert target.hits(task["id"]) == 0
    assert owner.owner()["tasksInQueue"] == 0


def test_revoke_paused(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(task_body(target.url(), config={"executionDelay": 5000}))
    owner.pause(task["id"])
    owner.revoke(task["id"])
    assert owner.task(task["id"])["state"] == "REVOKED"
    assert owner.owner()["tasksInQueue"] == 0


def test_revoke_while_waiting_for_a_retry(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(
        task_body(target.url("/cb/500"), config={"retry": 3, "retryInterval": 800})
    )
    target.wait_for_hits(task["id"])
    owner.revoke(task["id"])
    time.sleep(1.2)
    assert target.hits(task["id"]) == 1
    assert owner.task(task["id"])["state"] == "REVOKED"


@pytest.mark.parametrize("state", ["SUCCESS", "ERROR", "REVOKED"])
def test_revoke_refused_when_final(owner: ApiClient, target: TargetServer, state: str) -> None:
    task_id = _finished(owner, target, state)
    expect_error(owner.action(task_id, "revoke"), 422)
    assert owner.task(task_id)["state"] == state


# -- execute --------------------------------------------------------------------------------


def test_execute_fires_now(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(
        task_body(target.url(), "POST", data="Some data", config={"executionDelay": 60_000})
    )
    executed_at = now_ms()
    response = owner.action(task["id"], "execute")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "Done"}
    [request] = target.wait_for_hits(task["id"], timeout=3)
    assert request.at_ms - executed_at < 1500
    assert request.body == b"Some data"
    done = owner.wait_final(task["id"])
    assert done["state"] == "SUCCESS"
    assert done["estimateExecutionAt"] - executed_at < 1500
    # Execute again: the task is final.
    expect_error(owner.action(task["id"], "execute"), 422)


@pytest.mark.parametrize("state", ["PAUSED", "SUCCESS", "REVOKED"])
def test_execute_refused_unless_running(owner: ApiClient, target: TargetServer, state: str) -> None:
    if state == "PAUSED":
        task_id = owner.register_task(task_body(target.url(), config=LONG))["id"]
        owner.pause(task_id)
    else:
        task_id = _finished(owner, target, state)
    expect_error(owner.action(task_id, "execute"), 422)
    assert owner.task(task_id)["state"] == state


# -- delete ---------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["RUNNING", "PAUSED", "SUCCESS", "ERROR", "REVOKED"])
def test_delete_in_any_state(owner: ApiClient, target: TargetServer, state: str) -> None:
    if state in ("RUNNING", "PAUSED"):
        task_id = owner.register_task(task_body(target.url(), config=LONG))["id"]
        if state == "PAUSED":
            owner.pause(task_id)
    else:
        task_id = _finished(owner, target, state)
    owner.delete_task(task_id)
    expect_error(owner.get(f"/v1/queues/{task_id}"), 404)
    assert owner.tasks(limit=1000) == []
    assert owner.owner()["tasksInQueue"] == 0
    expect_error(owner.delete(f"/v1/queues/{task_id}"), 404)


# -- edit (PATCH merge patch) ---------------------------------------------------------------


def test_edit_url_keeps_the_due_time(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(task_body(target.url("/cb/error"), config=LONG))
    response = owner.edit(task["id"], {"httpRequest": {"url": target.url("/cb/status/202")}})
    assert response.status_code == 200, response.text
    edited = response.json()
    assert edited["id"] == task["id"]
    assert edited["state"] == "RUNNING"
    assert edited["estimateExecutionAt"] == task["estimateExecutionAt"]
    config_text = owner.get(f"/v1/queues/{task['id']}/config").text
    assert target.url("/cb/status/202") in config_text
    assert target.url("/cb/error") not in config_text
    owner.execute(task["id"])
    [request] = target.wait_for_hits(task["id"], timeout=3)
    assert request.path == "/cb/status/202"
    done = owner.wait_final(task["id"])
    assert (done["state"], done["statusCode"]) == ("SUCCESS", 202)


def test_edit_scheduling_field_reschedules_from_now(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(task_body(target.url(), config=LONG))
    edited_at = now_ms()
    response = owner.edit(task["id"], {"config": {"executionDelay": 600}})
    assert response.status_code == 200, response.text
    edited = response.json()
    assert edited_at + 600 - 20 <= edited["estimateExecutionAt"] <= now_ms() + 600 + 20
    [request] = target.wait_for_hits(task["id"], timeout=4)
    assert request.at_ms >= edited["estimateExecutionAt"] - 20
    assert owner.wait_final(task["id"])["state"] == "SUCCESS"


def test_edit_execute_at(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(task_body(target.url(), config=LONG))
    execute_at = now_ms() + 120_000
    response = owner.edit(task["id"], {"config": {"executeAt": execute_at}})
    assert response.status_code == 200, response.text
    assert response.json()["estimateExecutionAt"] == execute_at


def test_edit_is_a_merge_patch(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(
        task_body(
            target.url("/cb/500"),
            "POST",
            headers={"X-Drop": "1", "X-Keep": "2"},
            data={"a": "b"},
            config={"executionDelay": 600_000, "retryInterval": 100, "retry": 1},
            metadata={"tag": "before"},
        )
    )
    response = owner.edit(
        task["id"],
        {
            "httpRequest": {"headers": {"X-Drop": None}},
            "config": {"retry": 2},
            "metadata": {"tag": "after"},
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["metadata"] == {"tag": "after"}
    config = owner.task_config(task["id"])
    assert 2 in find_values(config, "retry")
    assert 100 in find_values(config, "retryInterval")
    owner.execute(task["id"])
    requests = target.wait_for_hits(task["id"], 3, timeout=5)
    for request in requests:
        assert "X-Drop" not in request.headers
        assert request.headers["X-Keep"] == "2"
        assert request.json() == {"a": "b"}
    done = owner.wait_final(task["id"])
    assert (done["state"], done["retryCount"]) == ("ERROR", 2)


def test_edit_null_removes_a_field(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(
        task_body(target.url(), headers={"X-Gone": "1"}, query={"q": "1"}, config=LONG)
    )
    response = owner.edit(task["id"], {"httpRequest": {"headers": None, "query": None}})
    assert response.status_code == 200, response.text
    owner.execute(task["id"])
    [request] = target.wait_for_hits(task["id"], timeout=3)
    assert "X-Gone" not in request.headers
    assert request.query == {}


def test_edit_paused_task_stays_paused(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(task_body(target.url(), config=LONG))
    owner.pause(task["id"])
    response = owner.edit(task["id"], {"httpRequest": {"method": "PUT"}})
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "PAUSED"
    assert owner.task(task["id"])["state"] == "PAUSED"


@pytest.mark.parametrize(
    "patch",
    [
        {"config": {"retry": -1}},
        {"config": {"timeout": 10}},
        {"config": {"unknown": 1}},
        {"httpRequest": {"url": "ftp://example.com/x"}},
        {"httpRequest": {"method": "TRACE"}},
        {"httpRequest": {"url": None}},  # removing a required field
        {"nonsense": True},
        {"config": {"executeAt": 1000}},
    ],
    ids=repr,
)
def test_edit_invalid_result_is_400_and_changes_nothing(
    owner: ApiClient, target: TargetServer, patch: dict[str, object]
) -> None:
    task = owner.register_task(
        task_body(target.url(), config={"executionDelay": 600_000, "retry": 1})
    )
    before = owner.task_config(task["id"])
    expect_error(owner.edit(task["id"], patch), 400)
    assert owner.task_config(task["id"]) == before
    assert owner.task(task["id"]) == task


def test_edit_malformed_json_is_400(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(task_body(target.url(), config=LONG))
    response = owner.patch(
        f"/v1/queues/{task['id']}", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    expect_error(response, 400)


@pytest.mark.parametrize("state", ["SUCCESS", "ERROR", "REVOKED"])
def test_edit_refused_when_final(owner: ApiClient, target: TargetServer, state: str) -> None:
    task_id = _finished(owner, target, state)
    expect_error(owner.edit(task_id, {"config": {"retry": 1}}), 422)


def test_edit_unknown_and_malformed_ids(owner: ApiClient) -> None:
    expect_error(owner.edit(UNKNOWN_TASK, {"config": {"retry": 1}}), 404)
    expect_error(owner.edit("invalid-queue-id", {"config": {"retry": 1}}), 400)


# -- while an attempt is in flight --------------------------------------------------------


def _in_flight(owner: ApiClient, target: TargetServer, ms: int = 1500) -> str:
    task = owner.register_task(
        task_body(target.url(f"/cb/slow?ms={ms}"), config={"timeout": 10_000})
    )
    target.wait_for_hits(task["id"], timeout=5)
    return str(task["id"])


def test_edit_while_being_delivered_is_409(owner: ApiClient, target: TargetServer) -> None:
    task_id = _in_flight(owner, target)
    expect_error(owner.edit(task_id, {"config": {"retry": 2}}), 409)
    assert owner.wait_final(task_id, timeout=5)["state"] == "SUCCESS"


@pytest.mark.parametrize(
    ("act", "state"),
    [
        (lambda o, t: o.revoke(t), "REVOKED"),
        (lambda o, t: o.pause(t), "PAUSED"),
    ],
    ids=["revoke", "pause"],
)
def test_attempt_finishing_after_revoke_or_pause_is_ignored(
    owner: ApiClient, target: TargetServer, act: Callable[[ApiClient, str], None], state: str
) -> None:
    task_id = _in_flight(owner, target, ms=800)
    act(owner, task_id)
    attempts = poll(
        lambda: owner.attempts(task_id),
        lambda a: len(a) == 1,
        timeout=5,
        message="the attempt recorded",
    )
    assert attempts[0]["outcome"] == "IGNORED"
    task = owner.task(task_id)
    assert task["state"] == state
    time.sleep(0.3)
    assert target.hits(task_id) == 1
