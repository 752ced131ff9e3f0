"""The audit log: who did what, when, to what and from where (an append-only table).

`record_audit` is the one writer (`record_audits` for many entries at once), called in the same transaction as the act it
records (a refusal is recorded in a transaction of its own). Rows name people by
id, never by name, address or mail text; an erasure replaces the person's id with
their keyed hash (`pseudonymise`), so the history is kept and points at no one.
"""

from __future__ import annotations

import getpass
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, Unpack

from sqlalchemy import Table, event, or_, update
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col, select

from store.db import append_rows
from store.models import AuditEntry
from store.types import utcnow

OK, REFUSED = "ok", "refused"


class AppendOnly(Exception):
    """Something tried to change or delete an audit entry."""


@event.listens_for(OrmSession, "before_flush")
def _append_only(session: OrmSession, _context: Any, _instances: Any) -> None:
    """The log is appended to, never edited: an entry changed or deleted through a session fails
    the flush (the erasure's `pseudonymise` is a bulk UPDATE of two columns, by design)."""
    touched = [obj for obj in (*session.dirty, *session.deleted) if isinstance(obj, AuditEntry)]
    if any(obj in session.deleted or session.is_modified(obj) for obj in touched):
        raise AppendOnly("audit entries are never changed or deleted")


@dataclass(frozen=True)
class Actor:
    """Who acts and from where: a rep in Slack, a person at the CLI, or Rapport itself."""

    name: str  # the rep's email, "cli:user@host" or "rapport"
    via: str  # "slack", "cli", "scheduler"
    origin: str | None = None  # Slack user and channel, or the CLI's user and host

    @classmethod
    def cli(cls) -> Actor:
        who = f"{_login()}@{socket.gethostname()}"
        return cls(f"cli:{who}", "cli", who)

    @classmethod
    def slack(cls, rep_email: str, user_id: str, channel: str | None = None) -> Actor:
        return cls(rep_email, "slack", f"slack:{user_id}" + (f" in {channel}" if channel else ""))


SCHEDULER = Actor("rapport", "scheduler")
INBOX = Actor("rapport", "inbox")  # what a mail makes Rapport do (an unsubscribe, a sales enquiry's move)


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a container)
        return "unknown"


class AuditFields(TypedDict, total=False):
    target_kind: str | None
    target_id: int | None
    contact_id: int | None
    outcome: str
    detail: dict[str, Any] | None
    at: datetime | None


def audit_values(actor: Actor, action: str, **fields: Unpack[AuditFields]) -> dict[str, Any]:
    """One entry's columns; `detail` holds ids, categories and counts, never personal data."""
    return {"at": fields.get("at") or utcnow(), "actor": actor.name, "via": actor.via, "origin": actor.origin,
            "action": action, "outcome": fields.get("outcome", OK), "target_kind": fields.get("target_kind"),
            "target_id": fields.get("target_id"), "contact_id": fields.get("contact_id"),
            "detail": fields.get("detail") or {}}


def record_audit(session: Session, actor: Actor, action: str, **fields: Unpack[AuditFields]) -> None:
    """Append one entry (see `audit_values`)."""
    append_rows(session, _AUDIT, [audit_values(actor, action, **fields)])


def record_audits(session: Session, entries: Sequence[dict[str, Any]]) -> None:
    """Append many entries (`audit_values`), a statement for them all: an import's opt-outs are
    thousands of consent changes."""
    append_rows(session, _AUDIT, entries)


_AUDIT: Table = AuditEntry.__table__  # type: ignore[attr-defined]  # entries are rows, never objects (append_rows)


def pseudonymise(session: Session, contact_id: int, person_hash: str) -> int:
    """The erasure's one change to the log: the person's id becomes their keyed hash."""
    result = session.execute(
        update(AuditEntry).where(col(AuditEntry.contact_id) == contact_id)
        .values(contact_id=None, person_hash=person_hash)
    )
    touched = int(getattr(result, "rowcount", 0) or 0)
    session.execute(  # the contact as the target of an entry (card views) goes too
        update(AuditEntry).where(col(AuditEntry.target_kind) == "contact", col(AuditEntry.target_id) == contact_id)
        .values(target_id=None, person_hash=person_hash)
    )
    return touched


def audit_entries(
    session: Session,
    *,
    contact_ids: Sequence[int] = (),
    person_hashes: Sequence[str] = (),
    actor: str | None = None,
    since: datetime | None = None,
    limit: int = 1000,
) -> list[AuditEntry]:
    """Entries oldest first, filtered by person (current ids or erased hashes), actor and time."""
    query = select(AuditEntry)
    if contact_ids or person_hashes:
        query = query.where(or_(col(AuditEntry.contact_id).in_(list(contact_ids)),
                                col(AuditEntry.person_hash).in_(list(person_hashes))))
    if actor is not None:
        query = query.where(AuditEntry.actor == actor)
    if since is not None:
        query = query.where(col(AuditEntry.at) >= since)
    return list(session.exec(query.order_by(col(AuditEntry.at), col(AuditEntry.id)).limit(limit)).all())
