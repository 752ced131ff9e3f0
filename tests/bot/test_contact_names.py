"""Commands name a contact or a company by the longest run of leading words that names one, so
names of several words stay whole and the words after them stay the note. Checked over every
contact and company of the sample that `rapport demo` imports."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.blocks import Reply
from bot.commands import BotOptions, Ctx, run_command
from bot.identity import rep_with_team
from bot.text import escape
from rapport.demo import sample_dir
from store.db import make_engine, upgrade
from store.models import Activity, Contact, FollowUp, Rep
from store.search import only_names
from store.validation import CATEGORIES
from tests.bot.conftest import all_text
from tests.imports import import_builtin

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
MANAGER = "karin.lindqvist@nordlys.example"  # sees every contact


def _rows(name: str) -> list[dict[str, str]]:
    return list(csv.DictReader((sample_dir() / name).read_text(encoding="utf-8").splitlines()))


CONTACTS = [(f"{row['first_name']} {row['last_name']}", row["email"]) for row in _rows("contacts.csv")]
COMPANIES = [row["name"] for row in _rows("companies.csv")]
# Words of notes, none a word of a sample contact's name (test_note_words_name_no_one): so the
# properties below hold for every draw. One letters and legal forms are words of companies' names.
NOTE_WORDS = ["discussed", "the", "delay", "renewal", "signed", "today", "send", "credit", "note", "offer",
              "price", "list", "asked", "for", "a", "call", "back", "in", "may", "a.s.", "AB", "&", "s.r.o."]


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The sample's reps, companies and contacts, imported as the demo does (no mail, no orders)."""
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('names') / 'rapport.db'}")
    upgrade(engine)
    for entity in ("reps", "companies", "contacts"):
        import_builtin(engine, entity, sample_dir() / f"{entity}.csv", now=NOW)
    yield engine
    engine.dispose()


def _run(engine: Engine, text: str) -> tuple[Reply, list[tuple[str, str, str | None]]]:
    """`/crm text` as the manager, rolled back: the reply, and what it wrote as (activity kind or
    "follow-up", its text, the contact's name: None for a company)."""
    with Session(engine) as session:
        rep = rep_with_team(session, session.exec(select(Rep.id).where(Rep.email == MANAGER)).one())
        assert rep is not None
        reply = run_command(Ctx(session, rep, NOW, BotOptions(categories=CATEGORIES)), text)
        session.flush()
        written = [(a.kind, a.summary, _name(session, a.contact_id)) for a in session.exec(select(Activity))]
        written += [("follow-up", f.note, _name(session, f.contact_id)) for f in session.exec(select(FollowUp))]
        session.rollback()
    return reply, written


def _name(session: Session, contact_id: int | None) -> str | None:
    contact = session.get(Contact, contact_id) if contact_id is not None else None
    return contact.name if contact is not None else None


@pytest.mark.parametrize(("name", "email"), CONTACTS)
def test_log_call_keeps_a_full_name_whole(sample: Engine, name: str, email: str) -> None:
    # regression: `log call peter stastny discussed the delay` logged "stastny discussed the delay"
    reply, written = _run(sample, f"log call {name} discussed the delay")
    assert reply.text == f"Logged a call with {name}"
    assert written == [("call", "discussed the delay", name)]


@pytest.mark.parametrize(("name", "email"), CONTACTS)
def test_remind_reads_the_time_after_a_full_name(sample: Engine, name: str, email: str) -> None:
    # regression: `remind peter stastny in 2 days send credit note` said "could not read a time"
    reply, written = _run(sample, f"remind {name} in 2 days send credit note")
    assert reply.text.startswith("I'll remind you")
    assert written == [("follow-up", "send credit note", name)]


@pytest.mark.parametrize(("name", "email"), CONTACTS)
def test_an_email_names_its_contact(sample: Engine, name: str, email: str) -> None:
    assert _run(sample, f"log call {email} quick chat")[1] == [("call", "quick chat", name)]


