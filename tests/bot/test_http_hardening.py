"""Issue 15, findings 1 and 10: the HTTP front under hostile and malformed requests.

Size and signature are checked before a body is parsed or logged; whatever a
client sends, it gets an HTTP answer (never a dropped connection or a
traceback), and nothing of a request's body reaches a log.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode
from urllib.parse import unquote as urllib_unquote

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot.http import HttpFront, HttpLimits, HttpServer, MalformedBody, dispatch_body, form_fields, unquote
from bot.text import MAX_ID, whole_number
from rapport.serve import Service
from tests.bot.conftest import ALICE, COMMAND, DAVE, SECRET, Clock, Seeded, get, make_runtime
from tests.servers import slack_requests
from tests.servers.fake_slack import FakeSlack
from tests.servers.slack_requests import SignedRequest, signed_headers

FORM = "application/x-www-form-urlencoded"
MARKER = "BODY-MUST-NOT-BE-LOGGED"


def _raw(port: int, request: bytes, *, timeout: float = 10.0) -> bytes:
    """Send raw bytes, return everything the server answers until it closes or stops talking."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks):
                    break
        except TimeoutError:
            pass
        return b"".join(chunks)


def _status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1."), answer[:200]
    return int(answer.split(b" ", 2)[1])


def _port(service: Service) -> int:
    assert service.http is not None
    return service.http.port


