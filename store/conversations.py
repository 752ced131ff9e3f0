"""A conversation's state, decided in one place: the inbox, Slack and the digest call these.

open --staff replied / marked answered--> answered --customer wrote--> open again.
open or answered --closed (the person was erased)--> closed: no reply is owed.
Mails count by their dates, not by the order they are read in (Sent may be read
after INBOX): `answered` is the one rule, and the SLA runs from the customer's
mail that no later staff reply answers.
A manual "Mark answered" counts as a first response: the rep answered by other
means (a call, a chat), so the SLA stops there and the digest neither counts it
unanswered nor as a breach once its SLA passes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from store.models import Conversation, ConversationStatus, Direction, Message, Survey


def answered(conversation: Conversation, at: datetime) -> bool:
    """The one rule of "answered": a customer's mail of `at` is answered when staff replied
    to (or closed) the conversation at or after it, by the mails' dates, whatever order
    INBOX and Sent were read in."""
    last_staff = max((t for t in (conversation.answered_at, conversation.closed_at) if t), default=None)
    return last_staff is not None and at <= last_staff


def customer_wrote(conversation: Conversation, at: datetime, reply_due: datetime | None) -> bool:
    """A customer's mail of `at`, a reply to it due at `reply_due` (None: none owed): reopens
    what staff answered or closed before it, and a more pressing mail tightens the open SLA;
    returns whether it reopened."""
    conversation.is_automatic = False
    if answered(conversation, at):
        return False
    reopened = conversation.status != ConversationStatus.open
    if reopened:
        conversation.status = ConversationStatus.open
        conversation.closed_at = None
        conversation.sla_due_at = reply_due
    elif reply_due is not None:
        conversation.sla_due_at = min(conversation.sla_due_at or reply_due, reply_due)
    return reopened


def staff_replied(conversation: Conversation, at: datetime) -> bool:
    """A staff mail of `at` (read in any order: Sent may be read after INBOX) answers what
    came before it. Returns whether the customer's later mail still waits: its SLA must then
    run from that mail (`settle_reply_due`), not from the mail this reply answered."""
    _responded(conversation, at)
    if conversation.status != ConversationStatus.open:
        return False
    if answered(conversation, conversation.last_inbound_at or at):
        conversation.status = ConversationStatus.answered
        return False
    return True


def settle_reply_due(
    session: Session, conversation: Conversation, reply_due: Callable[[datetime, str | None], datetime | None]
) -> None:
    """The SLA of an open conversation whose latest staff reply was read after the customer's
    later mail: the tightest `reply_due(received_at, urgency)` of the mail no staff reply
    answers yet, as `customer_wrote` would have set it had the reply been read first."""
    dues = [reply_due(at, urgency) for at, urgency in _unanswered_customer_mail(session, conversation)]
    conversation.sla_due_at = min((due for due in dues if due is not None), default=None)


def _unanswered_customer_mail(session: Session, conversation: Conversation) -> list[tuple[datetime, str | None]]:
    """(received_at, urgency) of each, oldest first: just the columns, not the mail's text.
    Automatic mail and answers to a survey never wanted a reply."""
    survey_answers = select(Survey.reply_message_id).where(col(Survey.reply_message_id).is_not(None))
    query = (select(col(Message.received_at), col(Message.urgency))
             .where(Message.conversation_id == conversation.id, Message.direction == Direction.inbound,
                    col(Message.is_automatic).is_(False), col(Message.id).not_in(survey_answers))
             .order_by(col(Message.received_at), col(Message.id)))
    return [(at, urgency) for at, urgency in session.exec(query) if not answered(conversation, at)]


def marked_answered(conversation: Conversation, at: datetime) -> None:
    """A rep says it is answered (Slack's button): a first response, as a reply would be."""
    _responded(conversation, at)
    conversation.status = ConversationStatus.answered


def closed(conversation: Conversation, at: datetime) -> None:
    """No reply is owed any more (automatic mail is stored closed; erasure closes the person's
    conversations). An SLA not yet due at `at` stops, so it never counts as missed."""
    conversation.status = ConversationStatus.closed
    conversation.closed_at = at
    if conversation.sla_due_at is not None and conversation.sla_due_at > at:
        conversation.sla_due_at = None


def _responded(conversation: Conversation, at: datetime) -> None:
    if conversation.first_response_at is None or at < conversation.first_response_at:
        conversation.first_response_at = at
    if conversation.answered_at is None or at > conversation.answered_at:
        conversation.answered_at = at


def waiting_on_us() -> Any:
    """SQL: the customer wrote last and no staff reply came after (status open): a reply is owed."""
    return col(Conversation.status) == ConversationStatus.open


def overdue(now: datetime) -> Any:
    """SQL: overdue, the one definition (digest, action list): a reply is owed and its
    SLA fell due before `now`. Always a part of `waiting_on_us`."""
    return waiting_on_us() & (col(Conversation.sla_due_at) < now)


def missed_sla() -> Any:
    """SQL: the SLA fell due with no first response by then (the digest's breaches)."""
    return col(Conversation.first_response_at).is_(None) | (
        col(Conversation.first_response_at) > col(Conversation.sla_due_at))
