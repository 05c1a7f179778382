"""When tasks fire: executionDelay, executeAt (numbers and date strings), timeZone, far future."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from tests.support.server import ApiClient, error_paths, expect_error, now_ms, task_body
from tests.support.targets import TargetServer

JAKARTA = ZoneInfo("Asia/Jakarta")
PLUS7 = timezone(timedelta(hours=7))
YEAR_2100 = 4_102_444_800_000  # 2100-01-01T00:00:00Z


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def js_style(moment: datetime) -> str:
    """'Apr 18 2030 1:47:03 PM', the style of JavaScript's Date (no offset)."""
    hour = moment.hour % 12 or 12
    ampm = "AM" if moment.hour < 12 else "PM"
    return f"{moment:%b} {moment.day} {moment.year} {hour}:{moment:%M:%S} {ampm}"


def next_whole_second(after_ms: int) -> int:
    return (after_ms // 1000 + 1) * 1000


def test_execution_delay(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(task_body(target.url(), config={"executionDelay": 800}))
    due = task["estimateExecutionAt"]
    assert due == task["createdAt"] + 800
    [request] = target.wait_for_hits(task["id"], timeout=5)
    assert due - 20 <= request.at_ms <= due + 1500, (due, request.at_ms)


def test_execution_delay_zero_fires_at_once(owner: ApiClient, target: TargetServer) -> None:
    task = owner.register_task(task_body(target.url(), config={"executionDelay": 0}))
    assert task["estimateExecutionAt"] == task["createdAt"]
    [request] = target.wait_for_hits(task["id"], timeout=5)
    assert request.at_ms - task["createdAt"] < 1500


def test_execute_at_epoch_ms(owner: ApiClient, target: TargetServer) -> None:
    execute_at = now_ms() + 1200
    task = owner.register_task(task_body(target.url(), config={"executeAt": execute_at}))
    assert task["estimateExecutionAt"] == execute_at
    [request] = target.wait_for_hits(task["id"], timeout=5)
    assert execute_at - 20 <= request.at_ms <= execute_at + 1500
    assert owner.wait_final(task["id"])["state"] == "SUCCESS"


def test_execute_at_date_strings_fire_on_time(owner: ApiClient, target: TargetServer) -> None:
    due = next_whole_second(now_ms() + 1500)
    moment = datetime.fromtimestamp(due / 1000, tz=UTC)
    variants = {
        "iso-offset": {"executeAt": moment.astimezone(PLUS7).isoformat()},
        "iso-z": {"executeAt": moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")},
        "js-offset": {"executeAt": js_style(moment.astimezone(PLUS7)) + " +07:00"},
        "js-utc-default": {"executeAt": js_style(moment)},
        "js-time-zone": {
            "executeAt": js_style(moment.astimezone(JAKARTA)),
            "timeZone": "Asia/Jakarta",
        },
        "iso-time-zone": {
            "executeAt": moment.astimezone(ZoneInfo("America/New_York")).strftime(
                "%Y-%m-%dT%H:%M:%S"
            ),
            "timeZone": "America/New_York",
        },
    }
    tasks = {}
    for name, config in variants.items():
        task = owner.register_task(task_body(target.url(), config=config))
        assert task["estimateExecutionAt"] == due, (name, config, task)
        tasks[name] = task["id"]
    for name, task_id in tasks.items():
        [request] = target.wait_for_hits(task_id, timeout=6)
        assert due - 20 <= request.at_ms <= due + 1500, (name, due, request.at_ms)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {"executeAt": "Dec 12 2030 12:12:12 AM +07:00"},
            datetime(2030, 12, 12, 0, 12, 12, tzinfo=PLUS7),
        ),
        ({"executeAt": "Apr 18 2030 1:47:03 PM"}, datetime(2030, 4, 18, 13, 47, 3, tzinfo=UTC)),
        (
            {"executeAt": "Apr 18 2030 1:47:03 PM", "timeZone": "Asia/Jakarta"},
            datetime(2030, 4, 18, 13, 47, 3, tzinfo=JAKARTA),
        ),
        ({"executeAt": "Dec 12 2030"}, datetime(2030, 12, 12, tzinfo=UTC)),
        (
            {"executeAt": "Dec 12 2030", "timeZone": "America/New_York"},
            datetime(2030, 12, 12, tzinfo=ZoneInfo("America/New_York")),
        ),
        ({"executeAt": "2030-01-01T09:00:00+07:00"}, datetime(2030, 1, 1, 2, 0, tzinfo=UTC)),
        (
            {"executeAt": "2030-01-01T09:00:00", "timeZone": "Asia/Jakarta"},
            datetime(2030, 1, 1, 2, 0, tzinfo=UTC),
        ),
        (
            {"executeAt": "2030-07-01T09:00:00", "timeZone": "Europe/Berlin"},
            datetime(2030, 7, 1, 7, 0, tzinfo=UTC),  # summer time, +02:00
        ),
        # An offset in the string wins over timeZone.
        (
            {"executeAt": "2030-01-01T09:00:00+00:00", "timeZone": "Asia/Jakarta"},
            datetime(2030, 1, 1, 9, 0, tzinfo=UTC),
        ),
    ],
    ids=[
        "js-offset",
        "js-default-utc",
        "js-jakarta",
        "date-only",
        "date-only-new-york",
        "iso-offset",
        "iso-jakarta",
        "iso-berlin-dst",
        "offset-beats-zone",
    ],
)
def test_execute_at_date_parsing(
    owner: ApiClient, target: TargetServer, config: dict[str, str], expected: datetime
) -> None:
    task = owner.register_task(task_body(target.url(), config=config))
    assert task["estimateExecutionAt"] == epoch_ms(expected)
    assert task["state"] == "RUNNING"
    owner.delete_task(task["id"])


