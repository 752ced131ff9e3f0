"""Killed between the side effect and the mark, each kind is done as promised: a Slack kind once (the
retry finds its post or file share by the row's key), a digest email at most twice, as one mail."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.digest import DigestOptions, enqueue_due_digests
from bot.email import SmtpOptions, outbox_message_id
from bot.notify import SlackSender, dispatch_outbox
from bot.scheduler import enqueue_reminders
from store.db import session_scope
from store.models import Consent, FollowUp, OutboxItem, Rep, Survey
from store.outbox import (
    BacklogSummary,
    ConsentWithdrawn,
    LowScore,
    Nudge,
    PrivacyExport,
    SlaEscalation,
    enqueue,
    mark_sent,
)
from store.validation import CATEGORIES
from tests.bot.conftest import START, Seeded, add_assigned_email, rep_id
from tests.dying_dispatcher import run_until_acted
from tests.servers.fake_slack import FakeSlack
from tests.servers.smtp import SmtpServer


def _backlog(engine: Engine, seeded: Seeded) -> None:
    with session_scope(engine) as session:
        enqueue(session, BacklogSummary("support@nordlys.example", "INBOX", 3, {"queue:triage": 3},
                                        "2026-01-02", "2026-11-19", since="1"), now=START)


def _followup(engine: Engine, seeded: Seeded) -> FollowUp:
    with session_scope(engine) as session:
        followup = FollowUp(contact_id=seeded.jan, rep_id=rep_id(engine, "alice@nordlys.example"),
                            due_at=START - timedelta(minutes=1), note="Call Jan about the toner")
        session.add(followup)
        session.flush()
        session.expunge(followup)
        return followup


def _reminder(engine: Engine, seeded: Seeded) -> None:
    _followup(engine, seeded)
    with session_scope(engine) as session:
        assert enqueue_reminders(session, START)


def _nudge(engine: Engine, seeded: Seeded) -> None:
    followup = _followup(engine, seeded)
    assert followup.id is not None
    with session_scope(engine) as session:
        enqueue(session, Nudge(followup.id, START.date().isoformat()), now=START)


def _escalation(engine: Engine, seeded: Seeded) -> None:
    conversation_id, key = add_assigned_email(engine, owner_email="alice@nordlys.example", contact_id=seeded.jan,
                                              subject="Late", text="Nobody answered.",
                                              at=START - timedelta(hours=9))
    with session_scope(engine) as session:
        mark_sent(session, session.exec(select(OutboxItem).where(OutboxItem.key == key)).one())
        enqueue(session, SlaEscalation(conversation_id), now=START)


def _digest(engine: Engine, seeded: Seeded, via: str = "slack") -> None:
    with session_scope(engine) as session:
        carol = session.exec(select(Rep).where(Rep.email == "carol@nordlys.example")).one()
        carol.digest_via = [via]
        session.add(carol)
        assert enqueue_due_digests(session, now=START, options=DigestOptions(), managers=[carol]) == 1


def _consent_withdrawn(engine: Engine, seeded: Seeded) -> None:
    with session_scope(engine) as session:
        consent = session.exec(select(Consent).where(Consent.contact_id == seeded.jan,
                                                     Consent.purpose == "marketing")).first()
        consent = consent or Consent(contact_id=seeded.jan, purpose="marketing", basis="consent")
        consent.withdrawn_at = START
        session.add(consent)
        session.flush()
        assert consent.id is not None
        enqueue(session, ConsentWithdrawn(consent.id, START.isoformat()), now=START)


def _low_score(engine: Engine, seeded: Seeded) -> None:
    conversation_id, key = add_assigned_email(engine, owner_email="alice@nordlys.example", contact_id=seeded.jan,
                                              subject="Toner", text="Thanks.", at=START - timedelta(days=4))
    alice = rep_id(engine, "alice@nordlys.example")
    with session_scope(engine) as session:
        mark_sent(session, session.exec(select(OutboxItem).where(OutboxItem.key == key)).one())
        survey = Survey(conversation_id=conversation_id, contact_id=seeded.jan,
                        rep_id=alice, email="jan.stastny@acme.example",
                        ref="crashref0001", message_id="<csat.crashref0001@nordlys.example>",
                        sent_at=START - timedelta(days=1), expires_at=START + timedelta(days=29), score=2,
                        answered_at=START, answered_via="link")
        session.add(survey)
        session.flush()
        assert survey.id is not None
        enqueue(session, LowScore(survey.id), now=START)


def _privacy_export(engine: Engine, seeded: Seeded) -> None:
    with session_scope(engine) as session:
        enqueue(session, PrivacyExport("crashrequest", seeded.jan, rep_id(engine, "carol@nordlys.example")), now=START)


def _effects(slack: FakeSlack, key: str) -> list[Any]:
    """Every post and upload this row caused (a row with several recipients suffixes its key)."""
    posts = [c for c in slack.calls("chat.postMessage") if f'"{key}' in json.dumps(c.params.get("metadata"))]
    return posts + slack.calls("files.completeUploadExternal")


@pytest.mark.parametrize("write", [_backlog, _reminder, _nudge, _escalation, _digest, _consent_withdrawn, _low_score,
                                   _privacy_export],
                         ids=["backlog-summary", "reminder", "nudge", "sla-escalation", "digest", "consent-withdrawn",
                              "low-score", "privacy-export"])
def test_killed_between_act_and_mark_each_kind_is_done_once(
    engine: Engine, seeded: Seeded, fake_slack: FakeSlack, database_url: str, tmp_path: Path,
    write: Callable[[Engine, Seeded], None],
) -> None:
    write(engine, seeded)
    with Session(engine) as session:
        [row] = session.exec(select(OutboxItem).where(OutboxItem.status == "pending")).all()
    run_until_acted(tmp_path / "acted", database_url, START, "slack", fake_slack.base_url)
    effects = _effects(fake_slack, row.key)
    assert effects, "the dispatcher acted before it was killed"

    sender = SlackSender(WebClient(token="xoxb-test-token", base_url=fake_slack.base_url))
    assert dispatch_outbox(engine, sender, now=START + timedelta(minutes=3), categories=CATEGORIES) == 1
    assert len(_effects(fake_slack, row.key)) == len(effects)
    with Session(engine) as session:
        again = session.get(OutboxItem, row.id)
        assert again is not None and again.status == "sent" and again.attempts == 2


def test_killed_between_sending_a_digest_email_and_the_mark_it_repeats_once_as_the_same_mail(
    engine: Engine, seeded: Seeded, fake_slack: FakeSlack, smtp_server: SmtpServer, database_url: str,
    tmp_path: Path,
) -> None:
    """SMTP gives no receipt and no Sent folder keeps Rapport's digests (docs/architecture.md), so the
    retry sends again: the same mail (one Message-ID, from the row's key), and then the row is done."""
    _digest(engine, seeded, via="email")
    with Session(engine) as session:
        [row] = session.exec(select(OutboxItem).where(OutboxItem.status == "pending")).all()
    run_until_acted(tmp_path / "acted", database_url, START, "slack", fake_slack.base_url, smtp_server.host,
                    smtp_server.port)
    assert len(smtp_server.wait_for(1)) == 1, "the dispatcher sent the digest before it was killed"

    smtp = SmtpOptions(host=smtp_server.host, port=smtp_server.port, security="none")
    sender = SlackSender(WebClient(token="xoxb-test-token", base_url=fake_slack.base_url))
    assert dispatch_outbox(engine, sender, smtp=smtp, now=START + timedelta(minutes=3), categories=CATEGORIES) == 1
    mails = smtp_server.wait_for(2)
    assert [mail.rcpt_tos for mail in mails] == [["carol@nordlys.example"]] * 2
    assert {message_from_bytes(mail.data)["Message-ID"] for mail in mails} == {
        outbox_message_id(row.key, smtp.from_addr)}
    assert dispatch_outbox(engine, sender, smtp=smtp, now=START + timedelta(hours=1), categories=CATEGORIES) == 0
    assert len(smtp_server.messages) == 2
    with Session(engine) as session:
        again = session.get(OutboxItem, row.id)
        assert again is not None and again.status == "sent" and again.attempts == 2
