"""Satisfaction surveys end to end: `rapport serve` (scheduler, /csat links, Slack) with real Dovecot,
a real SMTP server on loopback, the fake Slack, on SQLite and PostgreSQL.

An answered conversation stays quiet, one survey mail goes out; a reply "4 – quick help, thanks"
records the score and comment without opening work; a link click records once; a 2 makes a
follow-up for the owner and a DM to the manager; an "unsubscribe me" withdraws marketing consent
and tells the owner; the card's consent menu is for the owner and managers only.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from inbox.imap import sync_mailbox
from inbox.options import IngestOptions
from rapport.config import AppConfig, SurveyConfig
from rapport.serve import Service
from rapport.settings import load_settings
from rapport.wiring import Runtime
from store.audit import SCHEDULER, audit_entries
from store.consent import record_consent, withdraw_consent
from store.db import session_scope
from store.models import (
    Activity,
    Assignment,
    Consent,
    Contact,
    Conversation,
    FollowUp,
    Message,
    OutboxItem,
    Survey,
)
from store.outbox import dispatch
from store.surveys import enqueue_due_surveys
from tests.bot.conftest import ALICE, BOB, CAROL, REPS, SECRET, START, Clock, Seeded, seed_contacts
from tests.dying_dispatcher import run_until_acted
from tests.inbox.helpers import KeywordClassifier, mail, spec_for
from tests.servers import slack_requests
from tests.servers.dovecot import ImapAccount
from tests.servers.fake_slack import FakeSlack
from tests.servers.smtp import SmtpServer

JAN = "jan.stastny@acme.example"
CSAT_SECRET = "test-csat-secret-0123456789"


@pytest.fixture
def database_url(db_url: str) -> str:
    """These scenarios run on SQLite and on PostgreSQL."""
    return db_url


@pytest.fixture
def service(database_url: str, fake_slack: FakeSlack, clock: Clock, smtp_server: SmtpServer,
            imap_account: ImapAccount) -> Iterator[Service]:
    """`rapport serve` with surveys on: SMTP on loopback, links to its own HTTP port."""
    fake_slack.add_user("alice@nordlys.example", ALICE)
    fake_slack.allow_mentions(ALICE, BOB, CAROL)
    settings = load_settings(
        database_url=database_url, slack_bot_token="xoxb-test-token", slack_signing_secret=SECRET,
        slack_api_url=fake_slack.base_url, http_port=0, config_file=Path("/nonexistent/rapport.toml"),
        smtp_host=smtp_server.host, smtp_port=smtp_server.port, smtp_security="none",
        smtp_from="rapport@nordlys.example", imap_user=imap_account.user, csat_secret=CSAT_SECRET,
        public_url="http://127.0.0.1:1",  # replaced below, once the port is known
    )
    config = AppConfig(reps=REPS, survey=SurveyConfig(enabled=True, quiet_days=3))
    svc = Service(Runtime(settings=settings, config=config), host="127.0.0.1", port=0, clock=clock,
                  scheduler_interval=3600, watch_mailboxes=False)
    svc.start()
    assert svc.http is not None and svc.scheduler is not None and svc.scheduler.surveys is not None
    svc.scheduler.surveys = _with_url(svc.scheduler.surveys, f"http://127.0.0.1:{svc.http.port}")
    yield svc
    svc.stop()


def _with_url(options: Any, url: str) -> Any:
    from dataclasses import replace

    return replace(options, public_url=url)


@pytest.fixture
def engine(service: Service) -> Engine:
    return service.rt.engine


@pytest.fixture
def seeded(engine: Engine) -> Seeded:
    seeded = seed_contacts(engine)
    with session_scope(engine) as session:
        jan = session.get(Contact, seeded.jan)
        assert jan is not None
        record_consent(session, jan, "survey", source="import", at=START - timedelta(days=60), note_activity=False,
                       actor=SCHEDULER)
    return seeded


def append(account: ImapAccount, folder: str, **fields: Any) -> None:
    """A mail APPENDed with its Date as the server's arrival time (what the inbox reads as received)."""
    at = fields.get("date", START)
    account.append(folder, mail(**fields), msg_time=at)


