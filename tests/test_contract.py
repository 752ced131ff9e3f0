"""Names the packages share without importing each other (store and nlp import nothing of ours)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import nlp
from nlp.entities import find_amounts, find_dates
from nlp.entities import parse_amount as nlp_amount
from store.validation import CATEGORIES as ROUTABLE
from store.validation import Invalid, parse_numeric_date
from store.validation import parse_amount as store_amount


def test_the_classifier_and_the_routing_rules_know_the_same_categories() -> None:
    # a category the model predicts but reps cannot own (or the reverse) would never route
    assert tuple(nlp.CATEGORIES) == ROUTABLE


def test_the_configuration_and_the_classifier_default_to_the_same_languages() -> None:
    # a route's language is checked against [nlp] languages, whose default must be what is detected
    from rapport.config import NlpConfig

    assert tuple(NlpConfig().languages) == nlp.DEFAULT_LANGUAGES


AMOUNTS = ["1200.50", "1 200,50", "1,200.50", "1.200,50", "1.200", "1,200", "120", "1,5", "12.345", "1'200.50",
           "1\u00a0200,50", "1.234.567,89", "1,234,567.89", "0.5", "99,99", ".5", ",5", "-.50", "+,50"]


@pytest.mark.parametrize("text", AMOUNTS)
def test_the_importer_and_the_mail_extractor_read_amounts_alike(text: str) -> None:
    # one order amount in a CSV and in a customer's mail must be the same number
    assert store_amount(text) == nlp_amount(text)


@given(st.integers(0, 10**9), st.integers(0, 99), st.sampled_from([(",", "."), (".", ","), (" ", ","), ("", ".")]),
       st.booleans())
@example(0, 50, (",", "."), True)  # regression: the importer read `.50` as 50.00, the extractor as no amount
@example(0, 50, (".", ","), True)  # `,50`
def test_amounts_written_any_usual_way_read_alike(whole: int, cents: int, style: tuple[str, str],
                                                  no_whole_part: bool) -> None:
    group, point = style
    whole = 0 if no_whole_part else whole
    text = ("" if no_whole_part else f"{whole:,}".replace(",", group)) + f"{point}{cents:02d}"
    assert store_amount(text) == nlp_amount(text) == Decimal(f"{whole}.{cents:02d}")


@pytest.mark.parametrize("text", [".500", ",500", ".5000", ".1.200", ".1,200.50", "-.500"])
def test_a_separator_before_any_digit_is_a_decimal_point_only_before_one_or_two_digits(text: str) -> None:
    # `.500` could be half or five hundred: neither reader guesses
    assert nlp_amount(text) is None
    with pytest.raises(Invalid, match="not a number written in digits"):
        store_amount(text)


@pytest.mark.parametrize(
    ("text", "amount"),
    [("1.200 Kč", "1200.00"), ("1.200,50 €", "1200.50"), ("€1,200.50", "1200.50"), ("EUR 1 200,50", "1200.50"),
     ("1 200,50 Kč", "1200.50"), ("$1,200", "1200.00")],
)
def test_an_amount_with_its_currency_reads_alike_in_an_import_and_in_a_mail(text: str, amount: str) -> None:
    # regression: `1.200` was 1.20 for the order importer and 1200 for the mail entity extractor
    found = find_amounts(f"The total is {text} as agreed.")
    assert [value.split()[1] for *_, value in found] == [amount]
    assert store_amount(text) == Decimal(amount)


@given(st.integers(0, 35), st.integers(0, 35), st.integers(1990, 2100),
       st.sampled_from(["{a}.{b}.{y}", "{a}/{b}/{y}", "{y}-{b}-{a}"]))
@example(5, 13, 2026, "{a}/{b}/{y}")  # US order, 13 May
@example(31, 2, 2026, "{a}.{b}.{y}")  # no such day in either
def test_a_date_in_digits_reads_alike_in_a_reminder_and_in_a_mail(a: int, b: int, year: int, style: str) -> None:
    # one day and month order: a rep's "3/5/2027" is the day a customer's mail means by it
    text = style.format(a=a, b=b, y=year)
    in_mail = [value for *_, value in find_dates(f"Due {text} please")]
    try:
        in_reminder = [str(parse_numeric_date(text, today=date(2026, 1, 1)))]
    except Invalid:
        in_reminder = []
    assert in_reminder == in_mail


@given(st.from_regex(r"\A[1-9](?:[.,]\d{1,3})?[eE][+-]?\d{1,2}\Z"))
def test_scientific_notation_is_no_amount_for_the_importer_or_the_mail_extractor(text: str) -> None:
    # regression: an order file's `1e9` was imported as 1,000,000,000.00 EUR
    assert nlp_amount(text) is None
    with pytest.raises(Invalid, match="not a number written in digits"):
        store_amount(text)
