"""A fake Slack Web API: a real HTTP server on loopback that slack_sdk's WebClient talks to.

    slack = FakeSlack(); slack.start()
    client = WebClient(token="xoxb-test", base_url=slack.base_url)
    client.chat_postMessage(channel="C1", text="hi")
    assert slack.calls("chat.postMessage")[0].params["text"] == "hi"

Every call is recorded (method, params, headers without the token, time). Answers are
plausible Slack payloads; unknown methods answer {"ok": false, "error": "unknown_method"}
like Slack does. fail_next() injects rate limits, HTTP errors or error payloads.

Every payload is checked against what real Slack refuses (tests/servers/slack_limits.py):
a violation answers like Slack (`invalid_blocks`, `msg_too_long`) and is kept in
`violations`, and leaving the context manager (the `fake_slack` fixture's teardown)
fails the test. `mention_problems()` lists raw `<!…>`, `<@…>`, `<#…>` and `<http…>`
that Rapport did not put there itself (its own mentions are registered with
`allow_mentions`).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.servers.ports import LOOPBACK
from tests.servers.slack_limits import as_json, payload_problems, raw_mentions

JsonDict = dict[str, Any]
MethodHandler = Callable[[JsonDict], JsonDict]

TEAM_ID = "T0TEST"
TEAM_DOMAIN = "rapport-test"
BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"
APP_ID = "A0TEST"


@dataclass(frozen=True)
class SlackCall:
    method: str
    params: JsonDict  # query string, form fields (single values unwrapped) or the JSON body
    headers: dict[str, str]  # Authorization is redacted
    token_prefix: str | None  # "xoxb", "xoxp", "xapp"... never the token itself
    time: float
    status: int = 200  # the HTTP status we answered with


@dataclass
class _Fault:
    status: int
    retry_after: int | None
    error: str | None
    remaining: int


@dataclass
class _State:
    """Everything the fake Slack remembers; guarded by FakeSlack._lock."""

    calls: list[SlackCall] = field(default_factory=list)
    faults: dict[str, list[_Fault]] = field(default_factory=dict)
    messages: dict[str, list[JsonDict]] = field(default_factory=dict)  # channel -> messages, oldest first
    uploads: dict[str, bytes] = field(default_factory=dict)  # file_id -> uploaded bytes
    upload_names: dict[str, str] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)  # payloads real Slack would refuse
    responses: list[JsonDict] = field(default_factory=list)  # answers to Slack's requests (acks)


class FakeSlack:
    """The fake Web API server. Thread-safe; start()/stop() or use as a context manager."""

    def __init__(self, *, delay_seconds: float = 0.0) -> None:
        """`delay_seconds`: how long each answer takes after the call is recorded (a slow Slack)."""
        self.delay_seconds = delay_seconds
        self._lock = threading.Condition()
        self._state = _State()
        self._users_by_email: dict[str, JsonDict] = {}
        self._users_by_id: dict[str, JsonDict] = {}
        self._custom: dict[str, MethodHandler] = {}
        self._ids = itertools.count(1)
        self._own_mentions: set[str] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.socket_mode_url: str | None = None  # what apps.connections.open answers

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._server = _Server((LOOPBACK, 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        # a short poll interval keeps stop() (called once per test) quick
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-slack",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> FakeSlack:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if exc_type is None and self.violations:
            raise AssertionError("payloads real Slack would refuse:\n" + "\n".join(self.violations))

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeSlack is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/"

    @property
    def base_url(self) -> str:
        """For WebClient(base_url=...) and SLACK_API_URL."""
        return f"{self.url}api/"

    # ------------------------------------------------------------ configuration
    def add_user(
        self,
        email: str,
        user_id: str | None = None,
        *,
        name: str | None = None,
        real_name: str | None = None,
        tz: str = "Europe/Berlin",
    ) -> JsonDict:
        """Put a user in the workspace directory (users.lookupByEmail, users.info); returns it."""
        user_id = user_id or f"U{next(self._ids):08d}"
        local = email.split("@", 1)[0]
        user = {
            "id": user_id, "team_id": TEAM_ID, "name": name or local, "real_name": real_name or local.title(),
            "tz": tz, "is_bot": False, "deleted": False,
            "profile": {"email": email, "real_name": real_name or local.title(),
                        "display_name": name or local},
        }
        with self._lock:
            self._users_by_email[email.lower()] = user
            self._users_by_id[user_id] = user
        return user

    def on(self, method: str, handler: MethodHandler) -> None:
        """Answer `method` with handler(params) instead of the built-in answer."""
        with self._lock:
            self._custom[method] = handler

    def fail_next(
        self,
        method: str,
        status: int = 429,
        retry_after: int | None = 1,
        *,
        error: str | None = None,
        times: int = 1,
    ) -> None:
        """Make the next `times` calls of `method` fail.

        Without `error`: HTTP `status` (429 carries Retry-After and {"ok": false, "error": "ratelimited"}).
        With `error`: HTTP 200 and {"ok": false, "error": error}, as Slack reports most failures.
        """
        fault = _Fault(200 if error else status, retry_after if status == 429 and not error else None,
                       error, times)
        with self._lock:
            self._state.faults.setdefault(method, []).append(fault)

    def allow_mentions(self, *user_ids: str) -> None:
        """Mentions Rapport itself writes (`<@U…>` of its reps): `mention_problems` lets them pass."""
        with self._lock:
            self._own_mentions.update(f"<@{user_id}>" for user_id in user_ids)

    def check_response(self, answer: JsonDict) -> None:
        """An app's answer to a Slack request (an ack body): kept and checked like a Web API call."""
        with self._lock:
            self._state.responses.append(answer)
            self._state.violations += [f"response: {p}" for p in payload_problems("response", answer)]

    @property
    def violations(self) -> list[str]:
        with self._lock:
            return list(self._state.violations)

    def take_violations(self) -> list[str]:
        """The violations so far, forgotten (for tests that send invalid payloads on purpose)."""
        with self._lock:
            taken, self._state.violations = self._state.violations, []
            return taken

    def mention_problems(self) -> list[str]:
        """Raw mentions and links in every call and answer so far that Rapport did not write itself."""
        with self._lock:
            allowed = set(self._own_mentions)
            payloads = [(c.method, c.params) for c in self._state.calls]
            payloads += [("response", answer) for answer in self._state.responses]
        return [f"{method}: {m}" for method, params in payloads for m in raw_mentions(params, allowed)]

    def reset(self) -> None:
        """Forget calls, faults, messages and uploads (the user directory stays)."""
        with self._lock:
            self._state = _State()

    # ------------------------------------------------------------ inspection
    def calls(self, method: str | None = None) -> list[SlackCall]:
        with self._lock:
            return [call for call in self._state.calls if method is None or call.method == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 5.0) -> list[SlackCall]:
        """Block until `method` was called at least `count` times; returns those calls."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._calls_locked(method)) >= count, timeout=timeout):
                seen = sorted({call.method for call in self._state.calls})
                raise TimeoutError(f"{method} called {len(self._calls_locked(method))} times, wanted "
                                   f"{count} within {timeout}s; methods seen: {seen}")
            return self._calls_locked(method)

    def messages(self, channel: str) -> list[JsonDict]:
        """Messages posted (and updated) in a channel, oldest first."""
        with self._lock:
            return [dict(message) for message in self._state.messages.get(channel, [])]

    def posts(self, channel: str) -> list[JsonDict]:
        """The channel's messages that are posts, not file shares."""
        return [message for message in self.messages(channel) if not message.get("upload")]

    def shares(self, channel: str) -> list[JsonDict]:
        """The channel's file shares (a message each, holding its files)."""
        return [message for message in self.messages(channel) if message.get("upload")]

    def uploaded(self, file_id: str) -> bytes:
        with self._lock:
            return self._state.uploads[file_id]

    def _calls_locked(self, method: str) -> list[SlackCall]:
        return [call for call in self._state.calls if call.method == method]

    # ------------------------------------------------------------ request handling (server threads)
    def _record(self, call: SlackCall) -> None:
        with self._lock:
            self._state.calls.append(call)
            self._lock.notify_all()

    def _refuse(self, method: str, problems: list[str]) -> None:
        with self._lock:
            self._state.violations += [f"{method}: {p}" for p in problems]

    def _take_fault(self, method: str) -> _Fault | None:
        with self._lock:
            queue = self._state.faults.get(method)
            if not queue:
                return None
            fault = queue[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                queue.pop(0)
            return fault

    def _answer(self, method: str, params: JsonDict) -> JsonDict:
        with self._lock:
            custom = self._custom.get(method)
        if custom is not None:
            return custom(params)
        handler = _METHODS.get(method)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        with self._lock:
            return handler(self, params)

    def _store_upload(self, file_id: str, data: bytes) -> bool:
        with self._lock:
            if file_id not in self._state.upload_names:
                return False
            self._state.uploads[file_id] = data
            return True

    def _new_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ids):06d}"

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08d}"


