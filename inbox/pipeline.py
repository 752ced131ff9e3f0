"""The source-independent ingest pipeline: one batch of raw mail in, one transaction out.

parse → de-duplicate (mailbox position, Message-ID with content) → automatic-mail check and
rate guard → classify (one classifier call per batch) → match the sender →
thread → assign → outbox rows (assign-dm, imap-tag, imap-move, backlog-summary)
→ checkpoint. A reply to a satisfaction survey with a score is recorded on the
survey instead (inbox/surveys.py); an "unsubscribe me" withdraws marketing
consent (inbox/consent.py). The caller owns the transaction: everything a batch writes,
including its checkpoint and outbox rows, commits together or not at all.

Speed comes from working per batch, not per message: what the batch needs
from the store (contacts, companies, threads) is read with a handful of
queries, every message is planned in memory, and rows are written with one
bulk INSERT per table. If writing the batch fails, it is redone one message at
a time, so a single bad message is kept as a raw record instead of blocking
its folder forever.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select

from inbox.assign import RuleOutcome, Team, decide
from inbox.automatic import AutomaticVerdict, detect_automatic
from inbox.consent import asks_to_unsubscribe
from inbox.matching import ContactIndex, mark_bouncing
from inbox.options import ClassificationLike, Classifier, EntityLike, IngestOptions
from inbox.parse import ParsedMessage, normalize_subject, parse_message
from inbox.surveys import SurveyReplies, survey_answer
from inbox.threads import ThreadIndex, ThreadKey, select_in
from inbox.urgency import DateMention, Urgency, assess_urgency, more_urgent, sla_hours
from store.assignments import AssignmentDecision, record_assignments
from store.audit import INBOX, record_audits
from store.checkpoints import save_checkpoint
from store.consent import withdraw_consent
from store.conversations import customer_wrote, settle_reply_due, staff_replied
from store.db import insert_rows, read_session
from store.models import (
    Company,
    ConsentPurpose,
    Contact,
    ContactEmail,
    Conversation,
    ConversationStatus,
    Direction,
    Message,
    Rep,
    Survey,
)
from store.outbox import (
    AssignmentDm,
    BacklogSummary,
    ConsentWithdrawn,
    ImapMove,
    ImapTag,
    Payload,
    enqueue,
    enqueue_many,
)
from store.privacy import erased_message_ids
from store.search import refresh_index
from store.stages import RuleMove, move_activity, move_audits, sales_enquiry_stage
from store.surveys import record_answer
from store.tags import message_keywords

log = logging.getLogger("rapport.inbox")

RAW_EXCERPT_BYTES = 64 * 1024  # kept for mail that could not be read, for a person to look at
CLASSIFY_CHARS = 600  # about the first two paragraphs: where the request, order numbers and dates are; the rest costs time
BACKLOG_SUMMARY_DELAY = timedelta(seconds=60)  # sent once the first sync has been quiet this long
DB_CONTENTION = (IntegrityError, OperationalError)


@dataclass(frozen=True)
class FetchedMessage:
    """Raw mail from any source, with where it came from."""

    raw: bytes
    mailbox: str
    folder: str
    uidvalidity: int | None = None
    uid: int | None = None
    internal_date: datetime | None = None
    outbound: bool = False  # read from a Sent folder
    problem: str | None = None  # the source could not give the whole message (e.g. too large)


@dataclass(frozen=True)
class Checkpoint:
    """The folder position a batch covers: committed with it."""

    mailbox: str
    folder: str
    uidvalidity: int
    last_uid: int


@dataclass
class BatchResult:
    fetched: int = 0
    new: int = 0
    duplicates: int = 0
    automatic: int = 0
    failed: int = 0
    outbound: int = 0
    assigned: int = 0
    backlog: int = 0
    message_ids: list[int] = field(default_factory=list)  # database ids of the new messages

    def add(self, other: BatchResult) -> None:
        for name in ("fetched", "new", "duplicates", "automatic", "failed", "outbound", "assigned", "backlog"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.message_ids.extend(other.message_ids)

    def counts(self) -> dict[str, int]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "message_ids"}


@dataclass
class _Item:
    fetched: FetchedMessage
    parsed: ParsedMessage
    verdict: AutomaticVerdict
    received_at: datetime
    outbound: bool
    classification: ClassificationLike | None = None
    urgency: Urgency | None = None
    shares_id: bool = False  # another mail with other content has this Message-ID

    @property
    def key(self) -> ThreadKey:
        parsed = self.parsed
        return ThreadKey(parsed.message_id, parsed.in_reply_to, parsed.references,
                         normalize_subject(parsed.subject), self.received_at)


@dataclass(eq=False)
class _Planned:
    """A message decided in memory, written by `_write`."""

    item: _Item
    row: dict[str, Any]
    conversation: Conversation | None
    contact: Contact | None
    decision: RuleOutcome | None = None
    decided_by: str = "rapport"
    notify: bool = False
    id: int | None = None


@dataclass
class _Backlog:
    count: int = 0
    owners: Counter[str] = field(default_factory=Counter)
    oldest: datetime | None = None
    newest: datetime | None = None

    def note(self, at: datetime, owner: str) -> None:
        self.count += 1
        self.owners[owner] += 1
        self.oldest = min(self.oldest or at, at)
        self.newest = max(self.newest or at, at)


class _Batch:
    """What one group of messages knows and plans: store look-ups done in bulk, then in-memory decisions."""

    def __init__(self, session: Session, options: IngestOptions, now: datetime, result: BatchResult) -> None:
        self.session = session
        self.options = options
        self.now = now
        self.result = result
        self.reps = {rep.email.lower(): rep for rep in session.exec(select(Rep)).all()}
        self.own = {a.lower() for a in options.own_addresses}
        self._team: Team | None = None
        self.people = ContactIndex(now)
        self.threads = ThreadIndex(options.thread_window)
        self.new_conversations: list[Conversation] = []
        self.conversation_contact: dict[int, Contact] = {}  # id(new conversation) -> its (maybe new) contact
        self.planned: list[_Planned] = []
        self.bounced: list[str] = []
        self.backlog: dict[tuple[str, str], _Backlog] = defaultdict(_Backlog)
        self.moves: list[tuple[_Planned, Contact, str, RuleMove]] = []  # contacts a mail moved: (mail, contact, old stage, move)
        self.surveys = SurveyReplies()
        self.survey_answers: list[tuple[_Planned, Survey, int, str]] = []
        self.unsubscribes: list[tuple[Contact, datetime]] = []  # asked by mail for no more marketing
        self.late_replies: dict[int, Conversation] = {}  # id(): a reply read after the customer's later mail

    @property
    def team(self) -> Team:
        if self._team is None:
            self._team = Team.load_from(
                self.session, now=self.now, routes=self.options.routes, fallback_queue=self.options.fallback_queue
            )
        return self._team

    def is_staff(self, address: str | None) -> bool:
        lowered = (address or "").lower()
        return bool(lowered) and (lowered in self.reps or lowered in self.own)


def process_batch(
    session: Session,
    fetched: Sequence[FetchedMessage],
    *,
    checkpoint: Checkpoint | None,
    options: IngestOptions,
    classifier: Classifier,
) -> BatchResult:
    """Ingest `fetched` into `session` without committing; the caller commits (or rolls back) it all."""
    now = options.moment()
    result = BatchResult(fetched=len(fetched))
    # Reading, parsing and classifying take the longest and need no write lock: on SQLite,
    # holding it meanwhile would keep the other watchers, the scheduler and Slack waiting.
    # A concurrent writer that stores the same mail in between trips the unique constraints.
    bind = session.get_bind()
    with read_session(bind) if isinstance(bind, Engine) else nullcontext(session) as reader:
        items, moved = _new_items(reader, fetched, options, now, result)
        _guard_rate(reader, items, options.sender_rate_limit_per_hour)
    _classify(items, classifier)
    for stored_id, message, content_hash in moved:
        stored = session.get(Message, stored_id)
        if stored is not None:
            _follow_position(session, stored, message, content_hash)
    try:
        with session.begin_nested():
            _ingest(session, items, options, now, result)
    except DB_CONTENTION:
        raise  # another process wrote the same mail, or the database is busy: the whole batch is retried
    except Exception:
        log.exception("writing a batch of %d messages failed; retrying them one at a time", len(items))
        _ingest_one_by_one(session, items, options, now, result)
    if checkpoint is not None:
        save_checkpoint(session, checkpoint.mailbox, checkpoint.folder, checkpoint.uidvalidity, checkpoint.last_uid,
                        at=now)
    session.flush()
    return result


def _ingest(session: Session, items: list[_Item], options: IngestOptions, now: datetime, result: BatchResult) -> None:
    partial = BatchResult()
    batch = _Batch(session, options, now, partial)
    _preload(batch, items)
    for item in items:
        _plan_safely(batch, item)
    _write(batch)
    result.add(partial)


def _ingest_one_by_one(
    session: Session, items: list[_Item], options: IngestOptions, now: datetime, result: BatchResult
) -> None:
    for item in items:
        try:
            with session.begin_nested():
                _ingest(session, [item], options, now, result)
        except DB_CONTENTION:
            raise
        except Exception as exc:
            log.exception("could not ingest %s; stored as a raw record", item.parsed.message_id)
            with session.begin_nested():
                batch = _Batch(session, options, now, result)
                _plan_raw(batch, item, f"ingest failure: {type(exc).__name__}: {exc}"[:500])
                _write(batch)


# --------------------------------------------------------------------------- de-duplication


def _new_items(
    session: Session, fetched: Sequence[FetchedMessage], options: IngestOptions, now: datetime, result: BatchResult
) -> tuple[list[_Item], list[tuple[int, FetchedMessage, str]]]:
    """Parse what is not stored yet; a message seen before (same position, or same Message-ID and
    content hash) is a duplicate. A different mail with a known Message-ID is new, marked `shares_id`.

    Also returns the stored messages seen again (id, where it is now, content hash), to be
    recorded by the writer.
    """
    known_positions = _known_positions(session, fetched)
    candidates: list[tuple[FetchedMessage, ParsedMessage]] = []
    for message in fetched:
        if _position(message) in known_positions:
            result.duplicates += 1
            continue
        candidates.append((message, parse_message(message.raw)))
    query = select(Message.id, Message.message_id, Message.content_hash)
    # (Message-ID, content hash) -> stored id; a row stored before hashes existed has hash None
    stored: dict[tuple[str, str | None], int] = {
        (message_id, content): stored_id
        for stored_id, message_id, content in select_in(session, query, Message.message_id,
                                                        [p.message_id for _, p in candidates])
    }
    known_ids = {message_id for message_id, _ in stored}
    # mail of a person erased on request stays erased when the mailbox is read again
    erased = erased_message_ids(session, [p.message_id for _, p in candidates], options.privacy_key)
    reps = {email.lower() for email in session.exec(select(Rep.email)).all()}
    staff = reps | {a.lower() for a in options.own_addresses}
    items: list[_Item] = []
    moved: list[tuple[int, FetchedMessage, str]] = []
    seen: set[tuple[str, str]] = set()
    for message, parsed in candidates:
        if parsed.message_id in erased:
            result.duplicates += 1
            continue
        key = (parsed.message_id, parsed.content_hash)
        known = stored.get(key)
        if known is None:  # an unhashed row is taken for the first mail with its id seen again
            known = stored.pop((parsed.message_id, None), None)
        if key in seen or known is not None:
            if known is not None:
                stored[key] = known
                moved.append((known, message, parsed.content_hash))
            result.duplicates += 1
            continue
        item = _item(message, parsed, now, staff)
        if parsed.message_id in known_ids:
            item.shares_id = True
            parsed.problems.append(f"Message-ID {parsed.message_id[:200]} is also used by other mail "
                                   "with different content; kept as a mail of its own")
        known_ids.add(parsed.message_id)
        seen.add(key)
        items.append(item)
    return items, moved


def _position(message: FetchedMessage) -> tuple[str, str, int, int] | None:
    if message.uidvalidity is None or message.uid is None:
        return None
    return (message.mailbox, message.folder, message.uidvalidity, message.uid)


def _known_positions(session: Session, fetched: Sequence[FetchedMessage]) -> set[tuple[str, str, int, int] | None]:
    groups: dict[tuple[str, str, int], list[int]] = defaultdict(list)
    for message in fetched:
        position = _position(message)
        if position is not None:
            groups[position[:3]].append(position[3])
    known: set[tuple[str, str, int, int] | None] = set()
    for (mailbox, folder, uidvalidity), uids in groups.items():
        query = select(Message.uid).where(
            Message.mailbox == mailbox, Message.folder == folder, Message.uidvalidity == uidvalidity
        )
        known.update((mailbox, folder, uidvalidity, uid) for uid in select_in(session, query, Message.uid, uids))
    return known


def _follow_position(session: Session, stored: Message, message: FetchedMessage, content_hash: str) -> None:
    """The same mail at a new position of the same folder (new UIDVALIDITY): remember where it is now.

    A row stored before content hashes existed gets the hash of the mail it was taken for.
    """
    if stored.content_hash is None:
        stored.content_hash = content_hash
        session.add(stored)
    if (
        message.uid is not None
        and stored.mailbox == message.mailbox
        and stored.folder == message.folder
        and stored.uidvalidity != message.uidvalidity
    ):
        stored.uidvalidity, stored.uid = message.uidvalidity, message.uid
        session.add(stored)


def _item(message: FetchedMessage, parsed: ParsedMessage, now: datetime, staff: set[str]) -> _Item:
    if message.problem:
        parsed.problems.append(message.problem)
    received_at = message.internal_date or parsed.sent_at or now
    outbound = message.outbound or (parsed.from_email or "").lower() in staff
    verdict = detect_automatic(parsed) if not outbound else AutomaticVerdict(False, None, [])
    return _Item(message, parsed, verdict, received_at, outbound)


# --------------------------------------------------------------------------- rate guard and classification


def _guard_rate(session: Session, items: list[_Item], limit: int) -> None:
    """More than `limit` human-looking mails from one sender within an hour: a loop, treated as automatic."""
    by_sender: dict[str, list[_Item]] = defaultdict(list)
    for item in items:
        if not item.outbound and item.parsed.from_email:
            by_sender[item.parsed.from_email.lower()].append(item)
    if not by_sender:
        return
    hour = timedelta(hours=1)
    earliest = min(i.received_at for i in items) - hour
    stored: dict[str, list[datetime]] = defaultdict(list)
    query = select(Message.from_email, Message.received_at).where(col(Message.received_at) >= earliest)
    for sender, at in select_in(session, query, Message.from_email, by_sender):
        stored[sender].append(at)
    for sender, group in by_sender.items():
        times = stored[sender]
        for item in sorted(group, key=lambda i: i.received_at):
            recent = sum(1 for t in times if item.received_at - hour <= t <= item.received_at)
            times.append(item.received_at)
            if recent >= limit and not item.verdict.is_automatic:
                item.verdict = AutomaticVerdict(True, f"rate guard: more than {limit} mails in an hour from {sender}")


def _classify(items: list[_Item], classifier: Classifier) -> None:
    """One classifier call for the whole batch (inbound human mail only)."""
    wanted = [i for i in items if not i.outbound and not i.verdict.is_automatic and not _unreadable(i)]
    if not wanted:
        return
    texts = [classification_text(i.parsed) for i in wanted]
    results = classifier.classify(texts)
    for item, text, result in zip(wanted, texts, results, strict=True):
        item.classification = result
        dates = [DateMention(e.value, e.start, e.end) for e in result.entities if e.label == "DATE"]
        item.urgency = assess_urgency(
            item.parsed.headers, text, category=result.category, received_at=item.received_at, dates=dates
        )


def classification_text(parsed: ParsedMessage) -> str:
    """What the classifier reads of a mail: its subject and the start of its new text."""
    return f"{parsed.subject}\n\n{(parsed.new_text or parsed.text)[:CLASSIFY_CHARS]}"


def _unreadable(item: _Item) -> bool:
    return bool(item.fetched.problem) or any(p.startswith("parser failure") for p in item.parsed.problems)


# --------------------------------------------------------------------------- store look-ups, in bulk


def _customers(batch: _Batch, parsed: ParsedMessage) -> list[str]:
    return [a.lower() for a in (*parsed.to, *parsed.cc) if not batch.is_staff(a)]


def _preload(batch: _Batch, items: list[_Item]) -> None:
    """Everything the batch's decisions read from the store, in a few queries."""
    addresses = set()
    for item in items:
        if item.outbound:
            addresses.update(_customers(batch, item.parsed))
        elif item.parsed.from_email:
            addresses.add(item.parsed.from_email.lower())
    batch.people = ContactIndex.load(batch.session, addresses, now=batch.now)
    batch.threads = ThreadIndex.load(batch.session, [i.key for i in items], batch.options.thread_window)
    batch.surveys = SurveyReplies.load(batch.session, [i.parsed for i in items if not i.outbound], batch.threads)


