"""The outbox: side effects written in the same transaction as their cause, done once.

Writers `enqueue` a typed payload (one frozen class per kind, naming its key).
`dispatch` leases due rows (`SKIP LOCKED` on PostgreSQL), lets a handler act with
no transaction open, and marks each row; a lease that expires after a crash
retries the row, and handlers make a repeat harmless. A new kind is one payload
class here plus one handler. Rows are never deleted: a key is enqueued once."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import or_
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from store.db import insert_rows, session_scope
from store.models import OutboxItem, OutboxStatus
from store.types import utcnow

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8


# --------------------------------------------------------------------------- payloads


@dataclass(frozen=True)
class Payload:
    """What one outbox row asks for; subclasses name their `kind` and `key`."""

    kind: ClassVar[str]
    key_format: ClassVar[str]  # the idempotency key, from the payload's fields
    kinds: ClassVar[dict[str, type[Payload]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Payload.kinds[cls.kind] = cls

    @property
    def key(self) -> str:
        return self.key_format.format(**self.as_json())

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class AssignmentDm(Payload):
    kind = "assign-dm"
    key_format = "assign-dm:{assignment_id}"
    assignment_id: int
    conversation_id: int | None
    message_id: int | None = None


@dataclass(frozen=True)
class ImapTag(Payload):
    """Keywords on one message where Rapport read it (and, after a reassignment, ones to remove)."""

    kind = "imap-tag"
    key_format = "imap-tag:{message_id}"
    mailbox: str
    folder: str
    uidvalidity: int | None
    uid: int
    message_id: int
    keywords: list[str]
    remove: list[str] = field(default_factory=list)
    assignment_id: int | None = None

    @property
    def key(self) -> str:  # a reassignment's retag sits beside the first tag
        return super().key + (f":{self.assignment_id}" if self.assignment_id else "")


@dataclass(frozen=True)
class ImapMove(Payload):
    kind = "imap-move"
    key_format = "imap-move:{message_id}"
    mailbox: str
    folder: str
    uidvalidity: int | None
    uid: int
    message_id: int
    target: str


@dataclass(frozen=True)
class BacklogSummary(Payload):
    """Old mail of a first sync, counted per owner: one summary per folder, however many batches."""

    kind = "backlog-summary"
    key_format = "backlog-summary:{mailbox}:{folder}:{since}"
    mailbox: str
    folder: str
    count: int
    owners: dict[str, int]
    oldest: str
    newest: str
    since: str  # the first batch's clock: part of the key

    def folded(self, later: BacklogSummary) -> BacklogSummary:
        owners = dict(self.owners)
        for owner, count in later.owners.items():
            owners[owner] = owners.get(owner, 0) + count
        return dataclasses.replace(self, count=self.count + later.count, owners=owners,
                                   oldest=min(self.oldest, later.oldest), newest=max(self.newest, later.newest))


@dataclass(frozen=True)
class Reminder(Payload):
    kind = "reminder"
    key_format = "reminder:{followup_id}:{due}"
    followup_id: int
    due: str  # the due time it reminds of: a snooze makes a new row


@dataclass(frozen=True)
class Nudge(Payload):
    kind = "nudge"
    key_format = "nudge:{followup_id}:{day}"
    followup_id: int
    day: str


@dataclass(frozen=True)
class SlaEscalation(Payload):
    kind = "sla-escalation"
    key_format = "sla:{conversation_id}"
    conversation_id: int


@dataclass(frozen=True)
class Digest(Payload):
    """A manager's digest for one period: Slack parts and/or an email, as `via` says."""

    kind = "digest"
    key_format = "digest:{manager_email}:{period}:{local_date}"
    manager_email: str
    period: str
    start: str
    end: str
    local_date: str
    via: list[str]
    channel: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EmailReply(Payload):
    """A rep's reply to a customer, stored as an outbound message: sent over SMTP and copied to Sent once."""

    kind = "email-reply"
    key_format = "email-reply:{message_id}"
    message_id: int  # the stored outbound message (its Message-ID was made before sending)
    mailbox: str | None = None  # the shared mailbox whose Sent folder gets the copy


def payload_of(item: OutboxItem) -> Payload:
    """The row's typed payload (what a handler acts on); the stored `result` is not part of it."""
    cls = Payload.kinds[item.kind]
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{name: value for name, value in item.payload.items() if name in names})


# --------------------------------------------------------------------------- writers


def enqueue(session: Session, payload: Payload, *, now: datetime, due_at: datetime | None = None) -> OutboxItem | None:
    """A row unless one with the payload's key exists (a savepoint absorbs a concurrent writer's
    clash); a `BacklogSummary` folds into its folder's unclaimed one. `now`: the caller's clock."""
    if isinstance(payload, BacklogSummary) and _fold_backlog(session, payload, now=now, due_at=due_at or now):
        return None
    if session.exec(select(OutboxItem.id).where(OutboxItem.key == payload.key)).first() is not None:
        return None
    item = OutboxItem(kind=payload.kind, key=payload.key, payload=payload.as_json(), due_at=due_at or now,
                      created_at=now)
    try:
        with session.begin_nested():
            session.add(item)
    except IntegrityError:
        return None
    return item


def enqueue_many(session: Session, payloads: Iterable[Payload], *, now: datetime) -> int:
    """Rows for keys that cannot exist yet (they name rows inserted in this transaction), in one INSERT."""
    rows = [{"kind": p.kind, "key": p.key, "payload": p.as_json(), "status": OutboxStatus.pending, "due_at": now,
             "claimed_until": None, "attempts": 0, "last_error": None, "created_at": now, "sent_at": None}
            for p in payloads]
    return len(insert_rows(session, OutboxItem, rows))


