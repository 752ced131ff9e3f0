"""Reading a conversation and replying to the customer from Slack, end to end.

The real Bolt app behind `rapport serve` (signed requests, the fake Web API), a real
Dovecot (the customer's mail arrives in INBOX, the reply is copied to Sent) and a real
SMTP server (aiosmtpd). The customer's mail is ingested through the inbox pipeline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.email import SmtpOptions
from bot.reply import reply_handler
from inbox.imap import sync_mailbox
from inbox.options import IngestOptions
from inbox.sent import sent_folders
from rapport.config import AppConfig, InboxConfig, RepConfig, ReplyConfig
from rapport.serve import Service
from rapport.settings import load_settings
from rapport.wiring import Runtime, mailbox_specs, smtp_options
from store.audit import audit_entries
from store.db import session_scope
from store.models import (
    ContactEmail,
    Conversation,
    ConversationStatus,
    Direction,
    Message,
    OutboxItem,
    OutboxStatus,
)
from store.outbox import MAX_ATTEMPTS, EmailReply, dispatch
from tests.bot.conftest import (
    ALICE,
    BOB,
    DAVE,
    REPS,
    SECRET,
    START,
    Clock,
    Seeded,
    rep_id,
)
from tests.dying_dispatcher import run_until_acted
from tests.inbox.helpers import KeywordClassifier
from tests.servers import slack_requests
from tests.servers.dovecot import ImapAccount
from tests.servers.fake_slack import FakeSlack
from tests.servers.ports import LOOPBACK, free_port
from tests.servers.smtp import SmtpServer

SIGNATURE = "Alice Berg\nNordlys Sales · +46 8 123 45"
CUSTOMER = "jan.stastny@acme.example"


@pytest.fixture
def service(tmp_path: Path, fake_slack: FakeSlack, clock: Clock, imap_account: ImapAccount,
                  smtp_server: SmtpServer) -> Iterator[Service]:
    """`rapport serve` with the mailbox and SMTP configured (the watcher off: tests ingest when they say);
    conftest's engine, seeded, interact and slash fixtures talk to it."""
    fake_slack.add_user("dave@nordlys.example", DAVE)
    fake_slack.allow_mentions(ALICE, BOB, DAVE, "U0CAROL")
    reps = [RepConfig(**{**REPS[0].model_dump(), "signature": SIGNATURE}), *REPS[1:]]
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'rapport.db'}", slack_bot_token="xoxb-test-token",
        slack_signing_secret=SECRET, slack_api_url=fake_slack.base_url, http_port=0,
        config_file=Path("/nonexistent/rapport.toml"), imap_host=imap_account.host, imap_port=imap_account.port,
        imap_user=imap_account.user, imap_password=imap_account.password, imap_security="none",
        smtp_host=smtp_server.host, smtp_port=smtp_server.port, smtp_security="none",
    )
    config = AppConfig(reps=reps, inbox=InboxConfig(sent_folder="Sent"),
                       reply=ReplyConfig(reply_to="sales@nordlys.example"))
    svc = Service(Runtime(settings=settings, config=config), host="127.0.0.1", port=0, clock=clock,
                  scheduler_interval=3600, watch_mailboxes=False)
    svc.start()
    yield svc
    svc.stop()


def ingest(service: Service) -> None:
    """One pass of the inbox pipeline over INBOX and Sent, as the watcher would do."""
    [spec] = mailbox_specs(service.rt)
    sync_mailbox(service.rt.engine, spec, classifier=KeywordClassifier(),
                 options=IngestOptions(own_addresses=(spec.user.lower(),), now=START))


def customer_mail(account: ImapAccount, subject: str, body: str, message_id: str, *, minutes: int = -60,
                  in_reply_to: str | None = None) -> None:
    at = START + timedelta(minutes=minutes)
    threading = f"In-Reply-To: {in_reply_to}\r\nReferences: {in_reply_to}\r\n" if in_reply_to else ""
    raw = (f"From: Jan Šťastný <{CUSTOMER}>\r\nTo: {account.user}\r\nSubject: {subject}\r\n"
           f"Date: {format_datetime(at)}\r\nMessage-ID: {message_id}\r\n{threading}"
           "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n").encode()
    account.append("INBOX", raw, msg_time=at)