# --------------------------------------------------------------------------- planning, in memory


def _plan_safely(batch: _Batch, item: _Item) -> None:
    try:
        if _unreadable(item):
            _plan_raw(batch, item, None)
        elif item.outbound:
            _plan_outbound(batch, item)
        elif item.verdict.is_automatic:
            _plan_automatic(batch, item)
        else:
            _plan_inbound(batch, item)
    except Exception as exc:
        log.exception("could not ingest %s; stored as a raw record", item.parsed.message_id)
        _plan_raw(batch, item, f"ingest failure: {type(exc).__name__}: {exc}"[:500])


def _message_row(item: _Item) -> dict[str, Any]:
    parsed, fetched, result = item.parsed, item.fetched, item.classification
    return {
        "direction": Direction.outbound if item.outbound else Direction.inbound,
        "message_id": parsed.message_id,
        "content_hash": parsed.content_hash,
        "shares_id_with_id": None,
        "in_reply_to": parsed.in_reply_to,
        "references": list(parsed.references),
        "mailbox": fetched.mailbox,
        "folder": fetched.folder,
        "uidvalidity": fetched.uidvalidity,
        "uid": fetched.uid,
        "from_email": parsed.from_email,
        "from_name": parsed.from_name,
        "to": list(parsed.to),
        "cc": list(parsed.cc),
        "subject": parsed.subject,
        "sent_at": parsed.sent_at,
        "received_at": item.received_at,
        "text": parsed.text,
        "new_text": parsed.new_text,
        "headers": dict(parsed.headers),
        "attachments": [{"name": a.filename, "content_type": a.content_type, "size": a.size}
                        for a in parsed.attachments],
        "size": parsed.size,
        "is_automatic": item.verdict.is_automatic,
        "automatic_reason": item.verdict.reason,
        "category": result.category if result else None,
        "category_confidence": float(result.confidence) if result else None,
        "urgency": item.urgency.level if item.urgency else None,
        "language": result.language if result else None,
        "entities": [_entity(e) for e in result.entities] if result else [],
        "model_version": result.model_version if result else None,
        "parse_problems": list(parsed.problems),
        "raw_excerpt": None,
        "conversation_id": None,
        "contact_id": None,
    }


