"""The outbox dispatcher for Slack notifications, and where they go (Slack or the console).

`dispatch_outbox` leases due outbox rows, renders each from the database
(assignment DMs, backlog summaries, reminders, nudges, SLA escalations,
digests), hands it to a sender and marks the row sent in the same
transaction as anything the rendering changed.

Exactly once: a process killed after posting but before `mark_sent` leaves a
lease that expires, so the row is tried again. Every Slack message carries the
row's key in its metadata, and a retry (attempts > 1) first looks for that key
in the DM's history: what was posted is not posted again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from rich.console import Console
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.blocks import (
    Block,
    actions,
    button,
    context,
    header,
    render_text,
    section,
    split_blocks,
    static_select,
)
from bot.cards import reminder_actions
from bot.digest import deliver_digest
from bot.identity import active_reps, managers_of, remember_slack_id, slack_id_for_rep
from bot.interactions import recategorise_options
from bot.text import age, clip, escape, local_time
from store.db import read_session, session_scope
from store.models import (
    Assignment,
    Company,
    Contact,
    Conversation,
    ConversationStatus,
    FollowUp,
    FollowUpStatus,
    Message,
    OutboxItem,
    Rep,
)
from store.outbox import claim_due, mark_failed, mark_sent
from store.types import utcnow

log = logging.getLogger(__name__)
METADATA_EVENT = "rapport_outbox"
SLACK_KINDS = ("assign-dm", "backlog-summary", "reminder", "nudge", "sla-escalation")
DIGEST_KIND = "digest"
HISTORY_LOOKBACK = 200  # messages of the DM searched for an earlier attempt's key


@dataclass(frozen=True)
class Outgoing:
    """One notification for one rep: fallback text and blocks (split into messages of ≤50 blocks)."""

    rep: Rep
    text: str
    blocks: list[Block]
    key: str


class RateLimited(Exception):
    """Slack still answered 429 after the client's own retries; try the row again later."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited by Slack; retry after {retry_after:.0f}s")
        self.retry_after = retry_after


class DeliveryError(Exception):
    """A notification cannot be delivered now (e.g. no Slack user for the rep)."""


class Sender(Protocol):
    """Where notifications go. `retry` says an earlier attempt may already have delivered."""

    @property
    def client(self) -> WebClient | None: ...

    def send(self, session: Session, message: Outgoing, *, retry: bool) -> dict[str, Any]: ...


# --------------------------------------------------------------------------- senders


class SlackSender:
    """Posts DMs with the Web API; honours 429 and keeps each channel's messages in order."""

    def __init__(self, client: WebClient, *, max_rate_limit_retries: int = 2) -> None:
        self.client = client
        if not any(isinstance(h, RateLimitErrorRetryHandler) for h in client.retry_handlers):
            client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=max_rate_limit_retries))
        self._lock = threading.Lock()
        self._channel_locks: dict[str, threading.Lock] = {}
        self._blocked_until: dict[str, float] = {}  # channel -> monotonic time it may be used again

    def send(self, session: Session, message: Outgoing, *, retry: bool) -> dict[str, Any]:
        user_id = slack_id_for_rep(session, message.rep, self.client)
        if not user_id:
            raise DeliveryError(f"no Slack user for {message.rep.email} (set slack_user_id in rapport.toml)")
        channel = self._dm_channel(user_id)
        with self._channel_lock(channel):
            self._wait_if_blocked(channel)
            return self._post_parts(channel, message, retry=retry)

    def post(self, channel: str, text: str, blocks: list[Block], *, key: str | None = None) -> list[str]:
        """Post blocks to a channel as one or more messages; returns their timestamps."""
        stamps: list[str] = []
        with self._channel_lock(channel):
            for i, part in enumerate(split_blocks(blocks)):
                stamps.append(self._post_one(channel, text, part, key=key, part=i))
        return stamps

    def _dm_channel(self, user_id: str) -> str:
        try:
            return str(self.client.conversations_open(users=user_id)["channel"]["id"])
        except SlackApiError as exc:
            self._raise_rate_limited(exc, user_id)
            raise DeliveryError(f"cannot open a DM with {user_id}: {exc.response.get('error')}") from None

    def _post_parts(self, channel: str, message: Outgoing, *, retry: bool) -> dict[str, Any]:
        posted = self.posted_parts(channel, message.key) if retry else {}
        stamps = []
        for i, part in enumerate(split_blocks(message.blocks)):
            stamps.append(posted.get(i) or self._post_one(channel, message.text, part, key=message.key, part=i))
        return {"channel": channel, "ts": stamps, "already_posted": len(posted)}

    def _post_one(self, channel: str, text: str, blocks: list[Block], *, key: str | None, part: int) -> str:
        extra: dict[str, Any] = {}
        if key is not None:
            extra["metadata"] = {"event_type": METADATA_EVENT, "event_payload": {"key": key, "part": part}}
        try:
            answer = self.client.chat_postMessage(channel=channel, text=clip(text, 3000), blocks=blocks or None,
                                                  unfurl_links=False, unfurl_media=False, **extra)
        except SlackApiError as exc:
            self._raise_rate_limited(exc, channel)
            raise
        return str(answer.get("ts") or "")

    def posted_parts(self, channel: str, key: str) -> dict[int, str]:
        """Parts of the message with `key` already in the channel (part -> ts), from its recent history."""
        try:
            answer = self.client.conversations_history(channel=channel, limit=HISTORY_LOOKBACK,
                                                       include_all_metadata=True)
        except SlackApiError as exc:
            self._raise_rate_limited(exc, channel)
            raise
        found: dict[int, str] = {}
        for message in answer.get("messages") or []:
            meta = message.get("metadata") or {}
            payload = meta.get("event_payload") or {}
            if meta.get("event_type") == METADATA_EVENT and payload.get("key") == key:
                found[int(payload.get("part") or 0)] = str(message.get("ts") or "")
        return found

    def _channel_lock(self, channel: str) -> threading.Lock:
        with self._lock:
            return self._channel_locks.setdefault(channel, threading.Lock())

    def _wait_if_blocked(self, channel: str) -> None:
        remaining = self._blocked_until.get(channel, 0.0) - time.monotonic()
        if remaining > 0:
            raise RateLimited(remaining)

    def _raise_rate_limited(self, exc: SlackApiError, channel: str) -> None:
        if exc.response.status_code != 429:
            return
        retry_after = float(exc.response.headers.get("Retry-After") or exc.response.headers.get("retry-after") or 30)
        self._blocked_until[channel] = time.monotonic() + retry_after
        raise RateLimited(retry_after) from None


