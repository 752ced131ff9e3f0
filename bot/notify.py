"""Slack notifications: the outbox handler that renders them, and where they go (Slack or the console).

`notification_handler` plugs into `store.outbox.dispatch`: it renders each row
from the database (assignment DMs, backlog summaries, reminders, nudges, SLA
escalations) and hands it to a sender; `dispatch_outbox` adds the digests'
handlers (`bot.digest.digest_handlers`, Slack and email apart). Exactly
once: every Slack message carries the row's key in its metadata (a file share in
a block_id), and a retry first looks for that key in the channel's history since
the row was written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Protocol

from rich.console import Console
from rich.text import Text
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.web import SlackResponse
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.blocks import (
    Block,
    actions,
    button,
    context,
    header,
    section,
    split_blocks,
    static_select,
)
from bot.cards import reminder_actions
from bot.digest import DigestLinks, digest_handlers
from bot.email import SmtpOptions
from bot.identity import active_reps, managers_of, note_slack_id, remember_slack_id
from bot.interactions import recategorise_options
from bot.references import followup_ref
from bot.surveys import SurveyOptions, survey_mail_handler
from bot.terminal import slack_names, terminal_blocks, terminal_text
from bot.text import age, clip, escape, local_time
from store.db import read_session
from store.models import (
    Assignment,
    Company,
    Consent,
    Contact,
    Conversation,
    ConversationStatus,
    FollowUp,
    FollowUpStatus,
    Message,
    Rep,
    Survey,
)
from store.outbox import (
    AssignmentDm,
    BacklogSummary,
    ConsentWithdrawn,
    Done,
    Handler,
    Job,
    LowScore,
    Nudge,
    Outcome,
    Reminder,
    RetryLater,
    SlaEscalation,
    dispatch,
)
from store.owners import owner_id_of
from store.types import utcnow

log = logging.getLogger(__name__)
METADATA_EVENT = "rapport_outbox"
HISTORY_PAGE = 200  # messages per page of a channel's history searched for an earlier attempt
MAX_BLOCK_ID = 255
USERS_INFO = "users.info"  # rate-limited like a channel: look-ups wait together after a 429
USERS_LOOKUP = "users.lookupByEmail"


@dataclass(frozen=True)
class Outgoing:
    """One notification for one rep: fallback text and blocks (split into messages of ≤50 blocks)."""

    rep: Rep
    text: str
    blocks: list[Block]
    key: str


class RateLimited(RetryLater):
    """Slack still answered 429 after the client's own retries; try the row again later."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited by Slack; retry after {retry_after:.0f}s", retry_after)


class DeliveryError(Exception):
    """A notification cannot be delivered now (e.g. no Slack user for the rep)."""


@dataclass(frozen=True)
class FileUpload:
    """One file of a share (`SlackSender.upload`)."""

    content: bytes
    filename: str
    title: str


class Sender(Protocol):
    """Where notifications go. `since`: an earlier attempt may have delivered from then on; look first."""

    def send(self, session: Session, message: Outgoing, *, since: datetime | None) -> dict[str, Any]: ...


# --------------------------------------------------------------------------- senders