def _entity(entity: EntityLike) -> dict[str, Any]:
    if dataclasses.is_dataclass(entity) and not isinstance(entity, type):
        return dataclasses.asdict(entity)
    return {k: getattr(entity, k, None) for k in ("label", "text", "start", "end", "value")}


def _plan_message(batch: _Batch, item: _Item, conversation: Conversation | None, contact: Contact | None) -> _Planned:
    planned = _Planned(item, _message_row(item), conversation, contact)
    batch.planned.append(planned)
    batch.result.new += 1
    if conversation is not None:
        batch.threads.add_message(item.key, conversation)
    return planned


def _plan_raw(batch: _Batch, item: _Item, problem: str | None) -> None:
    """Mail we cannot handle: kept with its problem and an excerpt, outside any conversation."""
    item.classification = None
    planned = _plan_message(batch, item, None, None)
    if problem:
        planned.row["parse_problems"] = [*planned.row["parse_problems"], problem]
    planned.row["raw_excerpt"] = item.fetched.raw[:RAW_EXCERPT_BYTES]
    batch.result.failed += 1


def _new_conversation(batch: _Batch, item: _Item, contact: Contact | None, company: Company | None,
                      email: str | None, **values: Any) -> Conversation:
    subject = normalize_subject(item.parsed.subject)
    conversation = Conversation(
        subject=item.parsed.subject,
        normalized_subject=subject,
        company_id=company.id if company else (contact.company_id if contact else None),
        opened_at=item.received_at,
        last_message_at=item.received_at,
        **values,
    )
    batch.new_conversations.append(conversation)
    if contact is not None:
        batch.conversation_contact[id(conversation)] = contact
    batch.threads.add_conversation(conversation, email)
    return conversation


