"""Digest delivery: a real SMTP server (aiosmtpd), the fake Slack Web API, and the
outbox that makes each manager's digest go out once per period."""

from __future__ import annotations

import email
import json
from datetime import timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
from slack_sdk import WebClient
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.blocks import split_blocks
from bot.digest import (
    KIND,
    DigestOptions,
    deliver_digest,
    enqueue_due_digests,
    render_digest_blocks,
)
from bot.email import EmailError, SmtpOptions
from bot.notify import SlackSender
from store.db import make_engine, session_scope
from store.digest import compute_digest
from store.models import Contact, OutboxItem, Rep
from store.outbox import claim_due, job_of, mark_sent
from store.segments import SegmentParams
from tests.digest.known_store import NOW, E, Known, S
from tests.digest.race import race
from tests.servers.fake_slack import FakeSlack
from tests.servers.ports import free_port
from tests.servers.smtp import SmtpServer
from tests.servers.tls import SelfSignedCert

OPTIONS = DigestOptions(params=SegmentParams(top_n=3))
PNG = b"\x89PNG\r\n\x1a\n"


def _maja(session: Session, known: Known) -> Rep:
    rep = session.get(Rep, known.reps["maja"].id)
    assert rep is not None
    return rep


def _enqueue_and_claim(engine: Engine, known: Known) -> OutboxItem:
    with session_scope(engine) as session:
        assert enqueue_due_digests(session, now=NOW, options=OPTIONS, managers=[_maja(session, known)]) == 1
    with session_scope(engine) as session:
        [item] = claim_due(session, [KIND], now=NOW)
    return item


def _parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=default_policy)
    assert isinstance(message, EmailMessage)
    return message


def _check_digest_mail(raw: bytes) -> None:
    message = _parse(raw)
    assert message.get_content_type() == "multipart/alternative"
    assert not message.defects
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    assert "First response: median 2h 00m, p90 7h 48m (5 conversations)" in text.get_content()
    related = next(part for part in message.iter_parts() if part.get_content_type() == "multipart/related")
    images = [part for part in related.iter_parts() if part.get_content_type() == "image/png"]
    assert len(images) == 1
    cid = str(images[0]["Content-ID"]).strip("<>")
    assert f'src="cid:{cid}"' in html.get_content()
    assert images[0].get_content().startswith(PNG)
    assert "Alice Andersson" in html.get_content()


def test_email_digest_arrives_as_valid_mime(engine: Engine, known: Known, smtp_server: SmtpServer) -> None:
    item = _enqueue_and_claim(engine, known)
    smtp = SmtpOptions(host=smtp_server.host, port=smtp_server.port, security="none", from_addr="rapport@x.test")
    with session_scope(engine) as session:
        item.payload = {**item.payload, "via": ["email"]}
        deliver_digest(session, job_of(item), slack=None, smtp=smtp, now=NOW)

    [mail] = smtp_server.wait_for(1)
    assert mail.rcpt_tos == ["maja@rapport.example"]
    _check_digest_mail(mail.data)


def test_email_digest_over_starttls(
    engine: Engine, known: Known, smtp_tls_server: SmtpServer, tls_cert: SelfSignedCert
) -> None:
    item = _enqueue_and_claim(engine, known)
    smtp = SmtpOptions(host=smtp_tls_server.host, port=smtp_tls_server.port, security="starttls",
                       ca_file=tls_cert.cert_file)
    with session_scope(engine) as session:
        item.payload = {**item.payload, "via": ["email"]}
        deliver_digest(session, job_of(item), slack=None, smtp=smtp, now=NOW)

    [mail] = smtp_tls_server.wait_for(1)
    assert mail.used_tls
    _check_digest_mail(mail.data)