def _fold_backlog(session: Session, summary: BacklogSummary, *, now: datetime, due_at: datetime) -> bool:
    pending = session.exec(select(OutboxItem).where(
        OutboxItem.kind == BacklogSummary.kind,
        OutboxItem.status == OutboxStatus.pending,
        # a row a dispatcher has claimed may be posting now: start a new one instead
        or_(col(OutboxItem.claimed_until).is_(None), col(OutboxItem.claimed_until) < now),
    )).all()
    for row in pending:
        earlier = payload_of(row)
        assert isinstance(earlier, BacklogSummary)
        if (earlier.mailbox, earlier.folder) == (summary.mailbox, summary.folder):
            row.payload = earlier.folded(summary).as_json()
            row.due_at = due_at
            session.add(row)
            return True
    return False


# --------------------------------------------------------------------------- the dispatcher


@dataclass(frozen=True)
class Job:
    """A claimed row as a handler sees it: no database session attached."""

    id: int
    key: str
    payload: Payload
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class Done:
    result: dict[str, Any] | None = None
    also: Callable[[Session], None] | None = None  # written with the mark (e.g. a Slack id looked up)


@dataclass(frozen=True)
class Failed:
    error: str
    retry_after: timedelta | None = None


@dataclass(frozen=True)
class Released:
    """Not ours to do now (another process's mailbox, a move waiting for its tags): no attempt counted."""


Outcome = Done | Failed | Released


class RetryLater(Exception):
    """Raised by a handler when the other side asked it to wait (Slack's 429)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Handler:
    """Does one or more kinds. `act` gets a unit of jobs (one job unless `batch`) and says how each went."""

    kinds: tuple[str, ...]
    act: Callable[[list[Job]], dict[int, Outcome]]
    batch: bool = False
    lease: timedelta = timedelta(minutes=2)


def dispatch(
    engine: Engine, handlers: Sequence[Handler], *, now: datetime | None = None, limit: int = 100
) -> int:
    """Claim due rows for each handler, act with no transaction open, mark each row; returns how many were done."""
    now = now or utcnow()
    done = 0
    for handler in handlers:
        with session_scope(engine) as session:
            jobs = [job_of(item) for item in claim_due(session, handler.kinds, limit=limit, lease=handler.lease, now=now)]
        units = [jobs] if handler.batch and jobs else [[job] for job in jobs]
        for unit in units:
            outcomes = _act(handler, unit)
            with session_scope(engine) as session:
                for job in unit:
                    done += _mark(session, job, outcomes.get(job.id, Failed("the handler said nothing")), now)
    return done


def job_of(item: OutboxItem) -> Job:
    assert item.id is not None
    return Job(item.id, item.key, payload_of(item), item.attempts, item.created_at)


def _act(handler: Handler, unit: list[Job]) -> dict[int, Outcome]:
    try:
        return handler.act(unit)
    except RetryLater as exc:
        return {job.id: Failed(str(exc), timedelta(seconds=exc.retry_after)) for job in unit}
    except Exception as exc:  # one bad row must not stop the others; it is retried with back-off
        log.warning("outbox %s failed: %s", ", ".join(job.key for job in unit), exc)
        return {job.id: Failed(f"{type(exc).__name__}: {exc}") for job in unit}


def _mark(session: Session, job: Job, outcome: Outcome, now: datetime) -> int:
    item = session.get(OutboxItem, job.id)
    if item is None:
        return 0
    if isinstance(outcome, Done):
        if outcome.also is not None:
            outcome.also(session)
        mark_sent(session, item, result=outcome.result)
        return 1
    if isinstance(outcome, Failed):
        mark_failed(session, item, outcome.error, retry_after=outcome.retry_after, now=now)
    else:
        item.claimed_until = None
        item.attempts = max(0, item.attempts - 1)
        session.add(item)
    return 0


def claim_due(
    session: Session,
    kinds: Sequence[str],
    *,
    limit: int = 100,
    lease: timedelta = timedelta(minutes=2),
    now: datetime | None = None,
) -> list[OutboxItem]:
    """Lease up to `limit` due items of `kinds`; commit the session to publish the lease."""
    now = now or utcnow()
    query = (
        select(OutboxItem)
        .where(
            OutboxItem.status == OutboxStatus.pending,
            col(OutboxItem.kind).in_(list(kinds)),
            col(OutboxItem.due_at) <= now,
            or_(col(OutboxItem.claimed_until).is_(None), col(OutboxItem.claimed_until) < now),
        )
        .order_by(col(OutboxItem.due_at), col(OutboxItem.id))
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    items = list(session.exec(query).all())
    for item in items:
        item.claimed_until = now + lease
        item.attempts += 1
        session.add(item)
    return items


def mark_sent(session: Session, item: OutboxItem, *, result: dict[str, Any] | None = None) -> None:
    item.status = OutboxStatus.sent
    item.sent_at = utcnow()
    item.claimed_until = None
    item.last_error = None
    if result:
        item.payload = {**item.payload, "result": result}
    session.add(item)


def mark_failed(
    session: Session,
    item: OutboxItem,
    error: str,
    *,
    retry_after: timedelta | None = None,
    now: datetime | None = None,
) -> None:
    """Record a failure; retry later with exponential backoff, give up after MAX_ATTEMPTS."""
    item.last_error = error[:2000]
    item.claimed_until = None
    if item.attempts >= MAX_ATTEMPTS:
        item.status = OutboxStatus.failed
    else:
        item.due_at = (now or utcnow()) + (retry_after or timedelta(seconds=min(3600, 5 * 2**item.attempts)))
    session.add(item)