def reply_rows(engine: Engine) -> list[OutboxItem]:
    with Session(engine) as session:
        return list(session.exec(select(OutboxItem).where(OutboxItem.kind == EmailReply.kind)).all())


def wait_until_sent(engine: Engine) -> None:
    """The delivery after the submission runs in the app's background thread: wait for its mark."""
    deadline = time.monotonic() + 10
    while not all(row.status == OutboxStatus.sent for row in reply_rows(engine)):
        assert time.monotonic() < deadline, "the reply's outbox row was not marked sent"
        time.sleep(0.05)


def customer_writes(service: Service, account: ImapAccount, subject: str, body: str,
                    message_id: str) -> Conversation:
    """The customer's first mail, ingested: its conversation."""
    customer_mail(account, subject, body, message_id)
    ingest(service)
    return the_conversation(service.rt.engine)


def the_conversation(engine: Engine) -> Conversation:
    with Session(engine) as session:
        return session.exec(select(Conversation)).one()


def opened_view(fake_slack: FakeSlack, method: str = "views.open", count: int = 1) -> dict[str, Any]:
    """The `count`-th view opened (a button's listener opens it after the ack)."""
    params = fake_slack.wait_for(method, count)[count - 1].params
    view = params["view"]
    return json.loads(view) if isinstance(view, str) else view


def click(action_id: str, value: str, **fields: Any) -> dict[str, Any]:
    return slack_requests.block_action_payload(action_id, value, user_id=ALICE, channel_id="D0ALICE", **fields)


def submission(view: dict[str, Any], text: str, signature: str | None) -> dict[str, Any]:
    values = {"text": {"text": {"type": "plain_text_input", "value": text}},
              "signature": {"signature": {"type": "plain_text_input", "value": signature}}}
    return {"type": "view_submission", "team": {"id": "T0TEST"}, "user": {"id": ALICE}, "trigger_id": "1.2.3",
            "view": {**view, "id": "V9", "state": {"values": values}}}


def sent_copies(account: ImapAccount, message_id: str) -> int:
    with account.client() as client:
        client.select_folder("Sent", readonly=True)
        found = len(client.search(["HEADER", "Message-ID", message_id]))
        client.logout()
    return found


# --------------------------------------------------------------------------- replying