def _touch(conversation: Conversation, at: datetime) -> None:
    conversation.last_message_at = max(conversation.last_message_at or at, at)
    conversation.opened_at = min(conversation.opened_at, at)


def _is_backlog(batch: _Batch, at: datetime) -> bool:
    return at < batch.now - batch.options.backlog_age


def _plan_inbound(batch: _Batch, item: _Item) -> None:
    if _plan_survey_answer(batch, item):
        return
    parsed, result = item.parsed, item.classification
    language = result.language if result else None
    contact, company = batch.people.match(parsed.from_email, parsed.from_name, language=language)
    if contact is not None and language and not contact.language:
        contact.language = language
    if contact is not None and asks_to_unsubscribe(classification_text(parsed)):
        batch.unsubscribes.append((contact, item.received_at))
    conversation = batch.threads.find(item.key, [parsed.from_email] if parsed.from_email else [])
    urgency = item.urgency or Urgency("normal", "not classified")
    category = result.category if result else None
    if conversation is not None and conversation.category not in (None, "needs_triage"):
        category = conversation.category
    sla_due = _reply_due(batch, item.received_at, category, urgency.level)
    if conversation is None:
        conversation = _new_conversation(
            batch, item, contact, company, parsed.from_email,
            category=result.category if result else None,
            category_confidence=float(result.confidence) if result else None,
            language=language,
            urgency=urgency.level,
            urgency_reason=urgency.reason,
            sla_due_at=sla_due,
        )
        needs_owner = True
    else:
        needs_owner = _continue_conversation(batch, conversation, item, sla_due, urgency)
    conversation.last_inbound_at = max(conversation.last_inbound_at or item.received_at, item.received_at)
    planned = _plan_message(batch, item, conversation, contact)
    _plan_move(batch, planned, contact, result.category if result else None)
    if not needs_owner:
        return
    if company is None and conversation.company_id:
        company = batch.people.company(conversation.company_id)
    owner_contact = contact if contact is not None and contact.id is not None else None
    planned.decision = decide(
        batch.team,
        previous_owner_id=conversation.owner_id,
        contact=owner_contact,
        company=company,
        category=conversation.category,
        language=conversation.language,
    )
    _take(conversation, planned.decision)
    if conversation.id is not None:  # a second mail in this batch must not assign it again
        batch.threads.assigned.add(conversation.id)
    batch.result.assigned += 1
    _plan_notification(batch, planned)