# ---------------------------------------------------------------- Web API methods (called under the lock)
def _dm_channel(user_id: str) -> str:
    return "D" + user_id[1:] if user_id.startswith(("U", "W")) else "D" + user_id


def _auth_test(fake: FakeSlack, params: JsonDict) -> JsonDict:
    return {"ok": True, "url": f"https://{TEAM_DOMAIN}.slack.com/", "team": "Rapport Test", "user": "rapport",
            "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": BOT_ID, "is_enterprise_install": False}


def _post_message(fake: FakeSlack, params: JsonDict) -> JsonDict:
    channel = str(params.get("channel") or "")
    if not channel:
        return {"ok": False, "error": "channel_not_found"}
    if not params.get("text") and not params.get("blocks") and not params.get("attachments"):
        return {"ok": False, "error": "no_text"}
    if channel.startswith(("U", "W")):
        channel = _dm_channel(channel)  # posting to a user id lands in the DM
    ts = fake._new_ts()
    message: JsonDict = {"type": "message", "ts": ts, "user": BOT_USER_ID, "bot_id": BOT_ID,
                         "text": params.get("text", "")}
    for key in ("blocks", "attachments", "metadata", "thread_ts"):
        if key in params:
            message[key] = as_json(params[key])
    fake._state.messages.setdefault(channel, []).append(message)
    return {"ok": True, "channel": channel, "ts": ts, "message": message}


