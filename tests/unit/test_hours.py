"""ivr/hours.py: weekly tables, time ranges, holidays, midnight crossings and daylight-saving edges."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from ivr.exceptions import HoursError
from ivr.hours import days_of, is_open, parse_holiday, parse_weekly, zone
from ivr.nodes import Schedule


def at(tz: str, year: int, month: int, day: int, hour: int, minute: int) -> float:
    """UNIX seconds of a wall-clock time in ``tz`` (the first of two, when the clock falls back)."""
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(tz)).timestamp()


def utc(year: int, month: int, day: int, hour: int, minute: int) -> float:
    return at("UTC", year, month, day, hour, minute)


def sched(weekly: dict[str, object], tz: str = "Europe/London", holidays: tuple[str, ...] = ()) -> Schedule:
    return Schedule("office", tz, parse_weekly(weekly), holidays)


def test_days_of_keys() -> None:
    assert days_of("mon") == [0]
    assert days_of("Sunday") == [6]
    assert days_of("mon-fri") == [0, 1, 2, 3, 4]
    assert days_of("fri-mon") == [4, 5, 6, 0]
    assert days_of("sat, sun") == [5, 6]
    assert days_of("mon-wed,fri") == [0, 1, 2, 4]
    with pytest.raises(HoursError, match="'fry' is not a day"):
        days_of("mon-fry")


def test_parse_weekly_ranges_closed_and_24h() -> None:
    weekly = parse_weekly({"mon-fri": "09:00-12:00, 13:00-17:30", "sat": "9:30-14:00", "sun": "closed"})
    assert weekly[0] == (("09:00", "12:00"), ("13:00", "17:30"))
    assert weekly[4] == weekly[0]
    assert weekly[5] == (("09:30", "14:00"),)
    assert 6 not in weekly                               # closed days are absent
    assert parse_weekly({"sat,sun": "24h"}) == {5: (("00:00", "24:00"),), 6: (("00:00", "24:00"),)}
    assert parse_weekly({"mon": ["08:00-10:00", "11:00-12:00"]})[0] == (("08:00", "10:00"), ("11:00", "12:00"))
    assert parse_weekly({"fri": "22:00-02:00"})[4] == (("22:00", "02:00"),)
    assert parse_weekly({"mon": "13:00-14:00,08:00-09:00"})[0] == (("08:00", "09:00"), ("13:00", "14:00"))


def test_a_single_day_overrides_a_range() -> None:
    weekly = parse_weekly({"fri": "09:00-16:00", "mon-fri": "09:00-17:00"})
    assert weekly[4] == (("09:00", "16:00"),)
    assert weekly[3] == (("09:00", "17:00"),)
    assert 4 not in parse_weekly({"mon-fri": "09:00-17:00", "fri": "closed"})


@pytest.mark.parametrize("weekly, key, words", [
    ({"mon": "09:00"}, "mon", "not a range"),
    ({"mon": "9-17"}, "mon", "'9' is not a time of day"),
    ({"mon": "09:00-17:60"}, "mon", "not a time of day"),
    ({"mon": "25:00-26:00"}, "mon", "not a time of day"),
    ({"mon": "24:00-10:00"}, "mon", "24:00 only as a closing time"),
    ({"mon": "09:00-09:00"}, "mon", "same time"),
    ({"mon": "09:00-12:00, 11:00-13:00"}, "mon", "overlap"),
    ({"mon": "22:00-02:00, 23:00-03:00"}, "mon", "overlap"),
    ({"mon": "closed, 09:00-10:00"}, "mon", "stand alone"),
    ({"mon": ""}, "mon", "no time ranges"),
    ({"mon": 9}, "mon", "as text"),
    ({"mon-fri": "09:00-10:00", "fri-sun": "10:00-11:00"}, "fri-sun", "already given by 'mon-fri'"),
    ({"mon": "09:00-10:00", "monday": "10:00-11:00"}, "monday", "already given by 'mon'"),
    ({"funday": "09:00-10:00"}, "funday", "not a day"),
])
def test_parse_weekly_errors_name_the_key(weekly: dict[str, object], key: str, words: str) -> None:
    with pytest.raises(HoursError) as err:
        parse_weekly(weekly)
    assert err.value.key == key
    assert words in str(err.value)


def test_parse_weekly_needs_a_mapping() -> None:
    with pytest.raises(HoursError, match="must map days"):
        parse_weekly(["mon"])  # type: ignore[arg-type]


def test_open_and_closed_times() -> None:
    s = sched({"mon-fri": "09:00-12:00, 13:00-17:30"}, tz="UTC")
    # 2026-06-01 is a Monday.
    assert not is_open(s, utc(2026, 6, 1, 8, 59))
    assert is_open(s, utc(2026, 6, 1, 9, 0))            # opening minute is open
    assert is_open(s, utc(2026, 6, 1, 11, 59))
    assert not is_open(s, utc(2026, 6, 1, 12, 0))       # closing minute is closed
    assert is_open(s, utc(2026, 6, 1, 17, 29))
    assert not is_open(s, utc(2026, 6, 1, 17, 30))
    assert not is_open(s, utc(2026, 6, 6, 10, 0))       # Saturday: not listed
    assert is_open(sched({"sun": "24h"}, tz="UTC"), utc(2026, 6, 7, 23, 59))


def test_time_zone_is_the_schedules_own() -> None:
    s = sched({"mon-fri": "09:00-17:00"}, tz="Asia/Shanghai")   # UTC+8, no DST
    assert is_open(s, utc(2026, 6, 1, 1, 0))            # 09:00 in Shanghai, 01:00 UTC
    assert not is_open(s, utc(2026, 6, 1, 9, 30))       # 17:30 in Shanghai


def test_holidays_close_the_whole_date() -> None:
    s = sched({"mon-sun": "09:00-17:00"}, tz="UTC", holidays=("2026-12-25",))
    assert not is_open(s, utc(2026, 12, 25, 10, 0))
    assert is_open(s, utc(2026, 12, 24, 10, 0))
    assert is_open(s, utc(2026, 12, 26, 10, 0))


def test_ranges_crossing_midnight() -> None:
    s = sched({"fri": "22:00-02:00"}, tz="UTC")
    # 2026-06-05 is a Friday.
    assert not is_open(s, utc(2026, 6, 5, 21, 59))
    assert is_open(s, utc(2026, 6, 5, 22, 0))
    assert is_open(s, utc(2026, 6, 5, 23, 59))
    assert is_open(s, utc(2026, 6, 6, 0, 0))            # Saturday morning: Friday's range goes on
    assert is_open(s, utc(2026, 6, 6, 1, 59))
    assert not is_open(s, utc(2026, 6, 6, 2, 0))
    assert not is_open(s, utc(2026, 6, 4, 23, 0))       # Thursday: no range
    assert not is_open(s, utc(2026, 6, 5, 1, 0))        # Friday early: Thursday had no range


def test_holidays_and_midnight_crossings() -> None:
    s = sched({"mon-sun": "22:00-02:00"}, tz="UTC", holidays=("2026-12-25",))
    assert not is_open(s, utc(2026, 12, 25, 1, 0))      # the tail of the 24th falls on the holiday
    assert not is_open(s, utc(2026, 12, 25, 23, 0))
    assert not is_open(s, utc(2026, 12, 26, 1, 0))      # the tail of the holiday's own range
    assert is_open(s, utc(2026, 12, 26, 23, 0))
    assert is_open(s, utc(2026, 12, 24, 23, 0))


def test_daylight_saving_spring_forward_keeps_local_hours() -> None:
    s = sched({"sun": "09:00-17:00"}, tz="Europe/London")
    # 2026-03-29 (Sunday): clocks go from 01:00 GMT to 02:00 BST.
    assert is_open(s, utc(2026, 3, 29, 8, 30))          # 09:30 BST
    assert not is_open(s, utc(2026, 3, 29, 16, 30))     # 17:30 BST
    # The Sunday before, 08:30 UTC is 08:30 GMT: closed.
    assert not is_open(s, utc(2026, 3, 22, 8, 30))
    assert is_open(s, utc(2026, 3, 22, 16, 30))


def test_daylight_saving_night_range_across_the_gap_and_the_repeat() -> None:
    s = sched({"sat": "22:00-02:30"}, tz="America/New_York")
    # 2026-03-08 (Sunday) 02:00 EST jumps to 03:00 EDT: the range ends in the gap.
    assert is_open(s, at("America/New_York", 2026, 3, 8, 1, 59))
    assert not is_open(s, utc(2026, 3, 8, 7, 0))        # 03:00 EDT, the first instant after the gap
    # 2026-11-01 (Sunday) 02:00 EDT falls back to 01:00 EST: 01:30 happens twice, both open.
    assert is_open(s, utc(2026, 11, 1, 5, 30))          # 01:30 EDT
    assert is_open(s, utc(2026, 11, 1, 6, 30))          # 01:30 EST
    assert is_open(s, utc(2026, 11, 1, 7, 15))          # 02:15 EST
    assert not is_open(s, utc(2026, 11, 1, 7, 30))      # 02:30 EST


def test_zone_and_holiday_parsing() -> None:
    assert zone("Europe/London") is zone("Europe/London")
    for bad in ("Europe/Lodnon", "", "../etc/passwd"):
        with pytest.raises(HoursError, match="unknown time zone"):
            zone(bad)
    assert parse_holiday("2026-12-25").month == 12
    for bad in ("2026-02-30", "25/12/2026", "2026-1-1x"):
        with pytest.raises(HoursError, match="not a date"):
            parse_holiday(bad)