class ConsoleSender:
    """Prints notifications as text: the demo and `rapport chat` without a Slack workspace.

    The first `full` are printed as the rep would read them in Slack, the rest
    as one line each, so a backlog of reminders does not bury the answer.
    """

    client: WebClient | None = None

    def __init__(self, console: Console | None = None, *, full: int | None = None) -> None:
        self.console = console or Console()
        self.full = full
        self.sent: list[Outgoing] = []

    def send(self, session: Session, message: Outgoing, *, retry: bool) -> dict[str, Any]:
        self.sent.append(message)
        if self.full is None or len(self.sent) <= self.full:
            self.console.rule(f"Slack DM to {message.rep.name}", style="cyan")
            self.console.print(render_text(message.blocks) or message.text, markup=False, highlight=False)
        else:
            first_line = message.text.splitlines()[0] if message.text else ""
            self.console.print(f"DM to {message.rep.name}: {first_line}", markup=False, highlight=False)
        return {"console": True}


# --------------------------------------------------------------------------- dispatching


def dispatch_outbox(
    engine: Engine,
    sender: Sender,
    *,
    now: datetime | None = None,
    smtp: Any = None,
    limit: int = 100,
    lease: timedelta = timedelta(minutes=2),
    on_sent: Callable[[Outgoing], None] | None = None,
) -> int:
    """Deliver due notification rows once each; returns how many were marked sent.

    `on_sent` hears of every message delivered (e.g. to refresh the rep's App Home).
    """
    kinds = [*SLACK_KINDS, DIGEST_KIND]
    with session_scope(engine) as session:
        claimed = [item.id for item in claim_due(session, kinds, limit=limit, lease=lease, now=now)]
    done = 0
    for item_id in claimed:
        done += _deliver_one(engine, sender, item_id, now=now or utcnow(), smtp=smtp, on_sent=on_sent)
    return done


def _deliver_one(
    engine: Engine, sender: Sender, item_id: int | None, *, now: datetime, smtp: Any,
    on_sent: Callable[[Outgoing], None] | None,
) -> int:
    sent: list[Outgoing] = []
    try:
        # Render and send outside any write transaction: Slack may take seconds (429 back-off),
        # and on SQLite a writer would hold up every other writer (the inbox) that long.
        with read_session(engine) as session:
            item = session.get(OutboxItem, item_id)
            if item is None:
                return 0
            result = deliver_item(session, item, sender, now=now, smtp=smtp, sent=sent)
        with session_scope(engine) as session:
            for message in sent:
                if message.rep.id is not None and message.rep.slack_user_id:
                    remember_slack_id(session, message.rep.id, message.rep.slack_user_id)
            item = session.get(OutboxItem, item_id)
            if item is not None:
                mark_sent(session, item, result=result)
    except RateLimited as exc:
        _fail(engine, item_id, str(exc), retry_after=timedelta(seconds=exc.retry_after), now=now)
        return 0
    except Exception as exc:  # one bad row must not stop the others; it is retried with backoff
        log.warning("outbox item %s failed: %s", item_id, exc)
        _fail(engine, item_id, f"{type(exc).__name__}: {exc}", now=now)
        return 0
    if on_sent is not None:
        for message in sent:
            on_sent(message)
    return 1