def sync(engine: Engine, account: ImapAccount, now: datetime) -> None:
    options = IngestOptions(now=now, own_addresses=(account.user,))
    sync_mailbox(engine, spec_for(account), options=options, classifier=KeywordClassifier())


def answered_conversation(engine: Engine, account: ImapAccount, *, subject: str = "Parcel NS-480744 is late",
                          n: int = 1) -> int:
    """Jan asks, Alice answers by mail (INBOX and Sent on Dovecot), the inbox reads both."""
    append(account, "INBOX", sender=JAN, subject=subject, body="Where is my parcel? The delivery is late.",
           message_id=f"<q{n}@acme.example>", date=START)
    append(account, "Sent", sender="alice@nordlys.example", to=JAN, subject=f"Re: {subject}",
           body="It leaves today, sorry for the wait.", message_id=f"<r{n}@nordlys.example>",
           in_reply_to=f"<q{n}@acme.example>", date=START + timedelta(hours=1))
    sync(engine, account, START + timedelta(hours=1))
    with Session(engine) as session:
        conversation = session.exec(select(Conversation).where(Conversation.subject == subject)).one()
        assert conversation.status == "answered" and conversation.id is not None
        return conversation.id


def survey_mails(smtp: SmtpServer) -> list[EmailMessage]:
    return [message_from_bytes(m.data, policy=policy.default) for m in smtp.messages]  # type: ignore[misc]


def the_survey(engine: Engine) -> Survey:
    with Session(engine) as session:
        return session.exec(select(Survey)).one()


def count(engine: Engine, model: Any, *where: Any) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(model).where(*where)).one())


def link(mail_: EmailMessage, score: int) -> str:
    body = mail_.get_body(preferencelist=("plain",))
    assert body is not None
    found = re.search(rf"^  {score}: (http://\S+)", body.get_content(), re.M)
    assert found, "the survey has one-click links"
    return found.group(1)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_survey_goes_out_once_and_a_reply_records_the_score_without_new_work(
    service: Service, engine: Engine, seeded: Seeded, smtp_server: SmtpServer, imap_account: ImapAccount,
) -> None:
    conversation_id = answered_conversation(engine, imap_account)
    scheduler = service.scheduler
    assert scheduler is not None
    assert scheduler.tick(START + timedelta(days=2)).surveys == 0  # not quiet long enough
    assert scheduler.tick(START + timedelta(days=3, hours=2)).surveys == 1
    scheduler.tick(START + timedelta(days=4))
    scheduler.tick(START + timedelta(days=9))
    [sent] = survey_mails(smtp_server)  # once, however many ticks
    survey = the_survey(engine)
    assert survey.conversation_id == conversation_id and survey.email == JAN
    assert sent["To"] == JAN and sent["Message-ID"] == survey.message_id
    assert f"[CSAT-{survey.ref}]" in sent["Subject"] and sent["Reply-To"] == imap_account.user
    assert "Reply to this email with a number from 1" in sent.get_body(preferencelist=("plain",)).get_content()
    assignments = count(engine, Assignment)

    append(imap_account, "INBOX",
           sender=JAN, subject=f"Re: {sent['Subject']}", message_id="<csat-reply@acme.example>",
           in_reply_to=survey.message_id, date=START + timedelta(days=4),
           body=f"4 – quick help, thanks\n\nOn Mon, 23 Nov 2026 at 11:00, Rapport <rapport@nordlys.example> wrote:\n> {sent['Subject']}\n> Reply with a number")
    sync(engine, imap_account, START + timedelta(days=4))

    survey = the_survey(engine)
    assert (survey.score, survey.comment, survey.answered_via) == (4, "quick help, thanks", "reply")
    with Session(engine) as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None and conversation.status == "answered"  # not reopened
        reply = session.exec(select(Message).where(Message.message_id == "<csat-reply@acme.example>")).one()
        assert reply.conversation_id == conversation_id and survey.reply_message_id == reply.id
    assert count(engine, Conversation) == 1 and count(engine, Assignment) == assignments  # no new work
    assert count(engine, FollowUp, FollowUp.source == "survey") == 0
    assert count(engine, OutboxItem, OutboxItem.kind == "low-score") == 0


