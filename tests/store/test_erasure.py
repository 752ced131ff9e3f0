"""Erasure stops the work owed to the person: their open conversations close, so no one is
asked to answer a person who asked to be forgotten (`my`, the digest, SLA breaches)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from store.audit import Actor
from store.contacts_view import rep_queue
from store.db import make_engine, session_scope, upgrade
from store.digest import compute_digest
from store.models import (
    AuditEntry,
    Contact,
    ContactEmail,
    Conversation,
    ConversationStatus,
    FollowUp,
    FollowUpStatus,
    Rep,
)
from store.privacy import erase_person
from store.segments import SegmentParams

ADDRESS = "julia.kovacs@dunalabor.hu"
NOW = datetime(2026, 12, 4, 13, tzinfo=UTC)


def _julia_with_open_work(engine: Engine) -> int:
    """Julia wrote twice, both unanswered: one conversation past its SLA, one due tomorrow.
    Martin owns both; he also has an open conversation with someone else."""
    with session_scope(engine) as session:
        martin = Rep(name="Martin", email="martin@rapport.example", role="manager", digest_via=["email"])
        julia, other = Contact(name="Julia Kovács"), Contact(name="Someone Else")
        session.add_all([martin, julia, other])
        session.flush()
        assert martin.id is not None and julia.id is not None
        session.add(ContactEmail(contact_id=julia.id, email=ADDRESS, is_primary=True))
        for contact, opened, due in ((julia, NOW - timedelta(days=4), NOW - timedelta(days=3)),
                                     (julia, NOW - timedelta(hours=2), NOW + timedelta(days=1)),
                                     (other, NOW - timedelta(hours=1), NOW + timedelta(days=1))):
            session.add(Conversation(subject="Invoice", contact_id=contact.id, owner_id=martin.id,
                                     category="billing", opened_at=opened, last_inbound_at=opened, sla_due_at=due))
        session.add(FollowUp(contact_id=julia.id, rep_id=martin.id, due_at=NOW + timedelta(days=2), note="call"))
        return martin.id


def _digest(session: Session, now: datetime) -> dict[str, object]:
    martin = session.exec(select(Rep)).one()
    figures = compute_digest(session, manager=martin, period="week", start=NOW - timedelta(days=4),
                             end=now, params=SegmentParams(), now=now)
    return figures.to_json()


def test_regression_erasure_closes_the_persons_open_conversations(db_url: str) -> None:
    """After `rapport privacy erase`, Martin's `my` still listed Julia's emptied conversation as
    "SLA 3d overdue", `reply` found no customer mail to answer, and the digest counted it past due."""
    engine = make_engine(db_url)
    upgrade(engine)
    martin = _julia_with_open_work(engine)
    with session_scope(engine) as session:
        before = _digest(session, NOW)
        assert (before["open"], before["overdue"], rep_queue(session, martin)[1]) == (3, 1, 3)

    with session_scope(engine) as session:
        report = erase_person(session, ADDRESS, actor=Actor.cli(), configured_key="k", now=NOW)
    assert (report.closed, report.cancelled) == (2, 1)

    with session_scope(engine) as session:
        conversations = session.exec(select(Conversation).order_by(col(Conversation.id))).all()
        assert [(c.status, c.closed_at) for c in conversations] == [
            (ConversationStatus.closed, NOW), (ConversationStatus.closed, NOW), (ConversationStatus.open, None)]
        assert session.exec(select(FollowUp.status)).one() == FollowUpStatus.cancelled
        queue, total = rep_queue(session, martin)
        assert total == 1 and [line.subject for line in queue] == ["Invoice"]  # the other customer's
        after = _digest(session, NOW)
        assert (after["open"], after["overdue"], after["waiting"]) == (1, 0, before["waiting"][2:])
        # the breach that happened stays history; Julia's SLA that had not fallen due never
        # becomes one (two days on, only the other customer's unanswered mail is added)
        assert after["sla_breaches"] == 1
        assert _digest(session, NOW + timedelta(days=2))["sla_breaches"] == 2
        entry = session.exec(select(AuditEntry).where(AuditEntry.action == "privacy.erase")).one()
        assert (entry.detail["closed"], entry.detail["cancelled"]) == (2, 1)