def _reply_due(batch: _Batch, received_at: datetime, category: str | None, urgency: str) -> datetime | None:
    """When a reply to a customer's mail is due; None when none is owed (or it is backlog)."""
    hours = sla_hours(batch.options, category, urgency)
    if hours is None or _is_backlog(batch, received_at):
        return None
    return received_at + timedelta(hours=hours)


def _plan_move(batch: _Batch, planned: _Planned, contact: Contact | None, category: str | None) -> None:
    """A prospect's sales enquiry moves it on (store.stages); the move is recorded by `_write_moves`."""
    move = sales_enquiry_stage(contact, category) if contact is not None else None
    if contact is None or move is None or move.stage is None:
        return
    batch.moves.append((planned, contact, contact.stage, move))
    contact.stage = move.stage  # a new contact is inserted at its new stage; a stored one is flushed


def _plan_survey_answer(batch: _Batch, item: _Item) -> bool:
    """A reply to a survey with a score: stored in the survey's conversation, recorded after the
    write, no conversation reopened, nothing assigned. Returns whether the mail was one."""
    answer = survey_answer(batch.surveys, item.parsed)
    if answer is None:
        return False
    survey, score, comment = answer
    conversation = batch.session.get(Conversation, survey.conversation_id)
    contact = batch.session.get(Contact, survey.contact_id)
    planned = _plan_message(batch, item, conversation, contact)
    batch.survey_answers.append((planned, survey, score, comment))
    return True


