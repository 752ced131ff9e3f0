"""Events, App Home, the "Log to CRM" shortcut, type-ahead options and modal submissions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from slack_sdk import WebClient
from sqlmodel import Session, select

from bot.app import BUSY_TEXT
from bot.notify import RateLimited, SlackSender
from store.models import Activity, FollowUp, Rep
from tests.bot.conftest import ALICE, DAVE, SECRET, STRANGER, Clock, Seeded, all_text, rep_id
from tests.servers import slack_requests
from tests.servers.fake_slack import FakeSlack


def _view(call: Any) -> dict[str, Any]:
    view = call.params["view"]
    return json.loads(view) if isinstance(view, str) else view


def rep_id_of_slack_user(engine: Any, user_id: str) -> int | None:
    with Session(engine) as session:
        return session.exec(select(Rep.id).where(Rep.slack_user_id == user_id)).first()


def _home_opened(event_id: str, user: str = ALICE) -> dict[str, Any]:
    return slack_requests.event_payload({"type": "app_home_opened", "user": user, "channel": "D0ALICE",
                                         "tab": "home"}, event_id=event_id)


def test_same_event_delivered_twice_acts_once(events_url: str, seeded: Seeded, fake_slack: FakeSlack) -> None:
    first = slack_requests.event(SECRET, _home_opened("Ev0001"))
    assert first.post(events_url)[0] == 200
    fake_slack.wait_for("views.publish")
    retry = slack_requests.event(SECRET, _home_opened("Ev0001"))
    retry.headers["X-Slack-Retry-Num"] = "1"
    retry.headers["X-Slack-Retry-Reason"] = "http_timeout"
    assert retry.post(events_url)[0] == 200
    other = slack_requests.event(SECRET, _home_opened("Ev0002"))
    assert other.post(events_url)[0] == 200
    fake_slack.wait_for("views.publish", 2)
    with pytest.raises(TimeoutError):  # Ev0001 once, Ev0002 once, never a third
        fake_slack.wait_for("views.publish", 3, timeout=2)


def test_app_home_shows_queue_and_followups(events_url: str, seeded: Seeded, fake_slack: FakeSlack,
                                            slash: Any) -> None:
    slash('remind "Jan Šťastný" in 2 hours send the <b>offer</b>')
    slack_requests.event(SECRET, _home_opened("Ev0003")).post(events_url)
    calls = fake_slack.wait_for("views.publish", 2)
    home = _view(calls[-1])
    assert home["type"] == "home"
    text = all_text(home["blocks"])
    assert "My queue" in text and "Coming up" in text and "&lt;b&gt;offer&lt;/b&gt;" in text


def test_unknown_user_opening_home_gets_nothing_published(events_url: str, seeded: Seeded,
                                                          fake_slack: FakeSlack) -> None:
    status, _ = slack_requests.event(SECRET, _home_opened("Ev0004", user=STRANGER)).post(events_url)
    assert status == 200
    fake_slack.wait_for("users.info")
    assert fake_slack.calls("views.publish") == []


def test_log_to_crm_shortcut_prefills_text_and_permalink(interact: Any, seeded: Seeded, fake_slack: FakeSlack,
                                                         engine: Any) -> None:
    shortcut = {
        "type": "message_action", "callback_id": "log_to_crm", "trigger_id": "1337.42.abc",
        "team": {"id": "T0TEST"}, "user": {"id": ALICE}, "channel": {"id": "C0SALES", "name": "sales"},
        "message_ts": "1700000000.000200",
        "message": {"type": "message", "ts": "1700000000.000200", "text": "Jan says the PO is signed"},
        "response_url": "https://hooks.slack.com/x",
    }
    assert interact(shortcut)[0] == 200
    opened = fake_slack.wait_for("views.open")
    view = _view(opened[0])
    permalink = fake_slack.calls("chat.getPermalink")[0]
    assert permalink.params["channel"] == "C0SALES"
    assert "Jan says the PO is signed" in json.dumps(view)
    link = json.loads(view["private_metadata"])["link"]
    assert link.endswith("/archives/C0SALES/p1700000000000200")

    submission = {
        "type": "view_submission", "team": {"id": "T0TEST"}, "user": {"id": ALICE}, "trigger_id": "1.2.3",
        "view": {**view, "id": "V1", "state": {"values": {
            "contact": {"contact_picker": {"type": "external_select",
                                           "selected_option": {"value": str(seeded.jan), "text": {}}}},
            "summary": {"summary": {"type": "plain_text_input", "value": "Jan says the PO is signed"}},
        }}},
    }
    status, body = interact(submission)
    assert status == 200 and body in (b"", b"{}")
    fake_slack.wait_for("chat.postMessage")
    with Session(engine) as session:
        activity = session.exec(select(Activity)).one()
    assert (activity.kind, activity.contact_id, activity.link) == ("slack", seeded.jan, link)


def test_contact_picker_type_ahead(interact: Any, seeded: Seeded) -> None:
    payload = {"type": "block_suggestion", "action_id": "contact_picker", "block_id": "contact", "value": "stast",
               "team": {"id": "T0TEST"}, "user": {"id": ALICE}, "view": {"id": "V1", "callback_id": "log_call"}}
    status, body = interact(payload)
    assert status == 200
    options = json.loads(body)["options"]
    assert options[0]["value"] == str(seeded.jan)
    assert "Jan Šťastný" in options[0]["text"]["text"]


def _log_call_submission(contact: str | None, notes: str, followup: str | None, duration: str | None) -> dict:
    values: dict[str, Any] = {
        "contact": {"contact_picker": {"type": "external_select",
                                       "selected_option": {"value": contact, "text": {}} if contact else None}},
        "outcome": {"outcome": {"type": "static_select", "selected_option": {"value": "connected", "text": {}}}},
        "duration": {"duration": {"type": "number_input", "value": duration}},
        "notes": {"notes": {"type": "plain_text_input", "value": notes}},
        "next_step": {"next_step": {"type": "plain_text_input", "value": "Send the quote"}},
        "followup": {"followup": {"type": "plain_text_input", "value": followup}},
    }
    return {"type": "view_submission", "team": {"id": "T0TEST"}, "user": {"id": ALICE}, "trigger_id": "1.2.3",
            "view": {"id": "V2", "type": "modal", "callback_id": "log_call", "state": {"values": values}}}


def test_log_call_modal_validates_then_saves(interact: Any, seeded: Seeded, engine: Any,
                                             fake_slack: FakeSlack, clock: Clock) -> None:
    status, body = interact(_log_call_submission(None, "", "whenever", "ten"))
    assert status == 200
    answer = json.loads(body)
    assert answer["response_action"] == "errors"
    assert set(answer["errors"]) == {"contact", "notes", "followup", "duration"}

    status, body = interact(_log_call_submission(str(seeded.jan), "Discussed renewal", "in 3 days", "25"))
    assert status == 200 and body in (b"", b"{}")
    confirmation = fake_slack.wait_for("chat.postMessage")[-1]
    assert "Follow-up set for Thu 26 Nov 2026 09:00 CET" in confirmation.params["text"]
    with Session(engine) as session:
        activity = session.exec(select(Activity)).one()
        followup = session.exec(select(FollowUp)).one()
    assert (activity.outcome, activity.duration_minutes, activity.next_step) == ("connected", 25, "Send the quote")
    assert (followup.contact_id, followup.note, followup.source) == (seeded.jan, "Send the quote", "call")
    assert activity.created_at == followup.created_at == clock.now  # the bot's clock, not the wall clock


def test_log_call_modal_refuses_31_february(interact: Any, seeded: Seeded, engine: Any) -> None:
    status, body = interact(_log_call_submission(str(seeded.jan), "Discussed renewal", "31.02.", "25"))
    assert status == 200
    assert json.loads(body)["errors"] == {"followup": "31 February is not a date."}
    with Session(engine) as session:
        assert session.exec(select(Activity)).all() == []


def test_card_buttons_open_prefilled_modals(interact: Any, seeded: Seeded, fake_slack: FakeSlack) -> None:
    payload = slack_requests.block_action_payload("followup_open", str(seeded.jan), user_id=ALICE)
    assert interact(payload)[0] == 200
    view = _view(fake_slack.wait_for("views.open")[0])
    assert view["callback_id"] == "add_followup"
    picker = view["blocks"][0]["element"]
    assert picker["initial_option"]["value"] == str(seeded.jan)


def test_slack_user_lookup_goes_through_the_sender_and_a_rate_limit_says_so(
    slash: Any, seeded: Seeded, fake_slack: FakeSlack, engine: Any
) -> None:
    """Dave has no Slack id in the config: the first request looks him up (users.info, through
    SlackSender.user_email). Slack still answering 429 after the client's retries is not "I don't
    know you": he is told to try again, and the next request finds and remembers him."""
    fake_slack.fail_next("users.info", 429, retry_after=0, times=3)  # the client retries twice
    status, answer = slash("my", user=DAVE)
    assert status == 200 and answer["text"] == BUSY_TEXT
    assert len(fake_slack.calls("users.info")) == 3
    assert rep_id_of_slack_user(engine, DAVE) is None
    status, answer = slash("my", user=DAVE)
    assert status == 200 and "I don't know you" not in json.dumps(answer) and answer["text"] != BUSY_TEXT
    assert rep_id_of_slack_user(engine, DAVE) == rep_id(engine, "dave@nordlys.example")


def test_the_sender_holds_user_lookups_after_a_429_like_a_channel(fake_slack: FakeSlack) -> None:
    sender = SlackSender(WebClient(token="xoxb-test", base_url=fake_slack.base_url), max_rate_limit_retries=0)
    fake_slack.add_user("eve@nordlys.example", "U0EVE")
    assert sender.user_email("U0EVE") == "eve@nordlys.example"
    fake_slack.fail_next("users.info", 429, retry_after=60)
    with pytest.raises(RateLimited):
        sender.user_email("U0EVE")
    with pytest.raises(RateLimited):  # held: Slack is not asked again before Retry-After has passed
        sender.user_email("U0EVE")
    assert len(fake_slack.calls("users.info")) == 2
