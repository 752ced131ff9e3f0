"""Activities: what happened with a contact or a company (calls, notes, Slack messages logged to the CRM).

Moves of a contact's kind and buying stage are activities too; they are written by store/stages.py.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import BindParameter, Select, and_, bindparam, or_, select
from sqlmodel import Session, col

from store.db import execute_columns
from store.models import Activity, ActivityKind, Contact


@dataclass(frozen=True)
class ActivityLine:
    """An activity as a line of a card or of App Home shows it: read as these columns, not as an
    Activity object (issue 15: the ORM's loading was a third of such a statement's CPU)."""

    kind: str
    contact_id: int | None
    company_id: int | None
    outcome: str | None
    summary: str
    occurred_at: datetime
    contact_kind_from: str | None
    contact_kind_to: str | None
    stage_from: str | None
    stage_to: str | None


ACTIVITY_LINE = tuple(col(getattr(Activity, field.name)) for field in fields(ActivityLine))


def log_activity(
    session: Session,
    *,
    contact_id: int | None,
    rep_id: int | None,
    summary: str,
    company_id: int | None = None,
    kind: str = ActivityKind.note,
    outcome: str | None = None,
    duration_minutes: int | None = None,
    next_step: str | None = None,
    link: str | None = None,
    conversation_id: int | None = None,
    occurred_at: datetime,
) -> Activity:
    """Record an activity about a contact (its company is the contact's company at the time)
    or, without a contact, about `company_id` (a note on a company); recorded when it occurred."""
    if kind not in set(ActivityKind):
        raise ValueError(f"unknown activity kind {kind!r}; known: {', '.join(ActivityKind)}")
    contact = session.get(Contact, contact_id) if contact_id is not None else None
    activity = Activity(
        kind=kind,
        contact_id=contact_id,
        company_id=contact.company_id if contact else company_id,
        rep_id=rep_id,
        conversation_id=conversation_id,
        outcome=outcome or None,
        duration_minutes=duration_minutes,
        summary=summary.strip(),
        next_step=(next_step or "").strip() or None,
        link=link,
        occurred_at=occurred_at,
        created_at=occurred_at,
    )
    session.add(activity)
    session.flush()
    return activity


def recent_activities(
    session: Session,
    *,
    contact_id: int | None = None,
    rep_id: int | None = None,
    company_id: int | None = None,
    moves: bool = True,
    limit: int = 5,
) -> list[ActivityLine]:
    """Latest activities of a contact (with `company_id`: and the notes on its company), or of a rep,
    newest first; `moves=False` leaves out moves of kind and stage (the card lists those apart)."""
    query = _recent_query(contact_id is not None, company_id is not None, rep_id is not None, moves)
    params = {"contact_id": contact_id, "company_id": company_id, "rep_id": rep_id, "limit": limit}
    return [ActivityLine(*row) for row in execute_columns(session, query, params)]


@cache
def _recent_query(by_contact: bool, with_company: bool, by_rep: bool, moves: bool) -> Select[Any]:
    """`recent_activities`' statement for one shape of question, built once (issue 15: building
    a statement per request cost more CPU than running it); the values are bound parameters."""
    query = select(*ACTIVITY_LINE)
    contact_id: BindParameter[int] = bindparam("contact_id")
    if by_contact and with_company:
        query = query.where(or_(col(Activity.contact_id) == contact_id,
                                and_(col(Activity.contact_id).is_(None),
                                     col(Activity.company_id) == bindparam("company_id"))))
    elif by_contact:
        query = query.where(col(Activity.contact_id) == contact_id)
    if not moves:
        query = query.where(col(Activity.kind) != ActivityKind.move)
    if by_rep:
        query = query.where(col(Activity.rep_id) == bindparam("rep_id"))
    return query.order_by(col(Activity.occurred_at).desc(), col(Activity.id).desc()).limit(bindparam("limit"))
