"""A reply from Slack in the store: what it answers, to whom, and what is written with it (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from store.audit import SCHEDULER
from store.db import session_scope
from store.models import (
    Contact,
    ContactEmail,
    Conversation,
    ConversationStatus,
    Direction,
    Message,
    OutboxItem,
)
from store.outbox import EmailReply
from store.replies import record_reply, reply_draft, reply_subject, thread_messages

T = datetime(2026, 11, 23, 9, tzinfo=UTC)


def _conversation(engine: Engine) -> int:
    with session_scope(engine) as session:
        contact = Contact(name="Jan")
        session.add(contact)
        session.flush()
        assert contact.id is not None
        session.add(ContactEmail(contact_id=contact.id, email="jan@acme.example", is_primary=True))
        conversation = Conversation(subject="Toner", contact_id=contact.id, opened_at=T, last_inbound_at=T,
                                    last_message_at=T, sla_due_at=T + timedelta(hours=8))
        session.add(conversation)
        session.flush()
        assert conversation.id is not None
        session.add_all([
            Message(conversation_id=conversation.id, message_id="<first@acme>", from_email="jan@acme.example",
                    subject="Toner", received_at=T, references=[], mailbox="support@shop.example"),
            Message(conversation_id=conversation.id, message_id="<second@acme>", from_email="Jan@Acme.example",
                    subject="RE: Toner", received_at=T + timedelta(minutes=5), in_reply_to="<first@acme>",
                    references=["<first@acme>"], mailbox="support@shop.example"),
        ])
        return conversation.id


def test_a_reply_answers_the_latest_mail_is_stored_first_and_enqueued_once(engine: Engine) -> None:
    conversation_id = _conversation(engine)
    at = T + timedelta(hours=1)
    with session_scope(engine) as session:
        draft = reply_draft(session, conversation_id)
        assert not isinstance(draft, str)
        assert (draft.to, draft.subject, draft.in_reply_to) == (["jan@acme.example"], "RE: Toner", "<second@acme>")
        assert draft.references == ["<first@acme>", "<second@acme>"]
        stored = record_reply(session, draft, text="On its way", from_email="support@shop.example",
                              from_name="Alice", reply_to=None, now=at, actor=SCHEDULER)
        message_id = stored.message_id
    with Session(engine) as session:
        conversation = session.get(Conversation, conversation_id)
        messages = thread_messages(session, conversation_id)
        [row] = session.exec(select(OutboxItem)).all()
    assert conversation is not None and conversation.status == ConversationStatus.answered
    assert conversation.first_response_at == at and conversation.last_message_at == at
    assert [m.direction for m in messages] == [Direction.inbound, Direction.inbound, Direction.outbound]
    assert message_id.endswith("@shop.example>") and messages[-1].message_id == message_id
    assert (row.kind, row.key) == (EmailReply.kind, f"email-reply:{messages[-1].id}")


def test_no_reply_to_a_bouncing_address_or_automatic_mail(engine: Engine) -> None:
    conversation_id = _conversation(engine)
    with session_scope(engine) as session:
        address = session.exec(select(ContactEmail)).one()
        address.bouncing, address.bounced_at = True, T
        session.add(address)
    with Session(engine) as session:
        assert reply_draft(session, conversation_id) == (
            "Mail to jan@acme.example bounces since 23 Nov 2026; a reply would not arrive. "
            "Find another address or call instead.")
    with session_scope(engine) as session:
        address = session.exec(select(ContactEmail)).one()
        address.bouncing = False
        session.add(address)
        latest = session.exec(select(Message).where(Message.message_id == "<second@acme>")).one()
        latest.is_automatic, latest.automatic_reason = True, "Auto-Submitted: auto-replied"
        session.add(latest)
    with Session(engine) as session:
        refusal = reply_draft(session, conversation_id)
    assert refusal == ("The last email is automatic (Auto-Submitted: auto-replied); "
                       "Rapport does not answer automatic mail.")


def test_reply_subject_adds_re_once() -> None:
    assert reply_subject("Toner") == "Re: Toner"
    assert reply_subject("re: Toner") == "re: Toner"
    assert reply_subject("Re[2]:  Toner") == "Re[2]: Toner"
    assert reply_subject("Rechnung") == "Re: Rechnung"