def _take(conversation: Conversation, outcome: RuleOutcome) -> None:
    conversation.owner_id = outcome.owner.id if outcome.owner is not None else None
    conversation.queue = None if outcome.owner is not None else outcome.queue


def _continue_conversation(
    batch: _Batch, conversation: Conversation, item: _Item, sla_due: datetime | None, urgency: Urgency
) -> bool:
    """A customer wrote into an existing conversation; returns whether it needs (re)assignment."""
    result = item.classification
    _touch(conversation, item.received_at)
    if result and conversation.category in (None, "needs_triage"):
        conversation.category, conversation.category_confidence = result.category, float(result.confidence)
    if result and not conversation.language:
        conversation.language = result.language
    reopened = customer_wrote(conversation, item.received_at, sla_due)
    if reopened or more_urgent(urgency.level, conversation.urgency) != conversation.urgency:
        conversation.urgency, conversation.urgency_reason = urgency.level, urgency.reason
    never_assigned = conversation.id is not None and conversation.id not in batch.threads.assigned
    return reopened or never_assigned


def _plan_notification(batch: _Batch, planned: _Planned) -> None:
    """One DM per assignment; old mail goes into the backlog summary instead."""
    item, decision = planned.item, planned.decision
    assert decision is not None
    if not _is_backlog(batch, item.received_at):
        planned.notify = True
        return
    owner = decision.owner.email if decision.owner else f"queue:{decision.queue}"
    batch.backlog[(item.fetched.mailbox, item.fetched.folder)].note(item.received_at, owner)
    batch.result.backlog += 1


