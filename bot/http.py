"""HTTP mode: Slack's requests on POST /slack/events, a health check on GET /healthz
(and the survey links, GET /csat/<token>/<score>, bot/surveys.py).

waitress serves one WSGI app (`HttpFront`, a path -> WSGI app table, so later
pages are one `add` each) with a bounded worker pool, a real listen backlog, a
body-size limit enforced on the Content-Length before the body is read, and an
idle timeout for slow clients. Slack's requests pass `SlackGuard` before Bolt's
own WSGI adapter sees them: size and encoding, then signature and timestamp, then the shape
of the body. Nothing of a request's body is ever logged: a refusal logs the
reason and the client's address only.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import waitress
from pydantic import BaseModel, ConfigDict, ValidationError
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk.signature import SignatureVerifier
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.task import WSGITask

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

    WsgiApp = Callable[[WSGIEnvironment, StartResponse], Iterable[bytes]]

log = logging.getLogger(__name__)
EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
MAX_TIMESTAMP_DIGITS = 12  # Unix seconds until the year 33658; longer is not a timestamp


@dataclass(frozen=True)
class HttpLimits:
    """What the HTTP front holds at once and how long it waits."""

    threads: int = 4  # requests one worker serves at once
    # Connections one worker holds at once, each closed after its one answer: a worker takes a new
    # one only when it has room, so the rest wait in the listen backlog that the workers share and
    # are served in order of arrival by whichever worker is free first. Taken as they came (200 at
    # once), they queued per worker, behind a busy one while another sat idle: under load the
    # slowest twentieth waited twice the median (issue 15). The few beyond `threads` are read
    # while the threads work, so a slow client or two does not stop a worker; many slow clients
    # are a buffering proxy's to absorb, as for any WSGI server.
    connections: int = 8
    backlog: int = 1024  # the kernel caps it at net.core.somaxconn
    max_body_bytes: int = 1024 * 1024  # Slack's payloads are far smaller
    channel_timeout: int = 10  # seconds a connection may sit idle, also in the middle of a request


def respond(start_response: StartResponse, status: int, text: str) -> list[bytes]:
    """A short plain-text answer (never an echo of the request)."""
    body = text.encode()
    start_response(f"{status} {HTTPStatus(status).phrase}",
                   [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]


class HttpFront:
    """The one WSGI app of `rapport serve`: exact paths to WSGI apps; `add` a route for a new page."""

    def __init__(self) -> None:
        self._routes: dict[str, WsgiApp] = {}
        self._prefixes: dict[str, WsgiApp] = {}

    def add(self, path: str, app: WsgiApp) -> None:
        self._routes[path] = app

    def add_prefix(self, prefix: str, app: WsgiApp) -> None:
        """Every path under `prefix` (e.g. "/csat/"): the app reads the rest of PATH_INFO itself."""
        self._prefixes[prefix] = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or ""
        app = self._routes.get(path) or next(
            (app for prefix, app in self._prefixes.items() if path.startswith(prefix)), None)
        if app is None:
            return respond(start_response, 404, "not found")
        return app(environ, start_response)


def health(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        return respond(start_response, 405, "use GET")
    body = json.dumps({"ok": True}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


# ---------------------------------------------------------------- the shape listeners rely on
class _Object(BaseModel):
    model_config = ConfigDict(extra="allow")


class _State(_Object):
    values: dict[str, dict[str, dict[str, Any]]] = {}


class _View(_Object):
    state: _State | None = None
    private_metadata: str | None = None


class _Message(_Object):
    blocks: list[dict[str, Any]] | None = None


class SlackBody(_Object):
    """The fields Bolt and our listeners read without checking their type; the rest is left alone."""

    actions: list[dict[str, Any]] | None = None
    view: _View | None = None
    message: _Message | None = None
    container: dict[str, Any] | None = None
    event: dict[str, Any] | None = None
    user: dict[str, Any] | str | None = None
    team: dict[str, Any] | str | None = None
    channel: dict[str, Any] | str | None = None
    enterprise: dict[str, Any] | str | None = None
    authorizations: list[dict[str, Any]] | None = None


class MalformedBody(ValueError):
    """A signed body Bolt could not dispatch; the reason never quotes the body."""


def form_fields(body: str) -> dict[str, str]:
    """`dict(urllib.parse.parse_qsl(body, keep_blank_values=True))`, the percent-escapes decoded
    in C (`unquote`): urllib decodes them one by one in Python, 3.2 M instructions for an App
    Home button's 7.7 KB payload (issue 15). Property tests hold the two equal."""
    fields = {}
    for pair in body.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            fields[unquote(name.replace("+", " "))] = unquote(value.replace("+", " "))
    return fields


