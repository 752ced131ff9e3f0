"""GDPR access and erasure end to end: Dovecot mail, a CSV import, calls, follow-ups and orders.

Export holds all of it; after the erasure no table holds the address, the name or the
mail text; a full re-sync of the same mailbox and a re-import of the original CSV do
not bring the person back; the past week's digest keeps its history, and no reply is owed
to her any more; new mail from the person (a new Message-ID) is a new contact. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, col, select

from inbox.imap import sync_mailbox
from inbox.options import IngestOptions
from store.activities import log_activity
from store.audit import Actor, record_audit
from store.db import read_session, session_scope
from store.digest import compute_digest
from store.followups import complete_followup, create_followup
from store.models import (
    ActivityKind,
    AuditEntry,
    Contact,
    ContactEmail,
    Erasure,
    MailboxCheckpoint,
    Message,
    Order,
    Rep,
)
from store.privacy import PrivacyError, erase_person, export_person, find_person
from store.segments import SegmentParams
from store.types import utcnow
from tests.imports import import_builtin
from tests.inbox.helpers import NOW, KeywordClassifier, add_rep, mail, spec_for
from tests.servers.dovecot import ImapAccount

KEY = "test-privacy-key"
ADDRESS = "jana.kralova@customer.example"
NAME = ("Jana", "Králová")
SECRET_TEXT = "ZEBRAFISH-4711"  # in her mail, her call notes and her follow-up
CONTACTS_CSV = (
    "First Name,Last Name,Email,Phone Number,Company Name\n"
    f"{NAME[0]},{NAME[1]},{ADDRESS},+421 905 111 222,Customer Ltd\n"
    "Petr,Svoboda,petr@other.example,,\n"
)
ORDERS_CSV = "order_id,email,amount,ordered_on\nORD-1,jana.kralova@customer.example,120.00,2026-10-01\n"


def with_attachment(message_id: str, body: str, filename: str) -> bytes:
    return (
        f"From: {NAME[0]} {NAME[1]} <{ADDRESS}>\r\nTo: support@shop.example\r\nSubject: Parcel {SECRET_TEXT}\r\n"
        f"Date: Mon, 23 Nov 2026 09:00:00 +0000\r\nMessage-ID: {message_id}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n'
        f"{body}\r\n--b1\r\nContent-Type: application/pdf\r\n"
        f'Content-Disposition: attachment; filename="{filename}"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        "JVBERi0xLjQK\r\n--b1--\r\n"
    ).encode()


def person_traces(engine: Engine) -> list[str]:
    """Every text value (any table, any column) holding her address, name or mail text."""
    needles = [ADDRESS, NAME[1], SECRET_TEXT, "jana.kralova"]
    found = []
    with engine.connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            for row in connection.execute(table.select()).mappings():
                for column, value in row.items():
                    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                    found += [f"{table.name}.{column}: {needle}" for needle in needles if needle in text]
    return found


def digest_counts(engine: Engine) -> dict[str, Any]:
    """The past week's figures that erasure must keep (the named lists are about people).

    Dovecot stamps appended mail with the real time, so the week ends at the next midnight."""
    end = datetime.combine(utcnow().date() + timedelta(days=1), time(), UTC)
    with read_session(engine) as session:
        manager = session.exec(select(Rep).where(Rep.email == "alice@shop.example")).one()
        figures = compute_digest(session, manager=manager, period="week", start=end - timedelta(days=7), end=end,
                                 params=SegmentParams(), now=end + timedelta(days=1))
    data = figures.to_json()
    # the stage funnel counts people by their current record: an erased person leaves it
    for named in ("top_customers_who_wrote", "lapsed_worth_a_call", "waiting", "due_followups", "funnel"):
        data.pop(named)
    return data


OWED_NOW = ("open", "unanswered", "overdue")  # the digest's snapshot of work owed, not its history


def count(engine: Engine, model: type) -> int:
    with read_session(engine) as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def test_export_then_erase_leaves_no_trace_and_nothing_brings_the_person_back(
    engine: Engine, imap_account: ImapAccount, options: IngestOptions, keyword_classifier: KeywordClassifier,
    tmp_path: Path,
) -> None:
    options = dataclasses.replace(options, privacy_key=KEY)
    alice = add_rep(engine, "alice@shop.example", role="manager", working_hours="Mon-Sun 00:00-24:00")
    contacts_csv, orders_csv = tmp_path / "contacts.csv", tmp_path / "orders.csv"
    contacts_csv.write_text(CONTACTS_CSV, encoding="utf-8")
    orders_csv.write_text(ORDERS_CSV, encoding="utf-8")
    assert import_builtin(engine, "contacts", contacts_csv, privacy_key=KEY).imported == 2
    assert import_builtin(engine, "orders", orders_csv, privacy_key=KEY).imported == 1

    imap_account.append("INBOX", with_attachment("<jana-1@customer.example>",
                                                 f"My parcel {SECRET_TEXT} never arrived.", "receipt-kralova.pdf"))
    imap_account.append("INBOX", mail(sender=f"{NAME[0]} {NAME[1]} <{ADDRESS}>", subject="Refund please",
                                      body=f"I want a refund for {SECRET_TEXT}.", message_id="<jana-2@customer.example>"))
    imap_account.append("INBOX", mail(sender="petr@other.example", subject="Invoice", body="Where is my invoice?",
                                      message_id="<petr-1@other.example>",
                                      headers={"Cc": ADDRESS}))  # Petr's mail only copied her
    imap_account.append("Sent", mail(sender="support@shop.example", to=ADDRESS, subject="Re: Refund please",
                                     body=f"Dear {NAME[0]} {NAME[1]}, the refund for {SECRET_TEXT} is on its way.",
                                     message_id="<reply-1@shop.example>", in_reply_to="<jana-2@customer.example>",
                                     date=NOW + timedelta(hours=1)))
    spec = spec_for(imap_account)
    sync_mailbox(engine, spec, options=options, classifier=keyword_classifier)
    with session_scope(engine) as session:
        jana = find_person(session, ADDRESS)
        assert jana is not None and jana.id is not None
        log_activity(session, contact_id=jana.id, rep_id=alice, kind=ActivityKind.call,
                     summary=f"Called {NAME[0]} about {SECRET_TEXT}", occurred_at=utcnow())
        followup = create_followup(session, rep_id=alice, due_at=utcnow() + timedelta(hours=1),
                                   note=f"Check {SECRET_TEXT}", contact_id=jana.id, now=utcnow())
        complete_followup(session, followup, utcnow())  # done work counts in the digest (open work is cancelled)
        record_audit(session, Actor("alice@shop.example", "slack", "slack:U1"), "card.view",
                     target_kind="contact", target_id=jana.id, contact_id=jana.id)
        jana_id = jana.id
    messages_before, before = count(engine, Message), digest_counts(engine)
    assert before["new_conversations"] >= 2 and before["first_response"]["count"] >= 1
    assert before["followups_done"] == 1 and before["reps"][0]["calls"] == 1

    with read_session(engine) as session:
        export = export_person(session, ADDRESS)
    texts = " ".join(m["text"] for m in export["messages"])
    assert texts.count(SECRET_TEXT) == 3 and len(export["messages"]) == 3  # two from her, our reply
    assert any(m["headers"] for m in export["messages"])
    assert ["receipt-kralova.pdf"] in [m["attachment_names"] for m in export["messages"]]
    assert export["contact"]["name"] == " ".join(NAME) and export["company"]["name"] == "Customer Ltd"
    assert "call" in [a["kind"] for a in export["activities"]] and len(export["followups"]) == 1
    assert [o["external_id"] for o in export["orders"]] == ["ORD-1"]
    assert export["assignments"] and export["conversations"] and export["audit"]

    with session_scope(engine) as session:
        report = erase_person(session, ADDRESS, actor=Actor.cli(), configured_key=KEY, now=NOW + timedelta(days=1))
    assert report.messages == 3 and report.orders == 1 and report.key_configured
    assert person_traces(engine) == []
    assert count(engine, Message) == messages_before  # rows stay, emptied: the counts do not move
    # the history stays; her unanswered "Parcel" mail closed (report.closed): no one owes her a reply
    after = digest_counts(engine)
    assert report.closed == 1 and after == {**before, **{k: before[k] - 1 for k in OWED_NOW}}
    with read_session(engine) as session:
        assert session.exec(select(Order.contact_id).where(Order.external_id == "ORD-1")).one() is None
        audit = session.exec(select(AuditEntry).order_by(col(AuditEntry.id))).all()
        assert [e.action for e in audit] == ["contact.kind", "contact.stage", "card.view", "privacy.erase"]  # order
        assert {e.person_hash for e in audit} == {report.person_hash} and {e.contact_id for e in audit} == {None}
        assert session.exec(select(func.count()).select_from(Erasure)).one() == 1 + 3  # address + Message-IDs
        assert session.get(Contact, jana_id) is None
    try:
        with session_scope(engine) as session:
            erase_person(session, ADDRESS, actor=Actor.cli(), configured_key=KEY)
        raise AssertionError("a second erasure found the person again")
    except PrivacyError:
        pass

    # A full re-read of the mailbox (as after a UIDVALIDITY reset) and the original CSV again
    with session_scope(engine) as session:
        session.execute(delete(MailboxCheckpoint))
    sync_mailbox(engine, spec, options=options, classifier=keyword_classifier)
    again = import_builtin(engine, "contacts", contacts_csv, privacy_key=KEY)
    assert (again.erased, again.rejected) == (1, [])  # skipped, not an error
    assert count(engine, Message) == messages_before and person_traces(engine) == []
    assert digest_counts(engine) == after

    # New mail after the erasure is a new contact
    imap_account.append("INBOX", mail(sender=ADDRESS, subject="Hello again", body="A new question.",
                                      message_id="<jana-3@customer.example>", date=NOW + timedelta(days=2)))
    sync_mailbox(engine, spec, options=options, classifier=keyword_classifier)
    with read_session(engine) as session:
        fresh = find_person(session, ADDRESS)
        assert fresh is not None and fresh.id != jana_id
        assert session.exec(select(func.count()).select_from(ContactEmail)
                            .where(ContactEmail.email == ADDRESS)).one() == 1
