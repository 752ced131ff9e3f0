"""A conversation's state, decided in one place: the inbox, Slack and the digest call these.

open --staff replied / marked answered--> answered --customer wrote--> open again.
open or answered --closed (the person was erased)--> closed: no reply is owed.
A manual "Mark answered" counts as a first response: the rep answered by other
means (a call, a chat), so the SLA stops there and the digest neither counts it
unanswered nor as a breach once its SLA passes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import col

from store.models import Conversation, ConversationStatus


def customer_wrote(conversation: Conversation, at: datetime, sla_due: datetime | None) -> bool:
    """A customer's mail at `at`: reopens what staff answered or closed before it; returns whether it did."""
    conversation.is_automatic = False
    last_staff = max((t for t in (conversation.answered_at, conversation.closed_at) if t), default=None)
    if conversation.status == ConversationStatus.open or (last_staff is not None and at <= last_staff):
        return False
    conversation.status = ConversationStatus.open
    conversation.closed_at = None
    conversation.sla_due_at = sla_due
    return True


def staff_replied(conversation: Conversation, at: datetime) -> None:
    """A staff mail at `at` (read in any order: Sent may be read after INBOX) answers what came before it."""
    _responded(conversation, at)
    # a reply older than the customer's latest mail leaves the conversation open
    if conversation.status == ConversationStatus.open and at >= (conversation.last_inbound_at or at):
        conversation.status = ConversationStatus.answered


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
