"""Socket Mode: the same app, reached over a websocket instead of HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from rapport.serve import Service
from tests.bot.conftest import ALICE, COMMAND, Clock, make_runtime, seed_contacts
from tests.servers import slack_requests
from tests.servers.fake_slack import FakeSlack
from tests.servers.fake_socket_mode import FakeSocketMode


@pytest.fixture
def socket_service(database_url: str, fake_slack: FakeSlack, fake_socket_mode: FakeSocketMode,
                   clock: Clock) -> Iterator[Service]:
    rt = make_runtime(database_url, fake_slack, slack_app_token="xapp-test-token", slack_signing_secret=None)
    svc = Service(rt, clock=clock, scheduler_interval=3600, watch_mailboxes=False)
    svc.start()
    yield svc
    svc.stop()


def test_slash_command_over_socket_mode(socket_service: Service, fake_socket_mode: FakeSocketMode,
                                        fake_slack: FakeSlack) -> None:
    assert socket_service.http is None  # no HTTP listener in Socket Mode
    seed_contacts(socket_service.rt.engine)
    fake_socket_mode.wait_for_connection()
    connect = fake_slack.calls("apps.connections.open")[0]
    assert connect.token_prefix == "xapp"
    ack: dict[str, Any] = fake_socket_mode.push("slash_commands",
                                                slack_requests.slash_command_payload(COMMAND, "find stastny",
                                                                                     user_id=ALICE))
    text = json.dumps(ack.get("payload"), ensure_ascii=False)
    assert "Jan Šťastný" in text and "Acme Corporation" in text


def test_event_retry_over_socket_mode_acts_once(socket_service: Service, fake_socket_mode: FakeSocketMode,
                                                fake_slack: FakeSlack) -> None:
    fake_socket_mode.wait_for_connection()
    event = slack_requests.event_payload({"type": "app_home_opened", "user": ALICE, "tab": "home"},
                                         event_id="EvSock1")
    fake_socket_mode.push("events_api", event)
    fake_slack.wait_for("views.publish")
    fake_socket_mode.push("events_api", event, retry_attempt=1)
    with pytest.raises(TimeoutError):
        fake_slack.wait_for("views.publish", 2, timeout=2)
