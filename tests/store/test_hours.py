"""One grammar for working hours (config, import, assignment), one zone look-up, one weekday table."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from store.hours import WEEKDAYS, UnknownZone, is_working, parse_working_hours, zone

MONDAY = datetime(2026, 11, 23, tzinfo=UTC)


def test_the_short_forms_mean_what_they_say() -> None:
    assert parse_working_hours("08:00-17:00") == parse_working_hours("Mon-Fri 08:00-17:00")
    assert parse_working_hours("Mo-Fr 8-17") == parse_working_hours("Mon-Fri 08:00-17:00")
    split = parse_working_hours("Mon-Thu 08:00-16:00; Fri 08:00-12:00")
    assert split.covers(MONDAY + timedelta(hours=15)) and not split.covers(MONDAY + timedelta(days=4, hours=13))
    assert split.covers(MONDAY + timedelta(days=4, hours=11))


@pytest.mark.parametrize("spec", ["Mon-Fri 25:00-99:00", "Mon-Fri 09:60-17:00", "Mon-Fri 24:30-06:00",
                                  "Xyz 09:00-17:00", "Mon-Fri 09:00", "", " ; ", "Mon-Fri 09:00-09:00",
                                  "weekdays 9 to 5"])
def test_hours_that_cannot_be_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="working hours"):
        parse_working_hours(spec)


def test_a_parse_error_is_never_always_at_work() -> None:
    with pytest.raises(ValueError):
        is_working("Mon-Fri 25:00-99:00", "UTC", MONDAY)
    with pytest.raises(UnknownZone):
        is_working("Mon-Fri 09:00-17:00", "Mars/Olympus", MONDAY)


@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6), st.integers(0, 23), st.integers(0, 59),
                          st.integers(0, 23), st.integers(0, 59)), min_size=1, max_size=3),
       st.integers(0, 7 * 24 * 60 - 1))
def test_any_written_shift_is_read_back_and_covers_its_own_minutes(
    shifts: list[tuple[int, int, int, int, int, int]], minute: int
) -> None:
    shifts = [s for s in shifts if (s[2], s[3]) != (s[4], s[5])]
    if not shifts:
        return
    spec = "; ".join(f"{WEEKDAYS[a]}-{WEEKDAYS[b]} {h1:02d}:{m1:02d}-{h2}:{m2:02d}" for a, b, h1, m1, h2, m2 in shifts)
    hours = parse_working_hours(spec)
    assert [(s.start, s.end) for s in hours.shifts] == [(time(h1, m1), time(h2, m2)) for _, _, h1, m1, h2, m2 in shifts]
    moment = MONDAY + timedelta(minutes=minute)
    expected = any(_inside(moment, *s) for s in shifts)
    assert hours.covers(moment) is expected


def _inside(moment: datetime, first: int, last: int, h1: int, m1: int, h2: int, m2: int) -> bool:
    days = {(first + i) % 7 for i in range((last - first) % 7 + 1)}
    clock, start, end = moment.time(), time(h1, m1), time(h2, m2)
    if start < end:
        return moment.weekday() in days and start <= clock < end
    return (moment.weekday() in days and clock >= start) or ((moment.weekday() - 1) % 7 in days and clock < end)


def test_an_unknown_zone_is_an_error_not_utc() -> None:
    assert zone(None) == zone("UTC")
    with pytest.raises(UnknownZone, match="IANA"):
        zone("Europe/Nowhere")
