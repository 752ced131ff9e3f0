"""Field checks shared by CSV imports and `rapport.toml`: one rule, one message."""

from __future__ import annotations

import calendar
import difflib
import re
from collections.abc import Mapping, Sequence
from datetime import MAXYEAR, UTC, date, datetime, time, timedelta
from decimal import Decimal

from babel.numbers import is_currency

from store.hours import UnknownZone, parse_working_hours, zone
from store.models import ContactKind, Role, Stage

EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
# The categories of Rapport's own model (nlp.CATEGORIES; tests/test_contract.py): a team's own
# model has its own, which the caller passes where a category is checked.
CATEGORIES = (
    "order",
    "cancellation",
    "delivery",
    "billing",
    "refund",
    "complaint",
    "feedback",
    "account",
    "general",
    "sales",
    "partnership",
)
FREE_MAIL_DOMAINS = frozenset(
    """gmail.com googlemail.com outlook.com hotmail.com live.com msn.com yahoo.com yahoo.de yahoo.fr
    yahoo.co.uk ymail.com icloud.com me.com mac.com aol.com gmx.com gmx.de gmx.net gmx.at web.de
    t-online.de mail.com proton.me protonmail.com zoho.com yandex.com yandex.ru mail.ru seznam.cz
    email.cz centrum.cz centrum.sk azet.sk post.sk zoznam.sk freemail.hu citromail.hu gmail.hu
    siol.net gmail.si wp.pl o2.pl onet.pl interia.pl op.pl telia.com hotmail.se spray.se bredband.net
    laposte.net orange.fr free.fr wanadoo.fr libero.it virgilio.it""".split()
)


class Invalid(ValueError):
    """A value that cannot be accepted; the message says why in a person's words."""


def normal_email(value: str) -> str:
    """An address as Rapport compares it: trimmed, without angle brackets, in lower case."""
    return value.strip().strip("<>").lower()


def check_email(value: str) -> str:
    email = normal_email(value)
    if not EMAIL.match(email):
        raise Invalid(f"invalid email address {value.strip()!r}")
    return email


def email_domain(email: str) -> str:
    return email.rsplit("@", 1)[-1].lower()


def is_free_mail(domain: str) -> bool:
    return domain.lower() in FREE_MAIL_DOMAINS


