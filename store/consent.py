"""Consent per purpose (service, marketing, survey): given, withdrawn, and whether we may write.

One row per contact and purpose (`Consent`, unique). `record_consent` gives it
(with a legal basis and a source), `withdraw_consent` withdraws it; both write
an Activity on the contact, so the card's history shows who changed what and
when. The card (Slack), an "unsubscribe me" mail (inbox) and imports
(`import_consent`, `withdraw_consent_many`) call these functions; nothing else
writes consent rows. Every change is also an audit entry `consent.change`
(store.audit) naming the actor, the purpose, give or withdraw, and the source.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, col, select

from store.activities import log_activity
from store.audit import Actor, audit_values, record_audits
from store.models import Consent, ConsentPurpose, Contact, Rep, Role
from store.owners import owner_id_of

PURPOSES: tuple[str, ...] = tuple(ConsentPurpose)
BASES: tuple[str, ...] = ("consent", "contract", "legitimate_interest", "legal_obligation")


class ConsentError(ValueError):
    """A consent change that cannot be made as asked (unknown purpose or basis); the message says why."""


def consent_for(session: Session, contact_id: int, purpose: str) -> Consent | None:
    return session.exec(select(Consent).where(Consent.contact_id == contact_id, Consent.purpose == purpose)).first()


def is_given(consent: Consent | None) -> bool:
    return consent is not None and consent.granted_at is not None and consent.withdrawn_at is None


def record_consent(
    session: Session,
    contact: Contact,
    purpose: str,
    source: str,
    at: datetime,
    *,
    basis: str = "consent",
    actor: Actor,
    rep: Rep | None = None,
    note_activity: bool = True,
) -> Consent:
    """Consent for `purpose` given at `at` (a withdrawn one is given again); `source` says where
    it came from ("slack", "import", "hubspot", ...), `rep` who recorded it, `actor` who did it
    and from where (the audit log)."""
    _check(purpose, basis)
    assert contact.id is not None
    consent = consent_for(session, contact.id, purpose) or Consent(contact_id=contact.id, purpose=purpose, basis=basis)
    changed = not is_given(consent) or consent.basis != basis
    consent.basis, consent.source = basis, source
    if not is_given(consent):
        consent.granted_at, consent.withdrawn_at = at, None
    session.add(consent)
    session.flush()
    if changed:
        _audit(session, actor, contact.id, purpose, "give", source, at, basis=basis)
    if changed and note_activity:
        _note(session, contact, rep, at, f"Consent for {purpose} given ({basis.replace('_', ' ')}; source: {source})")
    return consent


def withdraw_consent(
    session: Session,
    contact: Contact,
    purpose: str,
    source: str,
    at: datetime,
    *,
    actor: Actor,
    rep: Rep | None = None,
    note_activity: bool = True,
) -> Consent | None:
    """Consent for `purpose` withdrawn at `at`; None when it was withdrawn already (nothing changed).

    Also without an earlier grant: the opt-out is recorded (basis "consent", no `granted_at`)."""
    _check(purpose, "consent")
    assert contact.id is not None
    consent = consent_for(session, contact.id, purpose)
    if consent is not None and consent.withdrawn_at is not None:
        return None
    consent = consent or Consent(contact_id=contact.id, purpose=purpose, basis="consent")
    consent.withdrawn_at, consent.source = at, source
    session.add(consent)
    session.flush()
    _audit(session, actor, contact.id, purpose, "withdraw", source, at)
    if note_activity:
        _note(session, contact, rep, at, f"Consent for {purpose} withdrawn (source: {source})")
    return consent


def withdraw_consent_many(
    session: Session, contact_ids: Collection[int], purpose: str, source: str, at: datetime, *, actor: Actor
) -> set[int]:
    """`withdraw_consent` for many contacts at once (an import's opt-out column), one look-up and no
    activity per contact; returns the contacts for whom it is news."""
    _check(purpose, "consent")
    wanted = set(contact_ids)
    if not wanted:
        return set()
    found = {c.contact_id: c for c in session.exec(
        select(Consent).where(col(Consent.contact_id).in_(list(wanted)), Consent.purpose == purpose))}
    added: list[dict[str, Any]] = []  # rows, not objects: an import withdraws thousands at once
    entries: list[dict[str, Any]] = []
    for contact_id in sorted(wanted):
        consent = found.get(contact_id)
        if consent is None:
            added.append({"contact_id": contact_id, "purpose": purpose, "basis": "consent", "granted_at": None,
                          "withdrawn_at": at, "source": source})
        elif consent.withdrawn_at is not None:
            continue
        else:
            consent.withdrawn_at, consent.source = at, source
            session.add(consent)
        entries.append(_change(actor, contact_id, purpose, "withdraw", source, at))
    session.flush()
    if added:
        session.execute(insert(Consent), added)
    record_audits(session, entries)
    return {entry["contact_id"] for entry in entries}


def import_consent(
    session: Session, contact_id: int, purpose: str, basis: str, source: str, at: datetime, *, actor: Actor
) -> bool:
    """A consent a file states (an import's consent columns): recorded when there is none, its basis
    updated when it differs; a withdrawal stays (an old file does not give consent back). Whether
    anything changed."""
    _check(purpose, basis)
    existing = consent_for(session, contact_id, purpose)
    if existing is not None and existing.basis == basis:
        return False
    if existing is None:
        existing = Consent(contact_id=contact_id, purpose=purpose, basis=basis, granted_at=at, source=source)
    existing.basis = basis
    session.add(existing)
    _audit(session, actor, contact_id, purpose, "give", source, at, basis=basis)
    return True


def may_contact(session: Session, contact_id: int, purpose: str, *, needs_consent: bool = True) -> bool:
    """Whether we may write to the contact for `purpose`: never after a withdrawal; without a
    record only when `needs_consent` is off (legitimate interest)."""
    consent = consent_for(session, contact_id, purpose)
    if consent is None:
        return not needs_consent
    return consent.withdrawn_at is None and (consent.granted_at is not None or not needs_consent)


def may_change_consent(session: Session, rep: Rep, contact_id: int) -> bool:
    """The contact's (effective) owner, a manager or an admin may change its consent from the card."""
    if not rep.active:
        return False
    return rep.role in (Role.manager, Role.admin) or (rep.id is not None and rep.id == owner_id_of(session, contact_id))


def _check(purpose: str, basis: str) -> None:
    if not purpose or len(purpose) > 60:
        raise ConsentError(f"a consent purpose is a short word, e.g. {', '.join(PURPOSES)}")
    if basis not in BASES:
        raise ConsentError(f"unknown legal basis {basis!r}; use one of: {', '.join(BASES)}")


def _change(actor: Actor, contact_id: int | None, purpose: str, change: str, source: str, at: datetime, *,
            basis: str | None = None) -> dict[str, Any]:
    detail = {"purpose": purpose, "change": change, "source": source} | ({"basis": basis} if basis else {})
    return audit_values(actor, "consent.change", target_kind="contact", target_id=contact_id,
                        contact_id=contact_id, detail=detail, at=at)


def _audit(session: Session, actor: Actor, contact_id: int | None, purpose: str, change: str, source: str,
           at: datetime, *, basis: str | None = None) -> None:
    record_audits(session, [_change(actor, contact_id, purpose, change, source, at, basis=basis)])


def _note(session: Session, contact: Contact, rep: Rep | None, at: datetime, summary: str) -> None:
    log_activity(session, contact_id=contact.id, rep_id=rep.id if rep else None, summary=summary, occurred_at=at)


__all__ = ["BASES", "PURPOSES", "ConsentError", "consent_for", "import_consent", "is_given", "may_change_consent",
           "may_contact", "record_consent", "withdraw_consent", "withdraw_consent_many"]
