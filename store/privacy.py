"""A person's data: export it (access), erase it (erasure), and age old mail out (retention).

Erasure works in the caller's one transaction. What the digests count stays as rows
without personal data: conversations and messages keep their times, direction,
category and status; activities and follow-ups their kind, rep and times; orders
their amount and date. Work still owed to the person stops: their open conversations
are closed (`store.conversations.closed`) and their open follow-ups cancelled, so no
one is asked to answer a person who asked to be forgotten; the audit entry counts both.
Everything that names or describes the person goes: the contact, its addresses,
consents and search terms are deleted; subjects, mail text, headers, addresses,
attachment names, notes and call summaries are emptied; corrections (mail text kept
as training data) are deleted. Tables this module does not know that have a
`contact_id` column (added later) lose the person's rows.

What stays is a keyed hash (HMAC-SHA256) of each erased address and Message-ID
(`store.models.Erasure`), never the address itself: the inbox skips a mail whose
Message-ID was erased (a re-sync of the old mail) and the importer skips an erased
address (a re-import of an old CSV). New mail from the person has a new Message-ID
and makes a new contact.

The key comes from the environment (`RAPPORT_PRIVACY_KEY`, passed in as `key`);
without one, a key derived from this database's deployment id is used, which keeps
the hashes working but lives beside them (`rapport privacy status` says so).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import String, Table, cast, delete, func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, col, select

from store.audit import Actor, audit_entries, pseudonymise, record_audit
from store.conversations import closed
from store.db import is_read_only, session_scope
from store.models import (
    Activity,
    Assignment,
    AuditEntry,
    Company,
    CompanyDomain,
    Consent,
    Contact,
    ContactEmail,
    Conversation,
    ConversationStatus,
    Correction,
    Deployment,
    Erasure,
    FollowUp,
    FollowUpStatus,
    Message,
    Order,
    Rep,
    SearchTerm,
)
from store.owners import contact_owner
from store.privacy_text import readable_export
from store.types import utcnow

ADDRESS, MESSAGE = "address", "message"
RETENTION_KINDS = ("message_bodies", "attachment_metadata")
RETENTION_BATCH = 500
_CHUNK = 500
# Tables erasure handles by name; any other table with a contact_id column loses the person's rows.
_KNOWN = {"contact", "contactemail", "consent", "conversation", "message", "activity", "followup", "order",
          "search_term", "audit"}


class PrivacyError(Exception):
    """A request that cannot be carried out (no such person, ...); the text says why."""


# --------------------------------------------------------------------------- keyed hashes


@dataclass(frozen=True)
class PrivacyKey:
    secret: bytes
    configured: bool  # False: derived from the deployment id (stored beside the hashes)

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.secret).hexdigest()[:12]

    def digest(self, value: str) -> str:
        return hmac.new(self.secret, value.encode("utf-8"), hashlib.sha256).hexdigest()


def privacy_key(session: Session, configured: str | None) -> PrivacyKey | None:
    """The configured key, else one derived from the deployment id (made here in a write session).

    None only in a read session of a database without a deployment id: nothing can have been erased.
    """
    if configured:
        return PrivacyKey(configured.encode("utf-8"), True)
    found = session.exec(select(Deployment.deployment_id)).first()
    if found is None:
        if is_read_only(session):
            return None
        found = uuid.uuid4().hex
        session.add(Deployment(deployment_id=found))
        session.flush()
    return PrivacyKey(hashlib.sha256(f"rapport-privacy:{found}".encode()).digest(), False)


def address_digest(key: PrivacyKey, email: str) -> str:
    return key.digest("address:" + email.strip().lower())


def message_digest(key: PrivacyKey, message_id: str) -> str:
    return key.digest("message:" + message_id.strip())


def _anything_erased(session: Session) -> bool:
    return session.exec(select(Erasure.id).limit(1)).first() is not None


def _erased(session: Session, kind: str, digests: dict[str, str]) -> set[str]:
    """The values (keys of `digests`) whose digest is recorded as erased."""
    found: set[str] = set()
    items = list(digests.items())
    for start in range(0, len(items), _CHUNK):
        chunk = dict(items[start:start + _CHUNK])
        query = select(Erasure.digest).where(Erasure.kind == kind, col(Erasure.digest).in_(list(chunk.values())))
        hits = set(session.exec(query).all())
        found |= {value for value, digest in chunk.items() if digest in hits}
    return found


def erased_message_ids(session: Session, message_ids: Iterable[str], configured_key: str | None) -> set[str]:
    """Which of these Message-IDs belong to erased mail (the inbox skips them)."""
    ids = {m for m in message_ids if m}
    if not ids or not _anything_erased(session):
        return set()
    key = privacy_key(session, configured_key)
    return set() if key is None else _erased(session, MESSAGE, {m: message_digest(key, m) for m in ids})


def erased_addresses(session: Session, emails: Iterable[str], configured_key: str | None) -> set[str]:
    """Which of these addresses were erased (the importer skips them)."""
    wanted = {e for e in emails if e}
    if not wanted or not _anything_erased(session):
        return set()
    key = privacy_key(session, configured_key)
    return set() if key is None else _erased(session, ADDRESS, {e: address_digest(key, e) for e in wanted})


# --------------------------------------------------------------------------- the person


def find_person(session: Session, email: str) -> Contact | None:
    address = session.exec(select(ContactEmail).where(ContactEmail.email == email.strip().lower())).first()
    return session.get(Contact, address.contact_id) if address is not None else None


@dataclass
class _Holdings:
    """Every row that is about one contact."""

    contact: Contact
    emails: list[ContactEmail]
    conversations: list[Conversation]
    messages: list[Message]
    assignments: list[Assignment]
    activities: list[Activity]
    followups: list[FollowUp]
    orders: list[Order]
    consents: list[Consent]
    corrections: list[Correction]
    other: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # tables added later


def _holdings(session: Session, contact: Contact) -> _Holdings:
    cid = contact.id
    emails = list(session.exec(select(ContactEmail).where(ContactEmail.contact_id == cid)
                               .order_by(col(ContactEmail.id))).all())
    addresses = [e.email for e in emails]
    own_messages = select(Message.conversation_id).where(
        (col(Message.contact_id) == cid) | col(Message.from_email).in_(addresses))
    conversations = list(session.exec(
        select(Conversation).where((col(Conversation.contact_id) == cid) | col(Conversation.id).in_(own_messages))
        .order_by(col(Conversation.id))).all())
    conversation_ids = [c.id for c in conversations if c.id is not None]
    messages = list(session.exec(
        select(Message).where(col(Message.conversation_id).in_(conversation_ids) | (col(Message.contact_id) == cid)
                              | col(Message.from_email).in_(addresses))
        .order_by(col(Message.received_at), col(Message.id))).all())
    message_ids = [m.id for m in messages if m.id is not None]
    holdings = _Holdings(
        contact=contact,
        emails=emails,
        conversations=conversations,
        messages=messages,
        assignments=list(session.exec(select(Assignment).where(col(Assignment.conversation_id).in_(conversation_ids))
                                      .order_by(col(Assignment.id))).all()),
        activities=list(session.exec(select(Activity).where((col(Activity.contact_id) == cid)
                                                            | col(Activity.conversation_id).in_(conversation_ids))
                                     .order_by(col(Activity.occurred_at), col(Activity.id))).all()),
        followups=list(session.exec(select(FollowUp).where(FollowUp.contact_id == cid)
                                    .order_by(col(FollowUp.id))).all()),
        orders=list(session.exec(select(Order).where(Order.contact_id == cid).order_by(col(Order.id))).all()),
        consents=list(session.exec(select(Consent).where(Consent.contact_id == cid).order_by(col(Consent.id))).all()),
        corrections=list(session.exec(select(Correction).where(col(Correction.message_id).in_(message_ids))
                                      .order_by(col(Correction.id))).all()),
    )
    for table in _other_tables():
        rows = session.execute(table.select().where(table.c.contact_id == cid)).mappings().all()
        holdings.other[table.name] = [dict(row) for row in rows]
    return holdings


def _other_tables() -> list[Table]:
    return [table for name, table in sorted(SQLModel.metadata.tables.items())
            if name not in _KNOWN and "contact_id" in table.c]


# --------------------------------------------------------------------------- access (export)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _row(obj: SQLModel, *, leave_out: Sequence[str] = ()) -> dict[str, Any]:
    return {k: _plain(v) for k, v in obj.model_dump().items() if k not in leave_out}


def export_person(session: Session, email: str, *, now: datetime | None = None) -> dict[str, Any]:
    """Everything Rapport holds on the person with this address, as JSON-ready data."""
    contact = find_person(session, email)
    if contact is None:
        raise PrivacyError(f"No contact has the address {email}.")
    return export_contact(session, contact, now=now)


def primary_address(session: Session, contact_id: int) -> str | None:
    query = (select(ContactEmail.email).where(ContactEmail.contact_id == contact_id)
             .order_by(col(ContactEmail.is_primary).desc(), col(ContactEmail.id)))
    return session.exec(query).first()


def export_contact(session: Session, contact: Contact, *, now: datetime | None = None) -> dict[str, Any]:
    """Everything Rapport holds on this contact, as JSON-ready data, exported at `now`."""
    held = _holdings(session, contact)
    company = session.get(Company, contact.company_id) if contact.company_id else None
    reps = {rep.id: rep.email for rep in session.exec(select(Rep)).all()}
    assert contact.id is not None
    return {
        "exported_at": (now or utcnow()).isoformat(),
        "contact": {**_row(contact), "owner": reps.get(contact.owner_id),
                    "effective_owner": contact_owner(session, contact).describe()},
        "emails": [_row(e) for e in held.emails],
        "company": None if company is None else {
            "id": company.id, "name": company.name,
            "domains": list(session.exec(select(CompanyDomain.domain).where(CompanyDomain.company_id == company.id))),
        },
        "consents": [_row(c) for c in held.consents],
        "conversations": [{**_row(c), "owner": reps.get(c.owner_id)} for c in held.conversations],
        "messages": [{**_row(m, leave_out=("raw_excerpt",)),
                      "attachment_names": [str(a.get("name") or "") for a in m.attachments]} for m in held.messages],
        "assignments": [{**_row(a), "owner": reps.get(a.owner_id)} for a in held.assignments],
        "activities": [{**_row(a), "rep": reps.get(a.rep_id)} for a in held.activities],
        "followups": [{**_row(f), "rep": reps.get(f.rep_id)} for f in held.followups],
        "orders": [_row(o) for o in held.orders],
        "corrections": [_row(c) for c in held.corrections],
        "audit": [_row(entry) for entry in audit_entries(session, contact_ids=[contact.id])],
        **{table: [_plain(row) for row in rows] for table, rows in held.other.items()},
    }


def export_files(export: dict[str, Any]) -> dict[str, str]:
    """The export's two renderings, by file suffix: `json` for machines, `txt` for the person
    (`store.privacy_text`): the same records, so the two cannot disagree."""
    return {"json": json.dumps(export, ensure_ascii=False, indent=2), "txt": readable_export(export)}


# --------------------------------------------------------------------------- erasure


@dataclass
class ErasureReport:
    person_hash: str
    key_configured: bool
    conversations: int = 0
    messages: int = 0
    activities: int = 0
    followups: int = 0
    orders: int = 0
    closed: int = 0  # open conversations closed: no reply is owed to an erased person
    cancelled: int = 0  # open follow-ups cancelled
    deleted: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"conversations": self.conversations, "messages": self.messages, "activities": self.activities,
                "followups": self.followups, "orders": self.orders, "closed": self.closed,
                "cancelled": self.cancelled, "deleted": self.deleted}


def erase_person(session: Session, email: str, *, actor: Actor, configured_key: str | None,
                 now: datetime | None = None) -> ErasureReport:
    """Remove or anonymise everything about the person with this address, in `session`'s transaction."""
    now = now or utcnow()
    contact = find_person(session, email)
    if contact is None or contact.id is None:
        raise PrivacyError(f"No contact has the address {email}.")
    key = privacy_key(session, configured_key)
    assert key is not None  # a write session always has one
    held = _holdings(session, contact)
    addresses = sorted({e.email for e in held.emails} | {email.strip().lower()})
    primary = next((e.email for e in held.emails if e.is_primary), addresses[0])
    still_open = [c for c in held.conversations if c.status == ConversationStatus.open]
    still_due = [f for f in held.followups if f.status == FollowUpStatus.open]
    report = ErasureReport(address_digest(key, primary), key.configured, conversations=len(held.conversations),
                           messages=len(held.messages), activities=len(held.activities),
                           followups=len(held.followups), orders=len(held.orders),
                           closed=len(still_open), cancelled=len(still_due))
    record_audit(session, actor, "privacy.erase", target_kind="contact", target_id=contact.id,
                 contact_id=contact.id, detail=report.as_dict(), at=now)
    _record_erasure(session, key, ADDRESS, [address_digest(key, a) for a in addresses], now)
    _record_erasure(session, key, MESSAGE, [message_digest(key, m.message_id) for m in held.messages], now)
    for message in held.messages:
        _strip_message(message)
        session.add(message)
    for message in _copied(session, addresses, exclude={m.id for m in held.messages}):
        _unlist(message, addresses)
        session.add(message)
    for conversation in still_open:
        closed(conversation, now)
    for conversation in held.conversations:
        conversation.subject = conversation.normalized_subject = ""
        conversation.contact_id = None
        conversation.urgency_reason = None
        session.add(conversation)
    for assignment in held.assignments:
        assignment.reason = "(erased on request)"
        session.add(assignment)
    for activity in held.activities:
        activity.summary, activity.next_step, activity.outcome, activity.link = "", None, None, None
        activity.contact_id = None
        session.add(activity)
    for followup in still_due:
        followup.status = FollowUpStatus.cancelled
    for followup in held.followups:
        followup.note, followup.contact_id = "", None
        session.add(followup)
    for order in held.orders:
        order.contact_id = None
        session.add(order)
    session.flush()
    cid = contact.id
    deleted = {
        "correction": _delete(session, delete(Correction).where(
            col(Correction.id).in_([c.id for c in held.corrections]))),
        "consent": _delete(session, delete(Consent).where(col(Consent.contact_id) == cid)),
        "search_term": _delete(session, delete(SearchTerm).where(col(SearchTerm.contact_id) == cid)),
        "contactemail": _delete(session, delete(ContactEmail).where(col(ContactEmail.contact_id) == cid)),
    }
    for table in _other_tables():
        deleted[table.name] = _delete(session, table.delete().where(table.c.contact_id == cid))
    pseudonymise(session, cid, report.person_hash)
    session.delete(contact)
    session.flush()
    report.deleted = {name: count for name, count in deleted.items() if count}
    return report


