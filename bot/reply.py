"""Reply to the customer by email from Slack, exactly once.

"Reply" (assignment DM, a conversation's modal) and `/crm reply #CONVERSATION TEXT`
open one modal: the customer's last message, the recipients and subject, the
text and the rep's signature; nothing leaves before the rep presses "Send to
customer". The submission stores the outbound message with its Message-ID and an
`EmailReply` outbox row (store/replies.py); `reply_handler` then sends it over
SMTP (`bot.email.send_message`) as the shared mailbox, with In-Reply-To and
References, and APPENDs a copy to the mailbox's Sent folder. A retry first looks
for the Message-ID in Sent, so a crash after the send does not send it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.blocks import Block, Reply, context, section
from bot.email import OpenSent, SmtpOptions, send_once
from bot.interactions import Submission
from bot.modals import input_block, metadata, modal, state_value, text_input
from bot.references import conversation_ref, names_other, read_reference
from bot.text import clip, escape, local_time, whole_number
from bot.thread import notice_view, view_reply, visible_conversation
from store.audit import Actor
from store.db import read_session
from store.models import Message, Rep
from store.outbox import Done, EmailReply, Failed, Handler, Job, Outcome
from store.replies import ReplyDraft, record_reply, reply_draft

if TYPE_CHECKING:
    from bot.commands import Ctx

REPLY_CALLBACK = "email_reply"
REPLY_FORM = "reply #CONVERSATION TEXT"
SEND_LABEL = "Send to customer"
SIGNATURE_SEPARATOR = "\n\n-- \n"  # the usual "-- " line: mail clients fold what follows
NOT_SET_UP = "Replies by email are not set up here: an admin sets RAPPORT_SMTP_HOST (see the README)."


@dataclass(frozen=True)
class ReplyOptions:
    """How replies go out (rapport.toml [reply] and the reps' `signature`)."""

    from_address: str | None = None  # None: the shared mailbox the customer wrote to
    default_from: str = "rapport@localhost"  # RAPPORT_SMTP_FROM, when the mailbox is not known
    reply_to: str | None = None  # a Reply-To header on every reply
    signatures: Mapping[str, str] = field(default_factory=dict)  # rep email (lower case) -> signature
    can_send: bool = True  # False without RAPPORT_SMTP_HOST: the modal says so instead of queueing mail

    def sender(self, draft: ReplyDraft) -> str:
        mailbox = draft.mailbox if draft.mailbox and "@" in draft.mailbox else None
        return self.from_address or mailbox or self.default_from


# --------------------------------------------------------------------------- the modal


def reply_view(session: Session, rep: Rep, conversation_id: int, options: ReplyOptions,
               *, text: str | None = None) -> dict[str, Any]:
    """The confirmation modal, or a notice saying why there is nothing to send."""
    found = visible_conversation(session, rep, conversation_id)
    if isinstance(found, str):
        return notice_view("Reply", found)
    draft = reply_draft(session, conversation_id)
    if isinstance(draft, str) or not options.can_send:
        return notice_view("Cannot reply", draft if isinstance(draft, str) else NOT_SET_UP)
    answering = draft.answering
    sender = escape(answering.from_name or answering.from_email or "the customer")
    quoted = escape(clip(answering.new_text or answering.text or "(no text)", 1500))
    signature = options.signatures.get(rep.email.lower(), "")
    blocks: list[Block] = [
        section(f"*To:* {escape(', '.join(draft.to))}\n*Subject:* {escape(clip(draft.subject, 200))}"),
        context(f"From: {escape(options.sender(draft))}"
                + (f" · Replies go to {escape(options.reply_to)}" if options.reply_to else "")
                + f" · Conversation {conversation_ref(conversation_id)}"),
        section(f"*Last message from {sender}* ({local_time(answering.received_at, rep.timezone)})\n"
                + "> " + quoted.replace("\n", "\n> ")),
        input_block("text", "Your reply", text_input("text", multiline=True, initial=text, max_length=3000)),
        input_block("signature", "Signature", text_input("signature", multiline=True, initial=signature,
                                                         max_length=500), optional=True),
        context(f"The customer gets this email when you press *{SEND_LABEL}*."),
    ]
    return modal(REPLY_CALLBACK, "Reply to customer", blocks, submit=SEND_LABEL,
                 metadata={"conversation_id": conversation_id, "answering": answering.id})


def submit_reply(session: Session, rep: Rep, view: dict[str, Any], now: datetime,
                 *, options: ReplyOptions) -> Submission:
    """"Send to customer": store the reply and its outbox row (the send follows the commit)."""
    meta = metadata(view)
    conversation_id = whole_number(str(meta.get("conversation_id") or "")) or 0
    text = state_value(view, "text") or ""
    if not text:
        return Submission(errors={"text": "Write the reply."})
    found = visible_conversation(session, rep, conversation_id)
    if isinstance(found, str):
        return Submission(errors={"text": found})
    draft = reply_draft(session, conversation_id)
    if isinstance(draft, str) or not options.can_send:
        return Submission(errors={"text": draft if isinstance(draft, str) else NOT_SET_UP})
    if draft.answering.id != meta.get("answering"):
        return Submission(errors={"text": "The customer wrote again meanwhile; close this and press Reply "
                                          "again to see the new message."})
    signature = state_value(view, "signature")
    body = text + (SIGNATURE_SEPARATOR + signature if signature else "")
    record_reply(session, draft, text=body, from_email=options.sender(draft), from_name=rep.name,
                 reply_to=options.reply_to, now=now, actor=Actor.slack(rep.email, rep.slack_user_id or ""))
    return Submission(text=f"Sending your reply to {escape(', '.join(draft.to))}: "
                           f"“{escape(clip(draft.subject, 120))}”")


def reply_command(ctx: Ctx, args: list[str]) -> Reply:
    """`/crm reply #42 TEXT`: the same modal with the text filled in; nothing is sent before the button."""
    from bot.commands import usage

    target = read_reference(args[0], bare="conversation") if args else None
    if target is None or target.kind != "conversation":
        return usage(ctx, REPLY_FORM, names_other(target, "conversation")
                     + "E.g. `reply #42 Thanks, the toner is on its way.` "
                     "(the number is shown in the conversation and in `thread`)")
    view = reply_view(ctx.session, ctx.rep, target.id, ctx.options.reply, text=" ".join(args[1:]).strip() or None)
    return view_reply("Reply to customer", "Opening the reply…", view)


# --------------------------------------------------------------------------- sending (the outbox handler)


def reply_mail(message: Message) -> EmailMessage:
    """The email for a stored outbound message: the same Message-ID and date on every attempt."""
    mail = EmailMessage()
    mail["From"] = formataddr((message.from_name or "", message.from_email or ""))
    mail["To"] = ", ".join(message.to)
    if message.cc:
        mail["Cc"] = ", ".join(message.cc)
    if message.headers.get("reply-to"):
        mail["Reply-To"] = str(message.headers["reply-to"])
    mail["Subject"] = message.subject
    mail["Date"] = format_datetime(message.sent_at or message.received_at)
    mail["Message-ID"] = message.message_id
    if message.in_reply_to:
        mail["In-Reply-To"] = message.in_reply_to
    if message.references:
        mail["References"] = " ".join(message.references)
    mail.set_content(message.text, cte="quoted-printable")  # 7-bit safe for any SMTP server and IMAP APPEND
    return mail


def reply_handler(engine: Engine, *, smtp: SmtpOptions | None, open_sent: OpenSent) -> Handler:
    """Send each `email-reply` row once: look in Sent first (a retry after a crash), send, copy to Sent."""

    def act(jobs: list[Job]) -> dict[int, Outcome]:
        [job] = jobs
        payload = job.payload
        assert isinstance(payload, EmailReply)
        with read_session(engine) as session:
            message = session.get(Message, payload.message_id)
            mail = reply_mail(message) if message is not None else None
            at = (message.sent_at or message.received_at) if message is not None else None
        if mail is None or at is None:
            return {job.id: Done({"skipped": "the message no longer exists"})}
        if smtp is None:
            return {job.id: Failed("RAPPORT_SMTP_HOST is not set: replies cannot be sent")}
        with open_sent(payload.mailbox) as sent:
            if not send_once(smtp, mail, sent, at):
                return {job.id: Done({"already_sent": True})}
        return {job.id: Done({"sent": True, "copied_to_sent": sent is not None})}

    return Handler((EmailReply.kind,), act, lease=timedelta(minutes=5))
