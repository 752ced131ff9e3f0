"""Sender to contact: by any of the contact's addresses, then company by domain, else a new prospect.

A `ContactIndex` answers for one batch: it reads the batch's addresses and
their companies' domains in two queries and keeps the prospects the batch
creates, which the pipeline then inserts in bulk.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from sqlmodel import Session, col, select

from inbox.threads import select_in
from store.models import Company, CompanyDomain, Contact, ContactEmail, ContactKind
from store.validation import is_free_mail as _listed_free_mail

# Domains anyone can sign up at: a sender there tells us nothing about a company.
FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com",
        "icloud.com", "me.com", "mac.com", "aol.com", "proton.me", "protonmail.com", "pm.me",
        "zoho.com", "mail.com", "yandex.com", "yandex.ru", "mail.ru", "gmx.com", "gmx.net",
        "gmx.de", "gmx.at", "gmx.ch", "web.de", "t-online.de", "freenet.de", "seznam.cz",
        "email.cz", "centrum.cz", "post.cz", "azet.sk", "centrum.sk", "zoznam.sk", "post.sk",
        "freemail.hu", "citromail.hu", "wp.pl", "o2.pl", "onet.pl", "interia.pl", "libero.it",
        "orange.fr", "laposte.net", "free.fr", "wanadoo.fr", "telia.com", "bluewin.ch",
        "siol.net", "tutanota.com", "fastmail.com", "hey.com",
    }
)
# Providers with a domain per country (yahoo.co.uk, gmx.es, hotmail.fr, ...).
_FREE_MAIL_FAMILIES = re.compile(r"^(yahoo|ymail|gmx|hotmail|outlook|live|aol|yandex)\.[a-z.]+$")


def is_free_mail(domain: str) -> bool:
    domain = domain.lower().strip().rstrip(".")
    return domain in FREE_MAIL_DOMAINS or bool(_FREE_MAIL_FAMILIES.match(domain)) or _listed_free_mail(domain)


def domain_of(email: str) -> str:
    return email.rpartition("@")[2].lower().strip().rstrip(".")


class ContactIndex:
    def __init__(self, now: datetime) -> None:
        self.now = now  # the batch's clock: new prospects are created at it
        self.contacts: dict[str, Contact] = {}
        self.companies: dict[str, Company] = {}  # by domain
        self.company_by_id: dict[int, Company] = {}
        self.new_contacts: list[Contact] = []
        self.new_emails: list[tuple[Contact, str]] = []

    @classmethod
    def load(cls, session: Session, addresses: Iterable[str], *, now: datetime) -> ContactIndex:
        index = cls(now)
        wanted = {a.lower() for a in addresses if a}
        query = select(ContactEmail.email, Contact).join(Contact, col(Contact.id) == ContactEmail.contact_id)
        index.contacts = dict(select_in(session, query, ContactEmail.email, wanted))
        domains = {domain_of(a) for a in wanted if a not in index.contacts}
        by_domain = select(CompanyDomain.domain, Company).join(Company, col(Company.id) == CompanyDomain.company_id)
        index.companies = dict(select_in(session, by_domain, CompanyDomain.domain,
                                         [d for d in domains if not is_free_mail(d)]))
        company_ids = {c.company_id for c in index.contacts.values() if c.company_id}
        index.company_by_id = {c.id: c for c in select_in(session, select(Company), Company.id, company_ids) if c.id}
        index.company_by_id.update({c.id: c for c in index.companies.values() if c.id})
        return index

    def company(self, company_id: int | None) -> Company | None:
        return self.company_by_id.get(company_id) if company_id is not None else None

    def match(
        self, email: str | None, name: str | None, *, language: str | None, create: bool = True
    ) -> tuple[Contact | None, Company | None]:
        """The contact (and company) of an address; an unknown one becomes a prospect (free mail: no company)."""
        if not email:
            return None, None
        email = email.lower()
        contact = self.contacts.get(email)
        if contact is not None:
            return contact, self.company(contact.company_id)
        company = self.companies.get(domain_of(email))
        if not create:
            return None, company
        contact = Contact(
            name=(name or "").strip() or email.partition("@")[0],
            kind=ContactKind.prospect,
            company_id=company.id if company else None,
            language=language,
            source="email",
            created_at=self.now,
            updated_at=self.now,
        )
        self.contacts[email] = contact
        self.new_contacts.append(contact)
        self.new_emails.append((contact, email))
        return contact, company


def mark_bouncing(session: Session, addresses: list[str], *, at: datetime) -> int:
    """Flag known addresses that a delivery report says failed; returns how many were flagged."""
    rows = select_in(session, select(ContactEmail), ContactEmail.email, [a.lower() for a in addresses])
    flagged = 0
    for row in rows:
        if not row.bouncing:
            row.bouncing = True
            row.bounced_at = at
            session.add(row)
            flagged += 1
    return flagged
