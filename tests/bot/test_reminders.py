"""Reminders: a follow-up comes back at its minute, once; Snooze moves it; Done closes it."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlmodel import Session, select

from rapport.serve import Service
from store.models import FollowUp, OutboxItem
from tests.bot.conftest import ALICE, BOB, Clock, Seeded
from tests.servers import slack_requests
from tests.servers.fake_slack import FakeSlack

ALICE_DM = "D0ALICE"


def _reminders(slack: FakeSlack) -> list[dict[str, Any]]:
    return [m for m in slack.messages(ALICE_DM) if "Follow-up due" in json.dumps(m.get("blocks"))]


def _followup(engine: Any) -> FollowUp:
    with Session(engine) as session:
        return session.exec(select(FollowUp)).one()


def _press(interact: Any, slack: FakeSlack, action_id: str, message: dict[str, Any], user: str = ALICE) -> None:
    payload = slack_requests.block_action_payload(action_id, str(_value(message, action_id)), user_id=user,
                                                  channel_id=ALICE_DM, message_ts=message["ts"], block_id="r")
    payload["message"] = message
    status, _ = interact(payload)
    assert status == 200


def _value(message: dict[str, Any], action_id: str) -> str:
    for block in message.get("blocks") or []:
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                return str(element["value"])
    raise AssertionError(f"no {action_id} button in {message}")


def test_reminder_arrives_once_in_its_minute(
    service: Service, slash: Any, seeded: Seeded, clock: Clock, fake_slack: FakeSlack, engine: Any
) -> None:
    _, answer = slash('remind "Jan Šťastný" in 1 minute call back about the renewal')
    assert "I'll remind you" in answer["text"]
    scheduler = service.scheduler
    assert scheduler is not None
    due = _followup(engine).due_at
    assert due == clock.now + timedelta(minutes=1)

    scheduler.tick(clock.advance(seconds=45))
    assert _reminders(fake_slack) == []
    scheduler.tick(clock.advance(seconds=20))  # within the due minute
    reminders = _reminders(fake_slack)
    assert len(reminders) == 1
    assert "Jan Šťastný" in json.dumps(reminders[0]["blocks"], ensure_ascii=False)
    assert reminders[0]["metadata"]["event_payload"]["key"] == f"reminder:{_followup(engine).id}:{due.isoformat()}"
    for _ in range(3):
        scheduler.tick(clock.advance(seconds=15))
    assert len(_reminders(fake_slack)) == 1


def test_snooze_moves_and_done_closes(
    service: Service, slash: Any, seeded: Seeded, clock: Clock, fake_slack: FakeSlack, engine: Any, interact: Any
) -> None:
    slash("remind me in 1 minute send the contract")
    scheduler = service.scheduler
    assert scheduler is not None
    scheduler.tick(clock.advance(minutes=1))
    reminder = _reminders(fake_slack)[0]

    _press(interact, fake_slack, "followup_snooze_1h", reminder)
    fake_slack.wait_for("chat.update")
    snoozed = _followup(engine)
    assert snoozed.due_at == clock.now + timedelta(hours=1)
    assert snoozed.status == "open"
    updated = fake_slack.messages(ALICE_DM)[0]
    assert "Snoozed until" in json.dumps(updated["blocks"])
    assert not any(b["type"] == "actions" for b in updated["blocks"])  # the buttons are gone

    scheduler.tick(clock.advance(minutes=30))
    assert len(_reminders(fake_slack)) == 1
    scheduler.tick(clock.advance(minutes=31))
    reminders = _reminders(fake_slack)
    assert len(reminders) == 2

    _press(interact, fake_slack, "followup_done", reminders[1])
    fake_slack.wait_for("chat.update", 2)
    done = _followup(engine)
    assert done.status == "done" and done.done_at is not None
    scheduler.tick(clock.advance(days=2))
    assert len(_reminders(fake_slack)) == 2
    assert not [m for m in fake_slack.messages(ALICE_DM) if "overdue" in json.dumps(m.get("blocks"))]


def test_snooze_until_tomorrow_is_nine_in_the_reps_zone(
    service: Service, slash: Any, seeded: Seeded, clock: Clock, fake_slack: FakeSlack, engine: Any, interact: Any
) -> None:
    slash("remind me in 1 minute check stock")
    assert service.scheduler is not None
    service.scheduler.tick(clock.advance(minutes=1))
    _press(interact, fake_slack, "followup_snooze_tomorrow", _reminders(fake_slack)[0])
    fake_slack.wait_for("chat.update")
    # 09:01 UTC on Monday; tomorrow 09:00 in Stockholm (CET) is 08:00 UTC
    assert _followup(engine).due_at.isoformat() == "2026-11-24T08:00:00+00:00"


def test_overdue_followup_is_nudged_once_a_day(
    service: Service, slash: Any, seeded: Seeded, clock: Clock, fake_slack: FakeSlack, engine: Any
) -> None:
    slash("remind me in 1 minute chase the invoice")
    scheduler = service.scheduler
    assert scheduler is not None
    scheduler.tick(clock.advance(minutes=1))
    for _ in range(8):  # a working day of ticks
        scheduler.tick(clock.advance(hours=1))
    nudges = [m for m in fake_slack.messages(ALICE_DM) if "overdue follow-up" in json.dumps(m.get("blocks"))]
    assert nudges == []
    scheduler.tick(clock.advance(hours=17))  # a day after the reminder
    scheduler.tick(clock.advance(minutes=1))
    scheduler.tick(clock.advance(minutes=15))
    nudges = [m for m in fake_slack.messages(ALICE_DM) if "overdue follow-up" in json.dumps(m.get("blocks"))]
    assert len(nudges) == 1
    scheduler.tick(clock.advance(days=1, minutes=1))
    nudges = [m for m in fake_slack.messages(ALICE_DM) if "overdue follow-up" in json.dumps(m.get("blocks"))]
    assert len(nudges) == 2


def test_someone_elses_reminder_cannot_be_closed(
    service: Service, slash: Any, seeded: Seeded, clock: Clock, fake_slack: FakeSlack, engine: Any, interact: Any
) -> None:
    slash("remind me in 1 minute private task")
    assert service.scheduler is not None
    service.scheduler.tick(clock.advance(minutes=1))
    _press(interact, fake_slack, "followup_done", _reminders(fake_slack)[0], user=BOB)
    refusal = fake_slack.wait_for("chat.postMessage", 2)[-1]
    assert "not yours" in refusal.params["text"]
    assert _followup(engine).status == "open"
    with Session(engine) as session:
        assert len(session.exec(select(OutboxItem)).all()) == 1
