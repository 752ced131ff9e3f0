"""The audit log is appended to, never edited; it is filtered by person, actor and time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from store.audit import Actor, AppendOnly, audit_entries, pseudonymise, record_audit
from store.db import read_session, session_scope
from store.models import AuditEntry

AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ANNA = Actor("anna@nordlys.example", "slack", "slack:U1 in D1")


def test_entries_cannot_be_changed_or_deleted(engine: Engine) -> None:
    with session_scope(engine) as session:
        record_audit(session, ANNA, "card.view", target_kind="contact", target_id=7, contact_id=7, at=AT)
    for change in ("edit", "delete"):
        with pytest.raises(AppendOnly), session_scope(engine) as session:
            entry = session.exec(select(AuditEntry)).one()
            if change == "edit":
                entry.actor = "someone.else@nordlys.example"
                session.add(entry)
            else:
                session.delete(entry)
    with read_session(engine) as session:
        entry = session.exec(select(AuditEntry)).one()
        assert (entry.actor, entry.action, entry.contact_id) == ("anna@nordlys.example", "card.view", 7)


def test_filters_and_the_erasures_pseudonym(engine: Engine) -> None:
    with session_scope(engine) as session:
        record_audit(session, ANNA, "card.view", target_kind="contact", target_id=7, contact_id=7, at=AT)
        record_audit(session, Actor.cli(), "privacy.export", target_kind="contact", target_id=7, contact_id=7,
                     at=AT + timedelta(days=2))
        record_audit(session, ANNA, "card.view", target_kind="contact", target_id=8, contact_id=8, at=AT)
    with session_scope(engine) as session:
        assert pseudonymise(session, 7, "f" * 64) == 2
    with read_session(engine) as session:
        erased = audit_entries(session, person_hashes=["f" * 64])
        assert [(e.action, e.contact_id, e.target_id) for e in erased] == [("card.view", None, None),
                                                                         ("privacy.export", None, None)]
        assert [e.contact_id for e in audit_entries(session, actor="anna@nordlys.example")] == [None, 8]
        assert [e.action for e in audit_entries(session, since=AT + timedelta(days=1))] == ["privacy.export"]
        assert [e.contact_id for e in audit_entries(session, contact_ids=[8])] == [8]


def test_the_database_refuses_changes_to_entries_too(engine: Engine) -> None:
    """Below the ORM (a bulk statement, another tool): triggers keep the log append-only."""
    with session_scope(engine) as session:
        record_audit(session, ANNA, "card.view", target_kind="contact", target_id=7, contact_id=7, at=AT)
    for statement in (update(AuditEntry).values(action="nothing.happened"), delete(AuditEntry)):
        with pytest.raises(DBAPIError, match="never changed or deleted"), session_scope(engine) as session:
            session.execute(statement)
    with session_scope(engine) as session:  # what an erasure does is allowed
        assert pseudonymise(session, 7, "e" * 64) == 1
    with read_session(engine) as session:
        entry = session.exec(select(AuditEntry)).one()
        assert (entry.action, entry.contact_id, entry.person_hash) == ("card.view", None, "e" * 64)
