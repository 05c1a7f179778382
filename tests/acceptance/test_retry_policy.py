"""Retry policies (docs/api.md, "Retry policies"): Cloud Tasks' ``config.retryPolicy`` (backoff
with doublings, a cap, jitter, ``maxAttempts``, ``maxRetryDuration``), and what the target says
about retries (``Retry-After``, ``Tasks-Retry: stop``, status 489) under both policies.

Gaps are measured between arrivals at a local counterpart, with small millisecond values and a
tolerance of ±150 ms.
"""

from __future__ import annotations

import email.utils
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests.support.counterparts import Handler, HttpCounterpart, Reply, Script, Seen
from tests.support.server import (
    ApiClient,
    ServerProcess,
    error_paths,
    expect_error,
    now_ms,
    poll,
    task_body,
)
from tests.support.targets import closed_port

TOLERANCE_MS = 150


def backoff(n: int, min_ms: int, max_ms: int = 3_600_000, doublings: int = 16) -> int:
    """The contract's wait before the n-th retry, without jitter."""
    if n - 1 <= doublings:
        wait = min_ms * (1 << (n - 1))
    else:
        wait = min_ms * (1 << doublings) * (n - doublings)
    return min(wait, max_ms)


def test_the_formula_matches_the_docs_example() -> None:
    """10 s, 300 s and 3 doublings: 10, 20, 40, 80, 160, 240, 300, 300 s."""
    waits = [backoff(n, 10_000, 300_000, 3) // 1000 for n in range(1, 9)]
    assert waits == [10, 20, 40, 80, 160, 240, 300, 300]


def policy(max_attempts: int, **knobs: Any) -> dict[str, Any]:
    return {"retryPolicy": {"maxAttempts": max_attempts, **knobs}}


class Run:
    """A task against its own counterpart; the gaps between the arrivals, its attempts."""

    def __init__(
        self, owner: ApiClient, replies: list[Reply | Handler], config: dict[str, Any]
    ) -> None:
        self.owner = owner
        self.script = Script(replies)
        self.server = HttpCounterpart(self.script)
        self.config = config
        self.task_id = ""

    def start(self, method: str = "POST") -> Run:
        body = task_body(self.server.url("/retry"), method, data={"r": 1}, config=self.config)
        self.task_id = self.owner.register_task(body)["id"]
        return self

    def finish(self, timeout: float = 15.0) -> dict[str, Any]:
        return self.owner.wait_final(self.task_id, timeout)

    @property
    def arrivals(self) -> list[Seen]:
        return self.server.seen_by(self.task_id)

    @property
    def gaps(self) -> list[int]:
        return [b.at_ms - a.at_ms for a, b in itertools.pairwise(self.arrivals)]

    def attempts(self) -> list[dict[str, Any]]:
        return self.owner.attempts(self.task_id)

    def stop(self) -> None:
        self.server.stop()


RunFactory = Callable[..., Run]


@pytest.fixture
def run(owner: ApiClient) -> Iterator[RunFactory]:
    started: list[Run] = []

    def factory(
        replies: list[Reply | Handler], config: dict[str, Any], method: str = "POST"
    ) -> Run:
        item = Run(owner, replies, config)
        started.append(item)
        return item.start(method)

    yield factory
    for item in started:
        item.stop()


def assert_no_more_hits(r: Run, count: int, wait_s: float = 0.4) -> None:
    """After the final state, no further attempt arrives (a short wait: absence, not success)."""
    time.sleep(wait_s)
    assert len(r.arrivals) == count, r.gaps


def assert_gaps(gaps: list[int], expected: list[int]) -> None:
    assert len(gaps) == len(expected), (gaps, expected)
    for gap, wanted in zip(gaps, expected, strict=True):
        assert wanted - TOLERANCE_MS <= gap <= wanted + TOLERANCE_MS, (gaps, expected)


FAIL = Reply(500, b'{"error":"try again"}')


# -- backoff ------------------------------------------------------------------------------


def test_backoff_doubles_up_to_max_backoff(run: RunFactory) -> None:
    config = policy(6, minBackoff=100, maxBackoff=500, jitter="none")
    r = run([FAIL], config)
    done = r.finish()
    assert (done["state"], done["statusCode"], done["retryCount"]) == ("ERROR", 500, 5), done
    assert_gaps(r.gaps, [backoff(n, 100, 500) for n in range(1, 6)])  # 100 200 400 500 500
    assert [a["outcome"] for a in r.attempts()] == ["RETRY"] * 5 + ["ERROR"]


def test_backoff_grows_linearly_after_max_doublings(run: RunFactory) -> None:
    config = policy(5, minBackoff=100, maxBackoff=10_000, maxDoublings=1, jitter="none")
    r = run([FAIL], config)
    assert r.finish()["state"] == "ERROR"
    assert_gaps(r.gaps, [100, 200, 400, 600])
    assert [backoff(n, 100, 10_000, 1) for n in range(1, 5)] == [100, 200, 400, 600]


def test_full_jitter_draws_each_wait_below_the_computed_one(run: RunFactory) -> None:
    config = policy(9, minBackoff=100, maxBackoff=400, jitter="full")
    r = run([FAIL], config)
    assert r.finish()["state"] == "ERROR"
    computed = [backoff(n, 100, 400) for n in range(1, 9)]  # 100 200 400 400 400 400 400 400
    gaps = r.gaps
    assert len(gaps) == len(computed), gaps
    for gap, ceiling in zip(gaps, computed, strict=True):
        assert 0 <= gap <= ceiling + TOLERANCE_MS, (gaps, computed)
    # Without jitter every gap would be at least the computed wait. With uniform draws the
    # chance that all eight land in the top ~15% of their range is below one in a million.
    assert any(gap < 0.9 * ceiling for gap, ceiling in zip(gaps, computed, strict=True)), gaps


def test_jitter_is_full_by_default(run: RunFactory) -> None:
    r = run([FAIL], policy(9, minBackoff=100, maxBackoff=400))
    assert r.finish()["state"] == "ERROR"
    computed = [backoff(n, 100, 400) for n in range(1, 9)]
    gaps = r.gaps
    assert all(gap <= c + TOLERANCE_MS for gap, c in zip(gaps, computed, strict=True)), gaps
    assert any(gap < 0.9 * c for gap, c in zip(gaps, computed, strict=True)), gaps


# -- how many, how long -------------------------------------------------------------------


@pytest.mark.parametrize("max_attempts", [1, 3])
def test_max_attempts_counts_the_first_attempt(run: RunFactory, max_attempts: int) -> None:
    config = policy(max_attempts, minBackoff=50, jitter="none", maxRetryDuration=0)
    r = run([FAIL], config)
    done = r.finish()
    assert (done["state"], done["retryCount"]) == ("ERROR", max_attempts - 1), done
    attempts = r.attempts()
    assert [a["attempt"] for a in attempts] == list(range(1, max_attempts + 1))
    assert [a["outcome"] for a in attempts] == ["RETRY"] * (max_attempts - 1) + ["ERROR"]
    assert_no_more_hits(r, max_attempts)
    # The retries say which they are, out of how many (the retries: maxAttempts - 1).
    for n, seen in enumerate(r.arrivals[1:], start=1):
        assert seen.headers["X-Tasks-Retry-Count"] == str(n)
        assert seen.headers["X-Tasks-Retry-Limit"] == str(max_attempts - 1)


def test_zero_min_backoff_retries_at_once(run: RunFactory) -> None:
    r = run([FAIL], policy(3, minBackoff=0, maxBackoff=0, jitter="none"))
    assert r.finish()["state"] == "ERROR"
    assert len(r.arrivals) == 3
    assert all(gap <= TOLERANCE_MS for gap in r.gaps), r.gaps


def test_transport_errors_are_retried_by_the_policy(owner: ApiClient) -> None:
    body = task_body(f"http://127.0.0.1:{closed_port()}/x", config=policy(3, minBackoff=50))
    task = owner.register_task(body)
    done = owner.wait_final(task["id"])
    assert (done["state"], done["statusCode"], done["retryCount"]) == ("ERROR", 0, 2), done
    attempts = owner.attempts(task["id"])
    assert [a["outcome"] for a in attempts] == ["RETRY", "RETRY", "ERROR"]
    assert all(a["error"] for a in attempts), attempts


def test_success_ends_the_retries(run: RunFactory) -> None:
    r = run([FAIL, FAIL, Reply(200, b'{"ok":1}')], policy(10, minBackoff=50, jitter="none"))
    done = r.finish()
    assert (done["state"], done["statusCode"], done["retryCount"]) == ("SUCCESS", 200, 2), done
    assert [a["outcome"] for a in r.attempts()] == ["RETRY", "RETRY", "SUCCESS"]
    assert_no_more_hits(r, 3, wait_s=0.2)


def test_max_retry_duration_stops_the_retries(run: RunFactory) -> None:
    # Retries due 300 ms and 900 ms after the first attempt; the next would be at 2100 ms,
    # past maxRetryDuration (1500 ms): the task ends there, with attempts left.
    config = policy(10, minBackoff=300, maxBackoff=10_000, maxRetryDuration=1500, jitter="none")
    r = run([FAIL], config)
    done = r.finish()
    assert (done["state"], done["retryCount"]) == ("ERROR", 2), done
    arrivals = r.arrivals
    assert len(arrivals) == 3, r.gaps
    assert arrivals[-1].at_ms - arrivals[0].at_ms <= 1500 + TOLERANCE_MS
    assert_gaps(r.gaps, [300, 600])
    assert [a["outcome"] for a in r.attempts()] == ["RETRY", "RETRY", "ERROR"]
    # It gave up at once, not at the deadline nor at the would-be retry.
    assert done["estimateEndAt"] - arrivals[-1].at_ms < 1000, done


# -- what the target says -----------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_seconds_lengthens_the_wait(run: RunFactory, status: int) -> None:
    busy = Reply(status, b'{"busy":true}', [("Retry-After", "1")])
    r = run([busy, Reply()], policy(3, minBackoff=100, maxBackoff=10_000, jitter="none"))
    first = r.server.requests.wait_for(bool, message="the first attempt")[0]
    # While it waits, the task shows when the retry is due: a second later, not 100 ms.
    waiting = poll(
        lambda: r.owner.task(r.task_id),
        lambda task: task["statusCode"] == status,
        timeout=5,
        message="the first attempt recorded",
    )
    if waiting["state"] == "RUNNING" and waiting["retryCount"] == 0:
        assert waiting["estimateExecutionAt"] >= first.at_ms + 1000 - 20, waiting
    done = r.finish()
    assert (done["state"], done["retryCount"]) == ("SUCCESS", 1), done
    [gap] = r.gaps
    assert 1000 <= gap <= 1000 + 2 * TOLERANCE_MS, gap
    retry = r.arrivals[1]
    due = int(retry.headers["X-Tasks-Estimate-Next-Retry-At"])
    assert first.at_ms + 1000 - 20 <= due <= retry.at_ms + 20, (due, first.at_ms, retry.at_ms)


def test_retry_after_is_bounded_by_max_backoff(run: RunFactory) -> None:
    busy = Reply(503, b"{}", [("Retry-After", "30")])
    r = run([busy, Reply()], policy(3, minBackoff=100, maxBackoff=800, jitter="none"))
    assert r.finish()["state"] == "SUCCESS"
    assert_gaps(r.gaps, [800])


def test_retry_after_as_an_http_date(run: RunFactory) -> None:
    def busy_until(seen: Seen) -> Reply:
        # Two seconds from now, cut to the second: between one and two seconds away.
        return Reply(
            503, b"{}", [("Retry-After", email.utils.formatdate(time.time() + 2, usegmt=True))]
        )

    r = run([busy_until, Reply()], policy(3, minBackoff=100, maxBackoff=10_000, jitter="none"))
    assert r.finish()["state"] == "SUCCESS"
    (_, first_reply), _ = r.script.sent
    header = dict(first_reply.headers)["Retry-After"]
    moment = email.utils.parsedate_to_datetime(header)
    until_ms = int(moment.timestamp() * 1000)
    first, retry = r.arrivals
    assert until_ms - TOLERANCE_MS <= retry.at_ms <= until_ms + 2 * TOLERANCE_MS, (
        header,
        retry.at_ms - until_ms,
    )
    assert retry.at_ms - first.at_ms >= 900


def test_retry_after_also_bounds_a_jittered_wait(run: RunFactory) -> None:
    busy = Reply(429, b"{}", [("Retry-After", "1")])
    r = run([busy, Reply()], policy(3, minBackoff=100, maxBackoff=10_000, jitter="full"))
    assert r.finish()["state"] == "SUCCESS"
    [gap] = r.gaps
    assert 1000 <= gap <= 1000 + 2 * TOLERANCE_MS, gap


@pytest.mark.parametrize(
    "value", ["soon", "Thu, 01 Jan 2015 00:00:00 GMT", "-5"], ids=["garbage", "past", "negative"]
)
def test_a_useless_retry_after_leaves_the_backoff(run: RunFactory, value: str) -> None:
    busy = Reply(503, b"{}", [("Retry-After", value)])
    r = run([busy, Reply()], policy(3, minBackoff=100, jitter="none"))
    done = r.finish()
    assert (done["state"], done["retryCount"]) == ("SUCCESS", 1), (done, r.attempts())
    assert_gaps(r.gaps, [100])


def test_retry_after_on_other_statuses_is_ignored(run: RunFactory) -> None:
    failing = Reply(500, b"{}", [("Retry-After", "5")])
    r = run([failing, Reply()], policy(3, minBackoff=100, jitter="none"))
    assert r.finish()["state"] == "SUCCESS"
    assert_gaps(r.gaps, [100])


def test_seed_policy_also_listens_to_retry_after(run: RunFactory) -> None:
    busy = Reply(503, b"{}", [("Retry-After", "1")])
    r = run([busy, Reply()], {"retry": 2, "retryInterval": 100})
    done = r.finish()
    assert (done["state"], done["retryCount"]) == ("SUCCESS", 1), done
    [gap] = r.gaps
    assert 1000 <= gap <= 1000 + 2 * TOLERANCE_MS, gap


def test_seed_retry_at_is_also_lengthened_by_retry_after(run: RunFactory) -> None:
    """ "Both policies listen to the target": with ``retryAt`` a second after the first
    attempt, a ``Retry-After: 2`` still makes the wait at least two seconds."""
    busy = Reply(503, b"{}", [("Retry-After", "2")])
    r = run([busy, Reply()], {"retryAt": now_ms() + 1100})
    done = r.finish()
    assert (done["state"], done["retryCount"]) == ("SUCCESS", 1), done
    [gap] = r.gaps
    assert gap >= 2000, f"the retry came {gap} ms after a 503 with Retry-After: 2"


def test_retry_after_past_max_retry_duration_ends_the_task(run: RunFactory) -> None:
    busy = Reply(503, b"{}", [("Retry-After", "3")])
    config = policy(5, minBackoff=100, maxBackoff=10_000, maxRetryDuration=1000, jitter="none")
    r = run([busy, Reply()], config)
    done = r.finish()
    assert (done["state"], done["retryCount"]) == ("ERROR", 0), done
    assert [a["outcome"] for a in r.attempts()] == ["ERROR"]
    assert len(r.arrivals) == 1


STOPS = {
    "tasks-retry-header": Reply(503, b"{}", [("Tasks-Retry", "stop")]),
    "status-489": Reply(489, b'{"stop":true}'),
}
POLICIES = {
    "retryPolicy": policy(5, minBackoff=50, jitter="none"),
    "seed": {"retry": 5, "retryInterval": 50},
}


@pytest.mark.parametrize("policy_name", sorted(POLICIES))
@pytest.mark.parametrize("stop", sorted(STOPS))
def test_the_target_can_stop_the_retries(run: RunFactory, stop: str, policy_name: str) -> None:
    r = run([STOPS[stop], Reply()], POLICIES[policy_name])
    done = r.finish()
    assert (done["state"], done["retryCount"]) == ("ERROR", 0), done
    assert done["statusCode"] == STOPS[stop].status
    [attempt] = r.attempts()
    assert (attempt["outcome"], attempt["statusCode"]) == ("ERROR", STOPS[stop].status)
    assert_no_more_hits(r, 1, wait_s=0.3)


def test_another_tasks_retry_value_does_not_stop(run: RunFactory) -> None:
    busy = Reply(503, b"{}", [("Tasks-Retry", "later")])
    r = run([busy, Reply()], policy(3, minBackoff=50, jitter="none"))
    done = r.finish()
    assert (done["state"], done["retryCount"]) == ("SUCCESS", 1), done


# -- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("retry", 2),
        ("retryInterval", 1000),
        ("retryExponential", True),
        ("retryAt", "in-a-minute"),
    ],
)
def test_retry_policy_cannot_be_combined_with_the_seed_policy(
    owner: ApiClient, name: str, value: Any
) -> None:
    if value == "in-a-minute":
        value = now_ms() + 60_000
    config = {"executionDelay": 10_000, name: value, **policy(3)}
    body = task_body("http://127.0.0.1:9/never", config=config)
    data = expect_error(owner.post("/v1/queues/register", json=body), 400)
    assert any(path[:1] == ("config",) for path in error_paths(data["message"])), data
    assert owner.tasks() == []


