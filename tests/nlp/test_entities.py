"""Entities in realistic mails (.eml fixtures) with normalised values."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import spacy
from spacy.language import Language

import nlp
from nlp.pipeline import ENTITY_PIPE

FIXTURES = Path(__file__).parent.parent / "fixtures" / "nlp"


def mail_text(name: str) -> str:
    """Subject and body, as the inbox hands them to the classifier."""
    message = email.message_from_bytes((FIXTURES / name).read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return f"{message['subject']}\n\n{body.get_content()}"


def entity_pipeline(patterns: list[nlp.EntityPattern] | None = None) -> Language:
    pipeline = spacy.blank("en")
    pipeline.add_pipe(ENTITY_PIPE, config={"patterns": [[p.label, p.pattern] for p in patterns or []]})
    return pipeline


def found(text: str, pipeline: Language | None = None) -> set[tuple[str, str, str]]:
    doc = (pipeline or entity_pipeline())(text)
    return {(ent.label_, ent.text, ent._.value) for ent in doc.ents}


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        (
            "order_not_arrived_en.eml",
            {
                ("ORDER_NUMBER", "48213", "48213"),
                ("DATE", "12 November 2026", "2026-11-12"),
                ("AMOUNT", "€120", "EUR 120.00"),
                ("URL", "https://track.example.com/p/48213", "https://track.example.com/p/48213"),
                ("DATE", "14/11/2026", "2026-11-14"),
                ("PHONE", "+44 20 7946 0958", "+442079460958"),
                ("EMAIL", "anna.smith@example.org", "anna.smith@example.org"),
            },
        ),
        (
            "faktura_sk.eml",
            {
                ("ORDER_NUMBER", "2026-5512", "2026-5512"),
                ("AMOUNT", "1 200,50 Kč", "CZK 1200.50"),
                ("DATE", "3. novembra 2026", "2026-11-03"),
                ("INVOICE_NUMBER", "FV20261187", "FV20261187"),
                ("PHONE", "0905 123 456", "0905123456"),
            },
        ),
        (
            "bestellung_de.eml",
            {
                ("ORDER_NUMBER", "778812", "778812"),
                ("AMOUNT", "89,90 EUR", "EUR 89.90"),
                ("AMOUNT", "79,90 EUR", "EUR 79.90"),
                ("INVOICE_NUMBER", "RE-2026-0042", "RE-2026-0042"),
                ("DATE", "20.11.2026", "2026-11-20"),
                ("DATE", "1. Dezember 2026", "2026-12-01"),
            },
        ),
        (
            "reklamation_sv.eml",
            {
                ("ORDER_NUMBER", "ORD-99120", "ORD-99120"),
                ("DATE", "2 november 2026", "2026-11-02"),
                ("AMOUNT", "SEK 499", "SEK 499.00"),
                ("PHONE", "+46 70 123 45 67", "+46701234567"),
            },
        ),
    ],
)
def test_entities_in_realistic_mail(fixture: str, expected: set[tuple[str, str, str]]) -> None:
    assert found(mail_text(fixture)) == expected


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("total €120", "EUR 120.00"),
        ("total 120 EUR", "EUR 120.00"),
        ("celkom 1 200,50 Kč", "CZK 1200.50"),
        ("pris SEK 499", "SEK 499.00"),
        ("charged $1,299.99 twice", "USD 1299.99"),
        ("összesen 12 500 Ft", "HUF 12500.00"),
        ("kwota 49,99 zł", "PLN 49.99"),
        ("Betrag 1.200,00 €", "EUR 1200.00"),
    ],
)
def test_amount_values(text: str, value: str) -> None:
    assert {v for label, _, v in found(text) if label == "AMOUNT"} == {value}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("order #12345 is late", "12345"),
        ("Bestellnummer 12345", "12345"),
        ("objednávka č. 12345", "12345"),
        ("n° de commande 12345", "12345"),
        ("numer zamówienia 12345", "12345"),
        ("see ORD-12345", "ORD-12345"),
    ],
)
def test_order_number_defaults(text: str, value: str) -> None:
    assert {v for label, _, v in found(text) if label == "ORDER_NUMBER"} == {value}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("on 2026-11-23", "2026-11-23"),
        ("am 23. November 2026", "2026-11-23"),
        ("le 23 novembre 2026", "2026-11-23"),
        ("el 23 de noviembre de 2026", "2026-11-23"),
        ("dne 23. listopadu 2026", "2026-11-23"),
        ("2026. november 23.", "2026-11-23"),
        ("dnia 23 listopada 2026", "2026-11-23"),
        ("November 23, 2026", "2026-11-23"),
        ("11/23/2026", "2026-11-23"),
        ("by 5 March", "--03-05"),
    ],
)
def test_dates_in_several_languages(text: str, value: str) -> None:
    assert {v for label, _, v in found(text) if label == "DATE"} == {value}


def test_no_entities_in_plain_prose() -> None:
    assert found("Thanks a lot for your help, see you next week. e.g. this is fine.") == set()


def test_configured_pattern_adds_an_entity() -> None:
    pipeline = entity_pipeline([nlp.EntityPattern("ORDER_NUMBER", r"\bSO/(?P<value>\d{6})\b")])

    # The span covers whole tokens; the value is the pattern's "value" group.
    assert ("ORDER_NUMBER", "SO/481516", "481516") in found("Status of SO/481516 please", pipeline)


def test_bad_configured_pattern_names_itself() -> None:
    with pytest.raises(nlp.EntityPatternError, match=r"ORDER_NUMBER 'ORD-\(\\d\+'"):
        entity_pipeline([nlp.EntityPattern("ORDER_NUMBER", r"ORD-(\d+")])


def test_classifier_passes_patterns_through(model_cache: Path) -> None:
    clf = nlp.load_classifier(
        None, cache_dir=model_cache, entity_patterns=[nlp.EntityPattern("TICKET", r"\bTCK-\d{4}\b")]
    )

    entities = clf.classify(["Re: TCK-2211 refund still missing"])[0].entities

    assert nlp.Entity("TICKET", "TCK-2211", 4, 12, "TCK-2211") in entities


def test_bad_pattern_in_load_classifier_is_a_model_error(model_cache: Path) -> None:
    with pytest.raises(nlp.ModelError, match=r"entity pattern ORDER_NUMBER 'ORD-\(\\d\+'"):
        nlp.load_classifier(
            None, cache_dir=model_cache, entity_patterns=[nlp.EntityPattern("ORDER_NUMBER", r"ORD-(\d+")]
        )