class SlackSender:
    """The one way out to Slack for what Rapport sends on its own: per-channel 429 handling and
    order, splitting over 50 blocks, the outbox key in each message's metadata, and on a retry a
    paged look-up of the channel's history so that what was posted is not posted again."""

    def __init__(self, client: WebClient, *, max_rate_limit_retries: int = 2) -> None:
        self._client = client
        if not any(isinstance(h, RateLimitErrorRetryHandler) for h in client.retry_handlers):
            client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=max_rate_limit_retries))
        self._lock = threading.Lock()
        self._channel_locks: dict[str, threading.Lock] = {}
        self._blocked_until: dict[str, float] = {}  # channel -> monotonic time it may be used again

    def send(self, session: Session, message: Outgoing, *, since: datetime | None) -> dict[str, Any]:
        channel = self.dm_channel(session, message.rep)
        stamps, already = self.post(channel, message.text, message.blocks, key=message.key, since=since)
        return {"channel": channel, "ts": stamps, "already_posted": already}

    def dm_channel(self, session: Session, rep: Rep) -> str:
        user_id = rep.slack_user_id or self._user_id_by_email(rep.email)
        if not user_id:
            raise DeliveryError(f"no Slack user for {rep.email} (set slack_user_id in rapport.toml)")
        note_slack_id(session, rep, user_id)
        try:
            return str(self._client.conversations_open(users=user_id)["channel"]["id"])
        except SlackApiError as exc:
            self._raise_rate_limited(exc, user_id)
            raise DeliveryError(f"cannot open a DM with {user_id}: {exc.response.get('error')}") from None

    def post(
        self, channel: str, text: str, blocks: list[Block], *, key: str | None = None, since: datetime | None = None
    ) -> tuple[list[str], int]:
        """Post blocks as one or more messages; returns their timestamps and how many were there already."""
        with self._channel_lock(channel):
            self._wait_if_blocked(channel)
            posted = self.posted_parts(channel, key, since) if key is not None and since is not None else {}
            stamps = [posted.get(i) or self._post_one(channel, text, part, key=key, part=i)
                      for i, part in enumerate(split_blocks(blocks))]
        return stamps, len(posted)

    def tell(self, user_id: str, text: str, blocks: list[Block] | None = None, *, channel: str | None = None) -> None:
        """A private answer: ephemeral where the person is, else a DM."""
        for part in split_blocks(blocks or []):
            try:
                if channel and not channel.startswith("D"):
                    self._client.chat_postEphemeral(channel=channel, user=user_id, text=text, blocks=part or None)
                    continue
            except SlackApiError as exc:
                log.info("ephemeral answer in %s failed (%s); sending a DM", channel, exc.response.get("error"))
            self.post(user_id, text, part)

    def update(self, channel: str, ts: str, text: str, blocks: list[Block]) -> bool:
        """Replace a message's blocks; False when Slack refused."""
        try:
            self._client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
        except SlackApiError as exc:
            log.info("chat.update failed: %s", exc.response.get("error"))
            return False
        return True

    def user_email(self, user_id: str) -> str | None:
        """The email Slack has for a user (users.info), lower case; None when Slack has none or refuses."""
        email = (self._user(USERS_INFO, lambda: self._client.users_info(user=user_id)).get("profile") or {}).get("email")
        return str(email).lower() if email else None

    def _user_id_by_email(self, email: str) -> str | None:
        user = self._user(USERS_LOOKUP, lambda: self._client.users_lookupByEmail(email=email))
        return str(user.get("id") or "") or None

    def _user(self, method: str, call: Callable[[], SlackResponse]) -> dict[str, Any]:
        """The user a look-up answers (empty when Slack has none or refuses). A 429 after the client's
        retries blocks further look-ups of `method` until Retry-After has passed, like a channel (RateLimited)."""
        self._wait_if_blocked(method)
        try:
            return dict(call().get("user") or {})
        except SlackApiError as exc:
            self._raise_rate_limited(exc, method)
            log.info("%s failed: %s", method, exc.response.get("error"))
            return {}

    def permalink(self, channel: str, ts: str) -> str | None:
        try:
            return self._client.chat_getPermalink(channel=channel, message_ts=ts).get("permalink")
        except SlackApiError as exc:
            log.info("no permalink for the message: %s", exc.response.get("error"))
            return None

    def upload(
        self, channel: str, files: Sequence[FileUpload], text: str, *, key: str | None = None,
        since: datetime | None = None,
    ) -> bool:
        """Share `files` in one message introduced by `text`. A file share takes no metadata, so the
        text's block carries the key as its block_id, and a retry (`since`) that finds that tag in
        the channel's history uploads nothing; returns whether it uploaded."""
        blocks = [section(text, block_id=upload_tag(key) if key is not None else None)]
        with self._channel_lock(channel):
            self._wait_if_blocked(channel)
            if key is not None and since is not None and self.posted_parts(channel, key, since):
                return False
            try:
                self._client.files_upload_v2(
                    channel=channel, blocks=json.dumps(blocks),
                    file_uploads=[{"content": f.content, "filename": f.filename, "title": f.title} for f in files])
            except SlackApiError as exc:
                self._raise_rate_limited(exc, channel)
                raise
        return True

    def _post_one(self, channel: str, text: str, blocks: list[Block], *, key: str | None, part: int) -> str:
        extra: dict[str, Any] = {}
        if key is not None:
            extra["metadata"] = {"event_type": METADATA_EVENT, "event_payload": {"key": key, "part": part}}
        try:
            answer = self._client.chat_postMessage(channel=channel, text=clip(text, 3000), blocks=blocks or None,
                                                   unfurl_links=False, unfurl_media=False, **extra)
        except SlackApiError as exc:
            self._raise_rate_limited(exc, channel)
            raise
        return str(answer.get("ts") or "")

    def posted_parts(self, channel: str, key: str, since: datetime) -> dict[int, str]:
        """Parts of the message with `key` posted (or files shared, as part 0) to the channel since
        `since` (part -> ts), every page of the history; empty when the history cannot be read (no
        scope): then a repeat is accepted."""
        found: dict[int, str] = {}
        cursor = None
        while True:
            try:
                answer = self._client.conversations_history(channel=channel, limit=HISTORY_PAGE, cursor=cursor,
                                                            oldest=f"{since.timestamp() - 1:.6f}",
                                                            include_all_metadata=True)
            except SlackApiError as exc:
                self._raise_rate_limited(exc, channel)
                log.info("cannot read %s history to skip posted parts: %s", channel, exc.response.get("error"))
                return found
            for message in answer.get("messages") or []:
                part = _part_of(message, key)
                if part is not None:
                    found[part] = str(message.get("ts") or "")
            cursor = (answer.get("response_metadata") or {}).get("next_cursor")
            if not answer.get("has_more") or not cursor:
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


