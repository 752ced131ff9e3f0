"""`execute_columns`: a statement of columns run as Core on the session's connection, seeing what
the session has pending as the ORM's autoflush would, and never flushing a read."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from store.audit import Actor, record_audit
from store.db import read_and_append, session_scope
from store.models import AuditEntry, Contact, Rep
from store.owners import owner_id_of


def test_a_change_pending_in_the_session_is_seen(engine: Engine) -> None:
    with session_scope(engine) as session:
        rep = Rep(name="Anna Berg", email="anna@example.test")
        contact = Contact(name="Eva Horváth")
        session.add_all([rep, contact])
        session.flush()
        assert contact.id is not None
        contact.owner_id = rep.id  # pending, not flushed
        assert owner_id_of(session, contact.id) == rep.id


def test_a_read_that_appends_is_not_flushed_by_a_statement_of_columns(engine: Engine) -> None:
    with session_scope(engine) as session:
        contact = Contact(name="Jan Novák")
        session.add(contact)
        session.flush()
        contact_id = contact.id
    assert contact_id is not None
    with read_and_append(engine) as session:
        record_audit(session, Actor("anna@example.test", "slack"), "view", target_kind="contact",
                     target_id=contact_id, contact_id=contact_id)
        # a flush here would be refused (ChangedWhileReading): the entry goes in after the read
        assert owner_id_of(session, contact_id) is None
    with session_scope(engine) as session:
        entries = session.exec(select(AuditEntry).where(col(AuditEntry.target_id) == contact_id)).all()
        assert [entry.action for entry in entries] == ["view"]
