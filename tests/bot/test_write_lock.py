"""No Slack call while holding SQLite's write lock: every Slack-facing handler is probed at each call.

Slack can take seconds (429 back-off, a slow network): a handler that called it inside a
write transaction stalled the inbox, the scheduler and every other click for that long.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlmodel import Session, select

from rapport.serve import Service
from store.db import READ_ONLY_OPTION
from store.models import FollowUp, Message
from tests.bot.conftest import ALICE, CAROL, SECRET, STRANGER, Clock, Seeded, add_assigned_email
from tests.servers import slack_requests
from tests.servers.fake_slack import FakeSlack

ALICE_DM = "D0ALICE"


@pytest.fixture
def probes(service: Service, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, bool]]]:
    """(Web API method, was the calling thread outside any write transaction) for every call the
    service makes. Per thread: listeners run side by side, and another's write is no fault."""
    assert service.slack is not None
    client = service.slack.client  # the scheduler's sender shares it
    engine = service.rt.engine
    writing: set[int] = set()

    def began(connection: Any) -> None:
        if not connection.get_execution_options().get(READ_ONLY_OPTION, False):
            writing.add(threading.get_ident())  # BEGIN IMMEDIATE: this thread holds SQLite's write lock

    def ended(connection: Any) -> None:
        writing.discard(threading.get_ident())

    for name, listener in (("begin", began), ("commit", ended), ("rollback", ended)):
        event.listen(engine, name, listener)
    original = client.api_call
    seen: list[tuple[str, bool]] = []

    def probing(api_method: str, *args: Any, **kwargs: Any) -> Any:
        seen.append((api_method, threading.get_ident() not in writing))
        return original(api_method, *args, **kwargs)

    monkeypatch.setattr(client, "api_call", probing)
    yield seen
    for name, listener in (("begin", began), ("commit", ended), ("rollback", ended)):
        event.remove(engine, name, listener)


def _button(action_id: str, value: str, message: dict[str, Any] | None = None, user: str = ALICE,
            channel: str = ALICE_DM) -> dict[str, Any]:
    payload = slack_requests.block_action_payload(action_id, value, user_id=user, channel_id=channel,
                                                  message_ts=(message or {}).get("ts", "1.0"))
    if message is not None:
        payload["message"] = message
    return payload


def _select(action_id: str, value: str, message: dict[str, Any]) -> dict[str, Any]:
    payload = _button(action_id, value, message)
    payload["actions"] = [{"type": "static_select", "action_id": action_id, "block_id": "conv", "action_ts": "1",
                           "selected_option": {"value": value, "text": {}}}]
    return payload