def _post_head(headers: dict[str, str]) -> bytes:
    lines = ["POST /slack/events HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _no_errors(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]


# ------------------------------------------------------------------ finding 1: unsigned bodies


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every record at every level, set before the service starts (Bolt's loggers copy the root's level)."""
    caplog.set_level(logging.DEBUG)
    return caplog


def test_unsigned_megabyte_body_is_refused_and_never_logged(
    all_logs: pytest.LogCaptureFixture, service: Service, events_url: str, fake_slack: FakeSlack
) -> None:
    body = urlencode({"command": COMMAND, "text": MARKER * (1_000_000 // len(MARKER))}).encode()[:1_000_000]
    forged = SignedRequest(body, signed_headers("not-the-secret", body, FORM))
    assert forged.post(events_url)[0] == 401
    unsigned = SignedRequest(body, {"Content-Type": FORM})
    assert unsigned.post(events_url)[0] == 401
    assert MARKER not in all_logs.text
    assert "xoxb-test-token" not in all_logs.text
    assert fake_slack.calls() == []


@pytest.mark.parametrize("timestamp", ["abc", "9" * 5000, "", "-1"])
def test_unreadable_timestamp_header_answers_401(service: Service, timestamp: str,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    body = urlencode({"command": COMMAND, "text": "find x"}).encode()
    headers = {**signed_headers(SECRET, body, FORM), "X-Slack-Request-Timestamp": timestamp,
               "Content-Length": str(len(body))}
    assert _status(_raw(_port(service), _post_head(headers) + body)) == 401
    _no_errors(caplog)


# ------------------------------------------------------------------ finding 1: Content-Length


def test_missing_content_length_answers_411(service: Service) -> None:
    assert _status(_raw(_port(service), _post_head({"Content-Type": FORM}))) == 411


@pytest.mark.parametrize("length", ["-1", "abc", "1e3", " 12x"])
def test_negative_or_non_numeric_content_length_answers_400(service: Service, length: str) -> None:
    assert _status(_raw(_port(service), _post_head({"Content-Type": FORM, "Content-Length": length}))) == 400


def test_too_large_body_answers_413_before_it_is_sent(service: Service) -> None:
    # only the headers go out: an answer proves the server did not wait to read 50 MB
    head = _post_head({"Content-Type": FORM, "Content-Length": str(50 * 1024 * 1024)})
    assert _status(_raw(_port(service), head)) == 413


def test_health_check_answers_while_a_client_holds_a_request_open(service: Service) -> None:
    port = _port(service)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as stalled:
        stalled.sendall(_post_head({"Content-Type": FORM, "Content-Length": "1000"}) + b"x" * 10)
        answer = _raw(port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert _status(answer) == 200


@pytest.fixture
def impatient_service(database_url: str, fake_slack: FakeSlack, clock: Clock) -> Iterator[Service]:
    rt = make_runtime(database_url, fake_slack)
    svc = Service(rt, host="127.0.0.1", port=0, clock=clock, scheduler_interval=3600, watch_mailboxes=False,
                  http_limits=HttpLimits(channel_timeout=1))
    svc.start()
    yield svc
    svc.stop()


def test_slow_client_is_timed_out(impatient_service: Service) -> None:
    with socket.create_connection(("127.0.0.1", _port(impatient_service)), timeout=15) as sock:
        sock.sendall(_post_head({"Content-Type": FORM, "Content-Length": "1000"})[:-2])  # headers never end
        assert sock.recv(1024) == b""  # the server hangs up instead of waiting for ever


# ------------------------------------------------------------------ finding 1: malformed signed bodies


def _form(fields: dict[str, str]) -> tuple[bytes, str]:
    return urlencode(fields).encode(), FORM


def _payload(value: Any) -> tuple[bytes, str]:
    return _form({"payload": value if isinstance(value, str) else json.dumps(value)})


MALFORMED = {
    "json_syntax": (b'{"type": "event_callback", ', "application/json"),
    "json_list": (b"[1, 2]", "application/json"),
    "json_string": (b'"x"', "application/json"),
    "json_deep": (b"[" * 100_000 + b"]" * 100_000, "application/json"),
    "not_utf8": (b"\xff\xfe\x00payload", FORM),
    "payload_syntax": _payload("{not json"),
    "payload_list": _payload("[1]"),
    "payload_null": _payload("null"),
    "actions_string": _payload({"type": "block_actions", "user": {"id": ALICE}, "actions": "x"}),
    "actions_items": _payload({"type": "block_actions", "user": {"id": ALICE}, "actions": [1]}),
    "view_string": _payload({"type": "view_submission", "user": {"id": ALICE}, "view": "x"}),
    "view_values": _payload({"type": "view_submission", "user": {"id": ALICE},
                             "view": {"callback_id": "log_call", "state": {"values": {"contact": 3}}}}),
    "event_string": (json.dumps({"type": "event_callback", "event_id": "Ev1", "event": "x"}).encode(),
                     "application/json"),
    "container_string": _payload({"type": "block_actions", "user": {"id": ALICE}, "container": "x",
                                  "actions": [{"action_id": "conv_claim", "value": "1"}]}),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_signed_body_answers_400(service: Service, seeded: Seeded, case: str,
                                           caplog: pytest.LogCaptureFixture) -> None:
    body, content_type = MALFORMED[case]
    headers = {**signed_headers(SECRET, body, content_type), "Content-Length": str(len(body))}
    assert _status(_raw(_port(service), _post_head(headers) + body)) == 400
    _no_errors(caplog)


# ------------------------------------------------------------------ finding 1: ids out of range

HUGE_IDS = {"twenty_digits": "9" * 20, "five_thousand_digits": "9" * 5000, "superscript": "²"}


@pytest.mark.parametrize("action_id", ["conv_claim", "followup_done", "contact_open", "followup_open"])
@pytest.mark.parametrize("size", sorted(HUGE_IDS))
def test_huge_ids_in_buttons_are_refused_not_crashed(interact: Any, seeded: Seeded, fake_slack: FakeSlack,
                                                     caplog: pytest.LogCaptureFixture, action_id: str,
                                                     size: str) -> None:
    payload = slack_requests.block_action_payload(action_id, HUGE_IDS[size], user_id=ALICE)
    assert interact(payload)[0] == 200
    answered = fake_slack.wait_for("views.open" if action_id.endswith("_open") else "chat.postEphemeral")
    assert "something went wrong" not in json.dumps([call.params for call in answered])
    _no_errors(caplog)


@pytest.mark.parametrize("size", sorted(HUGE_IDS))
def test_huge_ids_in_a_modal_are_form_errors(interact: Any, seeded: Seeded, size: str,
                                             caplog: pytest.LogCaptureFixture) -> None:
    huge = HUGE_IDS[size]
    values = {
        "contact": {"contact_picker": {"type": "external_select", "selected_option": {"value": huge, "text": {}}}},
        "duration": {"duration": {"type": "number_input", "value": huge}},
        "notes": {"notes": {"type": "plain_text_input", "value": "Called"}},
    }
    submission = {"type": "view_submission", "team": {"id": "T0TEST"}, "user": {"id": ALICE}, "trigger_id": "1.2.3",
                  "view": {"id": "V2", "type": "modal", "callback_id": "log_call", "state": {"values": values}}}
    status, body = interact(submission)
    assert status == 200
    assert set(json.loads(body)["errors"]) == {"contact", "duration"}
    _no_errors(caplog)


def test_a_new_page_is_one_route_on_the_same_server(service: Service) -> None:
    assert service.http is not None

    def page(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"conversation page"]

    service.http.front.add("/conversations/1", page)
    port = _port(service)
    assert get(f"http://127.0.0.1:{port}/conversations/1") == (200, b"conversation page")
    assert _status(_raw(port, b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")) == 404
    assert _status(_raw(port, b"GET /slack/events HTTP/1.1\r\nHost: x\r\n\r\n")) == 405


@pytest.fixture
def held_server() -> Iterator[tuple[HttpServer, threading.Event, list[str]]]:
    """A server of one thread and two connections whose page waits until released."""
    release, served = threading.Event(), []
    front = HttpFront()

    def page(environ: Any, start_response: Any) -> list[bytes]:
        served.append(environ["PATH_INFO"])
        release.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    front.add("/a", page)
    front.add("/b", page)
    front.add("/c", page)
    server = HttpServer(front, host="127.0.0.1", port=0, limits=HttpLimits(threads=1, connections=2))
    server.start()
    yield server, release, served
    release.set()
    server.stop()


def _request(port: int, path: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock


def test_regression_a_worker_takes_no_more_connections_than_it_has_places_for(
        held_server: tuple[HttpServer, threading.Event, list[str]]) -> None:
    """Issue 15: `rapport serve`'s workers share one listen backlog; a worker that took every
    connection it could (200) kept requests queued behind its own while another worker was idle.
    A connection beyond `HttpLimits.connections` stays in the backlog, for any worker to take."""
    server, release, served = held_server
    first, second, third = (_request(server.port, path) for path in ("/a", "/b", "/c"))
    with first, second, third:
        for _ in range(100):
            if served:
                break
            threading.Event().wait(0.02)
        assert served == ["/a"]
        held = [name for name, sock in (("second", second), ("third", third)) if _sent_back_to(sock)]
        assert held == [], f"{held} answered while the first held the only thread"
        assert _accepted(server) == 2  # the first, and the second waiting for the thread; not the third
        release.set()
        for sock in (first, second, third):
            assert _status(_read_all(sock)) == 200
    assert sorted(served) == ["/a", "/b", "/c"]


def test_every_answer_closes_its_connection(
        held_server: tuple[HttpServer, threading.Event, list[str]]) -> None:
    """An idle keep-alive connection would hold one of a worker's few places until its timeout."""
    server, release, _ = held_server
    release.set()
    for asked in (b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(asked)
            answer = _read_all(sock)  # returns: the server hangs up after the answer
        head = answer.split(b"\r\n\r\n", 1)[0].lower()
        assert _status(answer) == 200
        assert [line for line in head.split(b"\r\n") if line.startswith(b"connection:")] == [b"connection: close"]


def test_regression_a_trickling_client_is_cut_off_at_the_timeout() -> None:
    """waitress counts every byte as activity: a client sending one every half second kept one
    of a worker's few places for ever. A request must arrive whole within the idle timeout."""
    front = HttpFront()
    server = HttpServer(front, host="127.0.0.1", port=0,
                        limits=HttpLimits(threads=1, connections=1, channel_timeout=1))
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
            started, closed = time.monotonic(), False
            while not closed and time.monotonic() - started < 8:
                threading.Event().wait(0.5)
                try:
                    sock.sendall(b"X")  # a header that never ends
                    closed = _hung_up(sock)
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
            assert closed, "the trickling client still held the connection after 8 s"
            assert time.monotonic() - started < 4
    finally:
        server.stop()


def _hung_up(sock: socket.socket) -> bool:
    sock.settimeout(0.2)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.settimeout(10)


def _sent_back_to(sock: socket.socket) -> bool:
    sock.settimeout(0.2)
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except TimeoutError:
        return False
    finally:
        sock.settimeout(10)


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _accepted(server: HttpServer) -> int:
    return sum(1 for channel in list(server._map.values()) if type(channel).__name__ == "_OneRequestChannel")


def test_signed_requests_still_work_after_the_guard(slash: Any, seeded: Seeded) -> None:
    status, answer = slash("find stastny", user=ALICE)
    assert status == 200 and "Jan Šťastný" in json.dumps(answer, ensure_ascii=False)
    assert slash("find acme", user=DAVE)[0] == 200


# ------------------------------------------------------------------ the parsers behind the checks


@given(st.text())
def test_whole_number_never_raises_and_stays_in_range(text: str) -> None:
    value = whole_number(text)
    assert value is None or 0 <= value <= MAX_ID


@given(st.integers(min_value=0, max_value=MAX_ID))
def test_whole_number_reads_every_id_in_range(value: int) -> None:
    assert whole_number(str(value)) == value
    assert whole_number(str(MAX_ID + 1 + value)) is None


@given(st.one_of(st.text(), st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                                         lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner))
                 .map(json.dumps)),
       st.sampled_from(["application/json", FORM, None]))