def upload_tag(key: str) -> str:
    """The block_id that marks a file share with its outbox key (a block_id holds 255 characters)."""
    tag = f"{METADATA_EVENT}:{key}"
    return tag if len(tag) <= MAX_BLOCK_ID else f"{METADATA_EVENT}:{hashlib.sha256(key.encode()).hexdigest()}"


def _part_of(message: dict[str, Any], key: str) -> int | None:
    """Which part of the outbox row `key` this history message is: metadata on a post, a block_id on
    a file share; None when it is no part of it."""
    meta = message.get("metadata") or {}
    event = meta.get("event_payload") or {}
    if meta.get("event_type") == METADATA_EVENT and event.get("key") == key:
        return int(event.get("part") or 0)
    tag = upload_tag(key)
    return 0 if any(block.get("block_id") == tag for block in message.get("blocks") or []) else None


class ConsoleSender:
    """Prints notifications as text: the demo and `rapport chat` without a Slack workspace.

    The first `full` are printed as the rep would read them in Slack, the rest
    as one line each, so a backlog of reminders does not bury the answer.
    """

    def __init__(self, console: Console | None = None, *, full: int | None = None) -> None:
        self.console = console or Console()
        self.full = full
        self.sent: list[Outgoing] = []

    def send(self, session: Session, message: Outgoing, *, since: datetime | None) -> dict[str, Any]:
        self.sent.append(message)
        if self.full is None or len(self.sent) <= self.full:
            self.console.rule(f"Slack DM to {message.rep.name}", style="cyan")
            self.console.print(terminal_blocks(message.blocks, message.text, slack_names(session),
                                               self.console.width), highlight=False)
        else:
            first_line = message.text.splitlines()[0] if message.text else ""
            line = Text(f"DM to {message.rep.name}: ")
            line.append_text(terminal_text(first_line, slack_names(session)))
            self.console.print(line, highlight=False)
        return {"console": True}