@pytest.mark.parametrize("company", COMPANIES)
def test_note_keeps_a_company_name_of_several_words_whole(sample: Engine, company: str) -> None:
    # regression: `note Uppsala BioLab AB renewal talks` saved "AB renewal talks"
    reply, written = _run(sample, f"note {company} renewal talks")
    assert reply.text == f"Note added to {escape(company)}: renewal talks"
    assert written == [("note", "renewal talks", None)]


@settings(max_examples=60, deadline=None)
@given(contact=st.sampled_from(CONTACTS), words=st.lists(st.sampled_from(NOTE_WORDS), min_size=1, max_size=6),
       lower=st.booleans())
def test_any_note_after_a_name_is_logged_whole(sample: Engine, contact: tuple[str, str], words: list[str],
                                               lower: bool) -> None:
    name = contact[0].lower() if lower else contact[0]
    assert _run(sample, f"log call {name} {' '.join(words)}")[1] == [("call", " ".join(words), contact[0])]


@settings(max_examples=60, deadline=None)
@given(company=st.sampled_from(COMPANIES), words=st.lists(st.sampled_from(NOTE_WORDS), min_size=1, max_size=6))
def test_any_note_after_a_company_is_noted_whole(sample: Engine, company: str, words: list[str]) -> None:
    assert _run(sample, f"note {company} {' '.join(words)}")[1] == [("note", " ".join(words), None)]


def test_note_words_name_no_one() -> None:
    # a note word naming a contact would make the properties above fail for some draws only
    assert [(word, name) for word in NOTE_WORDS for name, email in CONTACTS if only_names(f"{name} {word}", name, email)] == []


@pytest.mark.parametrize(("command", "named"), [
    ("log call petr stastny typo in the name", "Peter Šťastný"),  # a typo in a full name still names him
    ("log call peter sent the offer", "Peter Šťastný"),  # one word that names one contact
    ('log call "Mojca Novak" renewal', "Mojca Novak"),  # a quoted name
])
def test_short_typed_and_quoted_names(sample: Engine, command: str, named: str) -> None:
    [(_, _, contact)] = _run(sample, command)[1]
    assert contact == named


def test_a_company_of_several_contacts_is_reported_as_ambiguous(sample: Engine) -> None:
    # a company's words do not name its contacts in a run: one word still finds them, loosely
    reply, written = _run(sample, "log call uppsala biolab ab hello")
    text = all_text(reply.blocks)
    assert not reply.ok and "Several contacts match *uppsala*" in text
    assert "Johan Lindgren" in text and "Priya Raman" in text and written == []


@pytest.mark.parametrize("command", ["kind sabine partner", "kind sabine krüger partner"])
def test_kind_reads_partner_after_a_contact_of_weiss_and_partner(sample: Engine, command: str) -> None:
    # regression: "partner", a word of her company, was taken for Sabine's name: a usage error
    reply, written = _run(sample, command)
    assert reply.ok and "Sabine Krüger" in reply.text and "partner" in reply.text
    assert [(kind, contact) for kind, _, contact in written] == [("move", "Sabine Krüger")]


@pytest.mark.parametrize(("command", "expected"), [
    # regressions: "a" of "Vltava Diagnostics a.s." was taken for Petra's name
    ("log call petra a new order came in", ("call", "a new order came in", "Petra Horáková")),
    ("remind petra a week call", ("follow-up", "call", "Petra Horáková")),
    # ... and for the company's: "a.s." completes the name, the "a" after it is the note's
    ("note Vltava Diagnostics a.s. a call back", ("note", "a call back", None)),
    ("note Uppsala BioLab AB renewal talks", ("note", "renewal talks", None)),
    ("note officehub renewal talks", ("note", "renewal talks", None)),  # one word of a company
    ("log call peter stastny discussed the delay", ("call", "discussed the delay", "Peter Šťastný")),
])
def test_one_letter_and_legal_form_words_stay_the_note(sample: Engine, command: str,
                                                       expected: tuple[str, str, str | None]) -> None:
    reply, written = _run(sample, command)
    assert reply.ok, all_text(reply.blocks)
    assert written == [expected]
