"""`rapport export`: CSV a spreadsheet opens safely (BOM, no live formulas); JSON lines unchanged."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from rapport.cli.main import app
from store.activities import log_activity
from store.audit import SCHEDULER
from store.db import make_engine, session_scope
from store.models import Company, CompanyDomain, Contact, ContactEmail, Conversation, Rep
from store.stages import move_contact
from store.types import utcnow
from tests.cli.helpers import company_owned_by
from tests.imports import import_builtin

HOSTILE_NAME = '=HYPERLINK("http://evil","x")'
HOSTILE_SUBJECT = "+cmd|' /C calc'!A0"


@pytest.fixture
def hostile(database: str) -> str:
    """A contact and a conversation whose texts are spreadsheet formulas."""
    engine = make_engine(database)
    with session_scope(engine) as session:
        contact = Contact(name=HOSTILE_NAME, phone="=1+1", title="@SUM(A1)")
        session.add(contact)
        session.flush()
        session.add(ContactEmail(contact_id=contact.id, email="evil@example.com", is_primary=True))
        session.add(Conversation(subject=HOSTILE_SUBJECT, contact_id=contact.id))
    return database


def _export(*args: str) -> str:
    result = CliRunner().invoke(app, ["export", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_csv_export_neutralises_formulas_and_starts_with_a_bom(hostile: str) -> None:
    contacts = _export("contacts", "--format", "csv")
    assert contacts.startswith("\ufeffid,name,")
    assert '"\'=HYPERLINK(""http://evil"",""x"")"' in contacts
    assert ",'=1+1," in contacts and ",'@SUM(A1)," in contacts
    conversations = _export("conversations", "--format", "csv", "--no-bom")
    assert conversations.startswith("id,subject,")
    assert f"'{HOSTILE_SUBJECT}" in conversations


def test_json_lines_export_keeps_values_as_they_are(hostile: str) -> None:
    row = json.loads(_export("contacts").splitlines()[0])
    assert (row["name"], row["phone"], row["title"]) == (HOSTILE_NAME, "=1+1", "@SUM(A1)")


def test_reimporting_a_csv_export_restores_the_original_values(hostile: str, tmp_path: Path) -> None:
    exported = tmp_path / "contacts.csv"
    exported.write_text(_export("contacts", "--format", "csv"), encoding="utf-8")
    report = import_builtin(make_engine(hostile), "contacts", exported)
    assert (report.unchanged, report.rejected) == (1, [])
    with Session(make_engine(hostile)) as session:
        assert session.exec(select(Contact.name)).all() == [HOSTILE_NAME]


def test_activities_export_holds_company_notes_and_moves_with_formulas_neutralised(database: str) -> None:
    engine = make_engine(database)
    with session_scope(engine) as session:
        company = Company(name="Acme")
        contact = Contact(name="Pia", kind="prospect", stage="need")
        session.add_all([company, contact])
        session.flush()
        log_activity(session, contact_id=None, company_id=company.id, rep_id=None, summary="=1+1 budget approved",
                     occurred_at=utcnow())
        move_contact(session, contact, kind="customer", stage="purchase", reason="first order NS-1 of 2026-11-20",
                     at=datetime(2026, 11, 23, 9, 0, tzinfo=UTC), actor=SCHEDULER)
    note, move = (json.loads(line) for line in _export("activities").splitlines())
    assert (note["kind"], note["company"], note["contact_email"], note["summary"]) == (
        "note", "Acme", None, "=1+1 budget approved")
    assert (move["kind"], move["contact_kind_from"], move["contact_kind_to"], move["stage_from"], move["stage_to"]) == (
        "move", "prospect", "customer", "need", "purchase")
    csv_text = _export("activities", "--format", "csv")
    header = csv_text.lstrip("\ufeff").splitlines()[0]
    assert header.endswith("contact_kind_from,contact_kind_to,stage_from,stage_to")
    assert "'=1+1 budget approved" in csv_text  # a spreadsheet shows it, never runs it


def _company_of_anna(session: Session) -> Company:
    return company_owned_by(session, "Anna Berg", "anna@shop.example", "Nordlys")


def test_contact_export_names_the_owner_through_the_company(database: str) -> None:
    """Åsa Öberg has no owner of her own; her company's owner is hers, as on her card."""
    with session_scope(make_engine(database)) as session:
        company = _company_of_anna(session)
        erik = Rep(name="Erik Lund", email="erik@shop.example")
        session.add(erik)
        session.flush()
        session.add_all([Contact(name="Åsa Öberg", company_id=company.id),
                         Contact(name="Pia", company_id=company.id, owner_id=erik.id),
                         Contact(name="Ola")])
    owners = {row["name"]: row["owner"] for row in map(json.loads, _export("contacts").splitlines())}
    assert owners == {"Åsa Öberg": "anna@shop.example", "Pia": "erik@shop.example", "Ola": None}


def test_reimporting_an_export_keeps_an_owner_through_the_company_so(database: str, tmp_path: Path) -> None:
    """The export names Åsa's company's owner as hers; importing it back must not make Anna her own
    owner, or a new owner of the company would no longer be hers."""
    engine = make_engine(database)
    with session_scope(engine) as session:
        company = _company_of_anna(session)
        asa = Contact(name="Åsa Öberg", company_id=company.id)
        session.add(asa)
        session.flush()
        session.add(ContactEmail(contact_id=asa.id, email="asa@nordlys.example", is_primary=True))
        # a company without it would learn it from her address: a change, as the report would say
        session.add(CompanyDomain(company_id=company.id, domain="nordlys.example"))
    exported = tmp_path / "contacts.csv"
    exported.write_text(_export("contacts", "--format", "csv"), encoding="utf-8")

    report = import_builtin(engine, "contacts", exported)

    assert (report.unchanged, report.updated, report.rejected) == (1, 0, [])
    with Session(engine) as session:
        assert session.exec(select(Contact.owner_id)).one() is None
