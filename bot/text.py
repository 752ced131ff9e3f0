"""Safe text for Slack mrkdwn, and times people read."""

from __future__ import annotations

from datetime import datetime

from store.hours import zone


def plural(count: int, one: str, many: str | None = None) -> str:
    """`1 order`, `3 orders`; `many` where adding an s is wrong (`2 replies`)."""
    return f"{count} {one if count == 1 else (many or one + 's')}"


def escape(value: object) -> str:
    """Text from emails and users, made inert for mrkdwn: `<!channel>` and links cannot be forged.

    Slack asks for exactly these three characters to be escaped.
    """
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(value: str) -> str:
    return value.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


MAX_ID = 2**31 - 1  # PostgreSQL's INTEGER, the type of every id column


def whole_number(text: str, maximum: int = MAX_ID) -> int | None:
    """`text` (an id from a button or a form, a number of minutes) as 0..maximum, else None.

    ASCII digits only: `"²".isdigit()` is true but int() refuses it, and a 5,000-digit
    string is refused before int() would raise or the database overflow.
    """
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(maximum)):
        return None
    value = int(text)
    return value if value <= maximum else None


def clip(value: str, limit: int) -> str:
    """At most `limit` characters, cut on a word where possible, with an ellipsis."""
    value = " ".join(value.split())
    if len(value) <= limit:
        return value
    cut = value[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut) + "…"


def local_time(moment: datetime, tz: str | None) -> str:
    """`Fri 27 Nov 2026 10:00 CET` in the rep's zone."""
    local = moment.astimezone(zone(tz))
    return f"{local:%a %d %b %Y %H:%M} {local.tzname()}"


def age(since: datetime, now: datetime) -> str:
    """How long ago, briefly: `5m`, `3h`, `2d`."""
    seconds = max(0, int((now - since).total_seconds()))
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400 * 2:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def until(due: datetime, now: datetime) -> str:
    """`in 3h` or `4h overdue`."""
    if due >= now:
        return "in " + age(now, due)
    return age(due, now) + " overdue"
