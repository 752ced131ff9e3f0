"""`rapport export`: CSV a spreadsheet opens safely (BOM, no live formulas); JSON lines unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from rapport.cli.main import app
from store.db import make_engine, session_scope
from store.importing import import_csv
from store.models import Contact, ContactEmail, Conversation

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
    report = import_csv(make_engine(hostile), "contacts", exported)
    assert (report.unchanged, report.rejected) == (1, [])
    with Session(make_engine(hostile)) as session:
        assert session.exec(select(Contact.name)).all() == [HOSTILE_NAME]