def test_reply_from_modal_reaches_smtp_once_lands_in_sent_and_answers(
    service: Service, engine: Engine, seeded: Seeded, interact: Any, fake_slack: FakeSlack,
    imap_account: ImapAccount, smtp_server: SmtpServer, clock: Clock,
) -> None:
    conversation = customer_writes(service, imap_account, "Wrong toner delivered",
                                   "We got cyan instead of black. <!channel>",
                                   "<toner-1@acme.example>")
    assert conversation.id is not None and conversation.status == ConversationStatus.open

    # "Reply" on the assignment DM opens the confirmation: nothing is sent by the click
    assert interact(click("conv_reply", str(conversation.id)))[0] == 200
    view = opened_view(fake_slack)
    shown = json.dumps(view, ensure_ascii=False)
    assert view["submit"]["text"] == "Send to customer"
    assert CUSTOMER in shown and "Re: Wrong toner delivered" in shown and "&lt;!channel&gt;" in shown
    assert view["blocks"][4]["element"]["initial_value"] == SIGNATURE
    assert smtp_server.messages == []

    clock.advance(minutes=30)
    status, body = interact(submission(view, "Sorry about that, black toner is on its way.", SIGNATURE))
    assert status == 200 and body in (b"", b"{}")
    [mail] = smtp_server.wait_for(1)  # `serve` delivers right after the commit
    assert mail.rcpt_tos == [CUSTOMER]
    sent = message_from_bytes(mail.data)
    assert sent["In-Reply-To"] == "<toner-1@acme.example>"
    assert sent["References"] == "<toner-1@acme.example>"
    assert sent["Subject"] == "Re: Wrong toner delivered"
    assert sent["Reply-To"] == "sales@nordlys.example"
    assert imap_account.user in sent["From"] and "Alice Berg" in sent["From"]
    assert "black toner is on its way" in sent.get_payload(decode=True).decode()
    assert "Nordlys Sales" in sent.get_payload(decode=True).decode()
    fake_slack.wait_for("chat.postMessage")  # the rep hears it is on its way
    wait_until_sent(engine)

    with Session(engine) as session:
        reply = session.exec(select(Message).where(Message.direction == Direction.outbound)).one()
        row = session.exec(select(OutboxItem).where(OutboxItem.kind == EmailReply.kind)).one()
        answered = session.get(Conversation, conversation.id)
    assert reply.message_id == sent["Message-ID"]  # made and stored before sending
    assert row.status == OutboxStatus.sent
    assert sent_copies(imap_account, reply.message_id) == 1
    assert answered is not None and answered.status == ConversationStatus.answered
    assert answered.first_response_at == clock.now
    with Session(engine) as session:  # the audit log: who sent which reply, from where
        [entry] = [e for e in audit_entries(session) if e.action == "conversation.reply"]
    assert (entry.actor, entry.via, entry.origin, entry.outcome) == ("alice@nordlys.example", "slack", "slack:U0ALICE",
                                                                     "ok")
    assert (entry.target_kind, entry.target_id, entry.contact_id) == ("conversation", conversation.id,
                                                                      conversation.contact_id)
    assert entry.detail == {"message_id": reply.id} and entry.at == clock.now

    # the watcher reads the Sent copy back: the stored reply, not a second message
    ingest(service)
    with Session(engine) as session:
        assert len(session.exec(select(Message).where(Message.direction == Direction.outbound)).all()) == 1

    # the customer answers the reply: the same conversation, open again
    customer_mail(imap_account, "Re: Wrong toner delivered", "Thanks! When will it arrive?",
                  "<toner-2@acme.example>", minutes=60, in_reply_to=reply.message_id)
    ingest(service)
    with Session(engine) as session:
        conversations = session.exec(select(Conversation)).all()
        followup = session.exec(select(Message).where(Message.message_id == "<toner-2@acme.example>")).one()
    assert len(conversations) == 1 and followup.conversation_id == conversation.id
    assert conversations[0].status == ConversationStatus.open


def test_sigkill_between_send_and_mark_then_a_restart_sends_nothing_twice(
    service: Service, engine: Engine, seeded: Seeded, interact: Any, fake_slack: FakeSlack,
    imap_account: ImapAccount, smtp_server: SmtpServer, clock: Clock, tmp_path: Path,
) -> None:
    """The real dispatcher in a child process sends and copies to Sent, then dies before marking the row."""
    service.slack.after_reply = None  # type: ignore[union-attr]  # deliver only when this test says
    conversation = customer_writes(service, imap_account, "Invoice question", "Is the invoice final?",
                                   "<inv-1@acme.example>")
    interact(click("conv_reply", str(conversation.id)))
    view = opened_view(fake_slack)
    clock.advance(minutes=5)
    interact(submission(view, "Yes, it is final.", None))
    fake_slack.wait_for("chat.postMessage")
    [row] = reply_rows(engine)

    run_until_acted(tmp_path / "acted", service.rt.settings.database_url, clock.now, "mail", smtp_server.host,
                    smtp_server.port, imap_account.host, imap_account.port, imap_account.user, imap_account.password)
    assert len(smtp_server.wait_for(1)) == 1
    assert reply_rows(engine)[0].status == OutboxStatus.pending  # killed before the mark

    # the restarted process claims the row once its lease ran out, and finds the copy in Sent
    [spec] = mailbox_specs(service.rt)
    handler = reply_handler(engine, smtp=smtp_options(service.rt.settings), open_sent=sent_folders([spec]))
    assert dispatch(engine, [handler], now=clock.advance(minutes=10)) == 1
    [done] = reply_rows(engine)
    assert (done.id, done.status, done.payload["result"]) == (row.id, OutboxStatus.sent, {"already_sent": True})
    assert len(smtp_server.messages) == 1
    with Session(engine) as session:
        reply = session.exec(select(Message).where(Message.direction == Direction.outbound)).one()
    assert sent_copies(imap_account, reply.message_id) == 1


