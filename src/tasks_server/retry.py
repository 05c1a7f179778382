"""Pure retry arithmetic: what follows an attempt, with the time passed in."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Verdict(enum.StrEnum):
    SUCCESS = "SUCCESS"
    RETRY = "RETRY"
    ERROR = "ERROR"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The seed's policy: ``limit`` retries, ``interval_ms`` apart (times n when ``linear``)."""

    limit: int = 0
    interval_ms: int = 1
    linear: bool = False
    at_ms: int | None = None
    """``retryAt``: the one retry happens at this absolute time."""
    ignore_status_codes: frozenset[int] = frozenset()

    def delay_ms(self, retry_number: int) -> int:
        """The wait before retry number ``retry_number`` (1 for the first retry)."""
        return self.interval_ms * retry_number if self.linear else self.interval_ms


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    next_due_at_ms: int | None = None


def is_failure(status_code: int, error: str | None) -> bool:
    """No HTTP answer, or a 4xx/5xx answer."""
    return error is not None or status_code >= 400 or status_code == 0


def decide(
    policy: RetryPolicy, *, retries_done: int, status_code: int, error: str | None, now_ms: int
) -> Decision:
    """What follows an attempt that ended with ``status_code`` (0 and ``error``: no answer)."""
    if not is_failure(status_code, error):
        return Decision(Verdict.SUCCESS)
    if status_code in policy.ignore_status_codes or retries_done >= policy.limit:
        return Decision(Verdict.ERROR)
    if policy.at_ms is not None:
        return Decision(Verdict.RETRY, max(policy.at_ms, now_ms))
    return Decision(Verdict.RETRY, now_ms + policy.delay_ms(retries_done + 1))
