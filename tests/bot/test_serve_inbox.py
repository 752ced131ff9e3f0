"""`rapport serve` end to end: a new email in the watched mailbox becomes the owner's DM."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from rapport.serve import Service
from store.models import OutboxItem
from store.types import utcnow
from tests.bot.conftest import Clock, make_runtime, seed_contacts
from tests.servers.dovecot import ImapAccount
from tests.servers.fake_slack import FakeSlack


@pytest.fixture
def watching_service(database_url: str, fake_slack: FakeSlack, imap_account: ImapAccount, clock: Clock,
                     model_dir: Path) -> Iterator[Service]:
    rt = make_runtime(
        database_url, fake_slack, imap_host=imap_account.host, imap_port=imap_account.port,
        imap_user=imap_account.user, imap_password=imap_account.password, imap_security="none",
        model_dir=model_dir,
    )
    seed_contacts(rt.create_database())
    svc = Service(rt, host="127.0.0.1", port=0, clock=clock, scheduler_interval=3600)
    svc.start()
    yield svc
    svc.stop()


def _assign_rows(service: Service) -> list[OutboxItem]:
    with Session(service.rt.engine) as session:
        return list(session.exec(select(OutboxItem).where(OutboxItem.kind == "assign-dm")).all())


def test_new_mail_reaches_the_owner_in_slack(watching_service: Service, imap_account: ImapAccount,
                                             fake_slack: FakeSlack) -> None:
    raw = (
        "From: Jan Šťastný <jan.stastny@acme.example>\r\n"
        f"To: {imap_account.user}\r\n"
        "Subject: The toner you sent is the wrong one\r\n"
        f"Date: {format_datetime(utcnow())}\r\n"
        "Message-ID: <toner-1@acme.example>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        "Hello, we ordered black toner for order NS-480744 but got cyan. Please send the right one.\r\n"
    ).encode()
    imap_account.append("INBOX", raw)
    deadline = time.monotonic() + 60  # the model is trained before the service starts (model_dir)
    while not _assign_rows(watching_service):
        assert time.monotonic() < deadline, "the watcher did not ingest the email"
        time.sleep(0.2)
    assert watching_service.scheduler is not None
    watching_service.scheduler.tick(utcnow())
    messages: list[dict[str, Any]] = fake_slack.messages("D0ALICE")
    assert len(messages) == 1
    text = json.dumps(messages[0]["blocks"], ensure_ascii=False)
    assert "The toner you sent is the wrong one" in text and "Acme Corporation" in text
