"""Follow-ups: create, list, remind once at the due minute, nudge once a day, snooze, close."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, or_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from store.db import execute_columns
from store.models import Contact, FollowUp, FollowUpStatus
from store.types import utcnow

NUDGE_EVERY = timedelta(days=1)


def create_followup(
    session: Session,
    *,
    rep_id: int,
    due_at: datetime,
    note: str = "",
    contact_id: int | None = None,
    source: str = "manual",
    now: datetime,
) -> FollowUp:
    followup = FollowUp(rep_id=rep_id, due_at=due_at, note=note.strip(), contact_id=contact_id, source=source,
                        created_at=now)
    session.add(followup)
    session.flush()
    return followup


@dataclass(frozen=True)
class FollowUpLine:
    """A follow-up as a line of `my`, App Home or a card shows it, with its contact's name: read
    as these columns, not as a FollowUp object and then the names (issue 15)."""

    id: int
    contact: str | None
    due_at: datetime
    note: str


def open_followups(
    session: Session, rep_id: int, *, limit: int = 20, due_before: datetime | None = None
) -> list[FollowUpLine]:
    """A rep's open follow-ups, soonest first (only those due before `due_before` if given)."""
    query = _OPEN_DUE_BEFORE if due_before is not None else _OPEN
    params = {"rep_id": rep_id, "due_before": due_before, "limit": limit}
    return [FollowUpLine(*row) for row in execute_columns(session, query, params)]


def open_followups_with(session: Session, rep_id: int, contact_id: int) -> list[FollowUpLine]:
    """A rep's open follow-ups with one contact, soonest first (`/crm done`, `snooze`)."""
    return [FollowUpLine(*row) for row in execute_columns(session, _OPEN_WITH, {"rep_id": rep_id,
                                                                               "contact_id": contact_id})]


def next_followup(session: Session, contact_id: int) -> FollowUpLine | None:
    row = execute_columns(session, _NEXT, {"contact_id": contact_id}).first()
    return FollowUpLine(*row) if row is not None else None


# Built once, values bound at execution (issue 15: `my` and the card run these on every request).
_LINE = sa_select(col(FollowUp.id), col(Contact.name), col(FollowUp.due_at), col(FollowUp.note)).outerjoin(
    Contact, col(Contact.id) == col(FollowUp.contact_id))
_OPEN = (
    _LINE
    .where(col(FollowUp.rep_id) == bindparam("rep_id"), col(FollowUp.status) == FollowUpStatus.open)
    .order_by(col(FollowUp.due_at), col(FollowUp.id))
    .limit(bindparam("limit"))
)
_OPEN_DUE_BEFORE = _OPEN.where(col(FollowUp.due_at) <= bindparam("due_before"))
_OPEN_WITH = _OPEN.where(col(FollowUp.contact_id) == bindparam("contact_id")).limit(None)
_NEXT = (
    _LINE
    .where(col(FollowUp.contact_id) == bindparam("contact_id"), col(FollowUp.status) == FollowUpStatus.open)
    .order_by(col(FollowUp.due_at))
    .limit(1)
)


def due_for_reminder(session: Session, now: datetime, *, limit: int = 200) -> list[FollowUp]:
    """Open follow-ups whose due time has come and that were not reminded of for that time."""
    query = (
        select(FollowUp)
        .where(
            FollowUp.status == FollowUpStatus.open,
            col(FollowUp.due_at) <= now,
            or_(col(FollowUp.reminded_at).is_(None), col(FollowUp.reminded_at) < col(FollowUp.due_at)),
        )
        .order_by(col(FollowUp.due_at))
        .limit(limit)
    )
    return list(session.exec(query).all())


def due_for_nudge(session: Session, now: datetime, *, limit: int = 200) -> list[FollowUp]:
    """Overdue follow-ups reminded of (or nudged) at least a day ago: one nudge a day, not a minute."""
    cutoff = now - NUDGE_EVERY
    query = (
        select(FollowUp)
        .where(
            FollowUp.status == FollowUpStatus.open,
            col(FollowUp.due_at) <= cutoff,
            col(FollowUp.reminded_at).is_not(None),
            col(FollowUp.reminded_at) <= cutoff,
            or_(col(FollowUp.last_nudged_at).is_(None), col(FollowUp.last_nudged_at) <= cutoff),
        )
        .order_by(col(FollowUp.due_at))
        .limit(limit)
    )
    return list(session.exec(query).all())


def mark_reminded(session: Session, followup: FollowUp, now: datetime) -> None:
    followup.reminded_at = max(now, followup.due_at)
    session.add(followup)


def mark_nudged(session: Session, followup: FollowUp, now: datetime) -> None:
    followup.last_nudged_at = now
    session.add(followup)


def complete_followup(session: Session, followup: FollowUp, now: datetime | None = None) -> bool:
    """Close an open follow-up; False if it was already closed (a second click does nothing)."""
    if followup.status != FollowUpStatus.open:
        return False
    followup.status = FollowUpStatus.done
    followup.done_at = now or utcnow()
    session.add(followup)
    return True


def snooze_followup(session: Session, followup: FollowUp, until: datetime) -> bool:
    """Move an open follow-up to `until`; it is reminded of again then."""
    if followup.status != FollowUpStatus.open:
        return False
    followup.due_at = until
    followup.reminded_at = None
    followup.last_nudged_at = None
    session.add(followup)
    return True
