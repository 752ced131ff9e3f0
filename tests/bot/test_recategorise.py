"""Slack's Recategorise re-routes a conversation that routing gave to the wrong rep; the DM goes once;
the correction is about the customer's mail, never an auto-reply or a staff reply."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from slack_sdk import WebClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.interactions import recategorise
from bot.notify import SlackSender, dispatch_outbox
from inbox.corrections import apply_correction
from rapport.serve import Service
from store.db import session_scope
from store.models import Assignment, Conversation, Correction, Direction, Message, Rep
from store.types import utcnow
from store.validation import CATEGORIES
from tests.bot.conftest import BOB, DAVE, START, add_assigned_email, engine_for, rep_id
from tests.servers import slack_requests
from tests.servers.fake_slack import FakeSlack

DAVE_DM, BOB_DM = "D0DAVE", "D0BOB"


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
    # Skill routing gave a Czech demo request, filed as feedback, to Dave (support).
    conversation_id, _ = add_assigned_email(
        engine, owner_email="dave@nordlys.example", contact_id=None, subject="Ukázka pro náš tým",
        text="Dobrý den, rádi bychom viděli ukázku vašeho softwaru.", from_email="petra@firma.example",
        from_name="Petra", category="feedback", language="cs", rule="skill", reason="Dave Support handles feedback")
    assert dispatch_outbox(engine, sender, now=START, categories=CATEGORIES) == 1
    bob = rep_id(engine, "bob@nordlys.example")

    press_recategorise(interact, fake_slack, DAVE_DM, DAVE, f"{conversation_id}:sales")
    fake_slack.wait_for("chat.update")

    status = json.dumps(fake_slack.messages(DAVE_DM)[-1]["blocks"], ensure_ascii=False)
    assert "Category changed from `feedback` to `sales` by Dave Support. Re-routed to Bob Dvořák." in status
    assert dispatch_outbox(engine, sender, now=utcnow(), categories=CATEGORIES) == 1  # enqueued on the real clock
    [dm] = fake_slack.messages(BOB_DM)
    text = json.dumps(dm["blocks"], ensure_ascii=False)
    assert "reroute" in text and "category corrected from feedback to sales by Dave Support" in text

    # Bob confirms the same category from his DM: nothing moves, no second DM.
    press_recategorise(interact, fake_slack, BOB_DM, BOB, f"{conversation_id}:sales")
    fake_slack.wait_for("chat.update", 2)
    assert dispatch_outbox(engine, sender, now=utcnow(), categories=CATEGORIES) == 0
    assert len(fake_slack.messages(BOB_DM)) == 1
    with Session(engine) as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None and (conversation.owner_id, conversation.category) == (bob, "sales")
        rules = session.exec(select(Assignment.rule).where(Assignment.conversation_id == conversation_id)
                             .order_by(col(Assignment.id))).all()
        assert rules == ["skill", "reroute"]
        assert len(session.exec(select(Correction)).all()) == 2  # both judgements are training data


def test_regression_recategorise_learns_from_the_customer_s_mail_not_a_later_auto_reply_or_staff_reply(
    database_url: str,
) -> None:
    """The inbox classifies only inbound mail from people; a correction is about one of those
    (`store.corrections.unclassified_kind`, the rule `rapport nlp correct` refuses by too)."""
    engine = engine_for(database_url)
    with session_scope(engine) as session:
        manager = Rep(name="Mia", email="mia@shop.example", role="manager")
        conversation = Conversation(subject="Broken lamp", category="general")
        session.add_all([manager, conversation])
        session.flush()
        assert conversation.id is not None
        asked = Message(conversation_id=conversation.id, message_id="<ask@x>", subject="Broken lamp",
                        new_text="The lamp arrived broken.", category="general", received_at=START)
        out_of_office = Message(conversation_id=conversation.id, message_id="<ooo@x>", subject="Out of office",
                                new_text="I am away until Monday.", is_automatic=True,
                                automatic_reason="out-of-office reply (en)", received_at=START + timedelta(hours=1))
        reply = Message(conversation_id=conversation.id, message_id="<re@x>", subject="Re: Broken lamp",
                        new_text="Sorry, we send a new one.", direction=Direction.outbound,
                        received_at=START + timedelta(hours=2))
        session.add_all([asked, out_of_office, reply])
        session.flush()

        outcome, _ = recategorise(session, manager, conversation.id, "complaint", apply=apply_correction,
                                  categories=CATEGORIES, now=START + timedelta(hours=3))

        assert outcome.ok, outcome.text
        correction = session.exec(select(Correction)).one()
        assert (correction.message_id, correction.text) == (asked.id, "Broken lamp\n\nThe lamp arrived broken.")
        assert (asked.category, out_of_office.category, reply.category) == ("complaint", None, None)
