"""Digest delivery: a real SMTP server (aiosmtpd), the fake Slack Web API, and the
outbox that makes each manager's digest go out once per period."""

from __future__ import annotations

import email
import json
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

from slack_sdk import WebClient
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.blocks import split_blocks
from bot.digest import (
    KINDS,
    DigestLinks,
    DigestOptions,
    digest_handlers,
    enqueue_due_digests,
    render_digest_blocks,
)
from bot.email import SmtpOptions
from bot.notify import SlackSender
from store.db import make_engine, session_scope
from store.digest import compute_digest
from store.models import Contact, OutboxItem, Rep
from store.outbox import dispatch
from store.segments import SegmentParams
from tests.digest.known_store import NOW, E, Known, S
from tests.digest.race import race
from tests.servers.fake_slack import FakeSlack
from tests.servers.ports import free_port
from tests.servers.smtp import SmtpServer
from tests.servers.tls import SelfSignedCert

OPTIONS = DigestOptions(params=SegmentParams(top_n=3))
PNG = b"\x89PNG\r\n\x1a\n"
LINKS = DigestLinks(slack_team="T0TEST", slack_app="A0TEST", page_url="https://rapport.example.com",
                    page_key=b"k" * 32)


def _maja(session: Session, known: Known) -> Rep:
    rep = session.get(Rep, known.reps["maja"].id)
    assert rep is not None
    return rep


def _enqueue(engine: Engine, known: Known, via: list[str] | None = None) -> None:
    """Maja's digest rows (via her digest_via, or `via`)."""
    with session_scope(engine) as session:
        maja = _maja(session, known)
        if via is not None:
            maja.digest_via = via
            session.add(maja)
        assert enqueue_due_digests(session, now=NOW, options=OPTIONS, managers=[maja]) == len(maja.digest_via)


def _deliver(engine: Engine, *, slack: SlackSender | None = None, smtp: SmtpOptions | None = None,
             now: datetime = NOW) -> int:
    return dispatch(engine, digest_handlers(engine, slack=slack, smtp=smtp, links=LINKS, now=NOW), now=now)


def _rows(engine: Engine) -> dict[str, OutboxItem]:
    with Session(engine) as session:
        return {row.kind: row for row in session.exec(select(OutboxItem).where(col(OutboxItem.kind).in_(KINDS)))}


def parse_mail(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=default_policy)
    assert isinstance(message, EmailMessage)
    return message


def check_digest_mail(raw: bytes) -> tuple[EmailMessage, str, str]:
    """The headers of a mail a manager reads and that machines leave alone; returns (mail, text, html)."""
    message = parse_mail(raw)
    assert message.get_content_type() == "multipart/alternative"
    assert not message.defects
    assert message["Auto-Submitted"] == "auto-generated"  # out-of-office replies leave it alone
    assert str(message["Date"]).endswith("+0000")
    assert message["List-Unsubscribe"].startswith("<mailto:")
    subject = str(message["Subject"])
    assert len(subject) <= 70 and subject.isascii()
    assert f"\r\nSubject: {subject}\r\n".encode() in raw  # one line: never folded in the middle
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    assert text_part is not None and html_part is not None
    text, html = text_part.get_content(), html_part.get_content()
    assert max(len(line) for line in text.splitlines()) <= 72, text
    assert "digest_via" in text and "digest_via" in html  # why it came, how to change it
    return message, text, html


def test_email_digest_arrives_as_valid_mime(engine: Engine, known: Known, smtp_server: SmtpServer) -> None:
    _enqueue(engine, known, ["email"])
    smtp = SmtpOptions(host=smtp_server.host, port=smtp_server.port, security="none", from_addr="rapport@x.test")
    assert _deliver(engine, smtp=smtp) == 1

    [mail] = smtp_server.wait_for(1)
    assert mail.rcpt_tos == ["maja@rapport.example"]
    message, text, html = check_digest_mail(mail.data)
    assert message["Subject"] == "Nordics, Sun 22 Nov: 5 new, 2 missed reply time, first reply 2h"
    assert "First reply (median): 2h 00m" in text
    assert "Alice Andersson" in html and "Alice Andersson" in text
    assert "RFC" not in text and "auto_reply" not in text
    # what "waiting" and "open" count is said under the sections that show them (issue 14 point 7:
    # open is waiting for OUR reply; answered conversations wait on the customer and are not counted)
    flat_text, flat_html = " ".join(text.split()), " ".join(html.split())
    waiting = flat_text.index("Waiting for a reply (2, 1 past due)")
    assert flat_text.index("Now: the customer wrote last and has no reply from us yet. Answered conversations, "
                           "waiting on the customer, are not counted.") - waiting < 100  # right under the title
    assert "Open: waiting for our reply now (answered ones, waiting on the customer, are not counted); past due: " \
           "open past the reply time. The rest: this period." in flat_text
    assert "has no reply from us yet" in flat_html and "Open: waiting for our reply now" in flat_html
    with Session(engine) as session:
        figures = compute_digest(session, manager=_maja(session, known), period="day", start=S, end=E,
                                 params=OPTIONS.params, now=NOW)
    blocks = json.dumps(render_digest_blocks(figures, LINKS), ensure_ascii=False)
    assert "has no reply from us yet" in blocks and "Open: waiting for our reply now" in blocks
    assert "1 out-of-office replies" in text or "out-of-office" in text
    related = next(part for part in message.iter_parts() if part.get_content_type() == "multipart/related")
    images = [part for part in related.iter_parts() if part.get_content_type() == "image/png"]
    assert len(images) == 1
    cid = str(images[0]["Content-ID"]).strip("<>")
    assert f'src="cid:{cid}"' in html
    assert 'alt="New conversations per hour: highest' in html
    assert images[0].get_content().startswith(PNG)