def unquote(text: str) -> str:
    """`urllib.parse.unquote(text)`: as `\\xHH` escapes, an ASCII text's `%HH` escapes are decoded by
    Python's C codec; a text that is not ASCII or has a `%` without two hex digits goes to urllib."""
    if "%" not in text:
        return text
    try:
        escaped = text.replace("\\", "\\\\").replace("%", "\\x").encode("ascii")
        return escaped.decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")
    except UnicodeError:
        return urllib.parse.unquote(text)


def dispatch_body(body: str, content_type: str | None) -> bytes:
    """A signed body as the JSON text Bolt dispatches on: an event's own JSON, an interaction's
    `payload` field, a slash command's form fields. The form is decoded here once, for the shape
    check and for Bolt, which decoded it again with urllib: json.loads costs about a ninth of
    that on a button's payload (issue 15). A form is an interaction only when it has a `payload`
    field: Bolt's own reader takes any form with the word "payload" in it for one, so a command
    such as `/crm note payload arrived` came to nothing. Raises MalformedBody."""
    try:
        if (content_type or "").split(";")[0].strip() == "application/json" or body.startswith("{"):
            text = body
        else:
            fields = form_fields(body)
            text = fields["payload"] if "payload" in fields else json.dumps(fields)
        payload = json.loads(text)
        if not isinstance(payload, dict):
            raise MalformedBody("the body is not a JSON object")
        SlackBody.model_validate(payload)
        return text.encode()
    except ValidationError as error:  # (a ValueError too)
        first = error.errors(include_input=False, include_url=False)[0]
        raise MalformedBody(f"{'.'.join(str(part) for part in first['loc'])}: {first['msg']}") from None
    except MalformedBody:
        raise
    except (ValueError, RecursionError):
        raise MalformedBody("the body is not valid JSON or form data") from None


class SlackGuard:
    """Checks a request to /slack/events before Bolt's WSGI adapter sees it: the only check of its
    signature (Bolt's is off, bot.app), then its shape; Bolt gets the body as JSON (dispatch_body)."""

    def __init__(self, app: App, signing_secret: str, *, max_body_bytes: int) -> None:
        self._bolt = SlackRequestHandler(app, path=EVENTS_PATH)
        self._verifier = SignatureVerifier(signing_secret)
        self._max_body_bytes = max_body_bytes

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return respond(start_response, 405, "use POST")
        declared = str(environ.get("CONTENT_LENGTH") or "")
        if not declared:
            return respond(start_response, 411, "Content-Length required")
        if not (declared.isascii() and declared.isdigit()):
            return respond(start_response, 400, "bad Content-Length")
        if len(declared) > len(str(self._max_body_bytes)) or int(declared) > self._max_body_bytes:
            return respond(start_response, 413, "request too large")
        raw = environ["wsgi.input"].read(int(declared))
        if len(raw) != int(declared):
            return respond(start_response, 400, "body shorter than its Content-Length")
        try:
            body = raw.decode("utf-8")  # Slack signs text; the verifier would decode it anyway
        except UnicodeDecodeError:
            return respond(start_response, 400, "the body is not UTF-8")
        client = environ.get("REMOTE_ADDR", "?")
        if not self._signed(environ, body):
            log.info("refused a request from %s: missing, stale or wrong Slack signature", client)
            return respond(start_response, 401, "invalid request")
        try:
            forward = dispatch_body(body, environ.get("CONTENT_TYPE"))
        except MalformedBody as problem:
            log.info("refused a signed request from %s: %s", client, problem)
            return respond(start_response, 400, "malformed request")
        return self._bolt({**environ, "wsgi.input": io.BytesIO(forward), "CONTENT_LENGTH": str(len(forward)),
                           "CONTENT_TYPE": "application/json"}, start_response)

    def _signed(self, environ: WSGIEnvironment, body: str) -> bool:
        timestamp = str(environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP") or "")
        signature = str(environ.get("HTTP_X_SLACK_SIGNATURE") or "")
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= MAX_TIMESTAMP_DIGITS):
            return False
        return self._verifier.is_valid(body, timestamp, signature)