def test_slack_and_email_delivery_and_a_retry_after_a_mail_failure(
    engine: Engine, known: Known, fake_slack: FakeSlack, smtp_server: SmtpServer
) -> None:
    client = WebClient(token="xoxb-test", base_url=fake_slack.base_url)
    item = _enqueue_and_claim(engine, known)
    broken_smtp = SmtpOptions(host="127.0.0.1", port=free_port(), security="none", timeout=5)
    with session_scope(engine) as session, pytest.raises(EmailError, match="cannot send mail"):
        deliver_digest(session, job_of(item), slack=SlackSender(client), smtp=broken_smtp, now=NOW)

    [post] = fake_slack.calls("chat.postMessage")
    assert post.params["channel"] == "DMAJA"  # the DM opened with Maja's Slack user
    [message] = fake_slack.messages("DMAJA")
    assert message["metadata"]["event_payload"]["key"] == item.key
    assert any("Alice Andersson" in json.dumps(block) for block in message["blocks"])
    [upload] = fake_slack.calls("files.completeUploadExternal")
    assert upload.params["channel_id"] == "DMAJA"
    files = upload.params["files"]
    file_id = (json.loads(files) if isinstance(files, str) else files)[0]["id"]
    assert fake_slack.uploaded(file_id).startswith(PNG)

    # the dispatcher retries: Slack parts already posted are skipped, the mail goes out
    smtp = SmtpOptions(host=smtp_server.host, port=smtp_server.port, security="none")
    with session_scope(engine) as session:
        deliver_digest(session, job_of(item), slack=SlackSender(client), smtp=smtp, now=NOW)
    assert len(fake_slack.calls("chat.postMessage")) == 1
    assert len(fake_slack.calls("files.completeUploadExternal")) == 1
    assert len(smtp_server.wait_for(1)) == 1


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
    _big_team(engine, known, 60)
    with Session(engine) as session:
        figures = compute_digest(session, manager=_maja(session, known), period="day", start=S, end=E,
                                 params=OPTIONS.params, now=NOW)
    blocks = render_digest_blocks(figures)
    assert len(blocks) > 50
    item = _enqueue_and_claim(engine, known)
    with session_scope(engine) as session:
        item.payload = {**item.payload, "via": ["slack"]}
        slack = SlackSender(WebClient(token="xoxb-test", base_url=fake_slack.base_url))
        deliver_digest(session, job_of(item), slack=slack, smtp=None, now=NOW)

    messages = fake_slack.messages("DMAJA")
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
        return int(session.exec(select(func.count()).select_from(OutboxItem).where(OutboxItem.kind == KIND)).one())


def test_enqueue_only_from_the_managers_hour_and_once_per_period(engine: Engine, known: Known) -> None:
    maja_hour = NOW.replace(hour=7, minute=0)  # 08:00 in Stockholm
    with session_scope(engine) as session:
        # Ada (admin, 07:00 UTC) and Maja (08:00 Stockholm) are the managers with a digest_via
        assert enqueue_due_digests(session, now=maja_hour - timedelta(minutes=1), options=OPTIONS) == 0
    with session_scope(engine) as session:
        assert enqueue_due_digests(session, now=maja_hour, options=OPTIONS) == 2
    with session_scope(engine) as session:
        assert enqueue_due_digests(session, now=maja_hour + timedelta(hours=3), options=OPTIONS) == 0
    with Session(engine) as session:
        keys = set(session.exec(select(OutboxItem.key)).all())
        payload = session.exec(select(OutboxItem.payload).where(OutboxItem.key.contains("maja"))).one()  # type: ignore[attr-defined]
    assert keys == {"digest:maja@rapport.example:day:2026-11-23", "digest:ada@rapport.example:day:2026-11-23"}
    assert (payload["start"], payload["end"]) == (S.isoformat(), E.isoformat())
    with session_scope(engine) as session:  # the next day is a new period
        assert enqueue_due_digests(session, now=maja_hour + timedelta(days=1), options=OPTIONS) == 2
    weekly = DigestOptions(period="week", weekday="Tue", params=OPTIONS.params)
    with session_scope(engine) as session:  # 2026-11-23 is a Monday: no weekly digest
        assert enqueue_due_digests(session, now=maja_hour, options=weekly) == 0


def test_two_processes_enqueue_each_digest_once(engine: Engine, known: Known, db_url: str) -> None:
    counts = race(db_url, lambda session: enqueue_due_digests(session, now=NOW, options=OPTIONS))
    assert sum(counts) == 2  # Maja and Ada, each enqueued by exactly one of the two
    assert _count_digests(engine) == 2


def test_a_restart_around_the_send_time_sends_once(
    engine: Engine, known: Known, db_url: str, fake_slack: FakeSlack, smtp_server: SmtpServer
) -> None:
    client = WebClient(token="xoxb-test", base_url=fake_slack.base_url)
    smtp = SmtpOptions(host=smtp_server.host, port=smtp_server.port, security="none")

    def scheduler_tick(process: Engine, now: Any) -> None:
        with session_scope(process) as session:
            enqueue_due_digests(session, now=now, options=OPTIONS)
        with session_scope(process) as session:
            items = claim_due(session, [KIND], now=now)
        for item in items:
            with session_scope(process) as session:
                deliver_digest(session, job_of(item), slack=SlackSender(client), smtp=smtp, now=NOW)
                mark_sent(session, session.merge(item))

    first = make_engine(db_url)
    scheduler_tick(first, NOW)
    first.dispose()  # "restart"
    second = make_engine(db_url)
    scheduler_tick(second, NOW + timedelta(minutes=1))
    scheduler_tick(second, NOW + timedelta(hours=2))
    second.dispose()

    assert len(fake_slack.messages("DMAJA")) == 1  # Maja: Slack and email
    assert sorted(m.rcpt_tos[0] for m in smtp_server.wait_for(2)) == ["ada@rapport.example",
                                                                       "maja@rapport.example"]
    assert len(smtp_server.messages) == 2
