"""Exports: each record kind as flat rows (dicts) with documented field names.

Rows stream from the database (`yield_per`), so exporting a million messages
holds a batch in memory, not the table. Field lists are the contract the
README documents; `FIELDS[kind]` is the column order for CSV.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TextIO

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from store.models import (
    Activity,
    Assignment,
    Company,
    CompanyDomain,
    Contact,
    ContactEmail,
    Conversation,
    FollowUp,
    Message,
    Order,
    Rep,
)
from store.owners import effective_owner_id
from store.validation import PLAIN_NUMBER

BATCH = 1000

FIELDS: dict[str, list[str]] = {
    "contacts": [
        "id",
        "name",
        "email",
        "other_emails",
        "phone",
        "kind",
        "stage",
        "company",
        "company_domain",
        "owner",
        "language",
        "title",
        "created_at",
    ],
    "companies": ["id", "name", "domains", "kind", "owner", "industry", "country", "created_at"],
    "conversations": [
        "id",
        "subject",
        "contact_email",
        "contact_name",
        "company",
        "owner",
        "queue",
        "rule",
        "reason",
        "status",
        "category",
        "category_confidence",
        "language",
        "urgency",
        "is_automatic",
        "opened_at",
        "last_message_at",
        "first_response_at",
        "answered_at",
        "sla_due_at",
    ],
    "messages": [
        "id",
        "conversation_id",
        "direction",
        "message_id",
        "in_reply_to",
        "from_email",
        "to",
        "subject",
        "sent_at",
        "received_at",
        "contact_email",
        "owner",
        "rule",
        "reason",
        "status",
        "category",
        "category_confidence",
        "language",
        "entities",
        "is_automatic",
        "automatic_reason",
        "model_version",
        "first_response_at",
        "mailbox",
        "folder",
        "uid",
        "parse_problems",
    ],
    "activities": [
        "id",
        "kind",
        "occurred_at",
        "contact_email",
        "company",
        "rep",
        "outcome",
        "duration_minutes",
        "summary",
        "next_step",
        "link",
        "contact_kind_from",
        "contact_kind_to",
        "stage_from",
        "stage_to",
    ],
    "followups": ["id", "contact_email", "rep", "due_at", "status", "note", "source", "done_at"],
    "orders": [
        "id",
        "order_id",
        "contact_email",
        "company",
        "amount",
        "currency",
        "ordered_on",
        "product_category",
        "status",
    ],
}
KINDS = tuple(FIELDS)

# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: str) -> str:
    """A cell a spreadsheet shows as text and never runs: a leading `'` before a formula start.

    Plain numbers such as `-12.50` stay numbers. A value that already starts with
    quotes before a formula start gets one more, so `restore_cell` is its exact inverse.
    """
    if value.lstrip("'").startswith(FORMULA_STARTS) and not PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def restore_cell(value: str) -> str:
    """The inverse of `neutralise_cell`, for re-importing our own exports."""
    if value.startswith("'") and value[1:].lstrip("'").startswith(FORMULA_STARTS):
        return value[1:]
    return value


def write_csv(rows: Iterable[dict[str, Any]], fields: list[str], out: TextIO, *, bom: bool = True) -> int:
    """Rows as spreadsheet-safe CSV (lists and dicts as JSON); returns how many.

    The UTF-8 byte order mark is what makes Excel read accents right.
    """
    if bom:
        out.write("\ufeff")
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    count = 0
    for row in rows:
        writer.writerow({key: _cell(value) for key, value in row.items()})
        count += 1
    return count


def _cell(value: Any) -> Any:
    if isinstance(value, list | dict):
        value = json.dumps(value, ensure_ascii=False)
    return neutralise_cell(value) if isinstance(value, str) else value


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _primary_email():
    """Scalar subquery: a contact's primary address (else its first)."""
    ce = aliased(ContactEmail)
    return (
        select(ce.email)
        .where(ce.contact_id == Contact.id)
        .order_by(col(ce.is_primary).desc(), col(ce.id))
        .limit(1)
        .scalar_subquery()
    )


