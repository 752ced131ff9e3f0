"""The scheduler: every few seconds, turn what is due into outbox rows and deliver them.

Reminders go out at the due minute (`reminder:{followup_id}:{due_iso}`), an
overdue follow-up is nudged once a day (`nudge:{followup_id}:{date}`), a
conversation past its SLA and unanswered escalates once (`sla:{conversation_id}`),
digests are enqueued by `bot.digest` when it is installed, satisfaction surveys
by `store.surveys` when `[survey]` is enabled and SMTP is set, and once a day mail
older than `[privacy.retention_days]` loses its bodies and attachment list
(store.privacy, in batches over several ticks). Each row is written
in the same transaction as the mark that it was written (reminded_at,
last_nudged_at, escalated_at), and keys are unique, so several processes on
one PostgreSQL database never double a notification.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.digest import DigestOptions, enqueue_due_digests
from bot.notify import Sender, dispatch_outbox
from bot.surveys import SurveyOptions
from store.db import session_scope
from store.followups import due_for_nudge, due_for_reminder, mark_nudged, mark_reminded
from store.models import Conversation, ConversationStatus, SlackEvent
from store.outbox import Handler, Nudge, Reminder, SlaEscalation, dispatch, enqueue
from store.privacy import Retention, expire_old_data
from store.search import refresh_index
from store.segments import SegmentParams, create_post_purchase_followups
from store.stages import advance_to_post_purchase
from store.surveys import enqueue_due_surveys
from store.types import utcnow

log = logging.getLogger(__name__)
TICK_SECONDS = 15.0
EVENT_MEMORY = timedelta(days=1)  # Slack retries an event for minutes; a day of ids is plenty


@dataclass
class TickResult:
    reminders: int = 0
    nudges: int = 0
    escalations: int = 0
    followups: int = 0
    digests: int = 0
    surveys: int = 0
    delivered: int = 0
    post_purchase_moves: int = 0
    expired: int = 0


@dataclass
class Scheduler:
    """Runs `tick` every `interval` seconds in a thread until `stop()`."""

    engine: Engine
    sender: Sender
    interval: float = TICK_SECONDS
    digest_options: DigestOptions | None = None  # None: no digests
    segment_params: SegmentParams = field(default_factory=SegmentParams)  # post-purchase follow-up policy
    smtp: Any = None  # bot.email.SmtpOptions for digests by email
    on_change: Callable[[set[int]], None] | None = None  # rep ids whose App Home changed
    handlers: Sequence[Handler] = ()  # more outbox kinds to deliver each tick (replies to customers)
    retention: Retention | None = None  # rapport.toml [privacy.retention_days]; None: keep everything
    retention_batches: int = 20  # per tick: old mail is emptied over several ticks, in short transactions
    _retention_day: date | None = field(default=None, repr=False)  # the day retention last finished
    surveys: SurveyOptions | None = None  # None: no satisfaction surveys
    # a conversation's DM offers them to recategorise to: the model's (BotOptions.categories)
    categories: Sequence[str] | None = field(kw_only=True)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rapport-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception:  # the loop must survive a bad tick (database restart, ...)
                log.exception("scheduler tick failed")

    def tick(self, now: datetime | None = None) -> TickResult:
        """One round; tests call it with an injected `now`."""
        now = now or utcnow()
        result = TickResult()
        with session_scope(self.engine) as session:
            reminded = enqueue_reminders(session, now)
            result.reminders = len(reminded)
            result.nudges = enqueue_nudges(session, now)
            result.escalations = enqueue_escalations(session, now)
            forget_old_events(session, now)
        params, digests = self.segment_params, self.digest_options
        # each in its own transaction: a failing digest must not hold back reminders
        result.followups = self._apart("creating post-purchase follow-ups", lambda session: (
            create_post_purchase_followups(session, now=now, days=params.post_purchase_days,
                                           kinds=params.post_purchase_kinds)))
        result.post_purchase_moves = self._apart("moving contacts to post_purchase", lambda session: (
            advance_to_post_purchase(session, now=now, days=params.post_purchase_days)))
        if digests is not None:
            result.digests = self._apart("enqueueing digests", lambda session: (
                enqueue_due_digests(session, now=now, options=digests)))
        if self.retention is not None and self._retention_day != now.date():
            result.expired = self._expire(self.retention, now)
        surveys = self.surveys
        if surveys is not None and surveys.sending:
            result.surveys = self._apart("enqueueing surveys", lambda session: (
                enqueue_due_surveys(session, now=now, policy=surveys.policy)))
        notified: set[int] = set()
        result.delivered = dispatch_outbox(self.engine, self.sender, now=now, smtp=self.smtp, surveys=surveys,
                                           on_sent=lambda message: notified.add(message.rep.id or 0),
                                           digest_links=digests.links if digests is not None else None,
                                           categories=self.categories)
        if self.handlers:
            result.delivered += dispatch(self.engine, self.handlers, now=now)
        changed = (reminded | notified) - {0}
        if changed and self.on_change is not None:
            self.on_change(changed)
        # renamed contacts and new phone numbers for `find`; search works with the terms it has meanwhile
        self._apart("refreshing the search index", lambda session: refresh_index(session, changed=True))
        return result

    def _expire(self, retention: Retention, now: datetime) -> int:
        """Once a day, in batches: mail older than the retention loses its bodies and attachment list."""
        try:
            done, finished = expire_old_data(self.engine, retention, now=now, max_batches=self.retention_batches)
        except Exception:
            log.exception("applying the retention failed")
            return 0
        if finished:
            self._retention_day = now.date()
        return sum(done.values())

    def _apart(self, what: str, work: Callable[[Session], int]) -> int:
        """`work` in its own transaction; a failure is logged and tried again next tick."""
        try:
            with session_scope(self.engine) as session:
                return work(session)
        except Exception:
            log.exception("%s failed", what)
            return 0


def enqueue_reminders(session: Session, now: datetime) -> set[int]:
    """A reminder row per follow-up due by `now`; returns the reps concerned."""
    reps: set[int] = set()
    for followup in due_for_reminder(session, now):
        assert followup.id is not None
        enqueue(session, Reminder(followup.id, followup.due_at.isoformat()), now=now, due_at=followup.due_at)
        mark_reminded(session, followup, now)
        reps.add(followup.rep_id)
    return reps


def enqueue_nudges(session: Session, now: datetime) -> int:
    count = 0
    for followup in due_for_nudge(session, now):
        assert followup.id is not None
        enqueue(session, Nudge(followup.id, now.date().isoformat()), now=now)
        mark_nudged(session, followup, now)
        count += 1
    return count


def enqueue_escalations(session: Session, now: datetime, *, limit: int = 200) -> int:
    """Open conversations past their SLA that nobody answered, escalated once each."""
    query = (
        select(Conversation)
        .where(
            Conversation.status == ConversationStatus.open,
            col(Conversation.sla_due_at).is_not(None),
            col(Conversation.sla_due_at) <= now,
            col(Conversation.first_response_at).is_(None),
            col(Conversation.escalated_at).is_(None),
        )
        .order_by(col(Conversation.sla_due_at))
        .limit(limit)
    )
    count = 0
    for conversation in session.exec(query).all():
        assert conversation.id is not None
        enqueue(session, SlaEscalation(conversation.id), now=now)
        conversation.escalated_at = now
        session.add(conversation)
        count += 1
    return count


def forget_old_events(session: Session, now: datetime) -> None:
    """Drop handled Slack event ids older than a day (Slack retries within minutes)."""
    session.execute(delete(SlackEvent).where(col(SlackEvent.received_at) < now - EVENT_MEMORY))
