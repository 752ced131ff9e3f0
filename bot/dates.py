"""Natural-language times (`next friday 10am`, `in 3 days`, `imorgon`, `zítra`) in a rep's zone."""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dateparser.date import DateDataParser

from store.hours import zone
from store.validation import Invalid, outside_calendar, parse_numeric_date

DEFAULT_HOUR = 9  # "friday" or "31.12." means the start of the working day, not midnight
# "10.30" is half past ten to a Swede, "1.10" the first of October to a Czech: a leading
# dotted pair without the final dot is read the one way it can be, and asked about if both.
_CLOCK = re.compile(r"(?:[01]?\d|2[0-3])\.[0-5]\d")
_DATE_WORDS = 3  # "31. 12. 2026"
# The words before an hour in the ten languages: "at 10", "um 10", "kl 10.30", "o 10", "v 10",
# "ob 10", "à 10h", "a las 10"; and after it: "10 Uhr", "10 hodin", "10-kor", "10 órakor".
# Only at the end: in "o 3 hodiny" (Slovak: in 3 hours) the number is no hour.
_TIME_WORDS = r"at|um|à|a\s+las?|kl\.?|klockan|o|v|ve|ob"
_SAID_HOUR = re.compile(
    rf"(?<!\S)(?P<word>(?:{_TIME_WORDS})\s+)?(?P<h>[01]?\d|2[0-3])(?:[.:h](?P<m>[0-5]\d)|h)?"
    r"(?P<unit>\s*uhr|\s+hodin|-kor|\s+órakor)?$",
    re.IGNORECASE,
)
_TIME_WORD_LAST = re.compile(rf"(?<!\S)(?:{_TIME_WORDS})$", re.IGNORECASE)
# A word written as a time of day ("25:00", "13:75pm"), possible or not: an impossible one is
# refused, as `31.02.` is, instead of being left out and the day read as 09:00.
_CLOCK_WORD = re.compile(r"(?P<h>\d{1,2}):(?P<m>\d\d)(?:[ap]\.?m\.?|h)?", re.IGNORECASE)


def parse_when(
    text: str, *, tz: str, languages: Sequence[str] = (), now: datetime | None = None
) -> datetime | None:
    """The aware UTC moment `text` means for someone in `tz` at `now`, or None if it is not a time.
    A day named without a time of day (`friday`, `tomorrow`, `in 3 days`, `31.12.`) is at
    DEFAULT_HOUR; `in 3 hours` is exact. A date in digits is read as
    store.validation.parse_numeric_date reads it, and one that does not exist (`31.02.`) raises
    its Invalid, whose message says so; so does a dotted pair that is both a date and a time, and
    a time of day that does not exist (`25:00`, `13:75`)."""
    text = text.strip()
    _refuse_impossible_clock(text.split())
    if not text or _TIME_WORD_LAST.search(text):
        return None  # "31.12. at": the time of day is missing, so the words are not a time
    now = now or datetime.now(UTC)
    local_zone = zone(tz)
    base = now.astimezone(local_zone).replace(tzinfo=None)
    written = _leading_date(text, today=base.date())
    reading = text
    if written is not None:
        day, rest = written
        if not rest:
            return _in_utc(_working_day_start(day, local_zone), text)
        reading = f"{day.isoformat()} {rest}"  # ISO, which dateparser cannot read month first
    langs = list(dict.fromkeys([*languages, "en"]))
    settings = {
        "TIMEZONE": str(local_zone),
        "RETURN_AS_TIMEZONE_AWARE": True,
        "PREFER_DATES_FROM": "future",
        "RELATIVE_BASE": base,
    }
    try:
        found = DateDataParser(languages=langs, settings=settings).get_date_data(_SAID_HOUR.sub(_as_clock, reading))
    except OverflowError:  # "31.12.9999 23:00" west of UTC is in the year 10000 there
        raise outside_calendar(text) from None
    except ValueError:
        return None
    parsed = found.date_obj
    if parsed is None:
        return None
    # A time of day was written ("10:00", "tonight", "in 3 hours"); not so for "tomorrow" or
    # "in 3 days". Its period is no guide: "tomorrow 10:00" at 10:00 has the period "day".
    has_time = "time" in found.parts
    if written is not None and (not has_time or parsed.date() != written[0]):
        return None  # what followed the date was not its time of day
    if not has_time and not any(char.isalpha() for char in text):
        return None  # bare numbers ("10", "5.") are not a month years away
    if not has_time:
        parsed = _working_day_start(parsed.date(), local_zone)
    return _in_utc(parsed, text)