# --------------------------------------------------------------------------- dispatching


def dispatch_outbox(
    engine: Engine,
    sender: Sender,
    *,
    now: datetime | None = None,
    smtp: SmtpOptions | None = None,
    limit: int = 100,
    on_sent: Callable[[Outgoing], None] | None = None,
    digest_links: DigestLinks | None = None,
    surveys: SurveyOptions | None = None,
    categories: Sequence[str] | None,
) -> int:
    """Deliver due notification and digest rows once each; `on_sent` hears of each message (App Home refresh)."""
    return dispatch(engine, outbox_handlers(engine, sender, now=now, smtp=smtp, on_sent=on_sent,
                                            digest_links=digest_links, surveys=surveys, categories=categories),
                    now=now, limit=limit)


def outbox_handlers(
    engine: Engine, sender: Sender, *, now: datetime | None = None, smtp: SmtpOptions | None = None,
    on_sent: Callable[[Outgoing], None] | None = None, digest_links: DigestLinks | None = None,
    surveys: SurveyOptions | None = None, categories: Sequence[str] | None,
) -> list[Handler]:
    """The Slack notifications' handler (a conversation's DM offers `categories`, the model's, to
    recategorise to), the digests' (Slack and email), privacy exports (Slack files) and survey
    mails (when `surveys` has SMTP; without, they wait)."""
    from bot.privacy import privacy_export_handler  # it builds on this module's SlackSender

    slack = sender if isinstance(sender, SlackSender) else None
    return [notification_handler(engine, sender, now=now, on_sent=on_sent, categories=categories),
            *digest_handlers(engine, slack=slack, smtp=smtp, links=digest_links, now=now),
            *([privacy_export_handler(engine, slack)] if slack is not None else []),
            *([survey_mail_handler(engine, surveys)] if surveys is not None and surveys.smtp is not None else [])]


def notification_handler(
    engine: Engine, sender: Sender, *, now: datetime | None = None,
    on_sent: Callable[[Outgoing], None] | None = None, categories: Sequence[str] | None,
) -> Handler:
    """Slack DMs. Each row is rendered and sent in a read-only session: Slack may take
    seconds (429 back-off), and on SQLite a writer would hold up every other writer that long."""
    render = renderers(categories)

    def act(jobs: list[Job]) -> dict[int, Outcome]:
        [job] = jobs
        sent: list[Outgoing] = []
        with read_session(engine) as session:
            result = deliver(session, job, sender, render=render, now=now or utcnow(), sent=sent)
        if on_sent is not None:
            for message in sent:
                on_sent(message)
        return {job.id: Done(result, also=lambda session: _remember_slack_ids(session, sent))}

    return Handler(SLACK_KINDS, act)


def _remember_slack_ids(session: Session, sent: list[Outgoing]) -> None:
    for message in sent:
        if message.rep.id is not None and message.rep.slack_user_id:
            remember_slack_id(session, message.rep.id, message.rep.slack_user_id)


def deliver(
    session: Session, job: Job, sender: Sender, *, render: dict[str, Renderer], now: datetime,
    sent: list[Outgoing] | None = None,
) -> dict[str, Any]:
    """Render one row from the database (`render`: each kind's renderer) and send it; returns a
    small result stored on the row."""
    messages = render[job.payload.kind](session, job, now)
    if not messages:
        return {"skipped": True}
    for message in messages:
        # a second attempt: the first may have posted it already
        sender.send(session, message, since=job.created_at if job.attempts > 1 else None)
        if sent is not None:
            sent.append(message)
    return {"sent": len(messages)}


# --------------------------------------------------------------------------- renderers