def test_execute_at_overrides_execution_delay(owner: ApiClient, target: TargetServer) -> None:
    execute_at = now_ms() + 600_000
    task = owner.register_task(
        task_body(target.url(), config={"executionDelay": 5, "executeAt": execute_at})
    )
    assert task["estimateExecutionAt"] == execute_at


def test_far_future_tasks_wait(owner: ApiClient, target: TargetServer) -> None:
    """Due times beyond a timer's range (2^31 ms) are rows, not timers: they do not fire."""
    in_2100 = owner.register_task(task_body(target.url(), config={"executeAt": YEAR_2100}))
    assert in_2100["estimateExecutionAt"] == YEAR_2100
    thirty_days = 30 * 24 * 3600 * 1000
    delayed = owner.register_task(task_body(target.url(), config={"executionDelay": thirty_days}))
    assert delayed["estimateExecutionAt"] == delayed["createdAt"] + thirty_days
    biggest = owner.register_task(
        task_body(target.url(), config={"executionDelay": 2**53 - 1 - now_ms() - 10**9})
    )
    assert biggest["state"] == "RUNNING"
    time.sleep(1.5)
    for task in (in_2100, delayed, biggest):
        current = owner.task(task["id"])
        assert current["state"] == "RUNNING"
        assert current["estimateExecutionAt"] == task["estimateExecutionAt"]
        assert target.hits(task["id"]) == 0
    assert owner.owner()["tasksInQueue"] == 3


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"executeAt": "Dec 12 2024"}, "executeAt"),
        ({"executeAt": 1_000}, "executeAt"),
        ({"executeAt": "not a date"}, "executeAt"),
        ({"executeAt": "Dec 12 2030", "timeZone": "Mars/Olympus_Mons"}, "timeZone"),
        ({"executionDelay": 1, "retryAt": "Dec 12 2024"}, "retryAt"),
        ({"executionDelay": 1, "timeoutAt": "Dec 12 2012"}, "timeoutAt"),
    ],
    ids=["past-string", "past-number", "garbage", "bad-zone", "past-retry-at", "past-timeout-at"],
)
def test_bad_dates_are_400(
    owner: ApiClient, target: TargetServer, config: dict[str, object], field: str
) -> None:
    response = owner.post("/v1/queues/register", json=task_body(target.url(), config=config))
    data = expect_error(response, 400)
    assert isinstance(data["message"], dict), data
    assert ("config", field) in error_paths(data["message"]), data
    assert owner.tasks() == []


def test_execute_at_in_the_past_error_tree(owner: ApiClient, target: TargetServer) -> None:
    response = owner.post(
        "/v1/queues/register", json=task_body(target.url(), config={"executeAt": "Dec 12 2024"})
    )
    message = expect_error(response, 400)["message"]
    assert isinstance(message["_errors"], list)
    assert isinstance(message["config"]["_errors"], list)
    errors = message["config"]["executeAt"]["_errors"]
    assert errors and all(isinstance(e, str) and e for e in errors)
