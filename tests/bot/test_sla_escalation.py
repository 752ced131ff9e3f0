"""SLA escalation is about the first response: a reopened conversation that had one is not escalated."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import select

from bot.scheduler import enqueue_escalations
from store.db import session_scope
from store.models import Conversation, OutboxItem
from tests.bot.conftest import START, Seeded, add_assigned_email


def test_a_reopened_conversation_with_a_first_response_is_not_escalated(engine: Any, seeded: Seeded) -> None:
    unanswered, _ = add_assigned_email(engine, owner_email="alice@nordlys.example", contact_id=seeded.jan,
                                       subject="Never answered", text="Hello?", sla_hours=2)
    reopened, _ = add_assigned_email(engine, owner_email="alice@nordlys.example", contact_id=seeded.jan,
                                     subject="Answered, then the customer wrote again", text="Thanks, but…",
                                     sla_hours=2)
    with session_scope(engine) as session:
        conversation = session.get(Conversation, reopened)
        assert conversation is not None
        # what the inbox leaves after a staff reply and a new customer mail: open again, new SLA
        conversation.first_response_at = conversation.answered_at = START + timedelta(hours=1)
        conversation.sla_due_at = START + timedelta(hours=3)
        session.add(conversation)
    with session_scope(engine) as session:
        assert enqueue_escalations(session, START + timedelta(hours=5)) == 1
    with session_scope(engine) as session:
        keys = session.exec(select(OutboxItem.key).where(OutboxItem.kind == "sla-escalation")).all()
    assert keys == [f"sla:{unanswered}"]


def test_an_escalated_conversation_is_escalated_once(engine: Any, seeded: Seeded) -> None:
    add_assigned_email(engine, owner_email="alice@nordlys.example", contact_id=seeded.jan,
                       subject="Never answered", text="Hello?", sla_hours=2)
    first = START + timedelta(hours=3)
    with session_scope(engine) as session:
        assert enqueue_escalations(session, first) == 1
    with session_scope(engine) as session:
        assert enqueue_escalations(session, first + timedelta(hours=1)) == 0
    with session_scope(engine) as session:
        assert session.exec(select(Conversation.escalated_at)).all() == [first]
