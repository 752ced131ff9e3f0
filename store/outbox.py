"""The outbox: side effects recorded in the same transaction as their cause, done once.

Producers call `enqueue` inside their transaction. Dispatchers call
`claim_due`, which leases rows so that another process (or a restart) does not
take them while they are being worked on; then `mark_sent` or `mark_failed`.
A process killed mid-send leaves a lease that expires, so the row is retried:
no side effect is lost. Rows are never deleted, so a key is never enqueued twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from store.models import OutboxItem, OutboxStatus
from store.types import utcnow

MAX_ATTEMPTS = 8


def enqueue(
    session: Session,
    kind: str,
    key: str,
    payload: dict[str, Any],
    *,
    due_at: datetime | None = None,
) -> OutboxItem | None:
    """Add an item unless one with `key` exists; returns the new item or None.

    Uses a savepoint so a clash with a concurrent producer does not spoil the
    caller's transaction.
    """
    if session.exec(select(OutboxItem.id).where(OutboxItem.key == key)).first() is not None:
        return None
    item = OutboxItem(kind=kind, key=key, payload=payload, due_at=due_at or utcnow())
    try:
        with session.begin_nested():
            session.add(item)
    except IntegrityError:
        return None
    return item


def claim_due(
    session: Session,
    kinds: Sequence[str],
    *,
    limit: int = 100,
    lease: timedelta = timedelta(minutes=2),
    now: datetime | None = None,
) -> list[OutboxItem]:
    """Lease up to `limit` due items of `kinds`; commit the session to publish the lease."""
    now = now or utcnow()
    query = (
        select(OutboxItem)
        .where(
            OutboxItem.status == OutboxStatus.pending,
            col(OutboxItem.kind).in_(list(kinds)),
            col(OutboxItem.due_at) <= now,
            or_(col(OutboxItem.claimed_until).is_(None), col(OutboxItem.claimed_until) < now),
        )
        .order_by(col(OutboxItem.due_at), col(OutboxItem.id))
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    items = list(session.exec(query).all())
    for item in items:
        item.claimed_until = now + lease
        item.attempts += 1
        session.add(item)
    return items


def mark_sent(session: Session, item: OutboxItem, *, result: dict[str, Any] | None = None) -> None:
    item.status = OutboxStatus.sent
    item.sent_at = utcnow()
    item.claimed_until = None
    item.last_error = None
    if result:
        item.payload = {**item.payload, "result": result}
    session.add(item)


def mark_failed(
    session: Session,
    item: OutboxItem,
    error: str,
    *,
    retry_after: timedelta | None = None,
    now: datetime | None = None,
) -> None:
    """Record a failure; retry later with exponential backoff, give up after MAX_ATTEMPTS."""
    item.last_error = error[:2000]
    item.claimed_until = None
    if item.attempts >= MAX_ATTEMPTS:
        item.status = OutboxStatus.failed
    else:
        item.due_at = (now or utcnow()) + (retry_after or timedelta(seconds=min(3600, 5 * 2**item.attempts)))
    session.add(item)


def pending_count(session: Session, kinds: Sequence[str] | None = None) -> int:
    from sqlalchemy import func

    query = select(func.count()).select_from(OutboxItem).where(OutboxItem.status == OutboxStatus.pending)
    if kinds:
        query = query.where(col(OutboxItem.kind).in_(list(kinds)))
    return int(session.exec(query).one())
