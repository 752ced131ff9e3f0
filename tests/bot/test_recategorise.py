"""Slack's Recategorise re-routes a conversation that routing gave to the wrong rep; the DM goes once."""

from __future__ import annotations

import json
from typing import Any

from slack_sdk import WebClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.notify import SlackSender, dispatch_outbox
from rapport.serve import Service
from store.db import session_scope
from store.models import Assignment, Conversation, Correction, Message
from store.outbox import enqueue
from store.types import utcnow
from tests.bot.conftest import BOB, DAVE, START, rep_id
from tests.servers import slack_requests
from tests.servers.fake_slack import FakeSlack

DAVE_DM, BOB_DM = "D0DAVE", "D0BOB"


def czech_demo_request_filed_as_feedback(engine: Engine) -> int:
    """What the inbox writes when skill routing gives a Czech 'feedback' mail to Dave (support)."""
    dave = rep_id(engine, "dave@nordlys.example")
    with session_scope(engine) as session:
        conversation = Conversation(subject="Ukázka pro náš tým", owner_id=dave, category="feedback",
                                    category_confidence=0.61, language="cs", opened_at=START, last_message_at=START)
        session.add(conversation)
        session.flush()
        message = Message(conversation_id=conversation.id, message_id="<demo@firma.example>",
                          from_email="petra@firma.example", subject=conversation.subject, received_at=START,
                          text="Dobrý den, rádi bychom viděli ukázku vašeho softwaru.",
                          new_text="Dobrý den, rádi bychom viděli ukázku vašeho softwaru.",
                          category="feedback", category_confidence=0.61, language="cs")
        session.add(message)
        session.flush()
        assignment = Assignment(conversation_id=conversation.id, owner_id=dave, rule="skill",
                                reason="Dave Support handles feedback")
        session.add(assignment)
        session.flush()
        enqueue(session, "assign-dm", f"assign-dm:{assignment.id}",
                {"assignment_id": assignment.id, "conversation_id": conversation.id, "message_id": message.id},
                due_at=START)
        assert conversation.id is not None
        return conversation.id


def press_recategorise(interact: Any, slack: FakeSlack, channel: str, user: str, value: str) -> None:
    """A signed block_actions request for the Recategorise select on the latest DM in `channel`."""
    message = slack.messages(channel)[-1]
    payload = slack_requests.block_action_payload("conv_recategorise", user_id=user, channel_id=channel,
                                                  message_ts=message["ts"])
    payload["actions"] = [{"type": "static_select", "action_id": "conv_recategorise", "block_id": "conv",
                           "action_ts": "1", "selected_option": {"value": value, "text": {}}}]
    payload["message"] = message
    status, _ = interact(payload)
    assert status == 200


def test_recategorise_button_reroutes_and_the_new_owner_gets_one_dm(
    service: Service, engine: Engine, fake_slack: FakeSlack, interact: Any
) -> None:
    sender = SlackSender(WebClient(token="xoxb-test-token", base_url=fake_slack.base_url))
    conversation_id = czech_demo_request_filed_as_feedback(engine)
    assert dispatch_outbox(engine, sender, now=START) == 1
    bob = rep_id(engine, "bob@nordlys.example")

    press_recategorise(interact, fake_slack, DAVE_DM, DAVE, f"{conversation_id}:sales")
    fake_slack.wait_for("chat.update")

    status = json.dumps(fake_slack.messages(DAVE_DM)[-1]["blocks"], ensure_ascii=False)
    assert "Category changed from `feedback` to `sales` by Dave Support. Re-routed to Bob Dvořák." in status
    assert dispatch_outbox(engine, sender, now=utcnow()) == 1  # enqueued on the real clock
    [dm] = fake_slack.messages(BOB_DM)
    text = json.dumps(dm["blocks"], ensure_ascii=False)
    assert "reroute" in text and "category corrected from feedback to sales by Dave Support" in text

    # Bob confirms the same category from his DM: nothing moves, no second DM.
    press_recategorise(interact, fake_slack, BOB_DM, BOB, f"{conversation_id}:sales")
    fake_slack.wait_for("chat.update", 2)
    assert dispatch_outbox(engine, sender, now=utcnow()) == 0
    assert len(fake_slack.messages(BOB_DM)) == 1
    with Session(engine) as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None and (conversation.owner_id, conversation.category) == (bob, "sales")
        rules = session.exec(select(Assignment.rule).where(Assignment.conversation_id == conversation_id)
                             .order_by(col(Assignment.id))).all()
        assert rules == ["skill", "reroute"]
        assert len(session.exec(select(Correction)).all()) == 2  # both judgements are training data