def test_regression_no_slack_handler_calls_slack_while_holding_the_write_lock(
    service: Service, seeded: Seeded, fake_slack: FakeSlack, clock: Clock, engine: Any, events_url: str,
    slash: Callable[..., Any], interact: Callable[[dict[str, Any]], Any], probes: list[tuple[str, bool]],
) -> None:
    scheduler = service.scheduler
    assert scheduler is not None
    conversation_id, _ = add_assigned_email(engine, owner_email="alice@nordlys.example", contact_id=seeded.jan,
                                            subject="Refund", text="Money back please.")
    slash('remind "Jan Šťastný" in 1 minute call back')  # a command that changes the App Home
    scheduler.tick(clock.advance(minutes=1))  # the dispatcher: assignment DM, reminder, App Home refresh
    dm = next(m for m in fake_slack.messages(ALICE_DM) if "conv_claim" in json.dumps(m["blocks"]))
    reminder = next(m for m in fake_slack.messages(ALICE_DM) if "Follow-up due" in json.dumps(m["blocks"]))
    with Session(engine) as session:
        followup = session.exec(select(FollowUp)).one()

    value = str(conversation_id)
    page = {**_button("thread_page", f"{value}:0"), "view": {"id": "V7", "type": "modal"}}
    with Session(engine) as session:
        answering = session.exec(select(Message).where(Message.conversation_id == conversation_id)).one()
    reply = {"type": "view_submission", "team": {"id": "T0TEST"}, "user": {"id": ALICE}, "trigger_id": "1.2.3",
             "view": {"id": "V8", "type": "modal", "callback_id": "email_reply",
                      "private_metadata": json.dumps({"conversation_id": conversation_id, "answering": answering.id}),
                      "state": {"values": {"text": {"text": {"type": "plain_text_input", "value": "On its way."}}}}}}
    for payload in [
        _button("conv_claim", value, dm), _button("conv_answered", value, dm),
        _select("conv_recategorise", f"{value}:refund", dm), _select("conv_reassign", f"{value}:2", dm),
        _button("followup_snooze_1h", str(followup.id), reminder),
        _button("followup_done", str(followup.id), reminder),
        _button("contact_open", str(seeded.jan)), _button("log_call_open", str(seeded.jan)),
        _button("followup_open", str(seeded.jan)), _button("followup_done", "1", user=STRANGER, channel="C0SALES"),
        {"type": "message_action", "callback_id": "log_to_crm", "trigger_id": "1.2.3", "team": {"id": "T0TEST"},
         "user": {"id": ALICE}, "channel": {"id": "C0SALES"}, "message_ts": "1.0",
         "message": {"type": "message", "ts": "1.0", "text": "signed"}},
        {"type": "view_submission", "team": {"id": "T0TEST"}, "user": {"id": ALICE}, "trigger_id": "1.2.3",
         "view": {"id": "V1", "type": "modal", "callback_id": "add_followup", "state": {"values": {
             "contact": {"contact_picker": {"type": "external_select",
                                            "selected_option": {"value": str(seeded.jan), "text": {}}}},
             "when": {"when": {"type": "plain_text_input", "value": "tomorrow 10am"}},
             "note": {"note": {"type": "plain_text_input", "value": "send the offer"}}}}}},
        _button("conv_thread", value, dm), _button("conv_reply", value, dm), page, reply,
    ]:
        assert interact(payload)[0] == 200
    home = slack_requests.event_payload({"type": "app_home_opened", "user": CAROL, "tab": "home"}, event_id="Ev0L")
    slack_requests.event(SECRET, home).post(events_url)

    for method, count in [("chat.update", 4), ("views.open", 6), ("views.update", 1), ("chat.getPermalink", 1),
                          ("chat.postEphemeral", 1), ("views.publish", 8)]:
        fake_slack.wait_for(method, count)
    methods = {method for method, _ in probes}
    assert {"chat.postMessage", "conversations.open", "chat.update", "views.open", "views.update", "views.publish",
            "chat.getPermalink", "chat.postEphemeral"} <= methods
    assert [method for method, free in probes if not free] == []


def test_regression_win_back_buttons_and_bot_dms_call_slack_outside_the_write_lock(
    seeded: Seeded, fake_slack: FakeSlack, events_url: str, interact: Callable[[dict[str, Any]], Any],
    probes: list[tuple[str, bool]],
) -> None:
    for action_id in ("winback_create", "winback_assign"):
        assert interact(_button(action_id, "", user=CAROL, channel="C0SALES"))[0] == 200
    dm = {"type": "message", "channel": ALICE_DM, "channel_type": "im", "user": ALICE, "text": "find stastny",
          "ts": "1.0"}
    assert slack_requests.event(SECRET, slack_requests.event_payload(dm, event_id="EvDmLock")).post(events_url)[0] == 200
    fake_slack.wait_for("chat.postEphemeral", 2)
    fake_slack.wait_for("chat.postMessage", 1)
    fake_slack.wait_for("views.publish", 2)
    assert {"chat.postEphemeral", "chat.postMessage", "views.publish"} <= {method for method, _ in probes}
    assert [method for method, free in probes if not free] == []
