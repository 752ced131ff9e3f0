"""Assignment DMs: rendered from the database, sent exactly once, buttons that act."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from slack_sdk import WebClient
from sqlmodel import Session, select

from bot.notify import SlackSender, dispatch_outbox
from rapport.serve import Service
from store.models import Assignment, Conversation, Correction, OutboxItem, Rep
from store.types import utcnow
from store.validation import CATEGORIES
from tests.bot.conftest import ALICE, BOB, CAROL, DAVE, START, Clock, Seeded, add_assigned_email, rep_id
from tests.dying_dispatcher import run_until_acted
from tests.servers import slack_requests
from tests.servers.fake_slack import FakeSlack

ALICE_DM = "D0ALICE"
ROOT = Path(__file__).resolve().parents[2]
NASTY = "Hi <!channel>, the toner <https://evil.example|click> arrived broken & leaking. Order NS-480744."


def _sender(slack: FakeSlack) -> SlackSender:
    return SlackSender(WebClient(token="xoxb-test-token", base_url=slack.base_url))


def _dm_posts(slack: FakeSlack, key: str) -> list[Any]:
    return [c for c in slack.calls("chat.postMessage") if key in json.dumps(c.params.get("metadata"))]


def test_assignment_dm_shows_everything_escaped(engine: Any, seeded: Seeded, fake_slack: FakeSlack) -> None:
    _, key = add_assigned_email(engine, owner_email="alice@nordlys.example", contact_id=seeded.jan,
                                subject="Broken toner <!here>", text=NASTY)
    assert dispatch_outbox(engine, _sender(fake_slack), now=START, categories=CATEGORIES) == 1
    [message] = fake_slack.messages(ALICE_DM)
    text = json.dumps(message["blocks"], ensure_ascii=False)
    for expected in ("Jan Šťastný", "jan.stastny@acme.example", "Acme Corporation", "Broken toner &lt;!here&gt;",
                     "complaint", "87%", "Urgency:* high (asks for speed (“asap”))", "Language:* en", "ORDER_ID: NS-480744", "Alice owns the Acme account",
                     "account_owner", "&lt;!channel&gt;", "&amp; leaking", "conv_claim", "conv_reassign",
                     "conv_recategorise", "conv_answered"):
        assert expected in text, expected
    assert "<!channel>" not in text and "<!here>" not in text and "<https://evil" not in text
    # regression: the preview text of the notification was sent unescaped
    assert message["text"] == "New email for you: Broken toner &lt;!here&gt;"
    assert message["metadata"] == {"event_type": "rapport_outbox", "event_payload": {"key": key, "part": 0}}
    assert dispatch_outbox(engine, _sender(fake_slack), now=START + timedelta(minutes=5), categories=CATEGORIES) == 0
    assert len(fake_slack.messages(ALICE_DM)) == 1


def test_dm_sent_exactly_once_when_killed_between_send_and_mark(
    engine: Any, seeded: Seeded, fake_slack: FakeSlack, database_url: str, tmp_path: Path
) -> None:
    _, key = add_assigned_email(engine, owner_email="alice@nordlys.example", contact_id=seeded.jan,
                                subject="Where is my order?", text="Still waiting.")
    run_until_acted(tmp_path / "posted", database_url, START, "slack", fake_slack.base_url)
    assert len(_dm_posts(fake_slack, key)) == 1
    with Session(engine) as session:
        row = session.exec(select(OutboxItem).where(OutboxItem.key == key)).one()
        assert row.status == "pending" and row.attempts == 1  # the kill left it leased, not sent

    # the restart: the same row is still leased for a while, then retried
    assert dispatch_outbox(engine, _sender(fake_slack), now=START + timedelta(minutes=1), categories=CATEGORIES) == 0
    assert dispatch_outbox(engine, _sender(fake_slack), now=START + timedelta(minutes=3), categories=CATEGORIES) == 1
    assert len(_dm_posts(fake_slack, key)) == 1
    assert fake_slack.calls("conversations.history"), "the retry looked for the earlier post"
    with Session(engine) as session:
        row = session.exec(select(OutboxItem).where(OutboxItem.key == key)).one()
        assert row.status == "sent" and row.attempts == 2
        assert row.payload["result"]["sent"] == 1


def test_rate_limit_is_honoured_and_nothing_doubles(engine: Any, seeded: Seeded, fake_slack: FakeSlack) -> None:
    add_assigned_email(engine, owner_email="alice@nordlys.example", contact_id=seeded.jan,
                       subject="Invoice", text="Please resend the invoice.")
    fake_slack.fail_next("chat.postMessage", 429, retry_after=1)
    assert dispatch_outbox(engine, _sender(fake_slack), now=START, categories=CATEGORIES) == 1
    posts = fake_slack.calls("chat.postMessage")
    assert [c.status for c in posts] == [429, 200]
    assert posts[1].time - posts[0].time >= 0.9  # waited for Retry-After
    assert len(fake_slack.messages(ALICE_DM)) == 1


def test_persistent_rate_limit_defers_the_row(engine: Any, seeded: Seeded, fake_slack: FakeSlack) -> None:
    _, key = add_assigned_email(engine, owner_email="alice@nordlys.example", contact_id=seeded.jan,
                                subject="Invoice", text="Please resend the invoice.")
    fake_slack.fail_next("chat.postMessage", 429, retry_after=1, times=3)
    assert dispatch_outbox(engine, _sender(fake_slack), now=START, categories=CATEGORIES) == 0
    with Session(engine) as session:
        row = session.exec(select(OutboxItem).where(OutboxItem.key == key)).one()
        assert row.status == "pending" and "rate limited" in (row.last_error or "")
    # store.outbox.mark_failed pushes due_at from the real clock
    assert dispatch_outbox(engine, _sender(fake_slack), now=utcnow() + timedelta(minutes=5), categories=CATEGORIES) == 1
    assert len(fake_slack.messages(ALICE_DM)) == 1


def _press(interact: Any, slack: FakeSlack, action: dict[str, Any], user: str) -> None:
    [message] = slack.messages(ALICE_DM)[-1:]
    payload = slack_requests.block_action_payload(action["action_id"], user_id=user, channel_id=ALICE_DM,
                                                  message_ts=message["ts"])
    payload["actions"] = [{**action, "block_id": "conv", "action_ts": "1"}]
    payload["message"] = message
    status, _ = interact(payload)
    assert status == 200


def _select(action_id: str, value: str) -> dict[str, Any]:
    return {"type": "static_select", "action_id": action_id, "selected_option": {"value": value, "text": {}}}


def test_buttons_claim_reassign_recategorise_answer(
    service: Service, engine: Any, seeded: Seeded, fake_slack: FakeSlack, interact: Any
) -> None:
    conversation_id, _ = add_assigned_email(engine, owner_email="alice@nordlys.example", contact_id=seeded.jan,
                                            subject="Refund please", text="I want my money back.")
    dispatch_outbox(engine, _sender(fake_slack), now=START, categories=CATEGORIES)
    bob, alice = rep_id(engine, "bob@nordlys.example"), rep_id(engine, "alice@nordlys.example")

    _press(interact, fake_slack, _select("conv_reassign", f"{conversation_id}:{bob}"), BOB)  # not a manager
    refusal = fake_slack.wait_for("chat.postMessage", 2)[-1]
    assert "Only a manager" in refusal.params["text"]

    _press(interact, fake_slack, _select("conv_reassign", f"{conversation_id}:{bob}"), CAROL)
    fake_slack.wait_for("chat.update")
    _press(interact, fake_slack, {"type": "button", "action_id": "conv_claim", "value": str(conversation_id)}, ALICE)
    fake_slack.wait_for("chat.update", 2)
    _press(interact, fake_slack, _select("conv_recategorise", f"{conversation_id}:refund"), ALICE)
    fake_slack.wait_for("chat.update", 3)
    _press(interact, fake_slack, {"type": "button", "action_id": "conv_answered", "value": str(conversation_id)},
           ALICE)
    fake_slack.wait_for("chat.update", 4)

    with Session(engine) as session:
        history = session.exec(select(Assignment).where(Assignment.conversation_id == conversation_id)
                               .order_by(Assignment.id)).all()  # type: ignore[arg-type]
        assert [(a.rule, a.owner_id, a.assigned_by) for a in history[1:]] == [
            ("manual", bob, "carol@nordlys.example"),
            ("manual", alice, "alice@nordlys.example"),
        ]
        correction = session.exec(select(Correction)).one()
        assert (correction.old_category, correction.new_category) == ("complaint", "refund")
        assert correction.text == "Refund please\n\nI want my money back."  # what the classifier read
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        assert conversation.category == "refund" and conversation.status == "answered"
        # a manual "answered" is a first response: no breach, not "unanswered", in the digest
        assert conversation.first_response_at == conversation.answered_at == START
    last = fake_slack.messages(ALICE_DM)[-1]
    assert "Marked answered by Alice Berg" in json.dumps(last["blocks"])
    assert sum(b.get("block_id") == "rapport_status" for b in last["blocks"]) == 1


def test_sla_escalation_goes_once_to_owner_and_manager(
    service: Service, engine: Any, seeded: Seeded, fake_slack: FakeSlack, clock: Clock
) -> None:
    add_assigned_email(engine, owner_email="alice@nordlys.example", contact_id=seeded.jan,
                       subject="Urgent: wrong delivery", text="Wrong items.", sla_hours=2)
    assert service.scheduler is not None
    service.scheduler.tick(clock.advance(hours=1))
    assert not [c for c in fake_slack.calls("chat.postMessage") if "SLA" in c.params.get("text", "")]
    assert fake_slack.wait_for("views.publish")[0].params["user_id"] == ALICE  # the new email is in her queue
    service.scheduler.tick(clock.advance(hours=2))
    service.scheduler.tick(clock.advance(minutes=15))
    escalations = [c for c in fake_slack.calls("chat.postMessage") if "SLA missed" in c.params.get("text", "")]
    assert sorted(c.params["channel"] for c in escalations) == ["D0ALICE", "D0CAROL"]


def test_backlog_summary_goes_to_the_managers_once(engine: Any, seeded: Seeded, fake_slack: FakeSlack) -> None:
    from store.db import session_scope
    from store.outbox import BacklogSummary, enqueue

    with session_scope(engine) as session:
        enqueue(session, BacklogSummary(
            "support@nordlys.example", "INBOX", 412, {"alice@nordlys.example": 300, "queue:triage": 112},
            "2026-01-02T08:00:00+00:00", "2026-11-19T17:00:00+00:00", since="1"), now=START)
    assert dispatch_outbox(engine, _sender(fake_slack), now=START, categories=CATEGORIES) == 1
    assert dispatch_outbox(engine, _sender(fake_slack), now=START + timedelta(minutes=5), categories=CATEGORIES) == 0
    [summary] = fake_slack.messages("D0CAROL")
    text = json.dumps(summary["blocks"])
    assert "412 older emails" in text and "alice@nordlys.example: 300" in text and "queue:triage: 112" in text
    assert fake_slack.messages(ALICE_DM) == []  # reps get no DM per old email, and no summary


class _LockProbingSender(SlackSender):
    """Slack, as the dispatcher sees it; while a message is on its way it checks that another
    process (the inbox) could write to the SQLite database at once."""

    def __init__(self, slack: FakeSlack, database: str) -> None:
        super().__init__(WebClient(token="xoxb-test-token", base_url=slack.base_url))
        self.database = database
        self.write_lock_free: list[bool] = []

    def send(self, session: Session, message: Any, *, since: Any) -> dict[str, Any]:
        probe = sqlite3.connect(self.database, timeout=0.1, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            self.write_lock_free.append(True)
        except sqlite3.OperationalError:
            self.write_lock_free.append(False)
        finally:
            probe.close()
        return super().send(session, message, since=since)


def test_regression_a_dm_on_its_way_holds_no_database_write_lock(
    engine: Any, seeded: Seeded, fake_slack: FakeSlack
) -> None:
    """Slack can take seconds (429 back-off): the SQLite write lock was held all along, stalling the inbox."""
    assert engine.dialect.name == "sqlite"
    add_assigned_email(engine, owner_email="dave@nordlys.example", contact_id=seeded.jan,
                       subject="Printer jammed", text="The printer jams on every page.")
    with Session(engine) as session:
        dave = session.exec(select(Rep).where(Rep.email == "dave@nordlys.example")).one()
        assert dave.slack_user_id is None
    sender = _LockProbingSender(fake_slack, str(engine.url.database))
    assert dispatch_outbox(engine, sender, now=START, categories=CATEGORIES) == 1
    assert sender.write_lock_free == [True]
    assert fake_slack.calls("users.lookupByEmail")
    # the Slack id looked up on the way is remembered once the message is marked sent
    with Session(engine) as session:
        dave = session.exec(select(Rep).where(Rep.email == "dave@nordlys.example")).one()
        assert dave.slack_user_id == DAVE


def test_a_buttons_answer_does_not_wait_for_the_messages_that_follow_it(
    service: Service, engine: Any, seeded: Seeded, fake_slack: FakeSlack, interact: Any
) -> None:
    """The status line on the DM and the App Home the click refreshes are sent after the answer,
    so a slow Slack API cannot make a click's answer late (Slack shows a failure after 3 s), nor
    hold the request threads that answer other clicks."""
    conversation_id, _ = add_assigned_email(engine, owner_email="alice@nordlys.example", contact_id=seeded.jan,
                                            subject="Refund please", text="I want my money back.")
    dispatch_outbox(engine, _sender(fake_slack), now=START, categories=CATEGORIES)
    _press(interact, fake_slack, {"type": "button", "action_id": "conv_claim", "value": str(conversation_id)}, ALICE)
    fake_slack.wait_for("auth.test")  # Bolt asks it once, at the first request (hers already: a note)
    fake_slack.delay_seconds = 2.0  # every Web API call from now on
    started = time.monotonic()
    _press(interact, fake_slack, {"type": "button", "action_id": "conv_answered", "value": str(conversation_id)},
           ALICE)
    answered = time.monotonic() - started
    [update] = fake_slack.wait_for("chat.update", timeout=15)
    [published] = fake_slack.wait_for("views.publish", timeout=15)
    assert answered < 1.0, f"the answer waited {answered:.1f} s for Slack"
    assert "answered" in json.dumps(update.params["blocks"]).lower()
    assert update.time < published.time  # in order: the status on the message, then the Home
