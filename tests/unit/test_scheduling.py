"""Dates given by users, first due times, and the arithmetic of resuming a paused task."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tasks_server.scheduling import MAX_SAFE_INTEGER, first_due_at, parse_date, resume_due_at


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    """Epoch milliseconds of a UTC wall-clock time."""
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()) * 1000


class TestParseDate:
    def test_epoch_milliseconds_are_taken_as_given(self) -> None:
        assert parse_date(1_355_245_932_000) == 1_355_245_932_000
        assert parse_date(0) == 0
        assert parse_date(MAX_SAFE_INTEGER) == MAX_SAFE_INTEGER

    @pytest.mark.parametrize("value", [-1, MAX_SAFE_INTEGER + 1])
    def test_epoch_milliseconds_out_of_range_are_refused(self, value: int) -> None:
        with pytest.raises(ValueError, match="out of range"):
            parse_date(value)

    @pytest.mark.parametrize("value", [True, False])
    def test_booleans_are_not_dates(self, value: bool) -> None:
        with pytest.raises(ValueError, match="not a date"):
            parse_date(value)

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("2030-01-01T09:00:00Z", ms(2030, 1, 1, 9)),
            ("2030-01-01T09:00:00+07:00", ms(2030, 1, 1, 2)),
            ("2030-01-01T09:00:00-05:30", ms(2030, 1, 1, 14, 30)),
            ("2030-01-01T09:00:00.123Z", ms(2030, 1, 1, 9) + 123),
            ("2021-03-04T05:06:07.007+00:00", ms(2021, 3, 4, 5, 6, 7) + 7),
            ("  2030-01-01T09:00:00Z  ", ms(2030, 1, 1, 9)),
        ],
    )
    def test_iso_8601_with_an_offset(self, text: str, expected: int) -> None:
        assert parse_date(text, ZoneInfo("Asia/Tokyo")) == expected

    @pytest.mark.parametrize("year", [2030, 2039, 2107])
    def test_every_millisecond_survives_the_conversion(self, year: int) -> None:
        base = ms(year, 3, 6, 18, 4, 13)
        wrong = [
            (milli, parse_date(f"{year}-03-06T18:04:13.{milli:03d}Z") - base)
            for milli in range(1000)
            if parse_date(f"{year}-03-06T18:04:13.{milli:03d}Z") != base + milli
        ]
        assert wrong == []

    def test_javascript_style_date_with_offset(self) -> None:
        assert parse_date("Dec 12 2012 12:12:12 AM +07:00") == 1_355_245_932_000

    def test_a_gmt_offset_means_what_it_means_in_javascript(self) -> None:
        """``new Date("Dec 12 2030 12:12:12 AM GMT+0700")`` is 7 hours ahead of UTC."""
        assert parse_date("Dec 12 2030 12:12:12 AM GMT+0700") == ms(2030, 12, 11, 17, 12, 12)

    @pytest.mark.filterwarnings("ignore::dateutil.parser.UnknownTimezoneWarning")
    @pytest.mark.parametrize(("text", "utc_hour"), [("PST", 20), ("CET", 11)])
    def test_a_zone_abbreviation_is_honoured_or_refused_never_ignored(
        self, text: str, utc_hour: int
    ) -> None:
        try:
            moment = parse_date(f"Dec 12 2030 12:12:12 PM {text}")
        except ValueError:
            return
        assert moment == ms(2030, 12, 12, utc_hour, 12, 12)

    def test_javascript_style_date_without_offset_is_read_in_the_zone(self) -> None:
        jakarta = ZoneInfo("Asia/Jakarta")  # UTC+7, no daylight saving
        assert parse_date("Apr 18 2030 1:47:03 PM", jakarta) == ms(2030, 4, 18, 6, 47, 3)

    def test_a_string_without_offset_defaults_to_utc(self) -> None:
        assert parse_date("Apr 18 2030 1:47:03 PM") == ms(2030, 4, 18, 13, 47, 3)
        assert parse_date("2030-04-18T13:47:03") == ms(2030, 4, 18, 13, 47, 3)

    def test_naive_iso_is_read_in_the_zone_with_its_daylight_saving(self) -> None:
        new_york = ZoneInfo("America/New_York")
        assert parse_date("2030-01-15T12:00:00", new_york) == ms(2030, 1, 15, 17)  # EST
        assert parse_date("2030-07-15T12:00:00", new_york) == ms(2030, 7, 15, 16)  # EDT

    def test_a_day_alone_is_midnight(self) -> None:
        assert parse_date("Dec 12 2024") == ms(2024, 12, 12)
        assert parse_date("Dec 12 2024", ZoneInfo("Asia/Jakarta")) == ms(2024, 12, 11, 17)

    @pytest.mark.parametrize(
        "text", ["", "   ", "garbage", "tomorrow", "13/45/2030", "2030-02-30T00:00:00Z"]
    )
    def test_garbage_is_refused(self, text: str) -> None:
        with pytest.raises(ValueError):
            parse_date(text)

    @pytest.mark.parametrize("text", ["Dec 12", "12:12:12 PM", "Apr 18 1:47:03 PM"])
    def test_a_date_without_a_year_is_refused(self, text: str) -> None:
        with pytest.raises(ValueError, match="no year"):
            parse_date(text)


class TestFirstDueAt:
    def test_delay_counts_from_now(self) -> None:
        assert first_due_at(1_000, 500, None) == 1_500
        assert first_due_at(1_000, 0, None) == 1_000

    def test_an_absolute_time_overrides_the_delay(self) -> None:
        assert first_due_at(1_000, 500, 90_000) == 90_000


class TestResumeDueAt:
    PAUSED_AT = 10_000

    def resume(self, **overrides: Any) -> int:
        arguments: dict[str, Any] = {
            "next_due_at_ms": 15_000,
            "paused_at_ms": self.PAUSED_AT,
            "now_ms": 100_000,
            "absolute": False,
            "execute_immediately": False,
        }
        arguments.update(overrides)
        return resume_due_at(**arguments)

    def test_a_relative_schedule_gets_back_the_time_it_had_left(self) -> None:
        assert self.resume() == 100_000 + 5_000

    def test_a_relative_schedule_overdue_when_paused_fires_at_once(self) -> None:
        assert self.resume(next_due_at_ms=9_000) == 100_000

    def test_execute_immediately_does_not_apply_to_relative_schedules(self) -> None:
        assert self.resume(execute_immediately=True) == 105_000

    def test_an_absolute_time_still_ahead_is_kept(self) -> None:
        assert self.resume(absolute=True, next_due_at_ms=200_000) == 200_000
        assert (
            self.resume(absolute=True, next_due_at_ms=200_000, execute_immediately=True)
            == 200_000
        )

    def test_an_absolute_time_passed_during_the_pause_fires_now_with_execute_immediately(
        self,
    ) -> None:
        assert self.resume(absolute=True, execute_immediately=True) == 100_000

    def test_an_absolute_time_passed_during_the_pause_waits_the_time_that_was_left(
        self,
    ) -> None:
        assert self.resume(absolute=True) == 105_000

    def test_an_absolute_time_equal_to_now_is_not_ahead(self) -> None:
        assert self.resume(absolute=True, next_due_at_ms=100_000) == 100_000 + 90_000
