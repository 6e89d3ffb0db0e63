"""Business hours: weekly opening times in a time zone, with holidays (``open('office')`` in a branch).

The YAML a flow gives under ``hours: {office: {timezone: Europe/London, weekly: {...}, holidays: [...]}}``::

    weekly:
      mon-fri: "09:00-12:00, 13:00-17:30"   # several ranges, comma separated
      sat: "10:00-14:00"
      fri: "09:00-16:00"                    # a single day overrides a range or list naming it
      sun: closed                           # days not named are closed too
      "sat,sun": 24h                        # day lists; "24h" is the whole day

Day keys are ``mon`` .. ``sun`` (or ``monday`` .. ``sunday``), ranges of days (``mon-fri``, and
wrapping ones like ``fri-mon``) and comma lists (``sat,sun``). A time range is ``HH:MM-HH:MM``;
"24:00" may close a day; a range whose end is before its start crosses midnight ("22:00-02:00" is
open from 22:00 until 02:00 the next morning). Times are wall-clock times in the schedule's time
zone, so a schedule keeps its local hours across daylight-saving changes. A holiday closes its whole
date, including the after-midnight part of a range begun the evening before, and the after-midnight
part of a range that began on the holiday itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .exceptions import HoursError
from .nodes import Schedule

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_INDEX = {**{d: i for i, d in enumerate(DAYS)}, **{d: i for i, d in enumerate(FULL_DAYS)}}
_TIME = re.compile(r"(\d{1,2}):(\d{2})\Z")
DAY_KEY_PATTERN = (r"^\s*(?:{d})(?:\s*-\s*(?:{d}))?(?:\s*,\s*(?:{d})(?:\s*-\s*(?:{d}))?)*\s*$"
                   .format(d="|".join(FULL_DAYS + DAYS)))
Weekly = dict[int, tuple[tuple[str, str], ...]]


def _day(token: str, key: str) -> int:
    index = _DAY_INDEX.get(token.strip().lower())
    if index is None:
        raise HoursError(f"{token.strip()!r} is not a day (use mon, tue, wed, thu, fri, sat, sun)", key)
    return index


def days_of(key: str) -> list[int]:
    """The days (0 = Monday) a weekly key names: "mon", "mon-fri", "fri-mon", "sat,sun"."""
    out: list[int] = []
    for part in str(key).split(","):
        if "-" in part:
            first, _, last = part.partition("-")
            a, b = _day(first, key), _day(last, key)
            out += [(a + k) % 7 for k in range((b - a) % 7 + 1)]
        else:
            out.append(_day(part, key))
    return out


def _minutes(text: str, key: str, *, closing: bool) -> int:
    m = _TIME.match(text.strip())
    if m is None:
        raise HoursError(f"{text.strip()!r} is not a time of day (write HH:MM, e.g. 09:00)", key)
    hours, mins = int(m.group(1)), int(m.group(2))
    if mins > 59 or hours > 24 or (hours == 24 and (mins or not closing)):
        raise HoursError(f"{text.strip()!r} is not a time of day (00:00 to 23:59; 24:00 only as a closing time)", key)
    return hours * 60 + mins


def _ranges(value: Any, key: str) -> tuple[tuple[str, str], ...]:
    items: list[Any] = value if isinstance(value, list) else [value]
    texts: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise HoursError(f"{key}: give times as text like \"09:00-17:00\", \"closed\" or \"24h\"", key)
        texts += [t for t in item.split(",") if t.strip()]
    if not texts:
        raise HoursError(f"{key}: no time ranges (write \"closed\" for a closed day)", key)
    lowered = [t.strip().lower() for t in texts]
    if lowered in (["closed"], ["24h"]):
        return () if lowered == ["closed"] else (("00:00", "24:00"),)
    if "closed" in lowered or "24h" in lowered:
        raise HoursError(f"{key}: 'closed' and '24h' stand alone, not with other ranges", key)
    spans: list[tuple[int, int]] = []
    for text in texts:
        start, sep, end = text.partition("-")
        if not sep:
            raise HoursError(f"{key}: {text.strip()!r} is not a range (write HH:MM-HH:MM)", key)
        a, b = _minutes(start, key, closing=False), _minutes(end, key, closing=True)
        if a == b:
            raise HoursError(f"{key}: {text.strip()!r} opens and closes at the same time (use 24h for all day)", key)
        spans.append((a, b))
    spans.sort()
    for (a1, b1), (a2, _b2) in zip(spans, spans[1:], strict=False):
        end1 = b1 if b1 > a1 else 24 * 60
        if a2 < end1:
            raise HoursError(f"{key}: the ranges {_hhmm(a1)}-{_hhmm(b1)} and {_hhmm(a2)}-... overlap", key)
    if sum(1 for a, b in spans if b < a) > 1:
        raise HoursError(f"{key}: only one range a day may cross midnight", key)
    return tuple((_hhmm(a), _hhmm(b)) for a, b in spans)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_weekly(mapping: Mapping[Any, Any]) -> Weekly:
    """Turn the YAML ``weekly`` mapping into ``{day: ((open, close), ...)}``; raises HoursError.

    Only open days appear in the result. A key naming one day overrides a range or list that names it
    too; two ranges or lists naming the same day, or the same single day twice, are an error.
    """
    if not isinstance(mapping, Mapping):
        raise HoursError("`weekly` must map days to opening times, e.g. mon-fri: \"09:00-17:00\"")
    general: dict[int, str] = {}
    single: dict[int, str] = {}
    result: dict[int, tuple[tuple[str, str], ...]] = {}
    for pass_single in (False, True):
        for raw_key, value in mapping.items():
            key = str(raw_key)
            days = days_of(key)
            if (len(days) == 1 and "," not in key and "-" not in key) != pass_single:
                continue
            seen = single if pass_single else general
            ranges = _ranges(value, key)
            for day in days:
                if day in seen:
                    raise HoursError(f"{key}: {DAYS[day]} is already given by {seen[day]!r}", key)
                seen[day] = key
                result[day] = ranges
    return {day: ranges for day, ranges in sorted(result.items()) if ranges}


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """The time zone ``name`` (IANA, e.g. "Europe/London"); raises HoursError if there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise HoursError(f"unknown time zone {name!r} (use an IANA name such as Europe/London)") from None


@lru_cache(maxsize=512)
def _span(open_: str, close: str) -> tuple[int, int]:
    return _minutes(open_, "", closing=False), _minutes(close, "", closing=True)


def parse_holiday(text: str) -> date:
    """A holiday "YYYY-MM-DD"; raises HoursError if it is not a real date."""
    try:
        return date.fromisoformat(text)
    except (TypeError, ValueError):
        raise HoursError(f"holiday {text!r} is not a date (write YYYY-MM-DD)") from None


def is_open(schedule: Schedule, now: float) -> bool:
    """Whether ``schedule`` is open at ``now`` (UNIX seconds), in the schedule's own time zone."""
    local = datetime.fromtimestamp(now, zone(schedule.timezone))
    today = local.date()
    if today.isoformat() in schedule.holidays:
        return False
    minute = local.hour * 60 + local.minute
    for open_, close in schedule.weekly.get(local.weekday(), ()):
        a, b = _span(open_, close)
        if (a <= minute < b) if a < b else minute >= a:
            return True
    yesterday = today - timedelta(days=1)
    if yesterday.isoformat() in schedule.holidays:
        return False
    for open_, close in schedule.weekly.get(yesterday.weekday(), ()):
        a, b = _span(open_, close)
        if b < a and minute < b:
            return True
    return False