def test_email_digest_over_starttls(
    engine: Engine, known: Known, smtp_tls_server: SmtpServer, tls_cert: SelfSignedCert
) -> None:
    _enqueue(engine, known, ["email"])
    smtp = SmtpOptions(host=smtp_tls_server.host, port=smtp_tls_server.port, security="starttls",
                       ca_file=tls_cert.cert_file)
    assert _deliver(engine, smtp=smtp) == 1

    [mail] = smtp_tls_server.wait_for(1)
    assert mail.used_tls
    check_digest_mail(mail.data)


def test_slack_unreachable_the_email_still_arrives_and_slack_is_retried_later(
    engine: Engine, known: Known, fake_slack: FakeSlack, smtp_server: SmtpServer
) -> None:
    _enqueue(engine, known)  # Maja: slack and email, two rows
    smtp = SmtpOptions(host=smtp_server.host, port=smtp_server.port, security="none")
    nowhere = SlackSender(WebClient(token="xoxb-test", base_url=f"http://127.0.0.1:{free_port()}/", timeout=2))
    assert _deliver(engine, slack=nowhere, smtp=smtp) == 1

    assert smtp_server.wait_for(1)[0].rcpt_tos == ["maja@rapport.example"]
    rows = _rows(engine)
    assert rows["digest-email"].status == "sent"
    slack_row = rows["digest-slack"]
    assert (slack_row.status, slack_row.attempts) == ("pending", 1)
    assert slack_row.last_error and slack_row.due_at > NOW  # backs off, then tries again

    client = SlackSender(WebClient(token="xoxb-test", base_url=fake_slack.base_url))
    assert _deliver(engine, slack=client, smtp=smtp, now=NOW + timedelta(minutes=1)) == 1
    [message] = fake_slack.posts("DMAJA")
    assert message["metadata"]["event_payload"]["key"] == slack_row.key
    assert any("Alice Andersson" in json.dumps(block) for block in message["blocks"])
    # a manager acts from the digest: assign a waiting conversation, open a follow-up for a customer
    accessories = [block["accessory"] for block in message["blocks"] if "accessory" in block]
    assigns = [a for a in accessories if a["action_id"] == "conv_reassign"]
    assert len(assigns) == 2  # c10 and c3, waiting for a reply
    assert {o["text"]["text"] for o in assigns[0]["options"]} == {"Alice Andersson", "Bob Berg", "Maja Manager"}
    c3 = known.conversations["c3"].id
    assert f"{c3}:{known.reps['bob'].id}" in {o["value"] for o in assigns[1]["options"]}
    assert any(a["action_id"] == "followup_open" for a in accessories)  # customers worth a call
    assert "slack.com/app_redirect?team=T0TEST" in json.dumps(message["blocks"])
    assert 'digest_via = [\\"slack\\", \\"email\\"]' in json.dumps(message["blocks"][-1])  # why, how to change
    [upload] = fake_slack.calls("files.completeUploadExternal")  # the same chart as the email's
    files = upload.params["files"]
    file_id = (json.loads(files) if isinstance(files, str) else files)[0]["id"]
    assert fake_slack.uploaded(file_id).startswith(PNG)
    assert len(smtp_server.messages) == 1  # the email was not sent again
    assert _rows(engine)["digest-slack"].status == "sent"


def test_a_slack_retry_after_a_crash_does_not_post_twice(
    engine: Engine, known: Known, fake_slack: FakeSlack
) -> None:
    _enqueue(engine, known, ["slack"])
    client = SlackSender(WebClient(token="xoxb-test", base_url=fake_slack.base_url))
    fake_slack.fail_next("files.getUploadURLExternal", status=500)  # posted, then the upload fails
    assert _deliver(engine, slack=client) == 0
    assert (len(fake_slack.posts("DMAJA")), len(fake_slack.shares("DMAJA"))) == (1, 0)
    assert _deliver(engine, slack=client, now=NOW + timedelta(hours=1)) == 1
    # the message was found in the history, not posted again; the chart it lacked was shared
    assert (len(fake_slack.posts("DMAJA")), len(fake_slack.shares("DMAJA"))) == (1, 1)
    assert _deliver(engine, slack=client, now=NOW + timedelta(hours=2)) == 0  # done: nothing more


