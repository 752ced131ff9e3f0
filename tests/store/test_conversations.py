"""Conversation rules: who reopens, who answers, and what counts as a first response."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from store.conversations import answered, customer_wrote, marked_answered, staff_replied
from store.models import Conversation, ConversationStatus

T = datetime(2026, 11, 23, 9, tzinfo=UTC)


def _open() -> Conversation:
    return Conversation(subject="s", opened_at=T, last_inbound_at=T, sla_due_at=T + timedelta(hours=8))


def test_a_reply_answers_and_the_first_reply_is_the_first_response() -> None:
    conversation = _open()
    staff_replied(conversation, T + timedelta(hours=2))
    staff_replied(conversation, T + timedelta(hours=1))  # Sent read after a later reply
    assert conversation.status == ConversationStatus.answered
    assert conversation.first_response_at == T + timedelta(hours=1)
    assert conversation.answered_at == T + timedelta(hours=2)


def test_a_reply_older_than_the_customers_latest_mail_leaves_it_open() -> None:
    conversation = _open()
    conversation.last_inbound_at = T + timedelta(hours=3)
    staff_replied(conversation, T + timedelta(hours=2))
    assert conversation.status == ConversationStatus.open
    assert conversation.first_response_at == T + timedelta(hours=2)


def test_marked_answered_is_a_first_response_unless_a_reply_came_first() -> None:
    conversation = _open()
    marked_answered(conversation, T + timedelta(hours=4))
    assert (conversation.status, conversation.first_response_at) == (ConversationStatus.answered,
                                                                      T + timedelta(hours=4))
    replied = _open()
    staff_replied(replied, T + timedelta(hours=1))
    customer_wrote(replied, T + timedelta(hours=2), T + timedelta(hours=10))
    marked_answered(replied, T + timedelta(hours=5))
    assert replied.first_response_at == T + timedelta(hours=1) and replied.answered_at == T + timedelta(hours=5)


def test_the_customer_reopens_only_what_was_answered_before_their_mail() -> None:
    conversation = _open()
    staff_replied(conversation, T + timedelta(hours=2))
    assert not customer_wrote(conversation, T + timedelta(hours=1), None)  # an older mail read late
    assert conversation.status == ConversationStatus.answered
    due = T + timedelta(hours=11)
    assert customer_wrote(conversation, T + timedelta(hours=3), due)
    assert (conversation.status, conversation.sla_due_at) == (ConversationStatus.open, due)
    assert not customer_wrote(conversation, T + timedelta(hours=4), None)  # already open


def test_a_more_pressing_mail_tightens_the_open_sla_but_an_answered_one_does_not() -> None:
    conversation = _open()
    staff_replied(conversation, T + timedelta(hours=2))
    customer_wrote(conversation, T + timedelta(hours=3), T + timedelta(hours=11))  # reopens
    customer_wrote(conversation, T + timedelta(hours=4), T + timedelta(hours=6))  # urgent: tightens
    assert conversation.sla_due_at == T + timedelta(hours=6)
    customer_wrote(conversation, T + timedelta(hours=1), T + timedelta(hours=3))  # answered already, read late
    assert conversation.sla_due_at == T + timedelta(hours=6)


def test_a_reply_says_whether_later_customer_mail_still_waits() -> None:
    conversation = _open()
    conversation.last_inbound_at = T + timedelta(hours=3)
    assert staff_replied(conversation, T + timedelta(hours=2))  # Sent read after the later mail
    assert not staff_replied(conversation, T + timedelta(hours=4))
    assert conversation.status == ConversationStatus.answered
    assert answered(conversation, T + timedelta(hours=3)) and not answered(conversation, T + timedelta(hours=5))