def slack_front(app: App, signing_secret: str, limits: HttpLimits) -> HttpFront:
    """The routes of `rapport serve` in HTTP mode."""
    front = HttpFront()
    front.add(EVENTS_PATH, SlackGuard(app, signing_secret, max_body_bytes=limits.max_body_bytes))
    front.add(HEALTH_PATH, health)
    return front


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host:port` that several processes' `HttpServer`s accept on. It is not
    listening yet: connections are refused until the first server listens, not left waiting."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


class _OneRequestTask(WSGITask):
    def build_response_header(self) -> bytes:
        # as if the client had asked to close: waitress then answers "Connection: close" once,
        # for HTTP/1.0 and 1.1 alike, and closes after the answer
        self.request.headers["CONNECTION"] = "close"
        return bytes(super().build_response_header())


class _OneRequestChannel(HTTPChannel):
    """A connection that carries one request, which must arrive whole within the idle timeout
    (`HttpLimits.channel_timeout`) of the connection opening. An idle keep-alive connection, or a
    client that sends a byte every few seconds (waitress counts each as activity), would hold one
    of a worker's few places (`HttpLimits.connections`). gunicorn's sync workers close every
    connection too, for the same reason."""

    task_class = _OneRequestTask

    def handle_read(self) -> None:
        if not self.requests and time.time() - self.creation_time > self.adj.channel_timeout:
            self.will_close = True  # closed by the loop's next pass
            return
        super().handle_read()


class _AtConnectionLimit(logging.Filter):
    """Drops waitress's notes that the connection limit was reached or left: routine by design."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("total open connections")


class HttpServer:
    """waitress serving `front` on `host:port` from a background thread (port 0 picks a free one),
    or on `listener`, a socket bound elsewhere (`rapport serve`'s HTTP workers share one)."""

    def __init__(self, front: HttpFront, *, host: str = "0.0.0.0", port: int = 3000,
                 limits: HttpLimits = HttpLimits(), listener: socket.socket | None = None) -> None:
        self.front = front
        self._map: dict[int, Any] = {}
        where: dict[str, Any] = {"sockets": [listener]} if listener is not None else {"host": host, "port": port}
        self._server = waitress.create_server(
            front, map=self._map, **where, ident="Rapport",
            threads=limits.threads, backlog=limits.backlog,
            connection_limit=limits.connections + 2,  # waitress counts its listening socket and wake-up pipe
            max_request_body_size=limits.max_body_bytes + 1,  # waitress refuses a length >= this
            channel_timeout=limits.channel_timeout, cleanup_interval=max(1, limits.channel_timeout // 2),
            expose_tracebacks=False,
        )
        self._server.channel_class = _OneRequestChannel
        self._thread: threading.Thread | None = None
        # waitress warns of every request that waits for a worker, and each time the connections
        # reach their limit: thousands of lines in a burst, and under load a tenth of the CPU
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        quiet = logging.getLogger("waitress")
        if not any(isinstance(known, _AtConnectionLimit) for known in quiet.filters):
            quiet.addFilter(_AtConnectionLimit())

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.run, name="http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Let the requests in progress finish (5 s at most), then close every connection and the loop."""
        # workers first: one finishing after the loop closed would wake it through a closed descriptor
        self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        try:
            self._server.trigger.pull_trigger(lambda: wasyncore.close_all(self._map))  # in the loop's own thread
        except OSError:  # the loop's wake-up pipe is gone: close from here; the loop ends within a second
            wasyncore.close_all(self._map, ignore_all=True)
        if self._thread is not None:
            self._thread.join(timeout=10)