def _update(fake: FakeSlack, params: JsonDict) -> JsonDict:
    channel, ts = str(params.get("channel") or ""), str(params.get("ts") or "")
    for message in fake._state.messages.get(channel, []):
        if message["ts"] == ts:
            for key in ("text", "blocks", "attachments", "metadata"):
                if key in params:
                    message[key] = as_json(params[key])
            message["edited"] = {"user": BOT_USER_ID, "ts": fake._new_ts()}
            return {"ok": True, "channel": channel, "ts": ts, "text": message.get("text", ""),
                    "message": dict(message)}
    return {"ok": False, "error": "message_not_found"}


def _post_ephemeral(fake: FakeSlack, params: JsonDict) -> JsonDict:
    if not params.get("channel") or not params.get("user"):
        return {"ok": False, "error": "channel_not_found" if not params.get("channel") else "user_not_in_channel"}
    return {"ok": True, "message_ts": fake._new_ts()}


def _get_permalink(fake: FakeSlack, params: JsonDict) -> JsonDict:
    channel, ts = str(params.get("channel") or ""), str(params.get("message_ts") or "")
    if not channel or not ts:
        return {"ok": False, "error": "message_not_found"}
    return {"ok": True, "channel": channel,
            "permalink": f"https://{TEAM_DOMAIN}.slack.com/archives/{channel}/p{ts.replace('.', '')}"}


def _conversations_open(fake: FakeSlack, params: JsonDict) -> JsonDict:
    users = [user for user in str(params.get("users") or "").split(",") if user]
    if not users:
        return {"ok": False, "error": "users_list_not_supplied"}
    channel_id = _dm_channel(users[0]) if len(users) == 1 else "G" + "".join(u[1:4] for u in users)
    return {"ok": True, "channel": {"id": channel_id, "is_im": len(users) == 1}}