def test_reply_recognised_by_the_subject_token_when_threading_headers_are_lost(
    service: Service, engine: Engine, seeded: Seeded, smtp_server: SmtpServer, imap_account: ImapAccount,
) -> None:
    answered_conversation(engine, imap_account)
    assert service.scheduler is not None
    service.scheduler.tick(START + timedelta(days=3, hours=2))
    [sent] = survey_mails(smtp_server)
    append(imap_account, "INBOX", sender=JAN, subject=f"AW: {sent['Subject']}", body="5",
           message_id="<no-headers@acme.example>", date=START + timedelta(days=4))
    sync(engine, imap_account, START + timedelta(days=4))
    assert the_survey(engine).score == 5 and count(engine, Conversation) == 1


def test_link_click_records_once_and_a_low_score_tells_owner_and_manager(
    service: Service, engine: Engine, seeded: Seeded, smtp_server: SmtpServer, imap_account: ImapAccount,
    fake_slack: FakeSlack, clock: Clock, slash: Callable[..., tuple[int, dict[str, Any]]],
) -> None:
    answered_conversation(engine, imap_account)
    assert service.scheduler is not None
    service.scheduler.tick(START + timedelta(days=3, hours=2))
    [sent] = survey_mails(smtp_server)
    clock.now = START + timedelta(days=4)

    status, page = get(link(sent, 2))
    assert status == 200 and "We recorded your answer: 2 of 5" in page
    status, page = get(link(sent, 2))
    assert status == 200 and "already recorded" in page  # a second click: recorded once
    status, page = get(link(sent, 5))
    assert status == 200 and "already recorded" in page
    survey = the_survey(engine)
    assert (survey.score, survey.answered_via) == (2, "link")

    with Session(engine) as session:
        [followup] = session.exec(select(FollowUp).where(FollowUp.source == "survey")).all()
        assert followup.rep_id == survey.rep_id and followup.source == "survey" and "2/5" in followup.note
    service.scheduler.tick(clock.now + timedelta(minutes=1))
    carol = " ".join(str(m.get("text")) for m in fake_slack.messages("D0CAROL"))
    assert "Unhappy customer" in carol and "2/5" in carol  # the manager's DM
    alice = " ".join(str(m.get("text")) for m in fake_slack.messages("D0ALICE"))
    assert "Follow-up due" in alice  # the owner's follow-up reminds them
    status, answer = slash(f"find {JAN}")
    assert status == 200 and "*Satisfaction*\\n2/5" in json.dumps(answer["blocks"], ensure_ascii=False)


def test_altered_or_expired_links_record_nothing(
    service: Service, engine: Engine, seeded: Seeded, smtp_server: SmtpServer, imap_account: ImapAccount,
    clock: Clock,
) -> None:
    answered_conversation(engine, imap_account)
    assert service.scheduler is not None
    service.scheduler.tick(START + timedelta(days=3, hours=2))
    [sent] = survey_mails(smtp_server)
    url = link(sent, 5)
    token = url.split("/")[-2]
    ref, expiry, signature = token.split(".")
    forged = url.replace(token, f"{ref}.{int(expiry) + 86400 * 365}.{signature}")  # a longer life, same signature
    assert get(forged)[0] == 404
    assert get(url.replace(token, f"{ref}.{expiry}.{'A' * len(signature)}"))[0] == 404
    clock.now = START + timedelta(days=40)  # past the 30 days the link works
    status, page = get(url)
    assert status == 404 and "expired" in page
    assert the_survey(engine).score is None


def test_no_survey_to_a_contact_who_opted_out(
    service: Service, engine: Engine, seeded: Seeded, smtp_server: SmtpServer, imap_account: ImapAccount,
) -> None:
    answered_conversation(engine, imap_account)
    with session_scope(engine) as session:
        consent = session.exec(select(Consent).where(Consent.contact_id == seeded.jan,
                                                     Consent.purpose == "survey")).one()
        consent.withdrawn_at = START + timedelta(hours=2)
        session.add(consent)
    assert service.scheduler is not None
    assert service.scheduler.tick(START + timedelta(days=3, hours=2)).surveys == 0
    service.scheduler.tick(START + timedelta(days=8))
    assert smtp_server.messages == [] and count(engine, Survey) == 0