def _plan_automatic(batch: _Batch, item: _Item) -> None:
    """Stored and marked; joins its thread without reopening it; never assigned, never notified."""
    parsed = item.parsed
    batch.bounced.extend(item.verdict.bounced_recipients)
    conversation = batch.threads.by_references(item.key)
    contact = None
    if conversation is None:
        contact, company = batch.people.match(parsed.from_email, parsed.from_name, language=None, create=False)
        conversation = _new_conversation(
            batch, item, contact, company, None,
            is_automatic=True, status=ConversationStatus.closed, closed_at=item.received_at,
        )
    _plan_message(batch, item, conversation, contact)
    batch.result.automatic += 1


def _plan_outbound(batch: _Batch, item: _Item) -> None:
    """A staff reply marks its conversation answered; a new outbound mail starts one owned by its sender."""
    parsed = item.parsed
    customers = _customers(batch, parsed)
    conversation = batch.threads.find(item.key, customers)
    sender = batch.reps.get((parsed.from_email or "").lower())
    contact = None
    planned_decision = None
    if conversation is None:
        contact, company = batch.people.match(customers[0] if customers else None, None, language=None)
        conversation = _new_conversation(batch, item, contact, company, customers[0] if customers else None,
                                         status=ConversationStatus.answered,
                                         answered_at=item.received_at)
        if sender is not None:
            planned_decision = RuleOutcome("manual", True, f"{sender.email} started this conversation by email",
                                           owner=sender)
            _take(conversation, planned_decision)
    else:
        _touch(conversation, item.received_at)
        if staff_replied(conversation, item.received_at):
            batch.late_replies[id(conversation)] = conversation
    planned = _plan_message(batch, item, conversation, contact)
    if planned_decision is not None and sender is not None:
        planned.decision, planned.decided_by = planned_decision, sender.email
    batch.result.outbound += 1


# --------------------------------------------------------------------------- writing, in bulk


def _write(batch: _Batch) -> None:
    """Insert the batch's new rows, one statement per table, in dependency order."""
    session = batch.session
    _insert_objects(session, Contact, batch.people.new_contacts)
    insert_rows(session, ContactEmail, [
        {"contact_id": contact.id, "email": email, "is_primary": True, "bouncing": False, "bounced_at": None}
        for contact, email in batch.people.new_emails
    ])
    for conversation in batch.new_conversations:
        contact = batch.conversation_contact.get(id(conversation))
        conversation.contact_id = contact.id if contact is not None else None
    _insert_objects(session, Conversation, batch.new_conversations)
    for planned in batch.planned:
        _link(planned)
    ids = insert_rows(session, Message, [p.row for p in batch.planned])
    for planned, message_id in zip(batch.planned, ids, strict=True):
        planned.id = message_id
    batch.result.message_ids.extend(ids)
    _link_shared_ids(session, [p.id for p in batch.planned if p.item.shares_id and p.id is not None])
    _write_assignments(batch)
    _write_moves(batch)
    _write_tags(batch)
    _write_survey_answers(batch)
    _write_unsubscribes(batch)
    _settle_late_replies(batch)
    if batch.bounced:
        mark_bouncing(session, batch.bounced, at=batch.now)
    _record_backlog(batch)
    session.flush()
    if batch.people.new_contacts or batch.people.new_emails:
        refresh_index(session)  # the writer indexes its new senders: a search never writes


def _settle_late_replies(batch: _Batch) -> None:
    """Once the batch's mail is stored: the SLA of a conversation a late-read reply left open
    runs from the customer's mail after that reply (`store.conversations.settle_reply_due`)."""
    for conversation in batch.late_replies.values():
        if conversation.status == ConversationStatus.open:  # else a later reply in the batch answered it all
            settle_reply_due(batch.session, conversation, partial(_stored_reply_due, batch, conversation.category))


def _stored_reply_due(batch: _Batch, category: str | None, received_at: datetime, urgency: str | None
                      ) -> datetime | None:
    return _reply_due(batch, received_at, category, urgency or "normal")


def _link_shared_ids(session: Session, ids: list[int]) -> None:
    """Point each mail with a reused Message-ID at the first stored mail with that id."""
    if not ids:
        return
    table, other = Message.__table__, Message.__table__.alias("other")  # type: ignore[attr-defined]
    first = select(func.min(other.c.id)).where(other.c.message_id == table.c.message_id).scalar_subquery()
    session.execute(update(table).where(table.c.id.in_(ids)).values(shares_id_with_id=first))


