"""Retention ([privacy.retention_days]): old bodies and attachment lists go in batches, rows and counts stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import col, func, select

from bot.notify import ConsoleSender
from bot.scheduler import Scheduler
from store.db import read_session, session_scope
from store.models import Message
from store.privacy import Retention, expire_old_data, privacy_status
from store.validation import CATEGORIES

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def add_messages(engine: Engine, count: int, *, age_days: int, tag: str) -> None:
    with session_scope(engine) as session:
        for i in range(count):
            session.add(Message(message_id=f"<{tag}-{i}@x>", subject=f"{tag} {i}", text=f"body {tag} {i}",
                                new_text=f"body {tag} {i}", received_at=NOW - timedelta(days=age_days, minutes=i),
                                attachments=[{"name": f"{tag}-{i}.pdf", "content_type": "application/pdf",
                                              "size": 10}]))


def holding(engine: Engine) -> tuple[int, int, int]:
    """(messages, messages with a body, messages with an attachment list)."""
    with read_session(engine) as session:
        rows = session.exec(select(Message)).all()
        return len(rows), sum(1 for m in rows if m.text), sum(1 for m in rows if m.attachments)


def test_old_bodies_go_in_batches_and_the_rows_stay(engine: Engine) -> None:
    add_messages(engine, 5, age_days=400, tag="old")
    add_messages(engine, 2, age_days=10, tag="new")
    policy = Retention(message_bodies=365, attachment_metadata=30)
    done, finished = expire_old_data(engine, policy, now=NOW, batch=2, max_batches=2)
    assert (done, finished) == ({"message_bodies": 4}, False)  # two batches of two, then it stops for now
    assert holding(engine) == (7, 3, 7)
    done, finished = expire_old_data(engine, policy, now=NOW, batch=2)
    assert (done, finished) == ({"message_bodies": 1, "attachment_metadata": 5}, True)
    assert holding(engine) == (7, 2, 2)  # the two recent mails keep everything
    with read_session(engine) as session:
        old = session.exec(select(Message).where(col(Message.subject).startswith("old"))).all()
        assert {(m.text, m.new_text, tuple(m.attachments)) for m in old} == {("", "", ())}
        state = privacy_status(session, policy, None)
    bodies, attachments = state.kinds
    assert (bodies.kind, bodies.keep_days, bodies.held) == ("message_bodies", 365, 2)
    assert bodies.oldest is not None and bodies.oldest >= NOW - timedelta(days=11)
    assert (attachments.held, state.messages) == (2, 7)


def test_the_scheduler_applies_retention_once_a_day(engine: Engine) -> None:
    add_messages(engine, 3, age_days=400, tag="old")
    scheduler = Scheduler(engine, ConsoleSender(), retention=Retention(message_bodies=365), categories=CATEGORIES)
    assert scheduler.tick(NOW).expired == 3
    add_messages(engine, 2, age_days=400, tag="later")
    assert scheduler.tick(NOW + timedelta(hours=1)).expired == 0  # done for today
    assert scheduler.tick(NOW + timedelta(days=1)).expired == 2
    with read_session(engine) as session:
        assert session.exec(select(func.count()).select_from(Message).where(Message.text != "")).one() == 0