def test_no_survey_mail_when_consent_is_withdrawn_after_it_was_queued(
    service: Service, engine: Engine, seeded: Seeded, smtp_server: SmtpServer, imap_account: ImapAccount,
) -> None:
    answered_conversation(engine, imap_account)
    assert service.scheduler is not None and service.scheduler.surveys is not None
    due = START + timedelta(days=3, hours=2)
    with session_scope(engine) as session:
        assert enqueue_due_surveys(session, now=due, policy=service.scheduler.surveys.policy) == 1
        jan = session.get(Contact, seeded.jan)
        assert jan is not None
        withdraw_consent(session, jan, "survey", source="slack", at=due, actor=SCHEDULER)
    service.scheduler.tick(due + timedelta(minutes=1))
    assert smtp_server.messages == []
    with Session(engine) as session:
        row = session.exec(select(OutboxItem).where(OutboxItem.kind == "survey")).one()
        assert row.status == "sent" and row.payload["result"] == {"skipped": True}


def test_unsubscribe_mail_withdraws_marketing_consent_and_tells_the_owner(
    service: Service, engine: Engine, seeded: Seeded, imap_account: ImapAccount, fake_slack: FakeSlack,
) -> None:
    append(imap_account, "INBOX",
           sender=JAN, subject="Avregistrering från nyhetsbrev", message_id="<unsub@acme.example>", date=START,
           body="Hej,\nvi beställer inte längre från er. Ta gärna bort mig\nfrån era nyhetsbrev och kampanjutskick.")
    sync(engine, imap_account, START)
    with Session(engine) as session:
        consent = session.exec(select(Consent).where(Consent.contact_id == seeded.jan,
                                                     Consent.purpose == "marketing")).one()
        assert consent.withdrawn_at == START and consent.source == "email"
        notes = session.exec(select(Activity.summary).where(Activity.contact_id == seeded.jan)).all()
        assert "Consent for marketing withdrawn (source: email)" in notes
        [entry] = [e for e in audit_entries(session, contact_ids=[seeded.jan])  # Rapport's inbox, for the mail
                   if e.action == "consent.change" and e.via != "scheduler"]  # not the setup's
    assert (entry.action, entry.actor, entry.via, entry.detail) == (
        "consent.change", "rapport", "inbox", {"purpose": "marketing", "change": "withdraw", "source": "email"})
    assert service.scheduler is not None
    service.scheduler.tick(START + timedelta(minutes=1))
    alice = " ".join(str(m.get("text")) for m in fake_slack.messages("D0ALICE"))
    assert "unsubscribed from marketing" in alice


