"""The entity patterns are written for speed (digit-led, gated, month-first dates found from
the day): property tests hold each fast form to its plain, readable form on texts made of the
pieces that matter (digits, separators, month names, currency, keywords)."""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from nlp import entities
from nlp.entities import _DATE_RES, _MONTH, _MONTH_FIRST_DATE, _PHONE_RE, DEFAULT_PATTERNS

# What touches an entity on either side decides whether it is one: every fragment is tried
# with the characters that can stand next to it.
EDGES = ["", " ", "x", "é", "_", "1", "0", ".", "/", "-", "+", "(", ":", ": ", ". ", "\n"]
FRAGMENTS = [
    "2026-11-12", "12.11.2026", "3. 4. 2026", "11/12/2026", "12 November 2026", "3rd de marzo",
    "2026. november 12.", "November 12, 2026", "dec. 3", "Nov 30th", "ledna 5", "xmärz 4",
    "ORD-12345", "ORD1234", "INV12345", "INV-1234", "12345 sz. rendelés", "1234számú rendelés",
    "+44 20 7946 0958", "0044 20 7946", "(555) 123-4567", "0905 123 456", "€120", "1 200,50 Kč",
    "12", "2026", "nov", "Tel", "order no. 77",
]  # fmt: skip
texts = st.lists(
    st.tuples(st.sampled_from(EDGES), st.sampled_from(FRAGMENTS), st.sampled_from(EDGES)).map("".join),
    max_size=6,
).map("".join)

# The readable forms: a word boundary before the first digit or literal.
PLAIN_DATES = (
    r"\b(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})\b",
    r"(?<![\d.])(?P<d>\d{1,2})\.\s?(?P<m>\d{1,2})\.\s?(?P<y>\d{4})\b",
    r"(?<![\d/])(?P<a>\d{1,2})/(?P<b>\d{1,2})/(?P<y>\d{4})\b",
    rf"(?i)\b(?P<d>\d{{1,2}})(?:\.|st|nd|rd|th|er)?\s(?:de\s)?(?P<mn>{_MONTH})\.?(?:,?\s(?:de\s)?(?P<y>\d{{4}}))?\b",
    rf"(?i)\b(?P<y>\d{{4}})\.\s?(?P<mn>{_MONTH})\s(?P<d>\d{{1,2}})\.?",
)
PLAIN_IDS = {
    0: r"\b(?P<value>ORD-?\d{4,})\b",
    2: r"(?i)\b(?P<value>\d{4,})\s*(?:sz\.|számú)\s*rendelés",
    3: r"\b(?P<value>INV-?\d{4,})\b",
}


def spans(regex: re.Pattern[str], text: str) -> list[tuple[int, int, dict[str, str | None]]]:
    return [(m.start(), m.end(), m.groupdict()) for m in regex.finditer(text)]


@settings(max_examples=300)
@given(texts)
def test_digit_led_dates_match_their_plain_form(text: str) -> None:
    for fast, plain in zip(_DATE_RES, PLAIN_DATES, strict=True):
        assert spans(fast, text) == spans(re.compile(plain), text)


@settings(max_examples=300)
@given(texts)
def test_literal_led_order_and_invoice_numbers_match_their_plain_form(text: str) -> None:
    for index, plain in PLAIN_IDS.items():
        assert spans(re.compile(DEFAULT_PATTERNS[index].pattern), text) == spans(re.compile(plain), text)


@settings(max_examples=300)
@given(texts)
def test_month_first_dates_are_those_a_full_scan_finds(text: str) -> None:
    found = [(m.start(), m.end(), m.groupdict()) for m in entities.month_first_dates(text)]
    assert found == spans(_MONTH_FIRST_DATE, text)


@settings(max_examples=300)
@given(texts)
@example("Call 0044 20 7946 0958")
@example("Tel. 0905 123 456")
def test_phone_gate_never_hides_a_phone(text: str) -> None:
    if _PHONE_RE.search(text):
        assert entities.may_have_phone(text)


def test_month_first_dates_in_mail_text() -> None:
    text = "Hi, delivery was promised for November 12, 2026, then for dec. 3 and again Nov 30th."
    assert [m.group(0) for m in entities.month_first_dates(text)] == [
        "November 12, 2026",
        "dec. 3",
        "Nov 30th",
    ]
