"""Talking to the bot: a message in its DM (`message.im`) runs like `/crm`, through the real Bolt
app with signed event requests; the answer is posted to the fake Web API."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.bot.conftest import ALICE, SECRET, STRANGER, Seeded
from tests.servers import slack_requests
from tests.servers.fake_slack import FakeSlack

DM = "D0ALICE"


def _dm(text: str, event_id: str, *, user: str = ALICE, **extra: Any) -> slack_requests.SignedRequest:
    event = {"type": "message", "channel": DM, "channel_type": "im", "user": user, "text": text,
             "ts": "1700000000.000300", **extra}
    return slack_requests.event(SECRET, slack_requests.event_payload(event, event_id=event_id))


def _blocks(call: Any) -> list[dict[str, Any]]:
    blocks = call.params.get("blocks")
    return json.loads(blocks) if isinstance(blocks, str) else blocks


def test_a_dm_find_answers_like_the_slash_command(events_url: str, seeded: Seeded, fake_slack: FakeSlack,
                                                  slash: Any) -> None:
    assert _dm("find stastny", "EvDm01").post(events_url)[0] == 200
    posted = fake_slack.wait_for("chat.postMessage")[0]
    assert posted.params["channel"] == DM
    _, answer = slash("find stastny")
    assert _blocks(posted) == answer["blocks"]
    assert "Jan Šťastný" in json.dumps(_blocks(posted), ensure_ascii=False)


def test_a_dm_runs_help_and_my_and_accepts_a_leading_slash_command(events_url: str, seeded: Seeded,
                                                                  fake_slack: FakeSlack) -> None:
    _dm("help", "EvDm02").post(events_url)
    _dm("/crm my", "EvDm03").post(events_url)
    first, second = fake_slack.wait_for("chat.postMessage", 2)
    texts = {json.dumps(_blocks(first), ensure_ascii=False), json.dumps(_blocks(second), ensure_ascii=False)}
    assert any("Rapport commands" in t for t in texts)
    assert any("My open conversations" in t for t in texts)


def test_bot_messages_edits_and_retries_are_ignored(events_url: str, seeded: Seeded,
                                                   fake_slack: FakeSlack) -> None:
    """The bot's own answer arrives as a message.im event too: answering it would loop."""
    _dm("find stastny", "EvDm04", bot_id="B0RAPPORT").post(events_url)
    _dm("find stastny", "EvDm05", subtype="message_changed").post(events_url)
    _dm("find stastny", "EvDm06", channel_type="channel").post(events_url)
    _dm("find stastny", "EvDm07").post(events_url)
    retry = _dm("find stastny", "EvDm07")
    retry.headers["X-Slack-Retry-Num"] = "1"
    assert retry.post(events_url)[0] == 200
    fake_slack.wait_for("chat.postMessage")
    with pytest.raises(TimeoutError):  # EvDm07 once; the others never
        fake_slack.wait_for("chat.postMessage", 2, timeout=2)


def test_a_form_command_in_a_dm_points_to_the_slash_command(events_url: str, seeded: Seeded,
                                                           fake_slack: FakeSlack) -> None:
    _dm("log call", "EvDm08").post(events_url)
    posted = fake_slack.wait_for("chat.postMessage")[0]
    assert "/crm log call" in json.dumps(_blocks(posted))
    assert fake_slack.calls("views.open") == []


def test_a_stranger_writing_to_the_bot_is_told_how_to_be_added(events_url: str, seeded: Seeded,
                                                              fake_slack: FakeSlack) -> None:
    _dm("find stastny", "EvDm09", user=STRANGER).post(events_url)
    posted = fake_slack.wait_for("chat.postMessage")[0]
    assert "I don't know you yet" in posted.params["text"]
