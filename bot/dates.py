"""Natural-language times (`next friday 10am`, `in 3 days`, `imorgon`, `zítra`) in a rep's zone."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta

import dateparser

from store.hours import zone

DEFAULT_HOUR = 9  # "friday" means the start of the working day, not midnight
_HAS_TIME = re.compile(r"\d|noon|midday|morning|afternoon|evening|hour|minute|min\b|middag|poledne", re.I)


def parse_when(
    text: str, *, tz: str, languages: Sequence[str] = (), now: datetime | None = None
) -> datetime | None:
    """The aware UTC moment `text` means for someone in `tz` at `now`, or None if it is not a time."""
    text = text.strip()
    if not text:
        return None
    now = now or datetime.now(UTC)
    local_zone = zone(tz)
    base = now.astimezone(local_zone).replace(tzinfo=None)
    langs = list(dict.fromkeys([*languages, "en"]))
    settings = {
        "TIMEZONE": str(local_zone),
        "RETURN_AS_TIMEZONE_AWARE": True,
        "PREFER_DATES_FROM": "future",
        "RELATIVE_BASE": base,
    }
    try:
        parsed = dateparser.parse(text, languages=langs, settings=settings)
    except (ValueError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.time() == time(0) and not _HAS_TIME.search(text):
        parsed = parsed.replace(hour=DEFAULT_HOUR)
    return parsed.astimezone(UTC)


def split_when(
    words: Sequence[str], *, tz: str, languages: Sequence[str] = (), now: datetime | None = None, max_words: int = 5
) -> tuple[datetime | None, list[str]]:
    """The longest leading run of `words` (up to `max_words`) that is a time, and the words after it."""
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
