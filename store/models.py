"""Rapport's data model: one table per idea, one name per idea.

Times are aware UTC (`UTCDateTime`). Enumerations are stored as plain strings
(the `StrEnum`s below list the allowed values) so that adding a value never
needs a database enum migration. Lists (skills, languages, entities) are JSON.
"""

from __future__ import annotations

import unicodedata
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Numeric, String, Text, UniqueConstraint, event
from sqlmodel import Field, SQLModel

from store.types import UTCDateTime, utcnow


def _time(index: bool = False, nullable: bool = True) -> Any:
    return Field(default=None, sa_type=UTCDateTime, index=index, nullable=nullable)


def _created() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def _json(default: Any) -> Any:
    return Field(default_factory=default, sa_column=Column(JSON, nullable=False))


def _text() -> Any:
    return Field(default="", sa_column=Column(Text, nullable=False))


class ContactKind(StrEnum):
    prospect = "prospect"
    customer = "customer"
    partner = "partner"


class Stage(StrEnum):
    """A contact's place in the buying process."""

    need = "need"
    information_search = "information_search"
    evaluation = "evaluation"
    purchase = "purchase"
    post_purchase = "post_purchase"


class Role(StrEnum):
    rep = "rep"
    support = "support"
    manager = "manager"
    admin = "admin"


class ConversationStatus(StrEnum):
    open = "open"
    answered = "answered"
    closed = "closed"


class Direction(StrEnum):
    inbound = "inbound"
    outbound = "outbound"


class ActivityKind(StrEnum):
    call = "call"
    email = "email"
    meeting = "meeting"
    note = "note"
    slack = "slack"
    move = "move"  # the contact's kind or buying stage changed (store/stages.py)


class FollowUpStatus(StrEnum):
    open = "open"
    done = "done"
    cancelled = "cancelled"


class OutboxStatus(StrEnum):
    pending = "pending"
    sent = "sent"
    failed = "failed"  # gave up after too many attempts; kept for a person to see


# --------------------------------------------------------------------------- people


class Rep(SQLModel, table=True):
    """A person on the team: rep, support agent, manager or admin."""

    id: int | None = Field(default=None, primary_key=True)
    name: str
    email: str = Field(unique=True, index=True)
    slack_user_id: str | None = Field(default=None, unique=True, index=True)
    role: str = Field(default=Role.rep)
    team: str | None = Field(default=None, index=True)
    skills: list[str] = _json(list)  # categories this rep owns
    languages: list[str] = _json(list)  # ISO 639-1 codes
    timezone: str = "UTC"
    working_hours: str = "Mon-Fri 09:00-17:00"
    capacity: int = 30  # open conversations at most
    away_until: datetime | None = _time()
    active: bool = True
    digest_via: list[str] = _json(list)  # "slack", "email"
    digest_hour: int = 8
    created_at: datetime = _created()


def company_name_key(name: str) -> str:
    """What names the same company, whatever the case and Unicode form (`ÖSTGÖTA kök` is
    `Östgöta Kök`). Computed here, never by SQL's lower(), which on SQLite lowers ASCII only."""
    return unicodedata.normalize("NFKC", name.strip()).casefold()


