"""`rapport inbox ...` and `rapport assign ...` end to end: environment, rapport.toml, Dovecot, database."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
import typer
from rich.console import Console
from sqlalchemy.engine import Engine
from sqlmodel import select
from typer.testing import CliRunner

from rapport.cli.common import runtime
from rapport.cli.inbox import assign_app, inbox_app
from rapport.errors import RapportError
from store.db import make_engine, session_scope
from store.models import Assignment, AuditEntry, Conversation, Message
from tests.inbox.helpers import fixture_eml, mail
from tests.servers.dovecot import ImapAccount

CONFIG = """
[inbox]
sent_folder = "Sent"
backlog_age_days = 36500

[assignment]
fallback_queue = "triage"

[[reps]]
name = "Alice"
email = "alice@shop.example"
working_hours = "Mon-Sun 00:00-24:00"

[[reps]]
name = "Bob"
email = "bob@shop.example"
working_hours = "Mon-Sun 00:00-24:00"
"""


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_dir: Path,
        nlp_classifier: object) -> Iterator[typer.Typer]:
    """The two sub-apps under one root, rapport.toml and the real classifier; no database until a
    sync makes one."""
    config = tmp_path / "rapport.toml"
    config.write_text(CONFIG, encoding="utf-8")
    monkeypatch.setenv("RAPPORT_DATABASE_URL", f"sqlite:///{tmp_path / 'rapport.db'}")
    monkeypatch.setenv("RAPPORT_CONFIG", str(config))
    monkeypatch.setenv("RAPPORT_MODEL_DIR", str(model_dir))
    for name in ("RAPPORT_IMAP_HOST", "RAPPORT_IMAP_USER", "RAPPORT_IMAP_PASSWORD", "RAPPORT_IMAP_PORT"):
        monkeypatch.delenv(name, raising=False)
    app = typer.Typer()
    app.add_typer(inbox_app, name="inbox")
    app.add_typer(assign_app, name="assign")
    runtime.cache_clear()
    yield app
    runtime.cache_clear()


def use_imap(monkeypatch: pytest.MonkeyPatch, account: ImapAccount) -> None:
    monkeypatch.setenv("RAPPORT_IMAP_HOST", account.host)
    monkeypatch.setenv("RAPPORT_IMAP_PORT", str(account.port))
    monkeypatch.setenv("RAPPORT_IMAP_USER", account.user)
    monkeypatch.setenv("RAPPORT_IMAP_PASSWORD", account.password)
    monkeypatch.setenv("RAPPORT_IMAP_SECURITY", "none")


def db(tmp_path: Path) -> Engine:
    return make_engine(f"sqlite:///{tmp_path / 'rapport.db'}")


def run(app: typer.Typer, *args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_sync_once_json_counts_then_status_explain_and_reassign(
    cli: typer.Typer, imap_account: ImapAccount, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_imap(monkeypatch, imap_account)
    imap_account.append("INBOX", fixture_eml("question.eml"))
    imap_account.append("INBOX", fixture_eml("question.eml"))  # the same mail twice in the folder
    imap_account.append("INBOX", fixture_eml("out_of_office.eml"))
    imap_account.append("Sent", fixture_eml("staff_reply.eml"))

    counts = json.loads(run(cli, "inbox", "sync", "--once", "--json"))

    assert {k: counts[k] for k in ("fetched", "new", "duplicates", "automatic", "failed")} == {
        "fetched": 4, "new": 3, "duplicates": 1, "automatic": 1, "failed": 0}
    assert counts["mailboxes"][imap_account.user]["Sent"]["outbound"] == 1
    again = json.loads(run(cli, "inbox", "sync", "--once", "--json"))
    assert again["fetched"] == 0

    status = json.loads(run(cli, "inbox", "status", "--json"))
    assert {(c["folder"], c["last_uid"]) for c in status["checkpoints"]} == {("INBOX", 3), ("Sent", 1)}
    assert status["messages"] == 3 and status["automatic"] == 1
    assert "imap-tag" not in status["pending_outbox"]  # the sync applied the keywords

    with session_scope(db(tmp_path)) as session:
        conversation = session.exec(select(Conversation).where(Conversation.is_automatic == False)).one()  # noqa: E712
        out_of_office = session.exec(select(Conversation).where(Conversation.is_automatic == True)).one()  # noqa: E712
    explained = json.loads(run(cli, "assign", "explain", str(conversation.id), "--json"))
    assert [r["rule"] for r in explained["rules"]][:2] == ["thread_owner", "account_owner"]
    [decided] = explained["history"]
    assert decided["rule"] == "least_busy" and decided["owner"] == "alice@shop.example"
    assert explained["rules"][-1] == {"rule": "least_busy", "applied": True, "reason": decided["reason"],
                                      "owner": "alice@shop.example", "queue": None}
    shown = run(cli, "assign", "explain", str(out_of_office.id))
    assert "automatic mail, never assigned as work" in shown and "wins" not in shown

    output = run(cli, "assign", "reassign", str(conversation.id), "bob@shop.example", "--by", "boss@shop.example")
    assert "bob@shop.example" in output
    with session_scope(db(tmp_path)) as session:
        last = session.exec(select(Assignment).order_by(Assignment.id.desc())).first()  # type: ignore[union-attr]
        assert last is not None and (last.rule, last.assigned_by) == ("manual", "boss@shop.example")
        entry = session.exec(select(AuditEntry)).one()  # the owner change is in the audit log
        assert (entry.actor, entry.action, entry.target_id) == ("cli:boss@shop.example", "conversation.reassign",
                                                                 conversation.id)


def test_sync_from_a_directory_tree(cli: typer.Typer, tmp_path: Path) -> None:
    root = tmp_path / "mail"
    (root / "INBOX").mkdir(parents=True)
    (root / "Sent").mkdir()
    (root / "INBOX" / "1.eml").write_bytes(fixture_eml("question.eml"))
    (root / "INBOX" / "2.eml").write_bytes(mail(message_id="<x@y>", subject="Other"))
    (root / "Sent" / "1.eml").write_bytes(fixture_eml("staff_reply.eml"))

    first = json.loads(run(cli, "inbox", "sync", "--dir", str(root), "--mailbox", "archive", "--json"))
    second = json.loads(run(cli, "inbox", "sync", "--dir", str(root), "--mailbox", "archive", "--json"))

    assert (first["new"], first["outbound"], second["new"], second["duplicates"]) == (3, 1, 0, 3)
    with session_scope(db(tmp_path)) as session:
        assert len(session.exec(select(Message)).all()) == 3


def test_reassign_uses_the_command_clock_and_os_user_and_explain_keeps_emails_whole(
    cli: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: `assign reassign` audited with the real clock (not RAPPORT_NOW) as `cli:cli`, its
    history said `by cli`, and `assign explain` cut owners' emails to `martin.horvat…` in UTC unsaid."""
    long_email = "zsofia.nagy-lindqvist@nordlys-support.example"
    config = tmp_path / "rapport.toml"
    config.write_text(CONFIG + f'[[reps]]\nname = "Zsofia"\nemail = "{long_email}"\n', encoding="utf-8")
    monkeypatch.setenv("RAPPORT_NOW", "2026-12-04T13:00:00+00:00")
    monkeypatch.setattr("store.audit._login", lambda: "karin")
    monkeypatch.setattr("store.audit.socket.gethostname", lambda: "desk")
    (tmp_path / "mail" / "INBOX").mkdir(parents=True)
    (tmp_path / "mail" / "INBOX" / "1.eml").write_bytes(fixture_eml("question.eml"))
    run(cli, "inbox", "sync", "--dir", str(tmp_path / "mail"), "--mailbox", "archive")
    with session_scope(db(tmp_path)) as session:
        conversation = session.exec(select(Conversation)).one()

    run(cli, "assign", "reassign", str(conversation.id), long_email)

    with session_scope(db(tmp_path)) as session:
        entry = session.exec(select(AuditEntry).where(AuditEntry.action == "conversation.reassign")).one()
        assert (entry.actor, entry.origin, entry.at.isoformat()) == (
            "cli:karin@desk", "karin@desk", "2026-12-04T13:00:00+00:00")
        last = session.exec(select(Assignment).order_by(Assignment.id.desc())).first()  # type: ignore[union-attr]
        assert last is not None and last.assigned_by == "karin@desk"
    screen = StringIO()
    monkeypatch.setattr("rapport.cli.inbox.console", Console(file=screen, width=80))
    run(cli, "assign", "explain", str(conversation.id))
    shown = screen.getvalue()
    assert all(len(line) <= 80 for line in shown.splitlines()) and "…" not in shown, shown
    assert "Assignment history (times in UTC):" in shown
    assert f"  2026-12-04 13:00  manual → {long_email}\n" in shown, shown
    assert "(by karin@desk)" in shown, shown


