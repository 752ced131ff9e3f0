"""`rapport demo` end to end: the sample goes in through the real importer and pipeline, and
everything the demo promises shows up in the terminal and in the store."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from rich.console import Console
from sqlmodel import Session, col, func, select

from rapport.demo import plan_demo, run_demo, shift_mail
from store.db import make_engine
from store.models import Assignment, Contact, Conversation, Message, OutboxItem, OutboxStatus


def test_the_demo_files_assigns_notifies_and_digests(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAPPORT_MODEL_DIR", str(model_dir))
    console = Console(record=True, width=160)
    folder = tmp_path / "demo"
    run_demo(console, folder, full_notifications=2, today=date(2026, 11, 25))
    output = console.export_text()

    engine = make_engine(f"sqlite:///{folder / 'rapport.db'}")
    with Session(engine) as session:
        messages = session.exec(select(func.count()).select_from(Message)).one()
        assert messages == 54  # 48 in INBOX, 6 in Sent: each exactly once
        automatic = session.exec(select(Message).where(col(Message.is_automatic))).all()
        assert len(automatic) == 3  # the out-of-office, the bounce and the newsletter
        human = session.exec(select(Conversation).where(~col(Conversation.is_automatic))).all()
        assert human and all(c.owner_id is not None or c.queue for c in human)
        # every human conversation has an assignment with a reason a person can read
        for conversation in human:
            reasons = session.exec(select(Assignment.reason).where(Assignment.conversation_id == conversation.id)).all()
            assert reasons and all(len(r) > 10 for r in reasons)
        assert session.exec(select(func.count()).select_from(Contact)).one() > 40  # new senders became contacts
        undelivered = session.exec(
            select(func.count()).select_from(OutboxItem).where(
                OutboxItem.status == OutboxStatus.pending, col(OutboxItem.kind).in_(["assign-dm"])
            )
        ).one()
        assert undelivered == 0
    assert "Slack DM to" in output
    assert "Weekly digest for" in output
    assert "notifications delivered from the outbox" in output


def test_the_sample_dates_move_by_whole_weeks_to_the_latest_friday() -> None:
    plan = plan_demo(Path("x"), today=date(2026, 12, 2))  # a Wednesday
    assert plan.shift.days == 7 and plan.clock.date() == date(2026, 11, 27)
    raw = b"From: a@b.example\r\nDate: Fri, 20 Nov 2026 10:30:19 +0100\r\nSubject: x\r\n\r\nbody\r\n"
    assert b"Date: Fri, 27 Nov 2026 10:30:19 +0100\r\n" in shift_mail(raw, plan.shift)
    assert shift_mail(b"no date header\r\n\r\n", plan.shift) == b"no date header\r\n\r\n"