@pytest.mark.parametrize(
    "retry_policy",
    [
        {},
        {"maxAttempts": 0},
        {"maxAttempts": 1001},
        {"maxAttempts": 2, "minBackoff": -1},
        {"maxAttempts": 2, "minBackoff": 1000, "maxBackoff": 999},
        {"maxAttempts": 2, "maxDoublings": 31},
        {"maxAttempts": 2, "maxDoublings": -1},
        {"maxAttempts": 2, "maxRetryDuration": -1},
        {"maxAttempts": 2, "jitter": "half"},
        {"maxAttempts": 2, "unknown": 1},
        {"maxAttempts": "3"},
    ],
)
def test_a_bad_retry_policy_is_refused(owner: ApiClient, retry_policy: dict[str, Any]) -> None:
    body = task_body("http://127.0.0.1:9/never", config={"retryPolicy": retry_policy})
    data = expect_error(owner.post("/v1/queues/register", json=body), 400)
    paths = error_paths(data["message"])
    assert any(path[:2] == ("config", "retryPolicy") for path in paths), data


def test_an_edit_cannot_mix_the_policies_either(owner: ApiClient) -> None:
    body = task_body("http://127.0.0.1:9/never", config={"executionDelay": 60_000, **policy(4)})
    task = owner.register_task(body)
    data = expect_error(owner.edit(task["id"], {"config": {"retry": 3}}), 400)
    assert any(path[:1] == ("config",) for path in error_paths(data["message"])), data
    switched = owner.edit(task["id"], {"config": {"retryPolicy": None, "retry": 3}})
    assert switched.status_code == 200, switched.text
    owner.revoke(task["id"])


