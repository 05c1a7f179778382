"""Pure schedule arithmetic: dates given by users, first due times, resume after a pause.

Every function takes the time in; none reads the clock.
"""

from __future__ import annotations

import re
import warnings
from datetime import UTC, datetime, timedelta, timezone, tzinfo

from dateutil import parser as date_parser

MAX_SAFE_INTEGER = 2**53 - 1
_NO_YEAR = datetime(1, 1, 1)  # noqa: DTZ001 - a sentinel default for the parser
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
# "GMT+0700" means UTC+7 in JavaScript's Date; dateutil would read it the POSIX way (UTC-7).
_COMMENT = re.compile(r"\s*\([^)]*\)\s*$")
_GMT_OFFSET = re.compile(r"\b(?:GMT|UTC)\s*([+-]\d{2}:?\d{2})\b")
# The zone names JavaScript's Date knows; any other abbreviation is refused.
_ZONE_NAMES = {
    name: timezone(timedelta(hours=hours))
    for name, hours in {
        "UT": 0,
        "UTC": 0,
        "GMT": 0,
        "Z": 0,
        "EST": -5,
        "EDT": -4,
        "CST": -6,
        "CDT": -5,
        "MST": -7,
        "MDT": -6,
        "PST": -8,
        "PDT": -7,
    }.items()
}


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
    return (moment - _EPOCH) // _MS


def _parse_string(text: str) -> datetime:
    if not text:
        raise ValueError("empty date")
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", date_parser.UnknownTimezoneWarning)
            text = _GMT_OFFSET.sub(r"\1", _COMMENT.sub("", text))
            moment = date_parser.parse(text, default=_NO_YEAR, tzinfos=_ZONE_NAMES)
    except (ValueError, OverflowError, date_parser.UnknownTimezoneWarning) as exc:
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
