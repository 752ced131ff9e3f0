"""Read models for Slack: a contact's whole record on one card, and a rep's queue."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BindParameter, bindparam, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from store.activities import ActivityLine, recent_activities
from store.db import execute_columns
from store.followups import FollowUpLine, next_followup
from store.models import (
    Company,
    Consent,
    Contact,
    ContactEmail,
    Conversation,
    ConversationStatus,
    Order,
    Rep,
)
from store.orders import counted
from store.owners import effective_owner_id, owner_of
from store.stages import Move, stage_history
from store.surveys import last_answer
from store.touches import last_touch_at, last_touch_columns, touch_params


@dataclass(frozen=True)
class OpenConversation:
    id: int
    subject: str
    category: str | None
    opened_at: datetime
    sla_due_at: datetime | None
    owner: str | None
    contact: str | None = None
    urgency: str = "normal"


@dataclass(frozen=True)
class ConsentLine:
    purpose: str
    basis: str
    granted_at: datetime | None
    withdrawn_at: datetime | None
    source: str | None = None


@dataclass
class ContactCard:
    id: int
    name: str
    kind: str
    stage: str
    title: str | None
    phone: str | None
    language: str | None
    emails: list[str]
    company_id: int | None
    company: str | None
    owner_id: int | None  # the effective owner (store/owners.py): the contact's, else the company's
    owner: str | None  # "Anna Berg" or "Anna Berg (via company Acme)"; None: no owner
    consents: list[ConsentLine]
    last_touch_at: datetime  # store/touches.py: the segments' rule
    open_conversations: list[OpenConversation]
    activities: list[ActivityLine]
    order_count: int
    lifetime_value: dict[str, Decimal] = field(default_factory=dict)  # currency -> total
    last_order_on: date | None = None
    next_followup: FollowUpLine | None = None
    moves: list[Move] = field(default_factory=list)  # kind and stage changes, newest first
    last_score: int | None = None  # the latest satisfaction survey answer, 1..5
    last_score_at: datetime | None = None


# The card's statements are built once (a `select()` built per request cost more CPU than the
# look-up itself, issue 15): the values come as bound parameters, and each statement's cache key
# is computed once.
_CONTACT_ID: BindParameter[int] = bindparam("contact_id")
_LIMIT: BindParameter[int] = bindparam("limit")
# the contact's columns, its company's and its effective owner's, with the card's single values:
# the contact's last touch (store/touches.py) and their latest satisfaction score. Columns,
# not the three rows as objects: that statement was a quarter of a card's instructions (issue
# 15). A row per address (the primary first), so the addresses need no statement of their own;
# the other lists cost a statement each (tests/store/test_card_cost.py).
_CONTACT = (
    sa_select(
        col(Contact.id), col(Contact.name), col(Contact.kind), col(Contact.stage), col(Contact.title),
        col(Contact.phone), col(Contact.language), col(Contact.company_id), col(Contact.owner_id),
        col(Company.name), col(Company.owner_id), col(Rep.name),
        *last_touch_columns(col(Contact.id), col(Contact.created_at)),
        *last_answer(col(Contact.id)),
        col(ContactEmail.email),
    )
    .outerjoin(Company, col(Company.id) == col(Contact.company_id))
    .outerjoin(Rep, col(Rep.id) == effective_owner_id(col(Contact.owner_id), col(Company.owner_id)))
    .outerjoin(ContactEmail, col(ContactEmail.contact_id) == col(Contact.id))
    .where(col(Contact.id) == _CONTACT_ID)
    .order_by(col(ContactEmail.is_primary).desc(), col(ContactEmail.id))
)
# A card's and a queue's lines read the columns they show, not whole rows (issue 15: `my`'s
# queue of Conversation objects was a tenth of its instructions)
_CONSENTS = (
    sa_select(col(Consent.purpose), col(Consent.basis), col(Consent.granted_at), col(Consent.withdrawn_at),
              col(Consent.source))
    .where(col(Consent.contact_id) == _CONTACT_ID)
    .order_by(col(Consent.id))
)
_LINE = (col(Conversation.id), col(Conversation.subject), col(Conversation.category),
         col(Conversation.opened_at), col(Conversation.sla_due_at), col(Conversation.urgency))
_OPEN_CONVERSATIONS = (
    sa_select(*_LINE, col(Rep.name))
    .outerjoin(Rep, col(Rep.id) == col(Conversation.owner_id))
    .where(col(Conversation.contact_id) == _CONTACT_ID, col(Conversation.status) == ConversationStatus.open)
    .order_by(col(Conversation.opened_at).desc())
    .limit(_LIMIT)
)
_ORDERS = (
    select(Order.currency, func.count(), func.sum(Order.amount), func.max(Order.ordered_on))
    .where(col(Order.contact_id) == _CONTACT_ID, counted(col(Order.status)))
    .group_by(Order.currency)
)


def contact_card(
    session: Session, contact_id: int, *, now: datetime, conversations: int = 5, activities: int = 5
) -> ContactCard | None:
    """Everything a rep wants to see about a contact as of `now`, or None if there is no such contact."""
    rows = execute_columns(session, _CONTACT, {"contact_id": contact_id, **touch_params(now)}).all()
    if not rows:
        return None
    (contact_id, name, kind, stage, title, phone, language, company_id, contact_owner_id, company,
     company_owner_id, owner_name, *touches, last_score, last_score_at, _) = rows[0]
    owner = owner_of(contact_owner_id, company_owner_id, owner_name, company)
    order_count, totals, last_order = _orders(session, contact_id)
    return ContactCard(
        id=contact_id,
        name=name,
        kind=kind,
        stage=stage,
        title=title,
        phone=phone,
        language=language,
        emails=[email for *_, email in rows if email is not None],
        company_id=company_id,
        company=company,
        owner_id=owner.rep_id,
        owner=owner.describe() if owner.rep_id is not None else None,
        consents=_consents(session, contact_id),
        last_touch_at=last_touch_at(*touches),
        open_conversations=_open_conversations(session, contact_id, conversations),
        activities=recent_activities(session, contact_id=contact_id, company_id=company_id, moves=False,
                                     limit=activities),
        order_count=order_count,
        lifetime_value=totals,
        last_order_on=last_order,
        next_followup=next_followup(session, contact_id),
        moves=stage_history(session, contact_id, limit=activities),
        last_score=last_score,
        last_score_at=last_score_at,
    )


def rep_queue(session: Session, rep_id: int, *, limit: int = 15) -> tuple[list[OpenConversation], int]:
    """A rep's `limit` most urgent open conversations (earliest SLA due; none last), and how many
    they have open in all."""
    rows = execute_columns(session, _QUEUE, {"rep_id": rep_id, "limit": limit}).all()
    lines = [_open_conversation(*row[:-2], owner=None, contact=row[-2]) for row in rows]
    return lines, int(rows[0][-1]) if rows else 0


_REP_ID: BindParameter[int] = bindparam("rep_id")
_QUEUE = (  # the count of them all is a window over the rows before the limit: no statement of its own
    sa_select(*_LINE, col(Contact.name), func.count().over())
    .outerjoin(Contact, col(Contact.id) == col(Conversation.contact_id))
    .where(col(Conversation.owner_id) == _REP_ID, col(Conversation.status) == ConversationStatus.open)
    .order_by(col(Conversation.sla_due_at).is_(None), col(Conversation.sla_due_at), col(Conversation.opened_at))
    .limit(_LIMIT)
)


def _consents(session: Session, contact_id: int) -> list[ConsentLine]:
    return [ConsentLine(*row) for row in execute_columns(session, _CONSENTS, {"contact_id": contact_id})]


def _open_conversations(session: Session, contact_id: int, limit: int) -> list[OpenConversation]:
    rows = execute_columns(session, _OPEN_CONVERSATIONS, {"contact_id": contact_id, "limit": limit}).all()
    return [_open_conversation(*row[:-1], owner=row[-1], contact=None) for row in rows]


def _open_conversation(conversation_id: int, subject: str, category: str | None, opened_at: datetime,
                       sla_due_at: datetime | None, urgency: str, *, owner: str | None,
                       contact: str | None) -> OpenConversation:
    """A line of `_LINE`'s columns, in its order."""
    return OpenConversation(conversation_id, subject, category, opened_at, sla_due_at, owner, contact, urgency)


def _orders(session: Session, contact_id: int) -> tuple[int, dict[str, Decimal], date | None]:
    rows = execute_columns(session, _ORDERS, {"contact_id": contact_id}).all()
    count = sum(int(n) for _, n, _, _ in rows)
    totals = {currency: Decimal(total or 0) for currency, _, total, _ in rows}
    last = max((day for _, _, _, day in rows if day is not None), default=None)
    return count, totals, last