def check_domain(value: str) -> str:
    domain = value.strip().lower()
    for prefix in ("https://", "http://"):
        domain = domain.removeprefix(prefix)
    domain = domain.removeprefix("www.").split("/", 1)[0].lstrip("@")
    if not re.fullmatch(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+", domain):
        raise Invalid(f"invalid domain {value.strip()!r}")
    return domain


def check_timezone(value: str) -> str:
    try:
        zone(value.strip())
    except UnknownZone as exc:
        raise Invalid(str(exc)) from None
    return value.strip()


def check_working_hours(value: str) -> str:
    try:
        parse_working_hours(value)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    return value.strip()


# Words people write for a skill -> the category it means.
SKILL_SYNONYMS = {
    "invoice": "billing",
    "invoices": "billing",
    "invoicing": "billing",
    "payment": "billing",
    "payments": "billing",
    "shipping": "delivery",
    "returns": "refund",
    "refunds": "refund",
    "orders": "order",
    "complaints": "complaint",
    "partners": "partnership",
    "partner": "partnership",
    "support": "general",
}


def check_category(value: str, categories: Sequence[str]) -> str:
    """`value` when it is one of `categories`: the model's, which the caller knows (store knows no model)."""
    if value not in categories:
        raise Invalid(f"unknown category {value!r}; known categories: {', '.join(categories)}")
    return value


def read_skills(values: list[str], categories: Sequence[str]) -> tuple[list[str], list[str]]:
    """(skills as categories, words that are none of `categories`): `invoice|payment` is `billing`, once.
    A word that is a category is that category: a model's own `support` is not Rapport's `general`."""
    known: list[str] = []
    unknown: list[str] = []
    by_word = {name.lower(): name for name in categories}
    for value in values:
        word = value.strip().lower()
        category = by_word.get(word) or by_word.get(SKILL_SYNONYMS.get(word, word))
        if category is None:
            unknown.append(value.strip())
        elif category not in known:
            known.append(category)
    return known, unknown


def nearest(value: str, words: Mapping[str, str], cutoff: float = 0.6) -> str | None:
    """The word meant by `value` when it is a near miss of one of `words` (compared form: the
    form to show), for a "did you mean"; None when none is near enough (difflib's ratio)."""
    close = difflib.get_close_matches(value, list(words), n=1, cutoff=cutoff)
    return words[close[0]] if close else None


def unknown_skills(unknown: Sequence[str], categories: Sequence[str], *, left_out: bool = False) -> str:
    """What is wrong with skills that `read_skills` found to be no category (`left_out`: the rest was kept)."""
    return f"unknown skills {', '.join(unknown)}{' left out' if left_out else ''}; known skills: {', '.join(categories)}"


def check_choice(value: str, allowed: type[ContactKind] | type[Stage] | type[Role], what: str) -> str:
    key = value.strip().lower().replace(" ", "_").replace("-", "_")
    names = [m.value for m in allowed]
    if key not in names:
        raise Invalid(f"unknown {what} {value!r}; expected one of {', '.join(names)}")
    return key


# Order.amount is Numeric(14, 2): twelve digits before the point.
MAX_AMOUNT = Decimal(10) ** 12
PLAIN_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")
# With no whole part, a separator before one or two digits is the decimal point (`.50`, `,5`),
# as in nlp.entities; the match is the sign, and a 0 goes after it.
LEADING_POINT = re.compile(r"^([+-]?)(?=[.,]\d{1,2}$)")


def parse_amount(value: str) -> Decimal:
    """Amounts as CRMs, spreadsheets and mail write them: `1200.50`, `1 200,50`, `1,200.50`, `1.200,50`,
    `.50` (0.50), also with the currency written beside them (`1.200 Kč`, `1.200,50 €`).

    The same reading as the mail entity extractor's (`nlp.entities.parse_amount`; tests/test_contract.py
    holds them to the same answers): a lone separator before three digits groups thousands (`1.200`).
    """
    # A currency before or after the number (`1.200 Kč`, `€ 1,200.50`, `kr. 50`, `1.200,-`) is not part of
    # it; a dot ending a currency word (`kr.`) is its abbreviation's, any other is the number's (`$.50`).
    digits = re.sub(r"^(?:[^\d+.,-]*[^\W\d_]\.|[^\d+.,-]*)|[^\d]+$", "", re.sub(r"[\s'’]", "", value))
    digits = LEADING_POINT.sub(r"\g<1>0", digits)
    last = max(digits.rfind("."), digits.rfind(","))
    # a number that still starts with a separator (`.500`) is none: PLAIN_NUMBER refuses it below
    if last >= 0 and digits.lstrip("+-")[:1].isdigit():
        decimals = len(digits) - last - 1
        grouped = (decimals == 3 and len(re.findall(r"[.,]", digits)) == 1) or decimals not in (1, 2)
        whole = (digits if grouped else digits[:last]).replace(".", "").replace(",", "")
        digits = whole if grouped else f"{whole}.{digits[last + 1:]}"
    # Digits only: Decimal would also read `1e9`, `NaN` and `Infinity`, which no one writes for money.
    if not PLAIN_NUMBER.fullmatch(digits):
        raise Invalid(f"amount {value!r} is not a number written in digits, such as 1200.50")
    amount = Decimal(digits)
    # Checked before quantize, which raises InvalidOperation past 28 digits.
    if abs(amount) >= MAX_AMOUNT:
        raise Invalid(f"amount {value!r} is too large (at most 999,999,999,999.99)")
    return amount.quantize(Decimal("0.01"))


def parse_date(value: str) -> date:
    """ISO dates (also with a time), `dd.mm.yyyy` and `yyyy/mm/dd`; ambiguous `01/02/2026` is refused."""
    text = value.strip()
    for fmt in ("%Y-%m-%d", "%d.%m.%Y", "%Y/%m/%d", "%d. %m. %Y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(text).date()
    except ValueError:
        raise Invalid(f"date {value!r} not understood; use YYYY-MM-DD") from None


# A date in digits is read one way, and nlp.entities reads the forms it finds in mail alike
# (tests/test_contract.py): year first with four digits (2026-12-31, 2026/12/31); otherwise
# the day comes first, and a slashed date is month first only where day first cannot be a
# date and month first can (the US "11/23/2026").
_NUMERIC_DATES = (
    re.compile(r"(?P<y>\d{4})([-/])(?P<m>\d{1,2})\2(?P<d>\d{1,2})"),
    re.compile(r"(?P<d>\d{1,2})\.\s?(?P<m>\d{1,2})(?:\.(?:\s?(?P<y>\d{4}))?)?"),
    re.compile(r"(?P<a>\d{1,2})/(?P<b>\d{1,2})(?:/(?P<y>\d{4}))?"),
)
# 29 February comes round within eight years (2096, then 2104).
_YEARS_AHEAD = 8


def parse_numeric_date(value: str, *, today: date | None) -> date | None:
    """The date `value` writes in digits (`2026-12-31`, `31.12.`, `31.12.2026`, `31/12`), or
    None if it is not written so; without a year, the first such day from `today` on (with
    `today` None, the year must be written). A day that does not exist is refused: `31.02.`
    raises Invalid("31 February is not a date"); so does one after 9999 (`1.1.` on 31.12.9999)."""
    text = value.strip()
    match = next(filter(None, (pattern.fullmatch(text) for pattern in _NUMERIC_DATES)), None)
    if match is None:
        return None
    parts = match.groupdict()
    if parts.get("a") is not None:
        first, second = int(parts["a"]), int(parts["b"])
        day, month = (second, first) if second > 12 >= first else (first, second)
    else:
        day, month = int(parts["d"]), int(parts["m"])
    if not 1 <= month <= 12:
        raise Invalid(f"{text} is not a date: there is no month {month}")
    name = calendar.month_name[month]
    if not 1 <= day <= calendar.monthrange(2000, month)[1]:  # 2000: a leap year
        raise Invalid(f"{day} {name} is not a date")
    if parts["y"] is not None:
        year = int(parts["y"])
        if year == 0:
            raise Invalid(f"{text} is not a date: there is no year 0")
        if day > calendar.monthrange(year, month)[1]:
            raise Invalid(f"{day} {name} {year} is not a date")
        return date(year, month, day)
    if today is None:
        raise Invalid(f"{text} has no year")
    years = range(today.year, min(today.year + _YEARS_AHEAD, MAXYEAR) + 1)
    days = (date(year, month, day) for year in years if day <= calendar.monthrange(year, month)[1])
    found = next((found for found in days if found >= today), None)
    if found is None:  # "1.1." on 31 December 9999
        raise outside_calendar(text)
    return found


def outside_calendar(text: str) -> Invalid:
    """The error for a date or moment before year 1 or after 9999, which `datetime` cannot hold."""
    return Invalid(f"{text} is outside the calendar (years 1 to {MAXYEAR})")


def check_order_amount(value: str) -> Decimal:
    """An order's amount: `parse_amount`, and not below zero (a refund is not an order)."""
    amount = parse_amount(value)
    if amount < 0:
        raise Invalid(f"amount {value!r} is negative: a refund is not an order")
    return amount


# UTC+14 (Kiribati) starts each day first: a date after its today has not begun anywhere.
EARLIEST_ZONE = timedelta(hours=14)


def check_order_date(value: str, now: datetime) -> date:
    """An order's date: `parse_date`, and not after today (today anywhere on Earth at `now`)."""
    day = parse_date(value)
    if day > (now.astimezone(UTC) + EARLIEST_ZONE).date():
        raise Invalid(f"order date {value!r} is in the future (today is {now.astimezone(UTC).date()})")
    return day


# A date in digits and the time of day CRM reports write after it (`5/17/2023 10:23 AM`,
# `17.05.2023 10:23`, `17/05/2023, 10:23:45`).
_DATE_AND_TIME = re.compile(
    r"(?P<day>.+?)(?:,?\s+(?P<h>\d{1,2}):(?P<min>\d{2})(?::(?P<s>\d{2}))?(?:\s*(?P<half>[AaPp][Mm]))?)?"
)


def check_created_at(value: str, now: datetime) -> datetime:
    """When a CRM created a record, aware UTC, and not after `now`. Read as ISO 8601
    (`2023-05-17 10:23`, `2023-05-17T10:23:45.000+0000`, `...Z`) or as a date in digits
    with its year (`parse_numeric_date`'s rule) and maybe a time (`5/17/2023 10:23 AM`).

    A time without a UTC offset is taken as UTC; it may be local time east of UTC, so
    up to 14 hours after `now` counts as `now`, not as the future."""
    text = value.strip()
    try:
        moment = _written_moment(text)
        ahead = EARLIEST_ZONE if moment.tzinfo is None else timedelta(0)
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (Invalid, OverflowError) as exc:
        raise Invalid(f"creation date {text!r}: {exc}") from None
    now = now.astimezone(UTC)
    if moment > now + ahead:
        raise Invalid(f"creation date {text!r} is in the future")
    return min(moment, now)


def _written_moment(text: str) -> datetime:
    """The moment `text` writes (naive when it gives no UTC offset); Invalid when it writes none."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    match = _DATE_AND_TIME.fullmatch(text)
    day = parse_numeric_date(match["day"], today=None) if match else None
    if match is None or day is None:
        raise Invalid("not a date we read")
    hour, minute, second = (int(match[part] or 0) for part in ("h", "min", "s"))
    if match["half"]:  # 12 AM is midnight, 12 PM noon
        if not 1 <= hour <= 12:
            raise Invalid(f"{hour} {match['half']} is not a time of day")
        hour = hour % 12 + (12 if match["half"].lower() == "pm" else 0)
    try:
        return datetime.combine(day, time(hour, minute, second))
    except ValueError:
        raise Invalid(f"{match['h']}:{match['min']} is not a time of day") from None


def check_currency(value: str) -> str:
    """An ISO 4217 currency code, upper case (`eur` is EUR); Babel's CLDR data knows the codes."""
    code = value.strip().upper()
    if not is_currency(code):
        raise Invalid(f"currency {value!r} is not an ISO 4217 code such as EUR, SEK or USD")
    return code


def split_list(value: str | None) -> list[str]:
    """`a|b|c` (also `;`) into a clean list."""
    if not value:
        return []
    return [part.strip() for part in re.split(r"[|;]", value) if part.strip()]