def test_dispatch_body_gives_a_json_object_or_a_reason_never_another_exception(body: str,
                                                                              content_type: str | None) -> None:
    try:
        forwarded = dispatch_body(body, content_type)
    except MalformedBody as problem:
        assert str(problem)
    else:
        assert isinstance(json.loads(forwarded), dict)


FIELD = st.text(st.characters(exclude_categories=["Cs"]))
# a command's text with the word that made Bolt's own reader take a form for an interaction
COMMAND_TEXT = FIELD | st.builds("{} payload {}".format, FIELD, FIELD)


@given(st.dictionaries(FIELD.filter(lambda name: name != "payload"), COMMAND_TEXT))
@example({"command": "/crm", "text": "note payload arrived"})
def test_a_command_form_is_forwarded_field_for_field(fields: dict[str, str]) -> None:
    assert json.loads(dispatch_body(urlencode(fields), FORM)) == fields


@given(st.recursive(st.none() | st.booleans() | st.integers() | FIELD,
                    lambda inner: st.lists(inner) | st.dictionaries(FIELD, inner), max_leaves=20),
       st.sampled_from(["trigger_id", "api_app_id", "response_url"]))
def test_an_interaction_is_forwarded_as_its_payload(value: Any, key: str) -> None:
    payload = {"type": "shortcut", key: value}
    assert json.loads(dispatch_body(urlencode({"payload": json.dumps(payload)}), FORM)) == payload