def _link(planned: _Planned) -> None:
    """Fill in the ids the message row refers to, now that they exist."""
    conversation, contact = planned.conversation, planned.contact
    planned.row["conversation_id"] = conversation.id if conversation is not None else None
    if contact is not None:
        planned.row["contact_id"] = contact.id
    elif conversation is not None:
        planned.row["contact_id"] = conversation.contact_id


def _insert_objects(session: Session, model: type, objects: list[Any]) -> None:
    """Insert transient table objects in one go (`insert_rows`); sets their ids."""
    columns = [c.name for c in model.__table__.columns if c.name != "id"]  # type: ignore[attr-defined]
    rows = [{name: getattr(o, name) for name in columns} for o in objects]
    for obj, new_id in zip(objects, insert_rows(session, model, rows), strict=True):
        obj.id = new_id


def _write_assignments(batch: _Batch) -> None:
    decided = [p for p in batch.planned if p.decision is not None and p.conversation is not None]
    decisions = [
        AssignmentDecision(p.conversation, p.decision.owner, p.decision.queue, p.decision.rule, p.decision.reason,
                           p.decided_by)
        for p in decided
        if p.conversation is not None and p.decision is not None
    ]
    ids = record_assignments(batch.session, decisions, at=batch.now)
    enqueue_many(batch.session, [
        AssignmentDm(assignment_id, p.conversation.id, p.id)
        for p, assignment_id in zip(decided, ids, strict=True)
        if p.notify and p.conversation is not None
    ], now=batch.now)


def _write_moves(batch: _Batch) -> None:
    """One `move` activity per contact a mail moved, dated when the mail arrived, and its audit entries."""
    audits: list[dict[str, Any]] = []
    for planned, contact, old_stage, move in batch.moves:
        conversation = planned.conversation
        subject = planned.item.parsed.subject.strip() or "(no subject)"
        activity = move_activity(
            contact, reason=f"{move.reason}: {subject[:200]}", at=planned.item.received_at,
            stage_from=old_stage, stage_to=move.stage, conversation_id=conversation.id if conversation else None,
        )
        batch.session.add(activity)
        audits += move_audits(INBOX, activity, at=planned.item.received_at)
    record_audits(batch.session, audits)


def _write_tags(batch: _Batch) -> None:
    """IMAP keywords (and optionally a move to the owner's folder), applied after the commit by the dispatcher."""
    options = batch.options
    reps_by_id = {rep.id: rep for rep in batch.reps.values()}
    rows: list[Payload] = []
    for planned in batch.planned:
        fetched, conversation = planned.item.fetched, planned.conversation
        if not options.tag_messages or fetched.uid is None or conversation is None or planned.item.outbound:
            continue
        owner = reps_by_id.get(conversation.owner_id)
        words = message_keywords(options.keyword_prefix, conversation, owner, planned.item.verdict.is_automatic)
        assert planned.id is not None
        position = (fetched.mailbox, fetched.folder, fetched.uidvalidity, fetched.uid, planned.id)
        if words:
            rows.append(ImapTag(*position, keywords=words))
        if options.move_to_owner_folders and owner is not None and not planned.item.verdict.is_automatic:
            rows.append(ImapMove(*position, target=f"{options.owner_folder_prefix}/{owner.email.partition('@')[0]}"))
    enqueue_many(batch.session, rows, now=batch.now)


def _write_survey_answers(batch: _Batch) -> None:
    for planned, survey, score, comment in batch.survey_answers:
        record_answer(batch.session, survey, score, comment, via="reply", at=planned.item.received_at,
                      message_id=planned.id)


def _write_unsubscribes(batch: _Batch) -> None:
    """Marketing consent withdrawn for each contact who asked; their owner hears of it."""
    for contact, at in batch.unsubscribes:
        if contact.id is None:
            continue
        consent = withdraw_consent(batch.session, contact, ConsentPurpose.marketing, source="email", at=at,
                                   actor=INBOX)
        if consent is not None and consent.id is not None:
            enqueue(batch.session, ConsentWithdrawn(consent.id, at.isoformat()), now=batch.now)


def _record_backlog(batch: _Batch) -> None:
    """Fold this batch's old mail into the folder's pending summary (one row, however many batches)."""
    for (mailbox, folder), backlog in batch.backlog.items():
        assert backlog.oldest is not None and backlog.newest is not None
        summary = BacklogSummary(mailbox, folder, backlog.count, dict(backlog.owners), backlog.oldest.isoformat(),
                                 backlog.newest.isoformat(), since=batch.now.isoformat())
        enqueue(batch.session, summary, now=batch.now, due_at=batch.now + BACKLOG_SUMMARY_DELAY)
