"""Signed Slack HTTP requests (v0 HMAC-SHA256), as Slack sends them to an app in HTTP mode.

    request = slash_command(SECRET, command="/rapport", text="who owns acme.com")
    status, body = request.post("http://127.0.0.1:3000/slack/events")

Replay tests pass `timestamp=` (e.g. time.time() - 600); forgery tests sign with a wrong secret.
The payload builders are also what the fake Socket Mode server pushes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

JsonDict = dict[str, Any]
TEAM_ID = "T0TEST"
APP_ID = "A0TEST"


def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    """The X-Slack-Signature value for `body` sent at `timestamp`."""
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, content_type: str, timestamp: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(stamp),
        "X-Slack-Signature": signature(secret, stamp, body),
    }


@dataclass(frozen=True)
class SignedRequest:
    body: bytes
    headers: dict[str, str]

    def post(self, url: str, timeout: float = 10.0) -> tuple[int, bytes]:
        """POST it; returns (HTTP status, body), also for 4xx/5xx answers."""
        request = urllib.request.Request(url, data=self.body, headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()


# ---------------------------------------------------------------- payloads
def slash_command_payload(
    command: str, text: str = "", *, user_id: str = "U0ALICE", channel_id: str = "C0GENERAL",
    trigger_id: str = "1337.42.abcdef", response_url: str = "https://hooks.slack.com/commands/T0TEST/1/x",
) -> dict[str, str]:
    return {
        "token": "legacy-verification-token", "team_id": TEAM_ID, "team_domain": "rapport-test",
        "channel_id": channel_id, "channel_name": "general", "user_id": user_id, "user_name": "alice",
        "command": command, "text": text, "api_app_id": APP_ID, "response_url": response_url,
        "trigger_id": trigger_id,
    }


def block_action_payload(
    action_id: str, value: str = "", *, user_id: str = "U0ALICE", channel_id: str = "C0GENERAL",
    message_ts: str = "1700000000.000100", block_id: str = "actions", trigger_id: str = "1337.42.abcdef",
) -> JsonDict:
    return {
        "type": "block_actions", "team": {"id": TEAM_ID, "domain": "rapport-test"},
        "user": {"id": user_id, "username": "alice", "team_id": TEAM_ID}, "api_app_id": APP_ID,
        "trigger_id": trigger_id, "channel": {"id": channel_id, "name": "general"},
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel_id},
        "message": {"type": "message", "ts": message_ts, "text": ""},
        "response_url": "https://hooks.slack.com/actions/T0TEST/1/x",
        "actions": [{"type": "button", "action_id": action_id, "block_id": block_id, "value": value,
                     "action_ts": str(time.time())}],
    }


def event_payload(event: JsonDict, *, event_id: str = "Ev0TEST", event_time: int | None = None) -> JsonDict:
    """An events_api envelope body (type event_callback) around `event`."""
    return {
        "token": "legacy-verification-token", "team_id": TEAM_ID, "api_app_id": APP_ID, "event": event,
        "type": "event_callback", "event_id": event_id,
        "event_time": int(time.time()) if event_time is None else event_time,
        "authorizations": [{"team_id": TEAM_ID, "user_id": "U0BOT", "is_bot": True}],
    }


# ---------------------------------------------------------------- signed requests
def slash_command(
    secret: str, command: str, text: str = "", *, timestamp: int | None = None, **fields: str
) -> SignedRequest:
    """A form-encoded slash command request."""
    body = urlencode(slash_command_payload(command, text, **fields)).encode()
    return SignedRequest(body, signed_headers(secret, body, "application/x-www-form-urlencoded", timestamp))


def interaction(secret: str, payload: JsonDict, *, timestamp: int | None = None) -> SignedRequest:
    """An interactivity request: the payload as JSON in a `payload` form field."""
    body = urlencode({"payload": json.dumps(payload)}).encode()
    return SignedRequest(body, signed_headers(secret, body, "application/x-www-form-urlencoded", timestamp))


def event(
    secret: str, payload: JsonDict, *, timestamp: int | None = None, retry_num: int | None = None
) -> SignedRequest:
    """An Events API request (a JSON body, e.g. from event_payload() or a url_verification).

    retry_num marks it as Slack's n-th redelivery (X-Slack-Retry-Num), for de-duplication tests.
    """
    body = json.dumps(payload).encode()
    headers = signed_headers(secret, body, "application/json", timestamp)
    if retry_num is not None:
        headers.update({"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"})
    return SignedRequest(body, headers)
