"""`rapport privacy export|erase|status|expire` and `rapport audit` from the terminal."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from rapport.cli.main import app
from store.db import make_engine, session_scope
from store.models import Contact, ContactEmail, Message
from store.types import utcnow
from tests.cli.helpers import company_owned_by

ADDRESS = "ola.nordmann@kunde.example"


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
    assert "Messages: 1" in out
    exported = json.loads((tmp_path / "ola.json").read_text(encoding="utf-8"))
    assert exported["messages"][0]["text"] == "An old question"
    assert "Ola Nordmann" in (tmp_path / "ola.txt").read_text(encoding="utf-8")

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
    out = run("privacy", "export", ADDRESS, "--out", str(tmp_path / "ola"))
    assert "owner: Martin Horváth (via company Kunde AS)" in out
    exported = json.loads((tmp_path / "ola.json").read_text(encoding="utf-8"))
    assert exported["contact"]["owner"] is None  # what the contact row holds, beside the rule's answer