def test_sync_and_status_read_whole_at_80_columns(cli: typer.Typer, imap_account: ImapAccount,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: the sync's ten-column table cut its headers to `mail… fold… fetc…` and the
    mailbox to `supp…`; the status table cut the checkpoint's time to `2026-12-07T10:28:0…`."""
    use_imap(monkeypatch, imap_account)
    imap_account.append("INBOX", fixture_eml("question.eml"))
    imap_account.append("INBOX", fixture_eml("out_of_office.eml"))
    screen = StringIO()
    monkeypatch.setattr("rapport.cli.inbox.console", Console(file=screen, width=80))

    run(cli, "inbox", "sync", "--once")
    run(cli, "inbox", "status")

    shown = screen.getvalue()
    assert all(len(line) <= 80 for line in shown.splitlines()) and "…" not in shown, shown
    assert f"{imap_account.user} INBOX\n  fetched 2, new 2, automatic 1, assigned 1\n" in shown, shown
    assert re.search(rf"{imap_account.user} INBOX\n  last UID 2 of UIDVALIDITY \d+, "
                     r"read \d{4}-\d\d-\d\d \d\d:\d\d UTC\n", shown), shown


def test_user_errors_are_messages_not_tracebacks(cli: typer.Typer, monkeypatch: pytest.MonkeyPatch,
                                                 imap_account: ImapAccount) -> None:
    with pytest.raises(RapportError, match="no mailbox configured"):
        CliRunner().invoke(cli, ["inbox", "sync", "--once"], catch_exceptions=False)
    with pytest.raises(RapportError, match="no Rapport database at"):  # the failed sync made none
        CliRunner().invoke(cli, ["assign", "explain", "4242"], catch_exceptions=False)
    runtime().create_database()
    with pytest.raises(RapportError, match="no conversation 4242"):
        CliRunner().invoke(cli, ["assign", "explain", "4242"], catch_exceptions=False)
    use_imap(monkeypatch, imap_account)
    monkeypatch.setenv("RAPPORT_IMAP_PASSWORD", "wrong")
    runtime.cache_clear()
    with pytest.raises(RapportError, match="login refused"):
        CliRunner().invoke(cli, ["inbox", "sync", "--once"], catch_exceptions=False)