def test_consent_changed_from_the_card_by_owner_or_manager_only(
    service: Service, engine: Engine, seeded: Seeded, interact: Callable[[dict[str, Any]], tuple[int, bytes]],
    fake_slack: FakeSlack,
) -> None:
    def choose(user: str, value: str) -> None:
        payload = slack_requests.block_action_payload("consent_change", user_id=user, block_id=f"card:{seeded.jan}")
        payload["actions"][0] |= {"type": "static_select", "selected_option": {
            "text": {"type": "plain_text", "text": value}, "value": value}}
        assert interact(payload)[0] == 200

    def marketing() -> Consent:
        with Session(engine) as session:
            return session.exec(select(Consent).where(Consent.contact_id == seeded.jan,
                                                      Consent.purpose == "marketing")).one()

    choose(BOB, f"{seeded.jan}:marketing:withdraw")  # same team, but not the owner: refused
    fake_slack.wait_for("chat.postEphemeral")
    assert marketing().withdrawn_at is None
    choose(ALICE, f"{seeded.jan}:marketing:withdraw")  # the owner
    fake_slack.wait_for("chat.update")
    assert marketing().withdrawn_at is not None and marketing().source == "slack"
    choose(CAROL, f"{seeded.jan}:marketing:give")  # a manager
    fake_slack.wait_for("chat.update", count=2)
    assert marketing().withdrawn_at is None
    with Session(engine) as session:
        notes = session.exec(select(Activity).where(Activity.contact_id == seeded.jan)
                             .order_by(col(Activity.id))).all()
    assert [n.summary.split(" (")[0] for n in notes][-2:] == ["Consent for marketing withdrawn",
                                                              "Consent for marketing given"]
    with Session(engine) as session:  # each change and the refusal are in the audit log, by whom and from where
        entries = [e for e in audit_entries(session, contact_ids=[seeded.jan])
                   if e.action == "consent.change" and e.via == "slack"]
    assert [(e.actor, e.origin, e.outcome, e.detail["change"]) for e in entries] == [
        ("bob@nordlys.example", f"slack:{BOB} in C0GENERAL", "refused", "withdraw"),
        ("alice@nordlys.example", f"slack:{ALICE} in C0GENERAL", "ok", "withdraw"),
        ("carol@nordlys.example", f"slack:{CAROL} in C0GENERAL", "ok", "give"),
    ]


def test_socket_mode_serves_the_survey_links_on_an_http_port_of_their_own(
    database_url: str, fake_slack: FakeSlack, fake_socket_mode: Any, clock: Clock,
) -> None:
    from tests.bot.conftest import make_runtime

    rt = make_runtime(database_url, fake_slack, slack_app_token="xapp-test-token", slack_signing_secret=None,
                      public_url="https://rapport.example", csat_secret=CSAT_SECRET)
    svc = Service(rt, host="127.0.0.1", port=0, clock=clock, scheduler_interval=3600, watch_mailboxes=False)
    svc.start()
    try:
        assert svc.http is not None
        base = f"http://127.0.0.1:{svc.http.port}"
        assert get(f"{base}/healthz")[0] == 200
        assert get(f"{base}/slack/events")[0] == 404  # Slack comes over the websocket
        status, page = get(f"{base}/csat/0123456789ab.9999999999.{'x' * 24}/3")
        assert status == 404 and "not valid" in page
    finally:
        svc.stop()


def test_regression_a_survey_sent_before_a_crash_is_not_sent_again(
    service: Service, engine: Engine, seeded: Seeded, smtp_server: SmtpServer, imap_account: ImapAccount,
    database_url: str, tmp_path: Path,
) -> None:
    """SMTP gives no receipt: killed (SIGKILL) after sending and before marking its row, the dispatcher
    sent the survey again on restart. The copy in the shared mailbox's Sent folder is the record."""
    from dataclasses import replace

    from bot.surveys import survey_mail_handler
    from inbox.sent import sent_folders

    answered_conversation(engine, imap_account)
    scheduler = service.scheduler
    assert scheduler is not None and scheduler.surveys is not None
    options = replace(scheduler.surveys, open_sent=sent_folders([spec_for(imap_account)]))
    at = START + timedelta(days=3, hours=2)
    with session_scope(engine) as session:
        assert enqueue_due_surveys(session, now=at, policy=options.policy) == 1
    run_until_acted(tmp_path / "acted", database_url, at, "mail", smtp_server.host, smtp_server.port,
                    imap_account.host, imap_account.port, imap_account.user, imap_account.password)
    assert len(survey_mails(smtp_server)) == 1

    # the restarted process claims the row once its lease ran out, and finds the copy in Sent
    assert dispatch(engine, [survey_mail_handler(engine, options)], now=at + timedelta(minutes=3)) == 1
    with Session(engine) as session:
        row = session.exec(select(OutboxItem).where(OutboxItem.kind == "survey")).one()
    assert (row.status, row.attempts, row.payload["result"]) == ("sent", 2, {"already_sent": JAN})
    assert len(survey_mails(smtp_server)) == 1
    client = imap_account.client()
    client.select_folder("Sent", readonly=True)
    assert len(client.search(["HEADER", "Message-ID", the_survey(engine).message_id])) == 1