class Company(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    # imports match companies by name through it: an index, not a scan per batch
    # company_name_key(name): the ORM sets it on every write; a bulk insert (store.db.insert_rows)
    # gives it itself, and one that does not is refused (no default to hide it)
    name_key: str = Field(index=True)
    kind: str = Field(default=ContactKind.customer, index=True)
    owner_id: int | None = Field(default=None, foreign_key="rep.id", index=True)
    industry: str | None = None
    country: str | None = None
    phone: str | None = None
    external_id: str | None = Field(default=None, index=True)
    created_at: datetime = _created()
    updated_at: datetime = _created()


@event.listens_for(Company, "before_insert")
@event.listens_for(Company, "before_update")
def _key_company_name(mapper: Any, connection: Any, company: Company) -> None:
    company.name_key = company_name_key(company.name)


class CompanyDomain(SQLModel, table=True):
    """A mail domain that belongs to a company (a company may have several)."""

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", index=True)
    domain: str = Field(unique=True, index=True)  # lower case, no leading '@'


class Contact(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    kind: str = Field(default=ContactKind.prospect, index=True)
    stage: str = Field(default=Stage.need)
    company_id: int | None = Field(default=None, foreign_key="company.id", index=True)
    owner_id: int | None = Field(default=None, foreign_key="rep.id", index=True)
    phone: str | None = Field(default=None, index=True)
    title: str | None = None
    language: str | None = None
    source: str | None = None  # "import", "email", "slack", ...
    external_id: str | None = Field(default=None, index=True)
    post_purchase_followup: bool = True  # off for contacts who asked not to be chased
    created_at: datetime = _created()
    updated_at: datetime = _created()


class ContactEmail(SQLModel, table=True):
    """One of a contact's email addresses; the address is unique across contacts."""

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    email: str = Field(unique=True, index=True)  # lower case
    is_primary: bool = False
    bouncing: bool = False
    bounced_at: datetime | None = _time()


class ConsentPurpose(StrEnum):
    """What a contact's data may be used for (store/consent.py); imports may add others."""

    service = "service"  # answering their mail, orders, support
    marketing = "marketing"  # newsletters, offers
    survey = "survey"  # satisfaction surveys (CSAT)


class Consent(SQLModel, table=True):
    """Why we may keep and use a contact's data, and for what: one row per contact and purpose.

    Given: `granted_at` set, `withdrawn_at` empty. Withdrawn: `withdrawn_at` set (an
    opt-out recorded without an earlier grant has no `granted_at`). Changes go through
    `store.consent.record_consent` / `withdraw_consent`, which also write an Activity.
    """

    __table_args__ = (UniqueConstraint("contact_id", "purpose", name="uq_consent_contact_purpose"),)

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    purpose: str  # ConsentPurpose: "service", "marketing", "survey" (older rows: anything an import named)
    basis: str  # "consent", "contract", "legitimate_interest", "legal_obligation"
    granted_at: datetime | None = _time()
    withdrawn_at: datetime | None = _time()
    source: str | None = None


# --------------------------------------------------------------------------- mail


class MailboxCheckpoint(SQLModel, table=True):
    """How far a folder has been read: committed with the batch it covers."""

    __table_args__ = (UniqueConstraint("mailbox", "folder"),)

    id: int | None = Field(default=None, primary_key=True)
    mailbox: str  # "user@host"
    folder: str
    uidvalidity: int
    last_uid: int = 0
    updated_at: datetime = _created()


class Conversation(SQLModel, table=True):
    __table_args__ = (
        Index("ix_conversation_owner_status", "owner_id", "status"),
        Index("ix_conversation_status_sla", "status", "sla_due_at"),
        Index("ix_conversation_first_response", "first_response_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    subject: str = ""
    normalized_subject: str = Field(default="", index=True)
    contact_id: int | None = Field(default=None, foreign_key="contact.id", index=True)
    company_id: int | None = Field(default=None, foreign_key="company.id", index=True)
    owner_id: int | None = Field(default=None, foreign_key="rep.id")
    queue: str | None = None  # fallback queue when no rep could take it
    category: str | None = Field(default=None, index=True)
    category_confidence: float | None = None
    urgency: str = "normal"  # "urgent", "high", "normal", "low" (inbox/urgency.py)
    urgency_reason: str | None = None
    language: str | None = None
    status: str = Field(default=ConversationStatus.open)
    is_automatic: bool = False
    opened_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True)
    last_message_at: datetime | None = _time()
    last_inbound_at: datetime | None = _time()  # the customer's latest mail: a staff reply older than it does not answer it
    first_response_at: datetime | None = _time()
    answered_at: datetime | None = _time()
    sla_due_at: datetime | None = _time()
    escalated_at: datetime | None = _time()
    closed_at: datetime | None = _time()


class Message(SQLModel, table=True):
    """One email, inbound or outbound, exactly once (unique Message-ID with content, and mailbox position).

    A Message-ID is a claim some mailers reuse: a different mail with a stored id is
    kept too, pointing at the first mail with that id (`shares_id_with_id`).
    """

    __table_args__ = (
        UniqueConstraint("mailbox", "folder", "uidvalidity", "uid", name="uq_message_position"),
        UniqueConstraint("message_id", "content_hash", name="uq_message_content"),
        Index("ix_message_from_received", "from_email", "received_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int | None = Field(default=None, foreign_key="conversation.id", index=True)
    contact_id: int | None = Field(default=None, foreign_key="contact.id", index=True)
    direction: str = Field(default=Direction.inbound)
    message_id: str = Field(index=True)  # real or synthetic ("<sha256hex@rapport.invalid>")
    # inbox.parse.content_hash; NULL on rows stored before it existed (they match any content once)
    content_hash: str | None = Field(default=None, sa_type=String(64))
    shares_id_with_id: int | None = Field(default=None, foreign_key="message.id")  # the first mail with this id
    in_reply_to: str | None = Field(default=None, index=True)
    references: list[str] = _json(list)
    mailbox: str | None = None
    folder: str | None = None
    uidvalidity: int | None = None
    uid: int | None = None
    from_email: str | None = None
    from_name: str | None = None
    to: list[str] = _json(list)
    cc: list[str] = _json(list)
    subject: str = ""
    sent_at: datetime | None = _time()
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True)
    text: str = _text()  # the whole text (HTML turned into text)
    new_text: str = _text()  # without quoted replies and signature: what gets classified
    headers: dict[str, Any] = _json(dict)  # the headers we reason about
    attachments: list[dict[str, Any]] = _json(list)  # name, content_type, size
    size: int = 0
    is_automatic: bool = False
    automatic_reason: str | None = None
    category: str | None = None
    category_confidence: float | None = None
    urgency: str | None = None
    language: str | None = None
    entities: list[dict[str, Any]] = _json(list)  # label, text, start, end, value
    model_version: str | None = None
    parse_problems: list[str] = _json(list)
    raw_excerpt: bytes | None = None  # only for mail that could not be parsed


class Assignment(SQLModel, table=True):
    """Who owns a conversation, by which rule, and why: one row per (re)assignment."""

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    owner_id: int | None = Field(default=None, foreign_key="rep.id", index=True)
    queue: str | None = None
    rule: str  # "thread_owner", "account_owner", "skill", "language", "least_busy", "fallback", "manual", "reroute"
    reason: str
    assigned_by: str = "rapport"  # "rapport" or the rep's email
    assigned_at: datetime = _created()


# --------------------------------------------------------------------------- work


class Activity(SQLModel, table=True):
    """Something that happened with a contact or a company: a call, an email, a meeting, a note,
    a move of the contact's kind or buying stage (the `*_from`/`*_to` columns; `summary` is the reason)."""

    __table_args__ = (
        Index("ix_activity_rep_time", "rep_id", "occurred_at"),
        Index("ix_activity_kind_time", "kind", "occurred_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(default=ActivityKind.note)
    contact_id: int | None = Field(default=None, foreign_key="contact.id", index=True)
    company_id: int | None = Field(default=None, foreign_key="company.id", index=True)
    rep_id: int | None = Field(default=None, foreign_key="rep.id")
    conversation_id: int | None = Field(default=None, foreign_key="conversation.id", index=True)
    outcome: str | None = None
    duration_minutes: int | None = None
    summary: str = _text()
    next_step: str | None = None
    link: str | None = None  # e.g. a Slack permalink
    contact_kind_from: str | None = None  # a move: the contact's kind before and after (None: unchanged)
    contact_kind_to: str | None = None
    stage_from: str | None = None  # a move: the buying stage before and after (None: unchanged)
    stage_to: str | None = None
    occurred_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True)
    created_at: datetime = _created()


class FollowUp(SQLModel, table=True):
    __table_args__ = (
        Index("ix_followup_status_due", "status", "due_at"),
        # one post-purchase follow-up per order, guaranteed by the database
        Index("uq_followup_order_id", "order_id", unique=True),
        # one win-back follow-up per lapse: a lapse is a contact and its last order date before it
        Index("uq_followup_lapse", "contact_id", "lapsed_since", unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int | None = Field(default=None, foreign_key="contact.id", index=True)
    rep_id: int = Field(foreign_key="rep.id", index=True)
    due_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    note: str = ""
    status: str = Field(default=FollowUpStatus.open)
    source: str = "manual"  # "manual", "post_purchase", "slack", "call", "winback"
    order_id: int | None = Field(default=None, foreign_key="order.id")
    lapsed_since: date | None = None  # win-back: the contact's last order date when it lapsed
    reminded_at: datetime | None = _time()
    last_nudged_at: datetime | None = _time()
    done_at: datetime | None = _time()
    created_at: datetime = _created()


class Order(SQLModel, table=True):
    __tablename__ = "order"

    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(unique=True, index=True)
    contact_id: int | None = Field(default=None, foreign_key="contact.id", index=True)
    company_id: int | None = Field(default=None, foreign_key="company.id", index=True)
    amount: Decimal = Field(default=Decimal(0), sa_type=Numeric(14, 2))
    currency: str = "EUR"
    ordered_on: date = Field(index=True)
    product_category: str | None = None
    status: str = "completed"


class Correction(SQLModel, table=True):
    """A rep's fix of a message's category: training data for the next model."""

    id: int | None = Field(default=None, primary_key=True)
    message_id: int | None = Field(default=None, foreign_key="message.id", index=True)
    text: str = _text()
    old_category: str | None = None
    new_category: str
    language: str | None = None  # the mail's, so `rapport nlp status` can count corrections per language
    rep_id: int | None = Field(default=None, foreign_key="rep.id")
    created_at: datetime = _created()


class Deployment(SQLModel, table=True):
    """This database's identity: a random id made on first use, one row.

    What belongs to this database but lives outside it (the model retrained
    from its corrections) is named by this id. A URL would change when a
    SQLite file moves or a host is renamed, and two URLs can name one database.
    """

    __tablename__ = "deployment"

    slot: int = Field(default=1, primary_key=True)  # always 1: a second row cannot be inserted
    deployment_id: str = Field(unique=True)
    created_at: datetime = _created()


class Survey(SQLModel, table=True):
    """A satisfaction survey (CSAT) about one conversation: sent once, answered at most once (store/surveys.py)."""

    __table_args__ = (Index("ix_survey_contact_sent", "contact_id", "sent_at"),)

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id", unique=True)
    contact_id: int = Field(foreign_key="contact.id")
    rep_id: int | None = Field(default=None, foreign_key="rep.id", index=True)  # the owner when it was sent
    email: str  # the address it went to
    language: str = "en"
    ref: str = Field(unique=True)  # random; in the subject and in the signed link tokens
    message_id: str = Field(unique=True)  # the survey mail's Message-ID: replies thread on it
    sent_at: datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)  # when it was written to the outbox
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    score: int | None = None  # 1..5
    comment: str | None = Field(default=None, sa_type=Text)
    answered_at: datetime | None = _time(index=True)
    answered_via: str | None = None  # "reply", "link"
    reply_message_id: int | None = Field(default=None, foreign_key="message.id")


# --------------------------------------------------------------------------- delivery


class OutboxItem(SQLModel, table=True):
    """Something to do after a commit (a DM, an IMAP keyword, a digest), done exactly once.

    `key` makes enqueueing idempotent: the same key is never enqueued twice, so
    a digest per manager and period, or a DM per assignment, exists once.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_due", "status", "due_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(index=True)
    key: str = Field(unique=True)
    payload: dict[str, Any] = _json(dict)
    status: str = Field(default=OutboxStatus.pending)
    due_at: datetime = _created()
    claimed_until: datetime | None = _time()
    attempts: int = 0
    last_error: str | None = None
    created_at: datetime = _created()
    sent_at: datetime | None = _time()


class SlackEvent(SQLModel, table=True):
    """Slack event ids already handled (Slack retries deliveries)."""

    __tablename__ = "slack_event"

    event_id: str = Field(primary_key=True)
    received_at: datetime = _created()


# --------------------------------------------------------------------------- privacy


class Erasure(SQLModel, table=True):
    """A person erased on request: keyed hashes only (HMAC), never the address itself.

    `kind` "address" is an erased email address (a re-import skips it), "message" an
    erased Message-ID (a re-sync of the old mail skips it). `key_id` names the key that
    made the hash (the first hex digits of its SHA-256), so a changed key is noticed.
    """

    __tablename__ = "erasure"
    __table_args__ = (UniqueConstraint("kind", "digest", name="uq_erasure_kind_digest"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str  # "address" | "message"
    digest: str = Field(sa_type=String(64))
    key_id: str = Field(sa_type=String(16))
    erased_at: datetime = _created()


class AuditEntry(SQLModel, table=True):
    """Who did what, when, to what and from where: appended by `store.audit.record_audit`, never edited.

    The one exception is an erasure: it replaces `contact_id` with the person's keyed hash
    (`person_hash`), so the history stays and no longer points at anyone.
    """

    __tablename__ = "audit"
    __table_args__ = (Index("ix_audit_at", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _created()
    actor: str = Field(index=True)  # the rep's email, or "cli:<user>@<host>", or "rapport"
    via: str  # "slack", "cli", "scheduler"
    origin: str | None = None  # where from: Slack user and channel, or the CLI's user and host
    action: str = Field(index=True)  # "card.view", "privacy.export", "conversation.reassign", ...
    outcome: str = "ok"  # "ok" or "refused"
    target_kind: str | None = None  # "contact", "conversation", "followup", ...
    target_id: int | None = None
    contact_id: int | None = Field(default=None, index=True)  # the person concerned (no foreign key: kept)
    person_hash: str | None = Field(default=None, sa_type=String(64), index=True)  # set when they are erased
    detail: dict[str, Any] = _json(dict)  # ids, categories, counts: never names, addresses or mail text


# --------------------------------------------------------------------------- search

# Byte order on PostgreSQL too, so that prefix ranges (term >= 'sta' AND term < 'sta\x7f')
# use the index whatever the database's locale is; SQLite compares bytes already.
TermType = String(64).with_variant(String(64, collation="C"), "postgresql")


class SearchTerm(SQLModel, table=True):
    """One normalised word, address or phone number of a contact (contact_id set) or a company
    (contact_id NULL).

    Derived data behind fuzzy search (store/search.py), rebuilt from the contacts
    at any time, hence no foreign keys.
    """

    __tablename__ = "search_term"
    __table_args__ = (
        Index("ix_search_term_lookup", "term", "contact_id", "company_id"),
        Index("ix_search_term_owner", "contact_id", "company_id"),  # (re)indexing and erasure delete by these
    )
    # No id column: nothing looks a term up by one, and an import's hundreds of thousands of terms
    # paid for its sequence and its index (a quarter of the server's work on them). The ORM,
    # which wants a key, reads a row by what it holds.
    __mapper_args__ = {"primary_key": ["term", "contact_id", "company_id"]}

    term: str = Field(sa_type=TermType, nullable=False)
    contact_id: int | None = None
    company_id: int | None = None


class SearchKey(SQLModel, table=True):
    """A fuzzy key of a word head (a word's first four letters; a three-letter word whole) in the
    search index: a typed word's keys lead here to the heads, then to every term starting with one.

    One row per distinct head and key, whoever's words they came from (store/search.py).
    """

    __tablename__ = "search_key"

    key: str = Field(sa_type=TermType, primary_key=True)
    head: str = Field(sa_type=TermType, primary_key=True)


class SearchState(SQLModel, table=True):
    """How far the search terms are built: the highest id indexed per source table, and when."""

    __tablename__ = "search_state"

    source: str = Field(primary_key=True)  # "contact", "company", "contactemail", "companydomain"
    last_id: int = 0
    refreshed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


__all__ = [
    "Activity",
    "ActivityKind",
    "Assignment",
    "AuditEntry",
    "Company",
    "CompanyDomain",
    "Consent",
    "ConsentPurpose",
    "Contact",
    "ContactEmail",
    "ContactKind",
    "Conversation",
    "ConversationStatus",
    "Correction",
    "Deployment",
    "Direction",
    "Erasure",
    "FollowUp",
    "FollowUpStatus",
    "MailboxCheckpoint",
    "Message",
    "Order",
    "OutboxItem",
    "OutboxStatus",
    "Rep",
    "Role",
    "SearchKey",
    "SearchState",
    "SearchTerm",
    "SlackEvent",
    "Stage",
    "Survey",
]