def _refuse_impossible_clock(words: Sequence[str]) -> None:
    """Invalid("25:00 is not a time of day") for the first word written as a time that no day has."""
    for word in words:
        clock = _CLOCK_WORD.fullmatch(word)
        if clock is not None and (int(clock["h"]) > 23 or int(clock["m"]) > 59):
            raise Invalid(f"{word} is not a time of day")


def _as_clock(match: re.Match[str]) -> str:
    """An hour said with a time word ("at 10", "um 10 Uhr") as 10:00, which dateparser reads as
    a time; it reads a bare "10" as a day of the month, or not at all after "kl" or "ob"."""
    if not match["word"] and not match["unit"]:
        return match[0]  # a bare number, or "10h", which dateparser reads itself
    return f"{int(match['h']):02d}:{match['m'] or '00'}"


def _working_day_start(day: date, local_zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(DEFAULT_HOUR), local_zone)


def _in_utc(moment: datetime, text: str) -> datetime:
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # "1.1.0001" east of UTC is in the year 0 there
        raise outside_calendar(text) from None


def _leading_date(text: str, *, today: date) -> tuple[date, str] | None:
    """The date written in digits at the start of `text` and the words after it, or None."""
    words = text.split()
    for count in range(min(_DATE_WORDS, len(words)), 0, -1):
        candidate = " ".join(words[:count])
        try:
            day = parse_numeric_date(candidate, today=today)
        except Invalid:
            if _CLOCK.fullmatch(candidate):
                return None  # no date, only a time of day: "15.30"
            raise
        if day is not None:
            if _CLOCK.fullmatch(candidate):
                raise _date_or_clock(candidate, day)
            return day, " ".join(words[count:])
    return None


def _date_or_clock(pair: str, day: date) -> Invalid:
    """The question for a dotted pair that is a date and a time of day: "1.10" (01:10)."""
    hour, minute = pair.split(".")
    clock = f"{int(hour):02d}:{minute}"
    return Invalid(f"{pair}: {day.day} {calendar.month_name[day.month]} or {clock}? "
                   f"Write {pair}. for the date, {clock} for the time")


def split_when(
    words: Sequence[str], *, tz: str, languages: Sequence[str] = (), now: datetime | None = None, max_words: int = 5
) -> tuple[datetime | None, list[str]]:
    """The longest leading run of `words` (up to `max_words`) that is a time, and the words after it.
    An impossible time of day (`25:00`) among the words that may be the time raises Invalid:
    left out, "tomorrow 25:00" would be tomorrow at 09:00."""
    _refuse_impossible_clock(words[:max_words])
    for count in range(min(max_words, len(words)), 0, -1):
        moment = parse_when(" ".join(words[:count]), tz=tz, languages=languages, now=now)
        if moment is not None:
            return moment, list(words[count:])
    return None, list(words)


def next_local(hour: int, *, tz: str, now: datetime, days_ahead: int = 1) -> datetime:
    """`hour`:00 in `tz`, `days_ahead` days after today there (e.g. tomorrow 9:00)."""
    local_zone = zone(tz)
    local = now.astimezone(local_zone) + timedelta(days=days_ahead)
    return local.replace(hour=hour, minute=0, second=0, microsecond=0).astimezone(UTC)