# text that is mostly escapes, good and bad: '%' with and without hex digits, backslashes, '+', '&', '='
FORM_TEXT = st.text(st.sampled_from("%%%%0123456789abcdefABCDEFgxX\\+&= é€\n\x00"), max_size=60) | st.text()
# the cases a C codec could read otherwise than urllib: its own escapes, a cut or bad escape, a
# cut UTF-8 sequence, and the ways a form splits
TRICKY = ["\\0%41", "\\n%41", "\\\n%41", "\\x41%41", "\\N{DASH}%41", "\\u0041%41", "%4", "%", "%%41",
          "%4g", "%e2%82", "%E2%82%AC", "%ED%A0%80", "é%41", "a+b%2B"]
FORMS = ["a=b=c", "&&a", "=x", "a", "a=1&a=2", "x=%41&y", "p=%4+1"]


@given(FORM_TEXT)
@settings(max_examples=500)
def test_unquote_decodes_as_urllib_does(text: str) -> None:
    assert unquote(text) == urllib_unquote(text)


@pytest.mark.parametrize("text", TRICKY)
def test_unquote_decodes_the_tricky_cases_as_urllib_does(text: str) -> None:
    assert unquote(text) == urllib_unquote(text)


@given(FORM_TEXT | st.dictionaries(FIELD, FIELD).map(urlencode))
@settings(max_examples=500)
def test_form_fields_reads_a_form_as_urllib_does(body: str) -> None:
    assert form_fields(body) == dict(parse_qsl(body, keep_blank_values=True))


@pytest.mark.parametrize("body", FORMS + [f"k={text}&{text}=v" for text in TRICKY])
def test_form_fields_reads_the_tricky_forms_as_urllib_does(body: str) -> None:
    assert form_fields(body) == dict(parse_qsl(body, keep_blank_values=True))