def render_assignment(
    session: Session, job: Job, now: datetime, *, categories: Sequence[str] | None
) -> list[Outgoing]:
    payload = job.payload
    assert isinstance(payload, AssignmentDm)
    assignment = session.get(Assignment, payload.assignment_id)
    conversation = session.get(Conversation, payload.conversation_id)
    if assignment is None or conversation is None or assignment.owner_id is None:
        return []
    owner = session.get(Rep, assignment.owner_id)
    if owner is None or not owner.active:
        return []
    message = session.get(Message, payload.message_id) if payload.message_id else None
    blocks = assignment_blocks(session, conversation, message, assignment, now=now, categories=categories)
    # the fallback text is a notification preview: escaped like the blocks (no <!channel> from a customer)
    subject = escape(clip(conversation.subject or "(no subject)", 80))
    return [Outgoing(owner, f"New email for you: {subject}", blocks, job.key)]


def assignment_blocks(
    session: Session, conversation: Conversation, message: Message | None, assignment: Assignment, *, now: datetime,
    categories: Sequence[str] | None,
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
               f"*Urgency:* {escape(conversation.urgency)}"
               + (f" ({escape(clip(conversation.urgency_reason, 120))})" if conversation.urgency_reason else ""),
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
    blocks.append(conversation_actions(session, conversation.id or 0, categories))
    return blocks


def conversation_actions(session: Session, conversation_id: int, categories: Sequence[str] | None) -> Block:
    """The buttons of a conversation's DM; no Recategorise when the model's `categories` are unknown here."""
    reps = [(rep.name, str(rep.id)) for rep in active_reps(session)]
    value = str(conversation_id)
    elements = [
        button("Claim", "conv_claim", value, style="primary"),
        button("Mark answered", "conv_answered", value),
        button("Show conversation", "conv_thread", value),
        button("Reply", "conv_reply", value),
    ]
    if categories is not None:
        elements.append(static_select("Recategorise…", "conv_recategorise",
                                      [(c, f"{value}:{v}") for c, v in recategorise_options(categories)]))
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


def render_backlog(session: Session, job: Job, now: datetime) -> list[Outgoing]:
    """One summary to the managers instead of a DM per old email (a first sync of a full mailbox)."""
    payload = job.payload
    assert isinstance(payload, BacklogSummary)
    lines = [f"• {escape(owner)}: {count}" for owner, count in sorted(payload.owners.items(), key=lambda kv: -kv[1])[:20]]
    text = (f"*{payload.count} older emails* from {escape(payload.mailbox)} "
            f"/ {escape(payload.folder)} were filed and assigned without a DM each.")
    span = f"Received {escape(payload.oldest[:10])} to {escape(payload.newest[:10])}"
    blocks = [header("Backlog imported"), section(text), context(span)]
    if lines:
        blocks.append(section("*By owner*\n" + "\n".join(lines)))
    return [Outgoing(m, f"{payload.count} older emails imported", blocks, f"{job.key}#{m.id}")
            for m in managers_of(session, None)]


def render_reminder(session: Session, job: Job, now: datetime) -> list[Outgoing]:
    """A due follow-up; nothing if it was done or moved since the row was written."""
    payload = job.payload
    assert isinstance(payload, Reminder | Nudge)
    followup = session.get(FollowUp, payload.followup_id)
    if followup is None or followup.status != FollowUpStatus.open:
        return []
    if isinstance(payload, Reminder) and followup.due_at.isoformat() != payload.due:
        return []  # snoozed meanwhile: the new due time has its own row
    rep = session.get(Rep, followup.rep_id)
    if rep is None or not rep.active:
        return []
    contact = session.get(Contact, followup.contact_id) if followup.contact_id else None
    title = "Follow-up due" if isinstance(payload, Reminder) else "Still open: overdue follow-up"
    about = f" with *{escape(contact.name)}*" if contact else ""
    when = local_time(followup.due_at, rep.timezone)
    blocks = [section(f":alarm_clock: *{title}*{about}\n{escape(clip(followup.note, 500)) or '(no note)'}"),
              context(f"Due {when} · {followup_ref(followup.id or 0)}"), reminder_actions(followup.id or 0)]
    return [Outgoing(rep, f"{title}{' with ' + escape(contact.name) if contact else ''}: {escape(clip(followup.note, 100))}",
                     blocks, job.key)]


def render_escalation(
    session: Session, job: Job, now: datetime, *, categories: Sequence[str] | None
) -> list[Outgoing]:
    """A conversation past its SLA and unanswered: its owner and their managers hear once."""
    assert isinstance(job.payload, SlaEscalation)
    conversation = session.get(Conversation, job.payload.conversation_id)
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
        conversation_actions(session, conversation.id or 0, categories),
    ]
    return [Outgoing(rep, f"SLA missed: {escape(clip(conversation.subject, 80))}", blocks, f"{job.key}#{rep.id}")
            for rep in recipients.values() if rep is not None]


