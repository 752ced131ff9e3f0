"""`read_and_append`: a read whose new rows are inserted after it; a change to a row read is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from store.audit import Actor, record_audit
from store.db import ChangedWhileReading, read_and_append, read_session, session_scope
from store.models import AuditEntry, Rep

AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ANNA = Actor("anna@nordlys.example", "slack", "slack:U1 in D1")


def _entries(engine: Engine) -> list[AuditEntry]:
    with read_session(engine) as session:
        return list(session.exec(select(AuditEntry)).all())


def test_new_rows_are_inserted_after_the_read(engine: Engine) -> None:
    with read_and_append(engine) as session:
        entry = record_audit(session, ANNA, "card.view", target_kind="contact", target_id=7, contact_id=7, at=AT)
        assert session.exec(select(AuditEntry)).all() == []  # nothing is flushed in the read
    assert entry.id is not None  # usable after the block, with the id it was given
    assert [(e.id, e.action, e.target_id) for e in _entries(engine)] == [(entry.id, "card.view", 7)]


def test_a_change_to_a_row_read_is_refused_and_nothing_is_written(engine: Engine) -> None:
    with session_scope(engine) as session:
        session.add(Rep(name="Anna Berg", email="anna@nordlys.example"))
    with pytest.raises(ChangedWhileReading, match="Rep"), read_and_append(engine) as session:
        rep = session.exec(select(Rep)).one()
        rep.team = "sales"
        session.add(rep)
        record_audit(session, ANNA, "card.view", at=AT)
    with read_session(engine) as session:
        assert session.exec(select(Rep.team)).one() is None
    assert _entries(engine) == []
