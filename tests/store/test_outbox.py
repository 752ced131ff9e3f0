"""The outbox: a key is enqueued once; claims lease rows; failures back off and give up."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from store.db import session_scope
from store.models import OutboxItem
from store.outbox import (
    MAX_ATTEMPTS,
    AssignmentDm,
    DigestEmail,
    Reminder,
    claim_due,
    enqueue,
    mark_failed,
    mark_sent,
)
from store.types import utcnow


def _pending(session: Session, kind: str | None = None) -> int:
    query = select(func.count()).select_from(OutboxItem).where(OutboxItem.status == "pending")
    return int(session.exec(query.where(col(OutboxItem.kind) == kind) if kind else query).one())


def test_the_same_key_is_enqueued_once(engine: Engine) -> None:
    with session_scope(engine) as session:
        assert enqueue(session, AssignmentDm(1, None), now=utcnow()) is not None
        assert enqueue(session, AssignmentDm(1, None), now=utcnow()) is None
    with session_scope(engine) as session:
        assert enqueue(session, AssignmentDm(1, None), now=utcnow()) is None
        assert _pending(session) == 1


def test_a_claimed_item_is_not_claimed_again_until_its_lease_expires(engine: Engine) -> None:
    with session_scope(engine) as session:
        enqueue(session, Reminder(1, "2026-11-23T09:00:00+00:00"), now=utcnow())
    now = utcnow()
    with session_scope(engine) as session:
        assert len(claim_due(session, ["reminder"], now=now)) == 1
    with session_scope(engine) as session:
        assert claim_due(session, ["reminder"], now=now + timedelta(seconds=30)) == []
    with session_scope(engine) as session:
        # the claimer died without marking it sent: after the lease it is retried
        [item] = claim_due(session, ["reminder"], now=now + timedelta(minutes=5))
        assert item.attempts == 2
        mark_sent(session, item)
    with session_scope(engine) as session:
        assert claim_due(session, ["reminder"], now=now + timedelta(hours=1)) == []
        assert _pending(session) == 0


def test_failures_back_off_then_give_up(engine: Engine) -> None:
    with session_scope(engine) as session:
        enqueue(session, DigestEmail("x@y.example", "day", "", "", "2026-11-23"), now=utcnow())
    later = utcnow()
    for _ in range(MAX_ATTEMPTS):
        later += timedelta(days=1)
        with session_scope(engine) as session:
            [item] = claim_due(session, ["digest-email"], now=later)
            mark_failed(session, item, "smtp down")
    with session_scope(engine) as session:
        assert claim_due(session, ["digest-email"], now=later + timedelta(days=30)) == []
        assert _pending(session, "digest-email") == 0
