"""Store set-ups the CLI tests share."""

from __future__ import annotations

from sqlmodel import Session

from store.models import Company, Rep


def company_owned_by(session: Session, rep_name: str, rep_email: str, company_name: str) -> Company:
    """A stored company whose owner is a new rep: its contacts are the rep's through the company."""
    rep = Rep(name=rep_name, email=rep_email)
    session.add(rep)
    session.flush()
    company = Company(name=company_name, owner_id=rep.id)
    session.add(company)
    session.flush()
    return company
