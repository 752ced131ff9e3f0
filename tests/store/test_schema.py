"""The migrations build exactly the schema that store/models.py describes, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

import store.models  # noqa: F401  (registers every table)
from store.db import current_revision, head_revision, session_scope
from store.models import Contact, ContactEmail
from store.types import utcnow


def test_migrations_match_the_models(engine: Engine) -> None:
    assert current_revision(engine) == head_revision(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == [], "store/models.py changed without a migration: run scripts/new-migration"


def test_times_come_back_aware_utc(engine: Engine) -> None:
    now = utcnow()
    with session_scope(engine) as session:
        session.add(Contact(name="Tim Zone", created_at=now))
    with Session(engine) as session:
        contact = session.exec(select(Contact)).one()
        assert contact.created_at == now and contact.created_at.tzinfo is not None


def test_an_email_address_belongs_to_one_contact(engine: Engine) -> None:
    import pytest
    from sqlalchemy.exc import IntegrityError

    with session_scope(engine) as session:
        a, b = Contact(name="A"), Contact(name="B")
        session.add_all([a, b])
        session.flush()
        session.add(ContactEmail(contact_id=a.id, email="same@x.example"))  # type: ignore[arg-type]
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        session.add(ContactEmail(contact_id=b.id, email="same@x.example"))  # type: ignore[arg-type]