def _big_team(engine: Engine, known: Known, size: int) -> None:
    with session_scope(engine) as session:
        for i in range(size):
            session.add(Rep(name=f"Rep {i:02d} " + "x" * 40, email=f"rep{i}@rapport.example", team="nordics"))
        evil = session.get(Contact, known.contacts["k1"].id)
        assert evil is not None
        evil.name = "<!channel> Ada & co"


def test_a_large_team_is_split_over_messages_within_slack_limits(
    engine: Engine, known: Known, fake_slack: FakeSlack
) -> None:
    _big_team(engine, known, 250)
    _enqueue(engine, known, ["slack"])
    with Session(engine) as session:
        figures = compute_digest(session, manager=_maja(session, known), period="day", start=S, end=E,
                                 params=OPTIONS.params, now=NOW)
    blocks = render_digest_blocks(figures, LINKS)
    assert len(blocks) > 50
    assert _deliver(engine, slack=SlackSender(WebClient(token="xoxb-test", base_url=fake_slack.base_url))) == 1

    messages = fake_slack.posts("DMAJA")
    assert len(messages) == len(split_blocks(blocks)) == 2
    assert [len(m["blocks"]) for m in messages] == [50, len(blocks) - 50]
    posted = [block for m in messages for block in m["blocks"]]
    assert posted == blocks
    for block in posted:
        if "text" in block and block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
        for field in block.get("fields", []):
            assert len(field["text"]) <= 2000
        assert len(block.get("fields", [])) <= 10
    dumped = json.dumps(posted)
    assert "<!channel>" not in dumped and "&lt;!channel&gt; Ada &amp; co" in dumped


def _count_digests(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(OutboxItem)
                                .where(col(OutboxItem.kind).in_(KINDS))).one())


def test_enqueue_only_from_the_managers_hour_and_once_per_period(engine: Engine, known: Known) -> None:
    maja_hour = NOW.replace(hour=7, minute=0)  # 08:00 in Stockholm
    with session_scope(engine) as session:
        # Ada (admin, 07:00 UTC) and Maja (08:00 Stockholm) are the managers with a digest_via
        assert enqueue_due_digests(session, now=maja_hour - timedelta(minutes=1), options=OPTIONS) == 0
    with session_scope(engine) as session:
        # a row per way: Maja's Slack and email, Ada's email
        assert enqueue_due_digests(session, now=maja_hour, options=OPTIONS) == 3
    with session_scope(engine) as session:
        assert enqueue_due_digests(session, now=maja_hour + timedelta(hours=3), options=OPTIONS) == 0
    with Session(engine) as session:
        keys = set(session.exec(select(OutboxItem.key)).all())
        payload = session.exec(select(OutboxItem.payload).where(OutboxItem.key.contains("maja"))).first()  # type: ignore[attr-defined]
    assert keys == {"digest:maja@rapport.example:day:2026-11-23:slack",
                    "digest:maja@rapport.example:day:2026-11-23:email",
                    "digest:ada@rapport.example:day:2026-11-23:email"}
    assert payload is not None and (payload["start"], payload["end"]) == (S.isoformat(), E.isoformat())
    with session_scope(engine) as session:  # the next day is a new period
        assert enqueue_due_digests(session, now=maja_hour + timedelta(days=1), options=OPTIONS) == 3
    weekly = DigestOptions(period="week", weekday="Tue", params=OPTIONS.params)
    with session_scope(engine) as session:  # 2026-11-23 is a Monday: no weekly digest
        assert enqueue_due_digests(session, now=maja_hour, options=weekly) == 0


def test_two_processes_enqueue_each_digest_once(engine: Engine, known: Known, db_url: str) -> None:
    counts = race(db_url, lambda session: enqueue_due_digests(session, now=NOW, options=OPTIONS))
    assert sum(counts) == 3  # Maja's two rows and Ada's, each enqueued by exactly one of the two
    assert _count_digests(engine) == 3


def test_a_restart_around_the_send_time_sends_once(
    engine: Engine, known: Known, db_url: str, fake_slack: FakeSlack, smtp_server: SmtpServer
) -> None:
    client = WebClient(token="xoxb-test", base_url=fake_slack.base_url)
    smtp = SmtpOptions(host=smtp_server.host, port=smtp_server.port, security="none")

    def scheduler_tick(process: Engine, now: Any) -> None:
        with session_scope(process) as session:
            enqueue_due_digests(session, now=now, options=OPTIONS)
        dispatch(process, digest_handlers(process, slack=SlackSender(client), smtp=smtp, now=NOW), now=now)

    first = make_engine(db_url)
    scheduler_tick(first, NOW)
    first.dispose()  # "restart"
    second = make_engine(db_url)
    scheduler_tick(second, NOW + timedelta(minutes=1))
    scheduler_tick(second, NOW + timedelta(hours=2))
    second.dispose()

    assert len(fake_slack.posts("DMAJA")) == len(fake_slack.shares("DMAJA")) == 1  # Maja: Slack and email
    assert sorted(m.rcpt_tos[0] for m in smtp_server.wait_for(2)) == ["ada@rapport.example",
                                                                       "maja@rapport.example"]
    assert len(smtp_server.messages) == 2
