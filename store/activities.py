"""Activities: what happened with a contact (calls, notes, Slack messages logged to the CRM)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from store.models import Activity, ActivityKind, Contact
from store.types import utcnow


def log_activity(
    session: Session,
    *,
    contact_id: int | None,
    rep_id: int | None,
    summary: str,
    kind: str = ActivityKind.note,
    outcome: str | None = None,
    duration_minutes: int | None = None,
    next_step: str | None = None,
    link: str | None = None,
    conversation_id: int | None = None,
    occurred_at: datetime | None = None,
) -> Activity:
    """Record an activity; its company is the contact's company at the time."""
    if kind not in set(ActivityKind):
        raise ValueError(f"unknown activity kind {kind!r}; known: {', '.join(ActivityKind)}")
    contact = session.get(Contact, contact_id) if contact_id is not None else None
    activity = Activity(
        kind=kind,
        contact_id=contact_id,
        company_id=contact.company_id if contact else None,
        rep_id=rep_id,
        conversation_id=conversation_id,
        outcome=outcome or None,
        duration_minutes=duration_minutes,
        summary=summary.strip(),
        next_step=(next_step or "").strip() or None,
        link=link,
        occurred_at=occurred_at or utcnow(),
    )
    session.add(activity)
    session.flush()
    return activity


def recent_activities(
    session: Session, *, contact_id: int | None = None, rep_id: int | None = None, limit: int = 5
) -> list[Activity]:
    """Latest activities of a contact or of a rep, newest first."""
    query = select(Activity)
    if contact_id is not None:
        query = query.where(Activity.contact_id == contact_id)
    if rep_id is not None:
        query = query.where(Activity.rep_id == rep_id)
    return list(
        session.exec(
            query.order_by(col(Activity.occurred_at).desc(), col(Activity.id).desc()).limit(limit)
        ).all()
    )
