"""`rapport privacy export|erase|status|expire` and `rapport audit` from the terminal."""

from __future__ import annotations

import json
import re
import textwrap
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from rapport.cli.main import app
from store.activities import log_activity
from store.audit import Actor, record_audit
from store.consent import record_consent
from store.db import make_engine, session_scope
from store.exporting import neutralise_cell
from store.followups import create_followup
from store.models import (
    Assignment,
    Company,
    CompanyDomain,
    Contact,
    ContactEmail,
    Conversation,
    Correction,
    Message,
    Order,
    Rep,
)
from store.privacy import export_person
from store.privacy_text import readable_export, record_name
from store.stages import move_contact
from store.surveys import SurveyPolicy, create_survey, record_answer
from store.types import utcnow
from tests.cli.helpers import company_owned_by

ADDRESS = "ola.nordmann@kunde.example"
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def run(*args: str, input: str | None = None) -> str:
    result = CliRunner().invoke(app, list(args), input=input)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
def person(database: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.setenv("RAPPORT_PRIVACY_KEY", "cli-test-key")
    (tmp_path / "rapport.toml").write_text("[privacy.retention_days]\nmessage_bodies = 30\n", encoding="utf-8")
    engine = make_engine(database)
    with session_scope(engine) as session:
        contact = Contact(name="Ola Nordmann")
        session.add(contact)
        session.flush()
        session.add(ContactEmail(contact_id=contact.id, email=ADDRESS, is_primary=True))
        session.add(Message(message_id="<old@kunde.example>", contact_id=contact.id, from_email=ADDRESS,
                            text="An old question", received_at=utcnow() - timedelta(days=60)))
    return database


def test_export_erase_status_and_audit(person: str, tmp_path: Path) -> None:
    out = run("privacy", "export", ADDRESS, "--out", str(tmp_path / "ola"))
    assert f"Written to {tmp_path / 'ola.json'} and {tmp_path / 'ola.txt'}." in " ".join(out.split())
    exported = json.loads((tmp_path / "ola.json").read_text(encoding="utf-8"))
    assert exported["messages"][0]["text"] == "An old question"
    assert "| An old question" in (tmp_path / "ola.txt").read_text(encoding="utf-8")

    status = json.loads(run("privacy", "status", "--json"))
    assert status["kinds"][0] == {"kind": "message_bodies", "keep_days": 30, "held": 1,
                                  "oldest": status["kinds"][0]["oldest"]} and status["key_configured"]
    assert "emptied on 1 messages" in run("privacy", "expire")

    assert "Erased" in run("privacy", "erase", ADDRESS, input="y\n")
    entries = json.loads(run("audit", "--contact", ADDRESS, "--json"))
    assert [e["action"] for e in entries] == ["privacy.export", "privacy.erase"]
    assert {e["contact_id"] for e in entries} == {None} and entries[0]["via"] == "cli"
    assert ADDRESS not in json.dumps(entries)
    status = json.loads(run("privacy", "status", "--json"))
    assert (status["erased_addresses"], status["erased_messages"]) == (1, 1)
    result = CliRunner().invoke(app, ["privacy", "export", ADDRESS])
    assert result.exit_code != 0


def test_privacy_commands_run_on_the_commands_clock(person: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: in the demo's folder (RAPPORT_NOW: its Friday) an export said "exported" on the
    real date and its audit entry came after everything else the demo had done."""
    monkeypatch.setenv("RAPPORT_NOW", "2026-12-04T13:00Z")
    run("privacy", "export", ADDRESS, "--out", str(tmp_path / "ola"))
    exported = json.loads((tmp_path / "ola.json").read_text(encoding="utf-8"))
    assert exported["exported_at"] == "2026-12-04T13:00:00+00:00"
    assert "(exported 2026-12-04 13:00 UTC)" in (tmp_path / "ola.txt").read_text(encoding="utf-8")
    [entry] = json.loads(run("audit", "--contact", ADDRESS, "--json"))
    assert entry["at"].startswith("2026-12-04T13:00")


def test_expire_without_retention_names_the_section(database: str) -> None:
    """Regression: Rich took the section's name for markup: "rapport.toml sets no ."."""
    assert "rapport.toml sets no [privacy.retention_days]." in run("privacy", "expire")


def test_the_export_names_the_owner_by_the_one_owner_rule(person: str, tmp_path: Path) -> None:
    """Regression: the card said "Owner: Martin Horváth (via company …)" and the export "owner: nobody"."""
    engine = make_engine(person)
    with session_scope(engine) as session:
        company = company_owned_by(session, "Martin Horváth", "martin@nordlys.example", "Kunde AS")
        contact = session.exec(select(Contact)).one()
        contact.company_id = company.id
        session.add(contact)
    run("privacy", "export", ADDRESS, "--out", str(tmp_path / "ola"))
    assert "Owner: Martin Horváth (via company Kunde AS)" in (tmp_path / "ola.txt").read_text(encoding="utf-8")
    exported = json.loads((tmp_path / "ola.json").read_text(encoding="utf-8"))
    assert exported["contact"]["owner"] is None  # what the contact row holds, beside the rule's answer


@pytest.fixture
def customer(database: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Ola with a mail in a conversation, a call, a consent, an order, a follow-up, a move, a
    survey answer, a category correction and a card view: every kind of record the export holds."""
    monkeypatch.setenv("RAPPORT_NOW", "2026-12-04T13:00Z")
    with session_scope(make_engine(database)) as session:
        anna, company = Rep(name="Anna Berg", email="anna@shop.example"), Company(name="Kunde AS")
        session.add_all([anna, company])
        session.flush()
        session.add(CompanyDomain(company_id=company.id, domain="kunde.example"))
        contact = Contact(name="Ola Nordmann", phone="+47 22 33 44 55", company_id=company.id, created_at=NOW,
                          updated_at=NOW)
        session.add(contact)
        session.flush()
        assert anna.id is not None and contact.id is not None
        session.add(ContactEmail(contact_id=contact.id, email=ADDRESS, is_primary=True))
        conversation = Conversation(subject="Where is my parcel?", contact_id=contact.id, owner_id=anna.id,
                                    status="answered", opened_at=NOW)
        session.add(conversation)
        session.flush()
        assert conversation.id is not None
        session.add(Assignment(conversation_id=conversation.id, owner_id=anna.id, rule="least_busy",
                               reason="Anna has the fewest open conversations", assigned_at=NOW))
        mail = Message(conversation_id=conversation.id, contact_id=contact.id, message_id="<1@kunde.example>",
                       from_email=ADDRESS, from_name="Ola Nordmann", to=["support@shop.example"],
                       subject="Where is my parcel?", sent_at=NOW, received_at=NOW,
                       text="Hello,\n\nmy parcel NS-4711 never arrived.\n\n> On Monday you wrote:\n> It left today.",
                       new_text="Hello,\n\nmy parcel NS-4711 never arrived.")
        session.add(mail)
        session.flush()
        session.add(Correction(message_id=mail.id, text=mail.new_text, old_category="other",
                               new_category="delivery", rep_id=anna.id, created_at=NOW))
        log_activity(session, contact_id=contact.id, rep_id=anna.id, kind="call", outcome="reached",
                     duration_minutes=12, summary="Called Ola: the parcel goes out again today.",
                     occurred_at=NOW + timedelta(hours=2))
        record_consent(session, contact, "marketing", "slack", NOW - timedelta(days=3), actor=Actor.cli(), rep=anna,
                       note_activity=False)
        session.add(Order(external_id="ORD-1", contact_id=contact.id, amount=Decimal("1200.50"), currency="NOK",
                          ordered_on=date(2026, 10, 1), product_category="boots"))
        create_followup(session, rep_id=anna.id, due_at=NOW + timedelta(days=2), note="Did the parcel arrive?",
                        contact_id=contact.id, now=NOW)
        move_contact(session, contact, reason="First order", at=NOW, kind="customer", stage="purchase",
                     actor=Actor.cli())
        survey = create_survey(session, conversation, contact, ADDRESS, now=NOW + timedelta(days=3),
                               policy=SurveyPolicy())
        record_answer(session, survey, 4, "Quick help, thanks", via="link", at=NOW + timedelta(days=4))
        record_audit(session, Actor.slack("anna@shop.example", "U1"), "card.view", target_kind="contact",
                     target_id=contact.id, contact_id=contact.id, at=NOW)
    return database


def section(text: str, title: str) -> str:
    """What a heading of the readable export holds, up to the next heading, lines unwrapped."""
    body = text.split(f"\n{title.upper()}\n", 1)[1].split("\n\n\n", 1)[0]
    return " ".join(body.split())


def test_the_readable_export_holds_the_persons_data_grouped_and_dated(customer: str, tmp_path: Path) -> None:
    """GDPR Art. 15: the person gets their data itself in a form they can read, not counts."""
    run("privacy", "export", ADDRESS, "--out", str(tmp_path / "ola"))
    text = (tmp_path / "ola.txt").read_text(encoding="utf-8")

    contact = section(text, "Contact")
    assert "Name: Ola Nordmann" in contact and f"Email: {ADDRESS} (primary)" in contact
    assert "Phone: +47 22 33 44 55" in contact and "Company: Kunde AS (kunde.example)" in contact
    assert "Buying stage: purchase" in contact
    assert "2026-11-23 09:00 UTC: prospect → customer, need → purchase, by Rapport (a rule)" in contact
    consents = section(text, "Consents")
    assert "marketing: given 2026-11-20 09:00 UTC" in consents and "Source: slack" in consents
    mail = section(text, "Conversations and mail")
    assert "Conversation opened 2026-11-23 09:00 UTC, answered" in mail
    assert "2026-11-23 09:00 UTC, mail received" in mail and "Subject: Where is my parcel?" in mail
    assert "| Hello, | | my parcel NS-4711 never arrived." in mail
    assert "It left today" not in mail  # the quoted reply is cut (the JSON holds the whole text)
    assert "Category corrected 2026-11-23 09:00 UTC from other to delivery" in mail
    calls = section(text, "Calls, meetings and notes")
    assert "2026-11-23 11:00 UTC, call by anna@shop.example, 12 minutes" in calls
    assert "Outcome: reached" in calls and "| Called Ola: the parcel goes out again today." in calls
    assert "Due 2026-11-25 09:00 UTC for anna@shop.example, open" in section(text, "Follow-ups")
    assert "2026-10-01: 1200.50 NOK, order ORD-1, completed" in section(text, "Orders")
    surveys = section(text, "Satisfaction surveys")
    assert "Answered: 2026-11-27 09:00 UTC by link: 4 out of 5" in surveys and "| Quick help, thanks" in surveys
    audit = section(text, "Who viewed or changed the record (audit log)")
    assert "2026-11-23 09:00 UTC: card.view of contact 1 by anna@shop.example via slack" in audit
    assert max(len(line) for line in text.splitlines()) <= 80


def test_the_readable_and_json_files_cover_the_same_records(customer: str, tmp_path: Path) -> None:
    run("privacy", "export", ADDRESS, "--out", str(tmp_path / "ola"))
    exported = json.loads((tmp_path / "ola.json").read_text(encoding="utf-8"))
    text = (tmp_path / "ola.txt").read_text(encoding="utf-8")

    in_json = {f"[{record_name(name)} {record['id']}]" for name, records in exported.items()
               for record in (records if isinstance(records, list) else [records]) if isinstance(record, dict)}
    in_text = set(re.findall(r"\[[a-z -]+ \d+\]$", text, flags=re.MULTILINE))
    assert in_text == in_json
    assert [name for name, records in exported.items() if not records] == []  # every kind is in the test


def test_what_a_customer_wrote_is_shown_as_written_and_never_run(person: str, tmp_path: Path) -> None:
    """A subject that a spreadsheet would run, a terminal escape and a tab that splits a spreadsheet's
    cell: each line of the readable file starts with Rapport's own text, and no control character is left."""
    with session_scope(make_engine(person)) as session:
        mail = session.exec(select(Message)).one()
        mail.subject = '=HYPERLINK("http://evil.example","Click")'
        mail.text = '-2+3\n\x1b[2J\x1b]0;owned\x07@SUM(A1)\tnext cell\n# Consents\n--------'
        session.add(mail)
    run("privacy", "export", ADDRESS, "--out", str(tmp_path / "ola"))
    text = (tmp_path / "ola.txt").read_text(encoding="utf-8")

    assert 'Subject: =HYPERLINK("http://evil.example","Click")' in text
    assert "| -2+3\n" in text and "|  [2J ]0;owned @SUM(A1) next cell" in text and "| # Consents" in text
    assert [line for line in text.splitlines() if neutralise_cell(line) != line] == []
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", text)


def test_mail_wrapped_by_the_senders_program_reads_as_paragraphs(person: str, tmp_path: Path) -> None:
    """Regression: each line of a mail wrapped at 76 columns was wrapped again after the margin, so
    every other line held one stray word (`| bol`)."""
    paragraph = ("Ďakujem naozaj za vašu objednávku číslo 4711 a za rýchlu odpoveď na moju otázku. "
                 "Podľa potvrdenia, ktoré som dostala mailom včera, termín dodania bol 12. novembra 2026, ale balík stále "
                 "nedorazil a sledovanie zásielky ukazuje iba, že čaká v triediacom centre v Bratislave.")
    wrapped = textwrap.fill(paragraph, 76)
    assert "\n12. novembra" in wrapped  # a date where a numbered list item could start
    with session_scope(make_engine(person)) as session:
        mail = session.exec(select(Message)).one()
        mail.text = (f"Dobrý deň,\n\n{wrapped}\n\nProsím vás o:\n- nový termín\n- číslo zásielky\n1. alebo vrátenie\n"
                     "\nS pozdravom\nOla Nordmann")
        session.add(mail)
    run("privacy", "export", ADDRESS, "--out", str(tmp_path / "ola"))
    text = (tmp_path / "ola.txt").read_text(encoding="utf-8")

    mail = [line.removeprefix("      |").strip() for line in text.splitlines() if line.startswith("      |")]
    body = mail[2:-8]
    assert mail[:2] == ["Dobrý deň,", ""] and " ".join(body) == paragraph
    assert all(len(line.split()) > 1 for line in body)  # no stray word
    assert mail[-8:] == ["", "Prosím vás o:", "- nový termín", "- číslo zásielky", "1. alebo vrátenie", "",
                         "S pozdravom", "Ola Nordmann"]
    assert max(len(line) for line in text.splitlines()) <= 80


def test_a_table_added_later_is_read_under_other_records(person: str) -> None:
    """A table with a contact_id that the readable file does not know yet is still shown, field by field."""
    with session_scope(make_engine(person)) as session:
        export = export_person(session, ADDRESS)
    contact_id = export["contact"]["id"]
    export["loyalty_points"] = [{"id": 7, "contact_id": contact_id, "points": 120, "tiers": ["gold", "silver"]}]
    text = readable_export(export)

    other = section(text, "Other records (loyalty_points)")
    assert other.startswith("Record [loyalty_points 7]")
    assert 'points: 120 tiers: ["gold", "silver"]' in other and "contact_id" not in other


def test_regression_erasure_leaves_no_one_asked_to_answer_the_person(
    person: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rapport privacy erase` cancelled the person's follow-ups but left their conversation open:
    its owner's `my` still listed it "SLA 3d overdue", `reply` found no customer mail to answer,
    and the digest counted it past due."""
    monkeypatch.setenv("RAPPORT_NOW", "2026-12-04T13:00Z")
    engine = make_engine(person)
    with session_scope(engine) as session:
        martin = Rep(name="Martin Horvath", email="martin@rapport.example", role="manager", digest_via=["email"])
        session.add(martin)
        session.flush()
        contact_id = session.exec(select(ContactEmail.contact_id).where(ContactEmail.email == ADDRESS)).one()
        opened = datetime(2026, 11, 30, 9, tzinfo=UTC)
        session.add(Conversation(subject="Invoice question", contact_id=contact_id, owner_id=martin.id,
                                 category="billing", opened_at=opened, last_inbound_at=opened,
                                 sla_due_at=opened + timedelta(days=1)))
    manager = ("--manager", "martin@rapport.example", "--period", "week", "--json")
    assert "Invoice question" in run("chat", "--as", "martin@rapport.example", "my")
    assert json.loads(run("digest", *manager))["overdue"] == 1

    erased = " ".join(run("privacy", "erase", ADDRESS, "--yes").split())
    assert "Closed 1 open conversations and cancelled 0 open follow-ups" in erased
    my = run("chat", "--as", "martin@rapport.example", "my")
    assert "overdue" not in my and "billing" not in my
    after = json.loads(run("digest", *manager))
    assert (after["open"], after["overdue"], after["waiting"]) == (0, 0, [])
    [entry] = [e for e in json.loads(run("audit", "--json")) if e["action"] == "privacy.erase"]
    assert entry["detail"]["closed"] == 1
