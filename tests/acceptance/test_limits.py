"""The per-owner queue limit (--owner-queue-limit) and owner deletion with unfinished tasks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from tests.support.server import ApiClient, ServerProcess, expect_error, task_body
from tests.support.targets import TargetServer

LIMIT = 5
LONG = {"executionDelay": 600_000}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("limited"), owner_queue_limit=LIMIT)
    process.start()
    try:
        yield process
    finally:
        try:
            process.stop()
        finally:
            process.close()


@pytest.fixture
def new_owner(limited: ServerProcess) -> Iterator[Callable[[], ApiClient]]:
    clients: list[ApiClient] = []
    anonymous = limited.client()

    def factory() -> ApiClient:
        client = anonymous.new_owner()
        clients.append(client)
        return client

    yield factory
    for client in [*clients, anonymous]:
        client.close()


def _fill(owner: ApiClient, target: TargetServer, count: int = LIMIT) -> list[str]:
    return [owner.register_task(task_body(target.url(), config=LONG))["id"] for _ in range(count)]


def test_limit_is_reported(new_owner: Callable[[], ApiClient]) -> None:
    owner = new_owner()
    data = owner.owner()
    assert data["tasksInQueueLimit"] == LIMIT
    assert data["tasksInQueue"] == 0


def test_limit_reached_then_freed_by_revoke_and_delete(
    new_owner: Callable[[], ApiClient], target: TargetServer
) -> None:
    owner = new_owner()
    ids = _fill(owner, target)
    assert owner.owner()["tasksInQueue"] == LIMIT
    response = owner.post("/v1/queues/register", json=task_body(target.url(), config=LONG))
    expect_error(response, 422)
    assert len(owner.tasks(limit=1000)) == LIMIT  # nothing half-written
    assert owner.owner()["tasksInQueue"] == LIMIT

    owner.revoke(ids[0])
    ids.append(owner.register_task(task_body(target.url(), config=LONG))["id"])
    expect_error(owner.post("/v1/queues/register", json=task_body(target.url(), config=LONG)), 422)

    owner.delete_task(ids[1])
    ids.append(owner.register_task(task_body(target.url(), config=LONG))["id"])
    expect_error(owner.post("/v1/queues/register", json=task_body(target.url(), config=LONG)), 422)
    assert owner.owner()["tasksInQueue"] == LIMIT


def test_paused_tasks_count_and_finished_do_not(
    new_owner: Callable[[], ApiClient], target: TargetServer
) -> None:
    owner = new_owner()
    ids = _fill(owner, target, LIMIT - 1)
    owner.pause(ids[0])
    quick = owner.register_task(task_body(target.url()))["id"]
    owner.wait_for_state(quick, "SUCCESS")
    assert owner.owner()["tasksInQueue"] == LIMIT - 1
    ids.append(owner.register_task(task_body(target.url(), config=LONG))["id"])
    expect_error(owner.post("/v1/queues/register", json=task_body(target.url(), config=LONG)), 422)
    # A PAUSED task revoked, then deleted, frees its slot exactly once.
    owner.revoke(ids[0])
    owner.delete_task(ids[0])
    assert owner.owner()["tasksInQueue"] == LIMIT - 1
    owner.register_task(task_body(target.url(), config=LONG))
    expect_error(owner.post("/v1/queues/register", json=task_body(target.url(), config=LONG)), 422)


def test_limit_is_per_owner(new_owner: Callable[[], ApiClient], target: TargetServer) -> None:
    full, other = new_owner(), new_owner()
    _fill(full, target)
    expect_error(full.post("/v1/queues/register", json=task_body(target.url(), config=LONG)), 422)
    _fill(other, target)
    assert other.owner()["tasksInQueue"] == LIMIT


def test_concurrent_registrations_never_exceed_the_limit(
    new_owner: Callable[[], ApiClient], target: TargetServer
) -> None:
    owner = new_owner()

    def register(_: int) -> int:
        response = owner.post("/v1/queues/register", json=task_body(target.url(), config=LONG))
        if response.status_code != 201:
            expect_error(response, 422)
        return response.status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        codes = list(pool.map(register, range(20)))
    assert codes.count(201) == LIMIT, codes
    assert codes.count(422) == 20 - LIMIT, codes
    assert len(owner.tasks(limit=1000)) == LIMIT
    assert owner.owner()["tasksInQueue"] == LIMIT


def test_owner_delete_needs_no_unfinished_tasks(
    new_owner: Callable[[], ApiClient], target: TargetServer
) -> None:
    owner = new_owner()
    finished = owner.register_task(task_body(target.url("/cb/error")))["id"]
    owner.wait_for_state(finished, "ERROR")  # a finished task does not block the deletion
    ids = _fill(owner, target)
    owner.pause(ids[0])
    expect_error(owner.delete(f"/v1/owners/{owner.name}"), 422)
    for task_id in ids[1:]:
        owner.revoke(task_id)
    expect_error(owner.delete(f"/v1/owners/{owner.name}"), 422)  # the PAUSED one is unfinished
    owner.revoke(ids[0])
    response = owner.delete(f"/v1/owners/{owner.name}")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "Done"}
    expect_error(owner.get("/v1/queues"), 403)
