"""Pure retry arithmetic: what follows an attempt, with the time (and chance) passed in."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

DAY_MS = 86_400_000
STOP_STATUS = 489
"""QStash's "do not retry" status."""
RETRY_AFTER_STATUSES = frozenset({429, 503})


class Verdict(enum.StrEnum):
    SUCCESS = "SUCCESS"
    RETRY = "RETRY"
    ERROR = "ERROR"


@dataclass(frozen=True, slots=True)
class Backoff:
    """Cloud Tasks' backoff: doubling ``max_doublings`` times from ``min_ms``, then linear."""

    min_ms: int = 1000
    max_ms: int = 3_600_000
    max_doublings: int = 16
    jitter: bool = True

    def delay_ms(self, retry_number: int, draw: float = 1.0) -> int:
        """The wait before retry ``retry_number`` (1 for the first); ``draw`` is in [0, 1)."""
        if retry_number - 1 <= self.max_doublings:
            wait = self.min_ms * 2 ** (retry_number - 1)
        else:
            wait = self.min_ms * 2**self.max_doublings * (retry_number - self.max_doublings)
        wait = min(wait, self.max_ms)
        return int(wait * draw) if self.jitter else wait


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``limit`` retries: the seed's (``interval_ms`` apart, times n when ``linear``; or one at
    ``at_ms``), or a ``backoff``; never later than ``max_duration_ms`` after the first attempt."""

    limit: int = 0
    interval_ms: int = 1
    linear: bool = False
    at_ms: int | None = None
    """``retryAt``: the one retry happens at this absolute time."""
    ignore_status_codes: frozenset[int] = field(default_factory=frozenset)
    backoff: Backoff | None = None
    max_duration_ms: int = 0
    """0: no limit."""

    def delay_ms(self, retry_number: int, draw: float = 1.0) -> int:
        """The wait before retry number ``retry_number`` (1 for the first retry)."""
        if self.backoff is not None:
            return self.backoff.delay_ms(retry_number, draw)
        return self.interval_ms * retry_number if self.linear else self.interval_ms

    @property
    def longest_wait_ms(self) -> int:
        """How long a target's ``Retry-After`` may make a wait."""
        return self.backoff.max_ms if self.backoff is not None else DAY_MS


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    next_due_at_ms: int | None = None


def is_failure(status_code: int, error: str | None) -> bool:
    """No HTTP answer, or a 4xx/5xx answer."""
    return error is not None or status_code >= 400 or status_code == 0


def decide(
    policy: RetryPolicy,
    *,
    retries_done: int,
    status_code: int,
    error: str | None,
    now_ms: int,
    retry_after_ms: int | None = None,
    stop: bool = False,
    first_attempt_at_ms: int | None = None,
    draw: float = 1.0,
) -> Decision:
    """What follows an attempt that ended with ``status_code`` (0 and ``error``: no answer).

    :param retry_after_ms: the target's ``Retry-After``, from ``now_ms``.
    :param stop: the target said not to retry (``Tasks-Retry: stop``).
    :param draw: in [0, 1): where a jittered wait falls.
    """
    if not is_failure(status_code, error):
        return Decision(Verdict.SUCCESS)
    if stop or _final(policy, status_code, retries_done):
        return Decision(Verdict.ERROR)
    if policy.at_ms is not None:
        due = max(policy.at_ms, now_ms)
    else:
        due = now_ms + policy.delay_ms(retries_done + 1, draw)
    if retry_after_ms is not None:
        due = max(due, now_ms + min(retry_after_ms, policy.longest_wait_ms))
    started = first_attempt_at_ms if first_attempt_at_ms is not None else now_ms
    if policy.max_duration_ms and due - started > policy.max_duration_ms:
        return Decision(Verdict.ERROR)
    return Decision(Verdict.RETRY, due)


def _final(policy: RetryPolicy, status_code: int, retries_done: int) -> bool:
    return (
        status_code == STOP_STATUS
        or status_code in policy.ignore_status_codes
        or retries_done >= policy.limit
    )


def parse_retry_after(value: str | None, now_ms: int) -> int | None:
    """``Retry-After`` (seconds, or an HTTP date) as milliseconds from ``now_ms``."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value) * 1000
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0, int(moment.timestamp() * 1000) - now_ms)
