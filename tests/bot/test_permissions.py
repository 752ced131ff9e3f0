"""Who may press which button: a rep of another team can neither take nor close a conversation."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from bot.interactions import claim_conversation, mark_answered
from store.db import session_scope
from store.models import Conversation, Rep
from store.types import utcnow
from tests.bot.conftest import START, Seeded, add_assigned_email, rep_id


def _alices_conversation(engine: Any, seeded: Seeded) -> int:
    conversation_id, _ = add_assigned_email(engine, owner_email="alice@nordlys.example", contact_id=seeded.jan,
                                            subject="Where is my order?", text="Still waiting.")
    return conversation_id


def _as(engine: Any, email: str, act: Any, conversation_id: int) -> tuple[bool, Conversation]:
    """Run act(session, rep) in one transaction; returns (whether it was allowed, the conversation after)."""
    with session_scope(engine) as session:
        outcome = act(session, session.get(Rep, rep_id(engine, email)))
    with Session(engine) as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        return outcome.ok, conversation


def test_a_rep_of_another_team_cannot_claim(engine: Any, seeded: Seeded) -> None:
    conversation = _alices_conversation(engine, seeded)
    allowed, after = _as(engine, "dave@nordlys.example", lambda s, rep: claim_conversation(s, rep, conversation, utcnow()),
                         conversation)
    assert not allowed and after.owner_id == rep_id(engine, "alice@nordlys.example")
    allowed, after = _as(engine, "bob@nordlys.example", lambda s, rep: claim_conversation(s, rep, conversation, utcnow()),
                         conversation)
    assert allowed and after.owner_id == rep_id(engine, "bob@nordlys.example")  # same team: may take it


def test_only_the_owner_or_a_manager_can_mark_answered(engine: Any, seeded: Seeded) -> None:
    conversation = _alices_conversation(engine, seeded)
    for outsider in ("bob@nordlys.example", "dave@nordlys.example"):
        allowed, after = _as(engine, outsider, lambda s, rep: mark_answered(s, rep, conversation, START),
                         conversation)
        assert not allowed and after.status == "open", outsider
    allowed, after = _as(engine, "carol@nordlys.example", lambda s, rep: mark_answered(s, rep, conversation, START),
                         conversation)
    assert allowed and after.status == "answered"
