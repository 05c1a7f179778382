"""Durability: kill -9, SIGTERM and restart on the same database."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from tests.support.server import ApiClient, ServerProcess, now_ms, poll, task_body
from tests.support.targets import TargetServer

LONG = {"executionDelay": 600_000}


@pytest.fixture
def fresh(
    server_factory: Callable[..., ServerProcess],
) -> Iterator[tuple[ServerProcess, ApiClient]]:
    """A dedicated server and an owner on it."""
    process = server_factory()
    with process.client() as anonymous:
        owner = anonymous.new_owner()
    try:
        yield process, owner
    finally:
        owner.close()


def test_kill_9_loses_no_acknowledged_task(
    fresh: tuple[ServerProcess, ApiClient], target: TargetServer
) -> None:
    process, owner = fresh
    count = 200

    def register(i: int) -> str:
        body = task_body(target.url(), "POST", data={"i": i}, config={"executionDelay": 3000})
        return str(owner.register_task(body)["id"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(register, range(count)))
    process.kill()  # right after the last 201
    assert len(set(ids)) == count

    process.restart()
    wanted = set(ids)
    target.wait_until(
        lambda reqs: wanted <= {r.queue_id for r in reqs},
        timeout=30,
        message=f"all {count} acknowledged tasks delivered",
    )
    delivered = {r.queue_id: r for r in target.requests if r.queue_id in wanted}
    bodies = sorted(delivered[i].json()["i"] for i in ids)
    assert bodies == list(range(count))
    finished = poll(
        lambda: owner.tasks(limit=1000, state="SUCCESS"),
        lambda tasks: len(tasks) == count,
        timeout=15,
        message="every task SUCCESS",
    )
    assert {t["id"] for t in finished} == wanted
    assert owner.owner()["tasksInQueue"] == 0


def test_in_flight_task_is_delivered_again(
    fresh: tuple[ServerProcess, ApiClient], target: TargetServer
) -> None:
    process, owner = fresh
    task = owner.register_task(
        task_body(target.url("/cb/slow?ms=2500"), config={"timeout": 10_000})
    )
    target.wait_for_hits(task["id"], timeout=5)
    process.kill()
    process.restart()
    requests = target.wait_for_hits(task["id"], 2, timeout=15)
    assert requests[1].at_ms >= process.ready_at_ms - 2000
    done = owner.wait_final(task["id"], timeout=15)
    assert done["state"] == "SUCCESS"
    assert done["statusCode"] == 200


def test_task_due_during_downtime_fires_on_start(
    fresh: tuple[ServerProcess, ApiClient], target: TargetServer
) -> None:
    process, owner = fresh
    due = now_ms() + 1200
    soon = owner.register_task(task_body(target.url(), config={"executeAt": due}))
    later = owner.register_task(task_body(target.url(), config=LONG))
    paused = owner.register_task(task_body(target.url(), config=LONG))
    owner.pause(paused["id"])
    paused = owner.task(paused["id"])
    process.kill()
    time.sleep(max(0.0, (due - now_ms()) / 1000) + 1.0)  # the due time passes while down
    assert target.hits(soon["id"]) == 0

    process.restart()
    [request] = target.wait_for_hits(soon["id"], timeout=10)
    assert request.at_ms - process.ready_at_ms < 3000, (request.at_ms, process.ready_at_ms)
    assert owner.wait_final(soon["id"])["state"] == "SUCCESS"
    # Due times are absolute: the downtime did not shift them.
    assert owner.task(later["id"])["estimateExecutionAt"] == later["estimateExecutionAt"]
    assert owner.task(paused["id"]) == paused


def test_sigterm_shuts_down_cleanly_and_tasks_survive(
    fresh: tuple[ServerProcess, ApiClient], target: TargetServer
) -> None:
    process, owner = fresh
    running = owner.register_task(task_body(target.url(), config=LONG, metadata={"k": "running"}))
    paused = owner.register_task(task_body(target.url(), config=LONG))
    owner.pause(paused["id"])
    revoked = owner.register_task(task_body(target.url(), config=LONG))
    owner.revoke(revoked["id"])
    success = owner.register_task(task_body(target.url()))
    error = owner.register_task(task_body(target.url("/cb/error")))
    owner.wait_final(success["id"])
    owner.wait_final(error["id"])
    before = {t["id"]: owner.task(t["id"]) for t in (running, paused, revoked, success, error)}
    attempts_before = owner.attempts(success["id"])
    soon = owner.register_task(task_body(target.url(), config={"executionDelay": 2500}))

    exit_code = process.stop()
    process.restart()

    after = {task_id: owner.task(task_id) for task_id in before}
    assert after == before
    assert owner.attempts(success["id"]) == attempts_before
    assert owner.owner()["tasksInQueue"] == 3  # running, paused, soon
    [request] = target.wait_for_hits(soon["id"], timeout=10)
    assert request.at_ms >= soon["estimateExecutionAt"] - 20
    assert owner.wait_final(soon["id"])["state"] == "SUCCESS"
    assert target.hits(running["id"]) == 0
    assert exit_code == 0, f"SIGTERM: the server exited with {exit_code}, not 0"


def test_waiting_retry_survives_a_crash(
    fresh: tuple[ServerProcess, ApiClient], target: TargetServer
) -> None:
    process, owner = fresh
    task = owner.register_task(
        task_body(target.url("/cb/500"), config={"retry": 1, "retryInterval": 2000})
    )
    [first] = target.wait_for_hits(task["id"])
    poll(
        lambda: owner.task(task["id"]),
        lambda t: t["statusCode"] == 500,
        timeout=5,
        message="attempt 1 recorded",
    )
    process.kill()
    process.restart()
    requests = target.wait_for_hits(task["id"], 2, timeout=10)
    assert requests[1].at_ms >= first.at_ms + 2000 - 20
    assert requests[1].headers["X-Tasks-Retry-Count"] == "1"
    done = owner.wait_final(task["id"])
    assert (done["state"], done["retryCount"]) == ("ERROR", 1)
    assert target.hits(task["id"]) == 2


def test_sigterm_lets_an_in_flight_delivery_finish(
    fresh: tuple[ServerProcess, ApiClient], target: TargetServer
) -> None:
    """In-flight deliveries get --shutdown-grace (10 s by default) to finish at SIGTERM."""
    process, owner = fresh
    task = owner.register_task(
        task_body(target.url("/cb/slow?ms=1000"), config={"timeout": 10_000})
    )
    target.wait_for_hits(task["id"], timeout=5)
    process.stop()
    process.restart()
    done = owner.wait_final(task["id"], timeout=10)
    assert (done["state"], done["statusCode"]) == ("SUCCESS", 200)
    assert target.hits(task["id"]) == 1  # finished before the exit, so not delivered again
    [attempt] = owner.attempts(task["id"])
    assert attempt["outcome"] == "SUCCESS"