def _strip_message(message: Message) -> None:
    message.message_id = f"<erased-{message.id}@rapport.invalid>"
    message.content_hash = message.in_reply_to = message.from_email = message.from_name = None
    message.contact_id = None
    message.references, message.to, message.cc, message.entities, message.parse_problems = [], [], [], [], []
    message.subject = message.text = message.new_text = ""
    message.headers, message.attachments = {}, []
    message.mailbox = message.folder = None
    message.uidvalidity = message.uid = None
    message.raw_excerpt = None


def _copied(session: Session, addresses: list[str], *, exclude: set[int | None]) -> list[Message]:
    """Other people's mail that names one of these addresses as a recipient (To or Cc)."""
    found: dict[int | None, Message] = {}
    for address in addresses:
        quoted = json.dumps(address)  # as the JSON list stores it
        query = select(Message).where(cast(Message.to, String).contains(quoted, autoescape=True)
                                      | cast(Message.cc, String).contains(quoted, autoescape=True))
        found.update({m.id: m for m in session.exec(query).all() if m.id not in exclude})
    return list(found.values())


def _unlist(message: Message, addresses: list[str]) -> None:
    """The addresses out of a message that only copied the person: recipients and header values."""
    gone = set(addresses)
    message.to = [a for a in message.to if a.lower() not in gone]
    message.cc = [a for a in message.cc if a.lower() not in gone]
    message.headers = {name: value for name, value in message.headers.items()
                       if not any(address in str(value).lower() for address in gone)}


