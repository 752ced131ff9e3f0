"""Who owns a contact: the one owner rule, used by the card, `my`, visibility, segments and the digest.

A contact's *effective owner* is the contact's own owner, else its company's owner
(the account owner), else nobody. Every place that asks "whose contact is this?"
asks here, so the card, `my`, what a rep may see, the segments and the digest
cannot disagree.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, literal, select
from sqlmodel import Session, col

from store.db import execute_columns
from store.models import Company, Contact, Rep


def effective_owner_id(contact_owner_id: Any, company_owner_id: Any) -> Any:
    """SQL: the effective owner's id from the contact's and the company's owner columns."""
    return func.coalesce(contact_owner_id, company_owner_id)


def effective_owner_sql(contact: str, company: str) -> str:
    """The same rule for hand-written SQL: `contact` and `company` are the tables' aliases."""
    return f"COALESCE({contact}.owner_id, {company}.owner_id)"


def owned_by(owner: Any, owner_ids: Collection[int] | None) -> Any:
    """SQL filter on an effective-owner expression; None means everyone (no filter)."""
    return literal(True) if owner_ids is None else owner.in_(sorted(owner_ids))


def is_visible(owner_id: int | None, visible_owner_ids: Collection[int] | None) -> bool:
    """May someone who sees `visible_owner_ids` (None: everyone) see a record with this owner?
    Unowned records are visible to all."""
    return visible_owner_ids is None or owner_id is None or owner_id in visible_owner_ids


@dataclass(frozen=True)
class ContactOwner:
    """A contact's effective owner and where it comes from."""

    rep_id: int | None
    name: str | None
    via_company: str | None = None  # the company's name when the owner is the company's

    def describe(self) -> str:
        """`Anna Berg`, `Anna Berg (via company Acme)` or `no owner`."""
        if self.rep_id is None:
            return "no owner"
        name = self.name or "a former rep"
        return f"{name} (via company {self.via_company})" if self.via_company else name


def contact_owner(session: Session, contact: Contact) -> ContactOwner:
    """The effective owner of `contact`, saying whether it comes from the company."""
    company = session.get(Company, contact.company_id) if contact.owner_id is None and contact.company_id else None
    company_owner_id = company.owner_id if company else None
    owner_id = contact.owner_id if contact.owner_id is not None else company_owner_id
    rep = session.get(Rep, owner_id) if owner_id is not None else None
    return owner_of(contact.owner_id, company_owner_id, rep.name if rep else None, company.name if company else None)


def owner_of(contact_owner_id: int | None, company_owner_id: int | None, owner_name: str | None,
             company_name: str | None) -> ContactOwner:
    """The effective owner from a contact's and its company's owner columns, the effective owner's
    name (`effective_owner_id`'s rep) and the company's name: a statement of columns reads them
    at once (the card's, issue 15)."""
    if contact_owner_id is not None:
        return ContactOwner(contact_owner_id, owner_name)
    if company_owner_id is None:
        return ContactOwner(None, None)
    return ContactOwner(company_owner_id, owner_name, company_name)


def owner_id_of(session: Session, contact_id: int) -> int | None:
    """The effective owner's id of a contact (None: unowned, or no such contact)."""
    return execute_columns(session, _OWNER_ID, {"contact_id": contact_id}).scalar_one_or_none()


def owned_contacts(session: Session, rep_id: int) -> tuple[int, int]:
    """How many contacts `rep_id` owns: (their own, through the contact's company)."""
    counts = {bool(via_company): int(n) for via_company, n in execute_columns(session, _OWNED, {"rep_id": rep_id})}
    return counts.get(False, 0), counts.get(True, 0)


# Built once, values bound at execution: every button press and `my` ask (issue 15).
_OWNER_ID = (
    select(effective_owner_id(col(Contact.owner_id), col(Company.owner_id)))
    .select_from(Contact)
    .outerjoin(Company, col(Company.id) == col(Contact.company_id))
    .where(col(Contact.id) == bindparam("contact_id"))
)
_OWNED = (
    select(col(Contact.owner_id).is_(None), func.count())
    .select_from(Contact)
    .outerjoin(Company, col(Company.id) == col(Contact.company_id))
    .where(effective_owner_id(col(Contact.owner_id), col(Company.owner_id)) == bindparam("rep_id"))
    .group_by(col(Contact.owner_id).is_(None))
)


__all__ = [
    "ContactOwner",
    "contact_owner",
    "effective_owner_id",
    "effective_owner_sql",
    "is_visible",
    "owned_by",
    "owned_contacts",
    "owner_id_of",
    "owner_of",
]