def _conversations_history(fake: FakeSlack, params: JsonDict) -> JsonDict:
    channel = str(params.get("channel") or "")
    messages = [dict(message) for message in reversed(fake._state.messages.get(channel, []))]
    return {"ok": True, "messages": messages, "has_more": False}


def _lookup_by_email(fake: FakeSlack, params: JsonDict) -> JsonDict:
    user = fake._users_by_email.get(str(params.get("email") or "").lower())
    return {"ok": True, "user": user} if user else {"ok": False, "error": "users_not_found"}


def _users_info(fake: FakeSlack, params: JsonDict) -> JsonDict:
    user = fake._users_by_id.get(str(params.get("user") or ""))
    return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}


def _view_answer(fake: FakeSlack, params: JsonDict, view_id: str | None = None) -> JsonDict:
    view = as_json(params.get("view"))
    if not isinstance(view, dict):
        return {"ok": False, "error": "invalid_arguments"}
    return {"ok": True, "view": {**view, "id": view_id or fake._new_id("V"), "team_id": TEAM_ID,
                                 "app_id": APP_ID, "bot_id": BOT_ID}}


def _views_open(fake: FakeSlack, params: JsonDict) -> JsonDict:
    if not params.get("trigger_id"):
        return {"ok": False, "error": "invalid_trigger_id"}
    return _view_answer(fake, params)


def _views_update(fake: FakeSlack, params: JsonDict) -> JsonDict:
    view_id = params.get("view_id") or params.get("external_id")
    if not view_id:
        return {"ok": False, "error": "not_found"}
    return _view_answer(fake, params, str(view_id))


def _views_publish(fake: FakeSlack, params: JsonDict) -> JsonDict:
    if not params.get("user_id"):
        return {"ok": False, "error": "invalid_arguments"}
    return _view_answer(fake, params)


def _get_upload_url(fake: FakeSlack, params: JsonDict) -> JsonDict:
    if not params.get("filename") or not params.get("length"):
        return {"ok": False, "error": "invalid_arguments"}
    file_id = fake._new_id("F")
    fake._state.upload_names[file_id] = str(params["filename"])
    return {"ok": True, "file_id": file_id, "upload_url": f"{fake.url}upload/{file_id}"}


def _complete_upload(fake: FakeSlack, params: JsonDict) -> JsonDict:
    files = as_json(params.get("files"))
    if not isinstance(files, list) or not files:
        return {"ok": False, "error": "invalid_arguments"}
    answered = []
    for entry in files:
        file_id = str(entry.get("id"))
        if file_id not in fake._state.uploads:
            return {"ok": False, "error": "file_not_found"}
        name = fake._state.upload_names[file_id]
        answered.append({"id": file_id, "name": name, "title": entry.get("title") or name,
                         "size": len(fake._state.uploads[file_id]),
                         "permalink": f"https://{TEAM_DOMAIN}.slack.com/files/{BOT_USER_ID}/{file_id}/{name}"})
    channel = str(params.get("channel_id") or "")
    if channel:  # shared: one message in the channel's history holds the files (and the blocks given)
        message: JsonDict = {"type": "message", "ts": fake._new_ts(), "user": BOT_USER_ID, "upload": True,
                             "text": params.get("initial_comment") or "", "files": answered}
        if params.get("blocks") and not params.get("initial_comment"):  # Slack ignores blocks beside a comment
            message["blocks"] = as_json(params["blocks"])
        fake._state.messages.setdefault(channel, []).append(message)
    return {"ok": True, "files": answered}


def _connections_open(fake: FakeSlack, params: JsonDict) -> JsonDict:
    if fake.socket_mode_url is None:
        return {"ok": False, "error": "socket_mode_not_configured_in_fake"}
    return {"ok": True, "url": fake.socket_mode_url}