def _record_erasure(session: Session, key: PrivacyKey, kind: str, digests: list[str], now: datetime) -> None:
    wanted = set(digests)
    known = _erased(session, kind, {d: d for d in wanted})
    for digest in sorted(wanted - known):
        session.add(Erasure(kind=kind, digest=digest, key_id=key.key_id, erased_at=now))


def _delete(session: Session, statement: Any) -> int:
    return int(getattr(session.execute(statement), "rowcount", 0) or 0)


# --------------------------------------------------------------------------- retention


@dataclass(frozen=True)
class Retention:
    """Days to keep each kind of data (None: for ever). rapport.toml [privacy.retention_days]."""

    message_bodies: int | None = None
    attachment_metadata: int | None = None

    def days(self, kind: str) -> int | None:
        days: int | None = getattr(self, kind)
        return days


def _holding(kind: str) -> Any:
    """The condition 'this message still holds that kind of data'."""
    if kind == "message_bodies":
        return (col(Message.text) != "") | (col(Message.new_text) != "") | col(Message.raw_excerpt).is_not(None)
    return cast(Message.attachments, String) != "[]"


def expire_batch(session: Session, kind: str, *, days: int, now: datetime, batch: int = RETENTION_BATCH) -> int:
    """Empty `kind` on up to `batch` messages received more than `days` ago; returns how many.

    The rows stay (counts, times, categories); run it again until it returns less than `batch`.
    """
    cutoff = now - timedelta(days=days)
    ids = list(session.exec(select(Message.id).where(col(Message.received_at) < cutoff, _holding(kind))
                            .order_by(col(Message.id)).limit(batch)).all())
    if not ids:
        return 0
    values: dict[str, Any] = ({"text": "", "new_text": "", "raw_excerpt": None} if kind == "message_bodies"
                              else {"attachments": []})
    session.execute(update(Message).where(col(Message.id).in_(ids)).values(**values))
    return len(ids)