def _fail(
    engine: Engine, item_id: int | None, error: str, *, retry_after: timedelta | None = None, now: datetime
) -> None:
    with session_scope(engine) as session:
        item = session.get(OutboxItem, item_id)
        if item is not None:
            mark_failed(session, item, error, retry_after=retry_after, now=now)


def deliver_item(
    session: Session, item: OutboxItem, sender: Sender, *, now: datetime, smtp: Any = None,
    sent: list[Outgoing] | None = None,
) -> dict[str, Any]:
    """Render one row from the database and send it; returns a small result stored on the row."""
    if item.kind == DIGEST_KIND:
        deliver_digest(session, item, slack_client=sender.client, smtp=smtp)
        return {"digest": True}
    renderer = RENDERERS[item.kind]
    messages = renderer(session, item, now)
    if not messages:
        return {"skipped": True}
    for message in messages:
        sender.send(session, message, retry=item.attempts > 1)
        if sent is not None:
            sent.append(message)
    return {"sent": len(messages)}


# --------------------------------------------------------------------------- renderers


def render_assignment(session: Session, item: OutboxItem, now: datetime) -> list[Outgoing]:
    payload = item.payload
    assignment = session.get(Assignment, payload.get("assignment_id"))
    conversation = session.get(Conversation, payload.get("conversation_id"))
    if assignment is None or conversation is None or assignment.owner_id is None:
        return []
    owner = session.get(Rep, assignment.owner_id)
    if owner is None or not owner.active:
        return []
    message = session.get(Message, payload.get("message_id")) if payload.get("message_id") else None
    blocks = assignment_blocks(session, conversation, message, assignment, now=now)
    # the fallback text is a notification preview: escaped like the blocks (no <!channel> from a customer)
    subject = escape(clip(conversation.subject or "(no subject)", 80))
    return [Outgoing(owner, f"New email for you: {subject}", blocks, item.key)]


def assignment_blocks(
    session: Session, conversation: Conversation, message: Message | None, assignment: Assignment, *, now: datetime
) -> list[Block]:
    """The assignment DM: who wrote, about what, what the classifier thinks, why you, and buttons."""
    contact = session.get(Contact, conversation.contact_id) if conversation.contact_id else None
    company_id = conversation.company_id or (contact.company_id if contact else None)
    company = session.get(Company, company_id) if company_id else None
    sender_name = (message.from_name if message else None) or (contact.name if contact else None) or "Unknown sender"
    sender_email = message.from_email if message else None
    who = escape(sender_name) + (f" &lt;{escape(sender_email)}&gt;" if sender_email else "")
    if company is not None:
        who += f" · {escape(company.name)}"
    category = conversation.category or (message.category if message else None) or "uncategorised"
    confidence = conversation.category_confidence if conversation.category_confidence is not None else (
        message.category_confidence if message else None)
    details = [f"*Category:* `{escape(category)}`" + (f" ({confidence:.0%})" if confidence is not None else ""),
               f"*Language:* {escape(conversation.language or (message.language if message else None) or '?')}",
               f"*Received:* {age(message.received_at if message else conversation.opened_at, now)} ago"]
    blocks: list[Block] = [
        header("New email assigned to you"),
        section(f"*From:* {who}\n*Subject:* {escape(clip(conversation.subject or '(no subject)', 200))}"),
        context(*details),
    ]
    entities = _entities_text(message)
    if entities:
        blocks.append(context(f"*Entities:* {entities}"))
    snippet = clip((message.new_text or message.text) if message else "", 500)
    if snippet:
        blocks.append(section("> " + escape(snippet).replace("\n", "\n> ")))
    blocks.append(context(f"*Why you:* {escape(assignment.reason)} (rule `{escape(assignment.rule)}`)"))
    blocks.append(conversation_actions(session, conversation.id or 0))
    return blocks


def conversation_actions(session: Session, conversation_id: int) -> Block:
    reps = [(rep.name, str(rep.id)) for rep in active_reps(session)]
    value = str(conversation_id)
    elements = [
        button("Claim", "conv_claim", value, style="primary"),
        button("Mark answered", "conv_answered", value),
        static_select("Recategorise…", "conv_recategorise", [(c, f"{value}:{v}") for c, v in recategorise_options()]),
    ]
    if reps:
        elements.append(static_select("Reassign to…", "conv_reassign", [(n, f"{value}:{r}") for n, r in reps]))
    return actions(*elements, block_id=f"conv:{conversation_id}")