_METHODS: dict[str, Callable[[FakeSlack, JsonDict], JsonDict]] = {
    "auth.test": _auth_test,
    "chat.postMessage": _post_message,
    "chat.update": _update,
    "chat.postEphemeral": _post_ephemeral,
    "chat.getPermalink": _get_permalink,
    "conversations.open": _conversations_open,
    "conversations.history": _conversations_history,
    "users.lookupByEmail": _lookup_by_email,
    "users.info": _users_info,
    "views.open": _views_open,
    "views.update": _views_update,
    "views.push": _views_open,  # needs a trigger_id, like views.open
    "views.publish": _views_publish,
    "files.getUploadURLExternal": _get_upload_url,
    "files.completeUploadExternal": _complete_upload,
    "apps.connections.open": _connections_open,
}


# ---------------------------------------------------------------- HTTP
class _Server(ThreadingHTTPServer):
    # Slack does not reset connections: the standard listen backlog of 5 did, under the load bench's
    # bursts of DMs and views (an outbox error that real Slack would not cause)
    request_queue_size = 128


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeSlack/1.0"

    @property
    def fake(self) -> FakeSlack:
        return self.server.fake  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        self._handle(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._handle(self.rfile.read(length))

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest output should show test failures, not access logs."""

    def _handle(self, body: bytes) -> None:
        parts = urlsplit(self.path)
        if parts.path.startswith("/upload/"):
            self._handle_upload(parts.path.removeprefix("/upload/"), body)
            return
        if not parts.path.startswith("/api/"):
            self._send(404, {"ok": False, "error": "not_found"})
            return
        method = parts.path.removeprefix("/api/")
        params = self._params(parts.query, body)
        token = self._token(params)
        fault = self.fake._take_fault(method)
        problems = payload_problems(method, params)
        if fault is not None:
            status, payload, headers = _fault_answer(fault)
        elif token is None:
            status, payload, headers = 200, {"ok": False, "error": "not_authed"}, {}
        elif problems:
            self.fake._refuse(method, problems)
            error = "msg_too_long" if all(p.startswith("text longer") for p in problems) else "invalid_blocks"
            status, payload, headers = 200, {"ok": False, "error": error, "errors": problems}, {}
        else:
            status, payload, headers = 200, self.fake._answer(method, params), {}
        self.fake._record(SlackCall(method, params, self._redacted_headers(), _token_prefix(token),
                                    time.time(), status))
        if self.fake.delay_seconds:  # done but not yet answered: a client killed now never hears of it
            time.sleep(self.fake.delay_seconds)
        try:
            self._send(status, payload, headers)
        except (BrokenPipeError, ConnectionResetError):  # the client is gone (killed mid-call)
            self.close_connection = True

    def _handle_upload(self, file_id: str, body: bytes) -> None:
        if self.fake._store_upload(file_id, body):
            self._send_text(200, f"OK - {len(body)}")
        else:
            self._send_text(404, "unknown upload URL")

    def _params(self, query: str, body: bytes) -> JsonDict:
        params: JsonDict = _flatten(parse_qs(query, keep_blank_values=True))
        content_type = self.headers.get("Content-Type", "")
        if body and content_type.startswith("application/json"):
            params.update(json.loads(body))
        elif body and content_type.startswith("application/x-www-form-urlencoded"):
            params.update(_flatten(parse_qs(body.decode("utf-8"), keep_blank_values=True)))
        elif body:
            params["_raw_body"] = body
        return params

    def _token(self, params: JsonDict) -> str | None:
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and auth[7:]:
            return auth[7:]
        token = params.pop("token", None)
        return str(token) if token else None

    def _redacted_headers(self) -> dict[str, str]:
        headers = dict(self.headers.items())
        if "Authorization" in headers:
            headers["Authorization"] = "Bearer <redacted>"
        return headers

    def _send(self, status: int, payload: JsonDict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_text(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _fault_answer(fault: _Fault) -> tuple[int, JsonDict, dict[str, str]]:
    if fault.error is not None:
        return 200, {"ok": False, "error": fault.error}, {}
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
    error = "ratelimited" if fault.status == 429 else f"http_{fault.status}"
    return fault.status, {"ok": False, "error": error}, headers


def _flatten(query: dict[str, list[str]]) -> JsonDict:
    return {key: values[0] if len(values) == 1 else values for key, values in query.items()}


def _token_prefix(token: str | None) -> str | None:
    return token.split("-", 1)[0] if token else None