def test_reply_refused_to_a_bouncing_address_and_to_automatic_mail(
    service: Service, engine: Engine, seeded: Seeded, interact: Any, fake_slack: FakeSlack,
    imap_account: ImapAccount, smtp_server: SmtpServer,
) -> None:
    conversation = customer_writes(service, imap_account, "Delivery date", "When does the parcel come?",
                                   "<d-1@acme.example>")
    with session_scope(engine) as session:
        address = session.exec(select(ContactEmail).where(ContactEmail.email == CUSTOMER)).one()
        address.bouncing, address.bounced_at = True, START
        session.add(address)
    interact(click("conv_reply", str(conversation.id)))
    view = opened_view(fake_slack)
    assert "submit" not in view
    assert f"Mail to {CUSTOMER} bounces since 23 Nov 2026" in json.dumps(view, ensure_ascii=False)

    with session_scope(engine) as session:
        address = session.exec(select(ContactEmail).where(ContactEmail.email == CUSTOMER)).one()
        address.bouncing = False
        session.add(address)
        message = session.exec(select(Message)).one()
        message.is_automatic, message.automatic_reason = True, "Auto-Submitted: auto-replied"
        session.add(message)
    # the modal was open before the mail turned out automatic: the submission is refused too
    _, body = interact(submission({"type": "modal", "callback_id": "email_reply", "private_metadata":
                                        json.dumps({"conversation_id": conversation.id, "answering": message.id})},
                                       "Hello", None))
    answer = json.loads(body)
    assert answer["response_action"] == "errors"
    assert "automatic (Auto-Submitted: auto-replied)" in answer["errors"]["text"]
    assert reply_rows(engine) == []
    assert smtp_server.messages == []


def test_crm_reply_asks_for_confirmation_before_sending(
    service: Service, engine: Engine, seeded: Seeded, fake_slack: FakeSlack, imap_account: ImapAccount,
    smtp_server: SmtpServer, slash: Any,
) -> None:
    conversation = customer_writes(service, imap_account, "Quote please", "Please send a quote for 20 units.",
                                   "<q-1@acme.example>")
    assert slash(f"reply #{conversation.id} The quote is attached.")[0] == 200
    view = opened_view(fake_slack)
    assert view["callback_id"] == "email_reply" and view["submit"]["text"] == "Send to customer"
    assert view["blocks"][3]["element"]["initial_value"] == "The quote is attached."
    assert smtp_server.messages == []
    assert reply_rows(engine) == []


# --------------------------------------------------------------------------- reading


def test_show_conversation_in_order_escaped_folded_with_attachments_and_pages(
    service: Service, engine: Engine, seeded: Seeded, interact: Any, fake_slack: FakeSlack,
) -> None:
    with session_scope(engine) as session:
        conversation = Conversation(subject="Long <b>thread</b>", contact_id=seeded.jan, opened_at=START,
                                    owner_id=None)
        session.add(conversation)
        session.flush()
        assert conversation.id is not None
        for i in range(11):
            outbound = i % 2 == 1
            session.add(Message(
                conversation_id=conversation.id, contact_id=seeded.jan, message_id=f"<long-{i}@x>",
                direction=Direction.outbound if outbound else Direction.inbound,
                from_email="support@nordlys.example" if outbound else CUSTOMER,
                from_name="Alice Berg" if outbound else "Jan Šťastný", to=[CUSTOMER] if outbound else [],
                subject="Long thread", received_at=START + timedelta(hours=i), new_text=f"message number {i} <!here>",
                text=f"message number {i} <!here>\n\n> earlier\n> quoted\n> lines",
                attachments=[{"name": "offer.pdf", "content_type": "application/pdf", "size": 12_800}] if i == 10
                else []))
        conversation_id = conversation.id
    assert interact(click("conv_thread", str(conversation_id)))[0] == 200
    newest = opened_view(fake_slack)
    text = json.dumps(newest, ensure_ascii=False)
    assert "Long &lt;b&gt;thread&lt;/b&gt;" in text and "<!here>" not in text and "&lt;!here&gt;" in text
    shown = [i for i in range(11) if f"message number {i} " in text]
    assert shown == [3, 4, 5, 6, 7, 8, 9, 10]  # the newest page, oldest first
    assert text.index("message number 3") < text.index("message number 10")
    assert "*Sent* by Alice Berg" in text and "*Received* from Jan Šťastný" in text
    assert "Quoted history folded (3 lines)" in text and "offer.pdf (12 KB)" in text
    assert "Messages 4–11 of 11" in text

    older = next(e for b in newest["blocks"] if b.get("block_id") == "thread_pages" for e in b["elements"])
    assert older["text"]["text"] == "Older messages"
    page = click("thread_page", older["value"])
    page["container"], page["view"] = {"type": "view", "view_id": "V5"}, {"id": "V5", "type": "modal"}
    assert interact(page)[0] == 200
    first = opened_view(fake_slack, "views.update")
    assert fake_slack.calls("views.update")[-1].params["view_id"] == "V5"
    text = json.dumps(first, ensure_ascii=False)
    assert [i for i in range(11) if f"message number {i} " in text] == [0, 1, 2]