def test_the_policy_survives_a_restart(
    server_factory: Callable[..., ServerProcess], run_counterpart: HttpCounterpart
) -> None:
    """Stopped after the first failure, the server resumes the same backoff where it was."""
    process = server_factory()
    with process.client() as api, api.new_owner() as owner:
        config = policy(3, minBackoff=300, maxBackoff=10_000, jitter="none")
        body = task_body(run_counterpart.url("/restart"), config=config)
        task_id = owner.register_task(body)["id"]
        run_counterpart.requests.wait_for(lambda seen: len(seen) == 1, message="first attempt")
        poll(
            lambda: owner.attempts(task_id),
            lambda attempts: len(attempts) == 1,
            timeout=5,
            message="the first attempt recorded",
        )
        assert process.stop() == 0
        process.restart()
        done = owner.wait_final(task_id, timeout=15)
    assert (done["state"], done["retryCount"]) == ("ERROR", 2), done
    arrivals = run_counterpart.seen_by(task_id)
    assert len(arrivals) == 3
    # The second retry waits 600 ms: the retry number and the backoff came back from disk.
    assert 600 - TOLERANCE_MS <= arrivals[2].at_ms - arrivals[1].at_ms <= 600 + TOLERANCE_MS
    time.sleep(0.3)
    assert len(run_counterpart.seen_by(task_id)) == 3


@pytest.fixture
def run_counterpart() -> Iterator[HttpCounterpart]:
    with HttpCounterpart(Script([FAIL])) as server:
        yield server


def test_a_valid_retry_policy_is_accepted_with_its_defaults(owner: ApiClient) -> None:
    body = task_body("http://127.0.0.1:9/never", config={"executionDelay": 60_000, **policy(4)})
    task = owner.register_task(body)
    assert (task["state"], task["retryCount"]) == ("RUNNING", 0)
    owner.revoke(task["id"])