def render_low_score(session: Session, job: Job, now: datetime) -> list[Outgoing]:
    """A survey answered with 1 or 2: the owner's managers hear of it (the owner has a follow-up)."""
    assert isinstance(job.payload, LowScore)
    survey = session.get(Survey, job.payload.survey_id)
    if survey is None or survey.score is None:
        return []
    conversation = session.get(Conversation, survey.conversation_id)
    contact = session.get(Contact, survey.contact_id)
    owner_id = (conversation.owner_id if conversation else None) or survey.rep_id
    owner = session.get(Rep, owner_id) if owner_id else None
    who = escape(contact.name if contact else survey.email)
    subject = escape(clip(conversation.subject if conversation else "", 150) or "(no subject)")
    blocks: list[Block] = [
        section(f":warning: *Unhappy customer:* {who} rated {subject} *{survey.score}/5*"),
        context(f"Owner: {escape(owner.name) if owner else 'nobody'} (a follow-up is on their list)"),
    ]
    if survey.comment:
        blocks.insert(1, section("> " + escape(clip(survey.comment, 500)).replace("\n", "\n> ")))
    return [Outgoing(m, f"Unhappy customer: {who} rated {survey.score}/5", blocks, f"{job.key}#{m.id}")
            for m in managers_of(session, owner)]


def render_consent_withdrawn(session: Session, job: Job, now: datetime) -> list[Outgoing]:
    """A contact asked by mail not to get marketing mail: the owner hears of it (else the managers)."""
    assert isinstance(job.payload, ConsentWithdrawn)
    consent = session.get(Consent, job.payload.consent_id)
    contact = session.get(Contact, consent.contact_id) if consent else None
    if consent is None or contact is None or consent.withdrawn_at is None:
        return []
    owner_id = owner_id_of(session, consent.contact_id)  # the contact's owner, else its company's
    owner = session.get(Rep, owner_id) if owner_id is not None else None
    recipients = [owner] if owner is not None and owner.active else managers_of(session, None)
    text = (f":no_entry_sign: *{escape(contact.name)}* asked by email not to get {escape(consent.purpose)} mail; "
            f"their {escape(consent.purpose)} consent is now withdrawn.")
    blocks = [section(text), context("Take them off any mailing list kept outside Rapport too.")]
    return [Outgoing(rep, f"{escape(contact.name)} unsubscribed from {escape(consent.purpose)}", blocks,
                     f"{job.key}#{rep.id}") for rep in recipients]


Renderer = Callable[[Session, Job, datetime], list[Outgoing]]


def renderers(categories: Sequence[str] | None) -> dict[str, Renderer]:
    """Each Slack kind's renderer; a conversation's buttons offer `categories` to recategorise to."""
    return {
        AssignmentDm.kind: partial(render_assignment, categories=categories),
        BacklogSummary.kind: render_backlog,
        Reminder.kind: render_reminder,
        Nudge.kind: render_reminder,
        SlaEscalation.kind: partial(render_escalation, categories=categories),
        LowScore.kind: render_low_score,
        ConsentWithdrawn.kind: render_consent_withdrawn,
    }


SLACK_KINDS = tuple(renderers(None))