def test_crm_thread_by_contact_and_show_buttons_on_home_and_card(
    service: Service, engine: Engine, seeded: Seeded, interact: Any, fake_slack: FakeSlack,
    imap_account: ImapAccount, slash: Any,
) -> None:
    conversation = customer_writes(service, imap_account, "Delivery date", "When does the parcel come?",
                                   "<d-2@acme.example>")
    assert slash("thread stastny")[0] == 200
    view = opened_view(fake_slack)
    assert view["callback_id"] == "conversation_thread"
    assert "When does the parcel come?" in json.dumps(view, ensure_ascii=False)

    # a rep of another team may not read it
    slash(f"thread #{conversation.id}", user=DAVE)
    assert "not yours to see" in json.dumps(opened_view(fake_slack, count=2), ensure_ascii=False)

    # "Show conversation" on App Home rows
    service.slack.publish_home({rep_id(engine, "alice@nordlys.example")})  # type: ignore[union-attr]
    home = fake_slack.wait_for("views.publish")[-1].params["view"]
    home = json.loads(home) if isinstance(home, str) else home
    buttons = [b["accessory"] for b in home["blocks"] if b.get("accessory", {}).get("action_id") == "conv_thread"]
    assert [b["value"] for b in buttons] == [str(conversation.id)]

    # and on the contact card
    interact(click("contact_open", str(seeded.jan)))
    card = opened_view(fake_slack, count=3)
    assert any(b.get("accessory", {}).get("action_id") == "conv_thread" for b in card["blocks"])
    with Session(engine) as session:
        assert session.exec(select(Message).where(col(Message.direction) == Direction.outbound)).first() is None


def test_a_reply_that_cannot_leave_shows_in_the_conversation_with_the_reason(
    service: Service, engine: Engine, seeded: Seeded, interact: Any, fake_slack: FakeSlack,
    imap_account: ImapAccount, clock: Clock,
) -> None:
    service.slack.after_reply = None  # type: ignore[union-attr]  # delivered below, to a mail server that is down
    conversation = customer_writes(service, imap_account, "Invoice copy", "Please resend the invoice.",
                                   "<inv-9@acme.example>")
    interact(click("conv_reply", str(conversation.id)))
    view = opened_view(fake_slack)
    interact(submission(view, "Attached again.", None))
    fake_slack.wait_for("chat.postMessage")

    def shown() -> str:
        count = len(fake_slack.calls("views.open")) + 1
        interact(click("conv_thread", str(conversation.id)))
        return json.dumps(opened_view(fake_slack, count=count), ensure_ascii=False)

    assert "*sending…*" in shown()
    [spec] = mailbox_specs(service.rt)
    down = SmtpOptions(host=LOOPBACK, port=free_port(), security="none")  # nothing listens there
    handler = reply_handler(engine, smtp=down, open_sent=sent_folders([spec]))
    dispatch(engine, [handler], now=clock.advance(minutes=1))
    assert "sending… (retrying: EmailError: cannot send mail via" in shown()
    for _ in range(MAX_ATTEMPTS):
        dispatch(engine, [handler], now=clock.advance(hours=2))
    assert reply_rows(engine)[0].status == OutboxStatus.failed
    assert "NOT SENT: EmailError: cannot send mail via" in shown()
