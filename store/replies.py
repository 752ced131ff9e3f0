"""A conversation's messages in order, and a rep's email reply to the customer.

`reply_draft` decides whether a conversation may be answered and to whom
(refusing automatic mail and bouncing addresses, with the reason);
`record_reply` stores the outbound message with its Message-ID made here,
before anything is sent, marks the conversation answered (the one rule,
`store.conversations.staff_replied`), enqueues the `EmailReply` outbox row and
appends the audit entry `conversation.reply` in the same transaction. The send itself is the row's handler (bot/reply.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import make_msgid

from sqlmodel import Session, col, select

from store.audit import Actor, record_audit
from store.conversations import staff_replied
from store.models import ContactEmail, Conversation, Direction, Message
from store.outbox import EmailReply, enqueue

MAX_REFERENCES = 20  # the newest ids of a long thread: enough for every client to thread it
_REPLY_PREFIX = re.compile(r"^\s*re\s*(?:\[\d+\])?\s*:", re.I)


@dataclass(frozen=True)
class ReplyDraft:
    """What a reply to a conversation would be: to whom, about what, answering which mail."""

    conversation: Conversation
    answering: Message  # the customer's latest mail
    to: list[str]
    subject: str
    in_reply_to: str
    references: list[str]
    mailbox: str | None  # the shared mailbox the customer wrote to


def thread_messages(session: Session, conversation_id: int) -> list[Message]:
    """The conversation's messages, oldest first."""
    query = (select(Message).where(Message.conversation_id == conversation_id)
             .order_by(col(Message.received_at), col(Message.id)))
    return list(session.exec(query).all())


def latest_customer_message(session: Session, conversation_id: int) -> Message | None:
    query = (select(Message).where(Message.conversation_id == conversation_id, Message.direction == Direction.inbound)
             .order_by(col(Message.received_at).desc(), col(Message.id).desc()).limit(1))
    return session.exec(query).first()


def reply_subject(subject: str) -> str:
    """`Re: subject`, once."""
    subject = " ".join(subject.split())
    return subject if _REPLY_PREFIX.match(subject) else f"Re: {subject}".strip()


def reply_draft(session: Session, conversation_id: int) -> ReplyDraft | str:
    """The reply Rapport would send, or why it will not (a sentence for the rep)."""
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        return "That conversation no longer exists."
    answering = latest_customer_message(session, conversation_id)
    if answering is None or not answering.from_email:
        return "There is no customer email in this conversation to answer."
    if answering.is_automatic or conversation.is_automatic:
        reason = answering.automatic_reason or "sent automatically"
        return f"The last email is automatic ({reason}); Rapport does not answer automatic mail."
    to = [answering.from_email.lower()]
    bouncing = session.exec(select(ContactEmail).where(col(ContactEmail.email).in_(to),
                                                       ContactEmail.bouncing == True)).first()  # noqa: E712
    if bouncing is not None:
        since = f" since {bouncing.bounced_at:%d %b %Y}" if bouncing.bounced_at else ""
        return (f"Mail to {bouncing.email} bounces{since}; a reply would not arrive. "
                "Find another address or call instead.")
    references = [r for r in [*answering.references, answering.message_id] if r][-MAX_REFERENCES:]
    return ReplyDraft(conversation, answering, to, reply_subject(answering.subject or conversation.subject),
                      answering.message_id, list(dict.fromkeys(references)), answering.mailbox)


def record_reply(
    session: Session,
    draft: ReplyDraft,
    *,
    text: str,
    from_email: str,
    from_name: str | None,
    reply_to: str | None,
    now: datetime,
    actor: Actor,
) -> Message:
    """Store the outbound message (its Message-ID made now, before sending), answer the conversation,
    enqueue the send and record who sent it (`actor`), all in the caller's transaction."""
    conversation = draft.conversation
    assert conversation.id is not None
    message_id = make_msgid(domain=from_email.rpartition("@")[2] or "rapport.invalid")
    message = Message(
        conversation_id=conversation.id, contact_id=conversation.contact_id, direction=Direction.outbound,
        message_id=message_id, in_reply_to=draft.in_reply_to, references=draft.references,
        mailbox=draft.mailbox, from_email=from_email.lower(), from_name=from_name, to=draft.to,
        subject=draft.subject, sent_at=now, received_at=now, text=text, new_text=text,
        headers={"reply-to": reply_to} if reply_to else {}, size=len(text.encode()),
    )
    session.add(message)
    session.flush()
    assert message.id is not None
    if conversation.last_message_at is None or now > conversation.last_message_at:
        conversation.last_message_at = now
    staff_replied(conversation, now)
    session.add(conversation)
    enqueue(session, EmailReply(message.id, draft.mailbox), now=now)
    record_audit(session, actor, "conversation.reply", target_kind="conversation", target_id=conversation.id,
                 contact_id=conversation.contact_id, detail={"message_id": message.id}, at=now)
    return message