def expire_old_data(engine: Engine, retention: Retention, *, now: datetime, batch: int = RETENTION_BATCH,
                    max_batches: int | None = None) -> tuple[dict[str, int], bool]:
    """Apply `retention`, one short transaction per batch (ingest never waits long).

    Returns how many messages lost each kind of data, and whether all is done (False when
    `max_batches` ran out first: call again)."""
    done: dict[str, int] = {}
    batches = 0
    for kind in RETENTION_KINDS:
        days = retention.days(kind)
        if days is None:
            continue
        done[kind] = 0
        while max_batches is None or batches < max_batches:
            with session_scope(engine) as session:
                count = expire_batch(session, kind, days=days, now=now, batch=batch)
            batches += 1
            done[kind] += count
            if count < batch:
                break
        else:
            return done, False
    return done, True


@dataclass(frozen=True)
class KindStatus:
    kind: str
    keep_days: int | None
    held: int
    oldest: datetime | None


@dataclass(frozen=True)
class PrivacyStatus:
    messages: int
    kinds: list[KindStatus]
    erased_addresses: int
    erased_messages: int
    audit_entries: int
    oldest_audit: datetime | None
    key_configured: bool
    other_key_ids: list[str]  # erasures hashed with a key other than the current one


def privacy_status(session: Session, retention: Retention, configured_key: str | None) -> PrivacyStatus:
    kinds = []
    for kind in RETENTION_KINDS:
        held, oldest = session.exec(select(func.count(), func.min(Message.received_at)).where(_holding(kind))).one()
        kinds.append(KindStatus(kind, retention.days(kind), int(held), oldest))
    erased = dict(session.exec(select(Erasure.kind, func.count()).group_by(Erasure.kind)).all())
    audits, oldest_audit = session.exec(select(func.count(), func.min(AuditEntry.at))).one()
    key = privacy_key(session, configured_key)
    key_ids = set(session.exec(select(Erasure.key_id).distinct()).all())
    return PrivacyStatus(
        messages=int(session.exec(select(func.count()).select_from(Message)).one()),
        kinds=kinds,
        erased_addresses=int(erased.get(ADDRESS, 0)),
        erased_messages=int(erased.get(MESSAGE, 0)),
        audit_entries=int(audits),
        oldest_audit=oldest_audit,
        key_configured=configured_key is not None and configured_key != "",
        other_key_ids=sorted(key_ids - ({key.key_id} if key else set())),
    )