def _entities_text(message: Message | None) -> str:
    if message is None or not message.entities:
        return ""
    parts: list[str] = []
    for entity in message.entities:
        # the words as written (a date reads "24 november", not "--11-24"); each once
        shown = f"{escape(entity.get('label', '?'))}: {escape(clip(str(entity.get('text') or entity.get('value') or ''), 60))}"
        if shown not in parts:
            parts.append(shown)
    return " · ".join(parts[:8])


def render_backlog(session: Session, item: OutboxItem, now: datetime) -> list[Outgoing]:
    """One summary to the managers instead of a DM per old email (a first sync of a full mailbox)."""
    payload = item.payload
    owners = payload.get("owners") or {}
    lines = [f"• {escape(owner)}: {count}" for owner, count in sorted(owners.items(), key=lambda kv: -int(kv[1]))[:20]]
    text = (f"*{int(payload.get('count') or 0)} older emails* from {escape(payload.get('mailbox') or '?')} "
            f"/ {escape(payload.get('folder') or '?')} were filed and assigned without a DM each.")
    span = f"Received {escape(str(payload.get('oldest', '?'))[:10])} to {escape(str(payload.get('newest', '?'))[:10])}"
    blocks = [header("Backlog imported"), section(text), context(span)]
    if lines:
        blocks.append(section("*By owner*\n" + "\n".join(lines)))
    return [Outgoing(m, f"{payload.get('count')} older emails imported", blocks, f"{item.key}#{m.id}")
            for m in managers_of(session, None)]


def render_reminder(session: Session, item: OutboxItem, now: datetime) -> list[Outgoing]:
    """A due follow-up; nothing if it was done or moved since the row was written."""
    followup = session.get(FollowUp, item.payload.get("followup_id"))
    if followup is None or followup.status != FollowUpStatus.open:
        return []
    if item.kind == "reminder" and followup.due_at.isoformat() != item.payload.get("due"):
        return []  # snoozed meanwhile: the new due time has its own row
    rep = session.get(Rep, followup.rep_id)
    if rep is None or not rep.active:
        return []
    contact = session.get(Contact, followup.contact_id) if followup.contact_id else None
    title = "Follow-up due" if item.kind == "reminder" else "Still open: overdue follow-up"
    about = f" with *{escape(contact.name)}*" if contact else ""
    when = local_time(followup.due_at, rep.timezone)
    blocks = [section(f":alarm_clock: *{title}*{about}\n{escape(clip(followup.note, 500)) or '(no note)'}"),
              context(f"Due {when}"), reminder_actions(followup.id or 0)]
    return [Outgoing(rep, f"{title}{' with ' + escape(contact.name) if contact else ''}: {escape(clip(followup.note, 100))}",
                     blocks, item.key)]


def render_escalation(session: Session, item: OutboxItem, now: datetime) -> list[Outgoing]:
    """A conversation past its SLA and unanswered: its owner and their managers hear once."""
    conversation = session.get(Conversation, item.payload.get("conversation_id"))
    if conversation is None or conversation.status != ConversationStatus.open:
        return []
    owner = session.get(Rep, conversation.owner_id) if conversation.owner_id else None
    recipients = {rep.id: rep for rep in [*([owner] if owner and owner.active else []), *managers_of(session, owner)]}
    owner_text = escape(owner.name) if owner else f"queue {escape(conversation.queue or '?')}"
    overdue = age(conversation.sla_due_at, now) if conversation.sla_due_at else "?"
    blocks = [
        section(f":rotating_light: *SLA missed* ({overdue} overdue): "
                f"{escape(clip(conversation.subject or '(no subject)', 150))}"),
        context(f"Owner: {owner_text}", f"Category: `{escape(conversation.category or 'uncategorised')}`",
                f"Opened {age(conversation.opened_at, now)} ago"),
        conversation_actions(session, conversation.id or 0),
    ]
    return [Outgoing(rep, f"SLA missed: {escape(clip(conversation.subject, 80))}", blocks, f"{item.key}#{rep.id}")
            for rep in recipients.values() if rep is not None]


RENDERERS: dict[str, Callable[[Session, OutboxItem, datetime], list[Outgoing]]] = {
    "assign-dm": render_assignment,
    "backlog-summary": render_backlog,
    "reminder": render_reminder,
    "nudge": render_reminder,
    "sla-escalation": render_escalation,
}
