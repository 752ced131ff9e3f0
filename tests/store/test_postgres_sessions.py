"""How sessions end on PostgreSQL: a read session is READ ONLY there and ends with COMMIT."""

from __future__ import annotations

import pytest
from psycopg.errors import ReadOnlySqlTransaction
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from store.db import read_session, session_scope
from store.models import Rep

# conftest's `engine` on PostgreSQL only
pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("db_url", ["postgres"], indirect=True)]


def test_regression_read_sessions_keep_postgres_prepared_statements(engine: Engine) -> None:
    """Issue 15: psycopg prepares a statement run five times on a connection, and forgets all it
    prepared at a ROLLBACK. Read sessions ended with one, so PostgreSQL planned every query anew:
    most of its work under load."""
    with session_scope(engine) as session:
        session.add(Rep(name="Anna", email="anna@nordlys.example"))
    for _ in range(6):  # one after another, so the pool hands out its one connection each time
        with read_session(engine) as session:
            assert session.exec(select(Rep).where(Rep.email == "anna@nordlys.example")).one().name == "Anna"
    with read_session(engine) as session:
        prepared = session.execute(text("SELECT statement FROM pg_prepared_statements")).scalars().all()
    assert any("FROM rep" in statement for statement in prepared), prepared


def test_a_read_session_cannot_write_on_postgres(engine: Engine) -> None:
    """It ends with COMMIT (above), so PostgreSQL itself must refuse what it would write."""
    with pytest.raises(DBAPIError) as refused, read_session(engine) as session:
        session.add(Rep(name="Bo", email="bo@nordlys.example"))
        session.flush()
    assert isinstance(refused.value.orig, ReadOnlySqlTransaction)
    with read_session(engine) as session:
        assert session.exec(select(Rep)).all() == []


def test_a_connection_back_in_the_pool_is_no_longer_read_only(engine: Engine) -> None:
    with read_session(engine) as session:
        session.exec(select(Rep)).all()
    raw = engine.raw_connection()  # the same pooled connection, taken without SQLAlchemy's begin
    try:
        cursor = raw.cursor()
        cursor.execute("SHOW transaction_read_only")
        assert cursor.fetchone() == ("off",)
    finally:
        raw.close()
