"""Weekdays, time zones and working hours: one definition each (config, import, assignment, digests).

Working hours are shifts `[days] from-to` separated by `;`: `08:00-17:00` (no days:
Mon-Fri), `Mon-Thu 08:00-16:00; Fri 08:00-12:00`, `Mo-Fr 8-17`; a shift that ends
before it starts runs past midnight; `Mon-Fri 25:00-99:00` is refused."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAY_NAMES = {name.lower(): i for i, name in enumerate(WEEKDAYS)} | {
    name[:2].lower(): i for i, name in enumerate(WEEKDAYS)}
_SHIFT = re.compile(r"(?:(?P<days>[A-Za-z][A-Za-z,\- ]*?)\s+)?(?P<start>\d{1,2}(?::\d{2})?)\s*-\s*"
                    r"(?P<end>\d{1,2}(?::\d{2})?)")
END_OF_DAY = time(23, 59, 59)


class UnknownZone(ValueError):
    """Not an IANA time zone name."""


def zone(name: str | None) -> ZoneInfo:
    """The time zone `name` (None: UTC); UnknownZone, never a silent UTC, for a name that is not one."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise UnknownZone(f"unknown time zone {name!r}; use an IANA name such as Europe/Stockholm") from None


@dataclass(frozen=True)
class Shift:
    days: frozenset[int]  # 0 = Monday
    start: time
    end: time

    def covers(self, local: datetime) -> bool:
        clock, day = local.time(), local.weekday()
        if self.start <= self.end:
            return day in self.days and self.start <= clock < self.end
        if clock >= self.start:
            return day in self.days
        return (day - 1) % 7 in self.days and clock < self.end  # the night shift that began yesterday


@dataclass(frozen=True)
class WorkingHours:
    shifts: tuple[Shift, ...]

    def covers(self, local: datetime) -> bool:
        """Inside a shift at this local time."""
        return any(shift.covers(local) for shift in self.shifts)


def parse_working_hours(spec: str) -> WorkingHours:
    """`Mon-Fri 09:00-17:00` and the rest of the grammar above; ValueError naming what is wrong."""
    parts = [part.strip() for part in spec.split(";")]
    if not any(parts):
        raise ValueError(f'working hours {spec!r}: empty; expected e.g. "Mon-Fri 09:00-17:00"')
    return WorkingHours(tuple(_shift(part, spec) for part in parts if part))


def _shift(text: str, spec: str) -> Shift:
    match = _SHIFT.fullmatch(text)
    if match is None:
        raise ValueError(f'working hours {spec!r}: {text!r} not understood; expected e.g. "Mon-Fri 09:00-17:00"')
    days = _days(match["days"], spec) if match["days"] else frozenset(range(5))
    start, end = _clock(match["start"], spec), _clock(match["end"], spec)
    if start == end:
        raise ValueError(f"working hours {spec!r}: {text!r} is an empty shift")
    return Shift(days, start, end)


def _days(text: str, spec: str) -> frozenset[int]:
    days: set[int] = set()
    for part in text.replace(" ", "").split(","):
        first, _, last = part.partition("-")
        day, end_day = _day(first, spec), _day(last or first, spec)
        days.add(day)
        while day != end_day:
            day = (day + 1) % 7
            days.add(day)
    return frozenset(days)


def _day(name: str, spec: str) -> int:
    try:
        return _DAY_NAMES[name.lower()]
    except KeyError:
        raise ValueError(f"working hours {spec!r}: unknown day {name!r}; use Mon, Tue, … Sun") from None


def _clock(text: str, spec: str) -> time:
    hours, _, minutes = text.partition(":")
    hour, minute = int(hours), int(minutes or 0)
    if hour > 24 or minute > 59 or (hour == 24 and minute):
        raise ValueError(f"working hours {spec!r}: {text} is not a time of day")
    return END_OF_DAY if hour == 24 else time(hour, minute)


def is_working(working_hours: str, timezone: str | None, now: datetime) -> bool:
    """Inside these working hours in this zone; ValueError for either that cannot be read."""
    return parse_working_hours(working_hours).covers(now.astimezone(zone(timezone)))
