"""Consent on the contact card: a menu to give or withdraw it per purpose, and what a choice does.

Only the contact's owner, a manager or an admin may change it
(`store.consent.may_change_consent`); the change writes an Activity on the
contact and an audit entry (store/consent.py), so the card's history says who
did it; a refusal is audited here.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from bot.blocks import Block, static_select
from bot.interactions import Outcome
from bot.text import escape
from store.audit import REFUSED, Actor, record_audit
from store.consent import (
    PURPOSES,
    consent_for,
    is_given,
    may_change_consent,
    record_consent,
    withdraw_consent,
)
from store.contacts_view import ContactCard
from store.models import Contact, Rep

CONSENT_ACTION = "consent_change"


def consent_select(card: ContactCard) -> Block:
    """The "Consent…" menu: give what is not given, withdraw what is; value `<contact id>:<purpose>:<give|withdraw>`."""
    given = {c.purpose for c in card.consents if c.granted_at is not None and c.withdrawn_at is None}
    options = [(f"Withdraw {purpose}" if purpose in given else f"Give {purpose}",
                 f"{card.id}:{purpose}:{'withdraw' if purpose in given else 'give'}") for purpose in PURPOSES]
    return static_select("Consent…", CONSENT_ACTION, options)


def change_consent(session: Session, rep: Rep, contact_id: int, argument: str, *, now: datetime,
                   actor: Actor) -> Outcome:
    """`argument` is `<purpose>:<give|withdraw>` (from the card's menu); consent given from the card
    has the basis "consent" and the source "slack"."""
    purpose, _, change = argument.partition(":")
    contact = session.get(Contact, contact_id)
    if contact is None:
        return Outcome("That contact no longer exists.", ok=False)
    if purpose not in PURPOSES or change not in ("give", "withdraw"):
        return Outcome("That is not a consent change Rapport knows.", ok=False)
    if not may_change_consent(session, rep, contact_id):
        record_audit(session, actor, "consent.change", target_kind="contact", target_id=contact_id,
                     contact_id=contact_id, outcome=REFUSED, detail={"purpose": purpose, "change": change}, at=now)
        return Outcome("Only the contact's owner or a manager can change their consent.", ok=False)
    if change == "give":
        if is_given(consent_for(session, contact_id, purpose)):
            return Outcome(f"{escape(contact.name)} had already given consent for {purpose}.", ok=False)
        record_consent(session, contact, purpose, basis="consent", source="slack", at=now, rep=rep, actor=actor)
        return Outcome(f"Consent for {purpose} given by {escape(contact.name)}, recorded by {escape(rep.name)}.")
    if withdraw_consent(session, contact, purpose, source="slack", at=now, rep=rep, actor=actor) is None:
        return Outcome(f"{escape(contact.name)}'s consent for {purpose} was already withdrawn.", ok=False)
    return Outcome(f"Consent for {purpose} withdrawn for {escape(contact.name)}, recorded by {escape(rep.name)}.")


__all__ = ["CONSENT_ACTION", "change_consent", "consent_select"]
