"""What follows an attempt: success, a retry at a computed time, or the final error."""

from __future__ import annotations

import pytest

from tasks_server.retry import Decision, RetryPolicy, Verdict, decide

NOW = 1_000_000


def after(
    policy: RetryPolicy, status_code: int, *, retries_done: int = 0, error: str | None = None
) -> Decision:
    return decide(
        policy, retries_done=retries_done, status_code=status_code, error=error, now_ms=NOW
    )


@pytest.mark.parametrize("status_code", [100, 200, 201, 204, 299, 301, 304, 399])
def test_answers_below_400_are_success(status_code: int) -> None:
    assert after(RetryPolicy(limit=3), status_code) == Decision(Verdict.SUCCESS)


@pytest.mark.parametrize("status_code", [400, 404, 429, 499, 500, 503, 599])
def test_4xx_and_5xx_answers_are_retried_while_retries_remain(status_code: int) -> None:
    decision = after(RetryPolicy(limit=1, interval_ms=250), status_code)
    assert decision == Decision(Verdict.RETRY, NOW + 250)


def test_no_answer_at_all_is_a_failure() -> None:
    policy = RetryPolicy(limit=1, interval_ms=10)
    assert after(policy, 0, error="Connection refused").verdict is Verdict.RETRY
    assert after(policy, 0).verdict is Verdict.RETRY


def test_an_error_overrides_a_status_code() -> None:
    """A transfer cut after the headers still failed, whatever status it had begun with."""
    assert after(RetryPolicy(), 200, error="Operation timed out").verdict is Verdict.ERROR


def test_without_retries_a_failure_is_final() -> None:
    assert after(RetryPolicy(), 500) == Decision(Verdict.ERROR)


def test_the_limit_counts_retries_already_made() -> None:
    policy = RetryPolicy(limit=3, interval_ms=100)
    assert after(policy, 500, retries_done=2).verdict is Verdict.RETRY
    assert after(policy, 500, retries_done=3) == Decision(Verdict.ERROR)
    assert after(policy, 200, retries_done=3) == Decision(Verdict.SUCCESS)


def test_a_constant_interval_does_not_grow() -> None:
    policy = RetryPolicy(limit=10, interval_ms=1_000)
    for done in range(5):
        assert after(policy, 500, retries_done=done).next_due_at_ms == NOW + 1_000


def test_linear_backoff_waits_n_times_the_interval() -> None:
    policy = RetryPolicy(limit=10, interval_ms=1_000, linear=True)
    waits = [after(policy, 500, retries_done=done).next_due_at_ms for done in range(4)]
    assert waits == [NOW + 1_000, NOW + 2_000, NOW + 3_000, NOW + 4_000]


def test_delay_ms_of_the_nth_retry() -> None:
    assert RetryPolicy(interval_ms=7, linear=True).delay_ms(3) == 21
    assert RetryPolicy(interval_ms=7).delay_ms(3) == 7


def test_retry_at_is_an_absolute_time() -> None:
    policy = RetryPolicy(limit=1, interval_ms=0, at_ms=NOW + 60_000)
    assert after(policy, 503) == Decision(Verdict.RETRY, NOW + 60_000)


def test_retry_at_already_past_retries_now() -> None:
    policy = RetryPolicy(limit=1, interval_ms=0, at_ms=NOW - 5_000)
    assert after(policy, 503) == Decision(Verdict.RETRY, NOW)


def test_retry_at_happens_once() -> None:
    policy = RetryPolicy(limit=1, interval_ms=0, at_ms=NOW + 60_000)
    assert after(policy, 503, retries_done=1) == Decision(Verdict.ERROR)


def test_an_ignored_status_code_ends_in_error_without_retry() -> None:
    policy = RetryPolicy(limit=5, interval_ms=10, ignore_status_codes=frozenset({404, 410}))
    assert after(policy, 404) == Decision(Verdict.ERROR)
    assert after(policy, 410) == Decision(Verdict.ERROR)
    assert after(policy, 500).verdict is Verdict.RETRY


def test_ignore_codes_do_not_turn_a_success_into_an_error() -> None:
    policy = RetryPolicy(limit=5, ignore_status_codes=frozenset({200}))
    assert after(policy, 200) == Decision(Verdict.SUCCESS)
