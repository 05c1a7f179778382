"""Pure schedule arithmetic: dates given by users, first due times, resume after a pause.

Every function takes the time in; none reads the clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from dateutil import parser as date_parser

MAX_SAFE_INTEGER = 2**53 - 1
_NO_YEAR = datetime(1, 1, 1)  # noqa: DTZ001 - a sentinel default for the parser


def parse_date(value: int | str, zone: tzinfo = UTC) -> int:
    """Milliseconds since the epoch of a user's date.

    ``value`` is epoch milliseconds, ISO 8601, or a string in the style JavaScript's ``Date``
    accepts (``"Dec 12 2012 12:12:12 AM +07:00"``). A string without an offset is read in
    ``zone``. Raises ``ValueError`` when the value is not a complete date.
    """
    if isinstance(value, bool):
        raise ValueError("not a date")
    if isinstance(value, int):
        if not 0 <= value <= MAX_SAFE_INTEGER:
            raise ValueError("out of range")
        return value
    moment = _parse_string(value.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return int(moment.timestamp() * 1000)


def _parse_string(text: str) -> datetime:
    if not text:
        raise ValueError("empty date")
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    try:
        moment = date_parser.parse(text, default=_NO_YEAR)
    except (ValueError, OverflowError) as exc:
        raise ValueError(str(exc)) from exc
    if moment.year == 1:
        raise ValueError("the date has no year")
    return moment


def first_due_at(now_ms: int, execution_delay_ms: int, execute_at_ms: int | None) -> int:
    """When the first attempt of a new task is due."""
    if execute_at_ms is not None:
        return execute_at_ms
    return now_ms + execution_delay_ms


def resume_due_at(
    *,
    next_due_at_ms: int,
    paused_at_ms: int,
    now_ms: int,
    absolute: bool,
    execute_immediately: bool,
) -> int:
    """When the next attempt of a resumed task is due.

    Pausing freezes the countdown: a relative schedule gets back the time it had left. An
    absolute one (``executeAt``, first attempt) keeps its time while that is still ahead; if it
    passed during the pause it fires now with ``executeImmediately``, else after the time that
    was left when it was paused.
    """
    if absolute and next_due_at_ms > now_ms:
        return next_due_at_ms
    if absolute and execute_immediately:
        return now_ms
    return now_ms + max(0, next_due_at_ms - paused_at_ms)
