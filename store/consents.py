"""Consent per purpose: the writes other packages make through one function each."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlmodel import Session, col, select

from store.models import Consent
from store.types import utcnow


def withdraw_consent(
    session: Session, contact_ids: Collection[int], purpose: str, *, source: str, at: datetime | None = None
) -> set[int]:
    """Record that these contacts withdrew consent for `purpose`; the ones for whom that is news.

    A contact without a consent row for the purpose gets one that says only "withdrawn"
    (an opt-out in a CRM export says no more than that). One look-up for all of them.
    """
    if not contact_ids:
        return set()
    when = at or utcnow()
    consents: dict[int, Consent] = {}
    for consent in session.exec(
        select(Consent)
        .where(col(Consent.contact_id).in_(set(contact_ids)), Consent.purpose == purpose)
        .order_by(col(Consent.id))
    ):
        consents.setdefault(consent.contact_id, consent)
    changed: set[int] = set()
    for contact_id in set(contact_ids):
        found = consents.get(contact_id)
        if found is not None and found.withdrawn_at is not None:
            continue
        consent = found or Consent(contact_id=contact_id, purpose=purpose, basis="consent", source=source)
        consent.withdrawn_at = when
        session.add(consent)
        changed.add(contact_id)
    return changed