def _latest_assignment():
    """The newest assignment of each conversation (a subquery with rule, reason)."""
    newest = (
        select(Assignment.conversation_id, func.max(Assignment.id).label("id"))
        .group_by(col(Assignment.conversation_id))
        .subquery()
    )
    return select(Assignment).join(newest, newest.c.id == Assignment.id).subquery()


def _contacts(session: Session) -> Iterator[dict[str, Any]]:
    owner = aliased(Rep)
    query = (
        select(Contact, Company.name, owner.email)
        .outerjoin(Company, col(Company.id) == Contact.company_id)
        .outerjoin(owner, col(owner.id) == effective_owner_id(Contact.owner_id, Company.owner_id))
        .order_by(col(Contact.id))
    )
    for contact, company, owner_email in session.exec(query.execution_options(yield_per=BATCH)):
        emails = session.exec(
            select(ContactEmail.email)
            .where(ContactEmail.contact_id == contact.id)
            .order_by(col(ContactEmail.is_primary).desc(), col(ContactEmail.id))
        ).all()
        domain = session.exec(
            select(CompanyDomain.domain).where(col(CompanyDomain.company_id) == contact.company_id)
        ).first()
        yield {
            "id": contact.id,
            "name": contact.name,
            "email": emails[0] if emails else None,
            "other_emails": "|".join(emails[1:]),
            "phone": contact.phone,
            "kind": contact.kind,
            "stage": contact.stage,
            "company": company,
            "company_domain": domain,
            "owner": owner_email,
            "language": contact.language,
            "title": contact.title,
            "created_at": contact.created_at,
        }


def _companies(session: Session) -> Iterator[dict[str, Any]]:
    query = (
        select(Company, Rep.email).outerjoin(Rep, col(Rep.id) == Company.owner_id).order_by(col(Company.id))
    )
    for company, owner_email in session.exec(query.execution_options(yield_per=BATCH)):
        domains = session.exec(
            select(CompanyDomain.domain).where(CompanyDomain.company_id == company.id)
        ).all()
        yield {
            "id": company.id,
            "name": company.name,
            "domains": "|".join(domains),
            "kind": company.kind,
            "owner": owner_email,
            "industry": company.industry,
            "country": company.country,
            "created_at": company.created_at,
        }


def _conversations(session: Session) -> Iterator[dict[str, Any]]:
    assignment = _latest_assignment()
    query = (
        sa_select(
            Conversation,
            _primary_email(),
            col(Contact.name),
            col(Company.name),
            col(Rep.email),
            assignment.c.rule,
            assignment.c.reason,
        )
        .outerjoin(Contact, col(Contact.id) == Conversation.contact_id)
        .outerjoin(Company, col(Company.id) == Conversation.company_id)
        .outerjoin(Rep, col(Rep.id) == Conversation.owner_id)
        .outerjoin(assignment, assignment.c.conversation_id == Conversation.id)
        .order_by(col(Conversation.id))
    )
    for conv, email, contact_name, company, owner, rule, reason in session.execute(
        query.execution_options(yield_per=BATCH)
    ):
        yield {
            "id": conv.id,
            "subject": conv.subject,
            "contact_email": email,
            "contact_name": contact_name,
            "company": company,
            "owner": owner,
            "queue": conv.queue,
            "rule": rule,
            "reason": reason,
            "status": conv.status,
            "category": conv.category,
            "category_confidence": conv.category_confidence,
            "language": conv.language,
            "urgency": conv.urgency,
            "is_automatic": conv.is_automatic,
            "opened_at": conv.opened_at,
            "last_message_at": conv.last_message_at,
            "first_response_at": conv.first_response_at,
            "answered_at": conv.answered_at,
            "sla_due_at": conv.sla_due_at,
        }


