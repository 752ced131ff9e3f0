"""The migrations build exactly the schema that store/models.py describes, on both databases."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

import store.models  # noqa: F401  (registers every table)
from store.db import _alembic_config, current_revision, head_revision, session_scope, upgrade
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


def test_the_name_key_migration_keys_the_companies_already_there(engine: Engine) -> None:
    # the imports find a company by its name_key: one left empty would be duplicated by the next import
    command.downgrade(_alembic_config(engine), "f07272ce991e")
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO company (name, kind, created_at, updated_at) "
                                "VALUES ('Östgöta Kök AB', 'customer', '2025-01-01', '2025-01-01')"))
    upgrade(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT name_key FROM company")).scalar_one() == "östgöta kök ab"
