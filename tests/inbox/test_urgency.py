"""Urgency from priority headers, words in each of our ten languages, deadlines and category;
and the SLA that urgency and category set."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from inbox.options import IngestOptions
from inbox.pipeline import FetchedMessage, process_batch
from inbox.urgency import DateMention, assess_urgency, sla_hours
from rapport.settings import load_settings
from rapport.wiring import Runtime, ingest_options
from store.db import session_scope
from store.models import Conversation
from tests.inbox.helpers import NOW, Result, mail

FRIDAY = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def level(text: str, *, headers: dict[str, str] | None = None, category: str = "order",
          dates: tuple[DateMention, ...] = ()) -> str:
    return assess_urgency(headers or {}, text, category=category, received_at=FRIDAY, dates=dates).level


@pytest.mark.parametrize(
    "headers",
    [{"importance": "high"}, {"x-priority": "1 (Highest)"}, {"x-priority": "2"}, {"priority": "urgent"},
     {"x-msmail-priority": "High"}],
)
def test_priority_headers_make_a_calm_mail_high(headers: dict[str, str]) -> None:
    assert level("Invoice copy\n\nPlease send a copy of invoice 2026-114.", headers=headers) == "high"


def test_normal_priority_headers_change_nothing() -> None:
    assert level("Invoice copy\n\nPlease send a copy.", headers={"importance": "normal", "x-priority": "3"}) == "normal"


HASTE = {
    "en": "We need the gloves urgently, please confirm today.",
    "de": "Wir brauchen die Handschuhe dringend, bitte bestätigen Sie.",
    "fr": "Merci de nous livrer au plus vite, le stock est vide.",
    "es": "Necesitamos los guantes lo antes posible.",
    "sv": "Det är brådskande, vi behöver handskarna.",
    "sk": "Prosím o naliehavé vybavenie objednávky.",
    "cs": "Je to naléhavé, potřebujeme rukavice.",
    "hu": "Sürgős lenne a kesztyű, kérem intézzék.",
    "sl": "Rokavice nujno potrebujemo.",
    "pl": "Prosimy pilnie o wysyłkę rękawic.",
}


@pytest.mark.parametrize("language", sorted(HASTE))
def test_words_that_ask_for_speed_make_it_high_in_each_language(language: str) -> None:
    assert level(f"Gloves\n\n{HASTE[language]}") == "high"


NO_HURRY = {
    "en": "Not urgent at all, whenever you have a minute.",
    "de": "Keine Eile, es ist nicht dringend.",
    "fr": "Ce n'est pas urgent, rien ne presse.",
    "es": "No es urgente, sin prisa.",
    "sv": "Ingen brådska, det är inte bråttom.",
    "sk": "Nie je to súrne, nesúri.",
    "cs": "Nespěchá to, není to naléhavé.",
    "hu": "Nem sürgős, ráér.",
    "sl": "Ni nujno, se ne mudi.",
    "pl": "Nie ma pośpiechu, to nie jest pilne.",
}


@pytest.mark.parametrize("language", sorted(NO_HURRY))
def test_no_hurry_is_low_although_it_holds_an_urgency_word(language: str) -> None:
    assert level(f"Question\n\n{NO_HURRY[language]}") == "low"


@pytest.mark.parametrize(
    "text",
    [
        "Production has stopped because the reagents did not arrive.",
        "Unsere Produktion steht, die Filter fehlen.",
        "Výroba stojí, chýbajú filtre.",
        "This is the third time I am writing about this invoice.",
        "Po raz trzeci prosimy o korektę faktury.",
    ],
)
def test_stopped_work_and_a_third_request_are_urgent(text: str) -> None:
    assert level(f"Help\n\n{text}") == "urgent"


def test_a_second_request_is_high() -> None:
    assert level("Re: order\n\nWe still have no answer to our question from Monday.") == "high"


def mention(text: str, written: str, value: str) -> DateMention:
    start = text.index(written)
    return DateMention(value, start, start + len(written))


def test_a_deadline_within_two_working_days_is_high_and_a_later_or_past_one_is_not() -> None:
    text = "Delivery\n\nPlease deliver by 23.11.2026."
    assert level(text, dates=(mention(text, "23.11.2026", "2026-11-23"),)) == "high"  # Monday, the next working day
    assert level(text, dates=(mention(text, "23.11.2026", "2026-11-26"),)) == "normal"  # four working days away
    assert level(text, dates=(mention(text, "23.11.2026", "2026-11-18"),)) == "normal"  # past: a reference


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("Neue Lieferadresse ab 1. Dezember\n\nBitte liefern Sie ab dem 23.11. an unsere neue Adresse.", "23.11."),
        ("New address\n\nFrom 23 November our office moves to Main Street 5.", "23 November"),
        ("Nová adresa\n\nOd 23. 11. máme novou adresu skladu.", "23. 11."),
        ("Új cím\n\nNovember 23-tól új címre kérjük a szállítást.", "November 23"),
    ],
)
def test_a_date_that_starts_something_is_not_a_deadline(text: str, written: str) -> None:
    """Regression: "Neue Lieferadresse ab 1. Dezember" in the sample mailbox came out high."""
    assert level(text, dates=(mention(text, written, "2026-11-23"),)) == "normal"


def test_a_thank_you_is_low_even_when_it_recalls_an_urgent_order() -> None:
    text = "Thanks\n\nThank you for handling our urgent order so quickly yesterday!"
    assert level(text, category="feedback") == "low"


def test_an_angry_complaint_is_high_and_a_calm_one_normal() -> None:
    assert level("Broken\n\nThis is unacceptable, the boxes arrived crushed.", category="complaint") == "high"
    assert level("Broken\n\nTwo boxes arrived crushed, please advise.", category="complaint") == "normal"


def test_the_reason_names_what_was_found() -> None:
    verdict = assess_urgency({"importance": "high"}, "x\n\ny", category="order", received_at=FRIDAY)
    assert verdict.reason == "marked high priority by the sender"


@pytest.mark.parametrize(("text", "reason"), [
    ("Meškanie\n\nTovar stále nemáme, prosím o informáciu.", "still waiting (“stále nemáme”)"),
    ("Straße gesperrt\n\nDie Straße ist zu, wir brauchen die Ware schnellstmöglich.",
     "asks for speed (“schnellstmöglich”)"),
    ("Ingen brådska\n\nIngen brådska, men när kommer katalogen?", "no hurry (“Ingen brådska”)"),
])
def test_regression_the_reason_quotes_the_customer_s_words_not_their_folded_form(text: str, reason: str) -> None:
    """The demo showed "still waiting (“stale nemame”)" for a mail that said "stále nemáme"."""
    assert assess_urgency({}, text, category="delivery", received_at=FRIDAY).reason == reason


def test_sla_follows_urgency_and_a_thank_you_owes_no_reply() -> None:
    options = IngestOptions(sla_hours=8.0)
    assert sla_hours(options, "order", "normal") == 8.0
    assert sla_hours(options, "order", "urgent") == 2.0
    assert sla_hours(options, "order", "high") == 4.0
    assert sla_hours(options, "feedback", "low") is None
    assert sla_hours(options, "feedback", "high") == 4.0  # a pressing mail is answered whatever its category
    tight = IngestOptions(sla_hours=8.0, sla_hours_by_category={"complaint": 1.0})
    assert sla_hours(tight, "complaint", "high") == 1.0


class OurModel:
    """A team's own model (`rapport nlp train` on its labels): every mail is a German return."""

    def classify(self, texts: list[str]) -> list[Result]:
        return [Result("returns_de", 0.9, "de") for _ in texts]


def test_a_custom_model_s_category_gets_its_own_sla_from_rapport_toml(sqlite_engine: Engine, tmp_path: Path) -> None:
    config = tmp_path / "rapport.toml"
    config.write_text('[nlp]\nmodel = "our-model"\n\n[assignment]\nsla_hours_by_category = { returns_de = 24 }\n',
                      encoding="utf-8")
    rt = Runtime.load(load_settings(config_file=config, database_url=f"sqlite:///{tmp_path / 'rapport.db'}"))
    options = replace(ingest_options(rt), now=NOW)
    with session_scope(sqlite_engine) as session:
        process_batch(session, [FetchedMessage(mail(subject="Rücksendung", body="Wie schicke ich das zurück?"),
                                               "support@shop.example", "INBOX")],
                      checkpoint=None, options=options, classifier=OurModel())
    with Session(sqlite_engine) as session:
        [conversation] = session.exec(select(Conversation)).all()
    assert conversation.category == "returns_de"
    assert conversation.sla_due_at == conversation.opened_at + timedelta(hours=24)  # not the default 8
