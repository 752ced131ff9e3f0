"""The bundled sample mailbox (what `rapport demo` shows) through the same pipeline as IMAP."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import select

from inbox.local import mail_files, sync_mailbox_directory
from rapport.config import load_config
from rapport.settings import load_settings
from rapport.wiring import Runtime, ingest_options, sync_reps
from store.db import session_scope
from store.models import Assignment, Conversation, Message
from tests.inbox.helpers import CountingClassifier

SAMPLE = Path(__file__).resolve().parents[2] / "rapport" / "sample"
CLOCK = datetime(2026, 11, 20, 13, 0, tzinfo=UTC)  # the sample's Friday afternoon


def test_sample_mailbox_is_ingested_once_with_replies_threaded(
    sqlite_engine: Engine, classifier: CountingClassifier
) -> None:
    config = load_config(SAMPLE / "rapport.toml")
    sync_reps(sqlite_engine, config)
    options = ingest_options(Runtime(settings=load_settings(), config=config))
    options = dataclasses.replace(options, now=CLOCK)
    root = SAMPLE / "mailbox"
    total = sum(len(mail_files(folder)) for folder in root.iterdir() if folder.is_dir())

    first = sync_mailbox_directory(sqlite_engine, root, "support@nordlys.example", options=options,
                                   classifier=classifier)
    again = sync_mailbox_directory(sqlite_engine, root, "support@nordlys.example", options=options,
                                   classifier=classifier)

    assert sum(r.new for r in first.values()) == total
    assert sum(r.failed for r in first.values()) == 0
    assert first["Sent"].outbound == len(mail_files(root / "Sent"))
    assert sum(r.new for r in again.values()) == 0
    assert len(classifier.calls) == 1  # INBOX in one batch; Sent and the second pass classify nothing
    with session_scope(sqlite_engine) as session:
        messages = {m.message_id: m for m in session.exec(select(Message)).all()}
        by_id = {c.id: c for c in session.exec(select(Conversation)).all()}
        assigned = {a.conversation_id for a in session.exec(select(Assignment)).all()}

    def conversation_of(message_id: str) -> Conversation:
        conversation_id = messages[message_id].conversation_id
        assert conversation_id is not None
        return by_id[conversation_id]

    # Outlook rewrote In-Reply-To on 038; it still joins the invoice question (003) it answers.
    question = conversation_of("<AM0PR03MB79FF88C0413B@AM0PR03MB79FF.eurprd03.prod.outlook.com>")
    rewritten = conversation_of("<AM0PR03MB0BBB515CA6EF@AM0PR03MB0BBB.eurprd03.prod.outlook.com>")
    assert rewritten.id == question.id
    # Every staff reply in Sent answered a conversation and set its first-response time.
    for message in messages.values():
        if message.direction == "outbound":
            conversation = conversation_of(message.message_id)
            assert conversation.first_response_at is not None and conversation.first_response_at <= (
                message.received_at)
    # Newsletters, out-of-office replies and bounces are stored but never assigned.
    assert len([m for m in messages.values() if m.is_automatic]) >= 3
    assert not any(c.id in assigned for c in by_id.values() if c.is_automatic)
    assert all(c.owner_id or c.queue for c in by_id.values() if not c.is_automatic)