def _messages(session: Session) -> Iterator[dict[str, Any]]:
    assignment = _latest_assignment()
    query = (
        sa_select(Message, Conversation, _primary_email(), col(Rep.email), assignment.c.rule, assignment.c.reason)
        .outerjoin(Conversation, col(Conversation.id) == Message.conversation_id)
        .outerjoin(Contact, col(Contact.id) == Message.contact_id)
        .outerjoin(Rep, col(Rep.id) == Conversation.owner_id)
        .outerjoin(assignment, assignment.c.conversation_id == Message.conversation_id)
        .order_by(col(Message.id))
    )
    for msg, conv, email, owner, rule, reason in session.execute(query.execution_options(yield_per=BATCH)):
        yield {
            "id": msg.id,
            "conversation_id": msg.conversation_id,
            "direction": msg.direction,
            "message_id": msg.message_id,
            "in_reply_to": msg.in_reply_to,
            "from_email": msg.from_email,
            "to": "|".join(msg.to),
            "subject": msg.subject,
            "sent_at": msg.sent_at,
            "received_at": msg.received_at,
            "contact_email": email or msg.from_email,
            "owner": owner,
            "rule": rule,
            "reason": reason,
            "status": conv.status if conv else None,
            "category": msg.category,
            "category_confidence": msg.category_confidence,
            "language": msg.language,
            "entities": msg.entities,
            "is_automatic": msg.is_automatic,
            "automatic_reason": msg.automatic_reason,
            "model_version": msg.model_version,
            "first_response_at": conv.first_response_at if conv else None,
            "mailbox": msg.mailbox,
            "folder": msg.folder,
            "uid": msg.uid,
            "parse_problems": msg.parse_problems,
        }


def _activities(session: Session) -> Iterator[dict[str, Any]]:
    query = (
        select(Activity, _primary_email(), Company.name, Rep.email)
        .outerjoin(Contact, col(Contact.id) == Activity.contact_id)
        .outerjoin(Company, col(Company.id) == Activity.company_id)
        .outerjoin(Rep, col(Rep.id) == Activity.rep_id)
        .order_by(col(Activity.id))
    )
    for act, email, company, rep in session.exec(query.execution_options(yield_per=BATCH)):
        yield {
            "id": act.id,
            "kind": act.kind,
            "occurred_at": act.occurred_at,
            "contact_email": email,
            "company": company,
            "rep": rep,
            "outcome": act.outcome,
            "duration_minutes": act.duration_minutes,
            "summary": act.summary,
            "next_step": act.next_step,
            "link": act.link,
            "contact_kind_from": act.contact_kind_from,
            "contact_kind_to": act.contact_kind_to,
            "stage_from": act.stage_from,
            "stage_to": act.stage_to,
        }


def _followups(session: Session) -> Iterator[dict[str, Any]]:
    query = (
        select(FollowUp, _primary_email(), Rep.email)
        .outerjoin(Contact, col(Contact.id) == FollowUp.contact_id)
        .outerjoin(Rep, col(Rep.id) == FollowUp.rep_id)
        .order_by(col(FollowUp.id))
    )
    for fu, email, rep in session.exec(query.execution_options(yield_per=BATCH)):
        yield {
            "id": fu.id,
            "contact_email": email,
            "rep": rep,
            "due_at": fu.due_at,
            "status": fu.status,
            "note": fu.note,
            "source": fu.source,
            "done_at": fu.done_at,
        }


def _orders(session: Session) -> Iterator[dict[str, Any]]:
    query = (
        select(Order, _primary_email(), Company.name)
        .outerjoin(Contact, col(Contact.id) == Order.contact_id)
        .outerjoin(Company, col(Company.id) == Order.company_id)
        .order_by(col(Order.id))
    )
    for order, email, company in session.exec(query.execution_options(yield_per=BATCH)):
        yield {
            "id": order.id,
            "order_id": order.external_id,
            "contact_email": email,
            "company": company,
            "amount": order.amount,
            "currency": order.currency,
            "ordered_on": order.ordered_on,
            "product_category": order.product_category,
            "status": order.status,
        }


EXPORTERS: dict[str, Callable[[Session], Iterator[dict[str, Any]]]] = {
    "contacts": _contacts,
    "companies": _companies,
    "conversations": _conversations,
    "messages": _messages,
    "activities": _activities,
    "followups": _followups,
    "orders": _orders,
}


def export_rows(session: Session, kind: str) -> Iterator[dict[str, Any]]:
    """Rows of `kind` with JSON-ready values (ISO times, amounts as strings)."""
    for row in EXPORTERS[kind](session):
        yield {key: _plain(row.get(key)) for key in FIELDS[kind]}
