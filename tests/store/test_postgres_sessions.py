"""How sessions begin and end on PostgreSQL: a read session is READ ONLY there and ends with
COMMIT; a read and the rows it appends are one transaction; a connection that sat idle in the
pool is checked before use."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from psycopg import ProgrammingError
from psycopg.errors import ReadOnlySqlTransaction
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from store.audit import Actor, record_audit
from store.db import make_engine, read_and_append, read_session, session_scope
from store.models import AuditEntry, Rep

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


def test_regression_a_read_and_the_rows_it_appends_are_one_transaction(engine: Engine) -> None:
    """Issue 15: the audit entry of a card viewed went to another thread's transaction, as SQLite
    needs: two transactions and a hand-over per card or search, 7-9 % of their CPU."""
    commits: list[str] = []
    event.listen(engine, "commit", lambda _connection: commits.append(threading.current_thread().name))
    with read_and_append(engine) as session:
        assert session.exec(select(Rep)).all() == []
        record_audit(session, Actor("anna@nordlys.example", "slack", "slack:U1 in D1"), "card.view",
                     at=datetime(2026, 12, 6, 9, 0, tzinfo=UTC))
    assert commits == [threading.current_thread().name]
    with read_session(engine) as session:
        assert session.exec(select(AuditEntry.action)).all() == ["card.view"]


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


def _count_pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The pings that will be sent on `engine`, whichever listener sends them."""
    pings: list[object] = []
    ping = engine.dialect.do_ping

    def counting(dbapi_connection: Any) -> bool:
        pings.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counting)
    return pings


@pytest.fixture
def pinged(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    yield _count_pings(engine, monkeypatch)


def _backend_pid(engine: Engine) -> int:
    with read_session(engine) as session:
        return int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(db_url: str, pid: int) -> None:
    """Close a server connection as a restart or an idle timeout would, from another engine."""
    other = make_engine(db_url)
    try:
        with other.connect() as connection:
            assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    finally:
        other.dispose()


def test_a_connection_closed_while_idle_in_the_pool_is_replaced_before_use(db_url: str) -> None:
    """What pre-ping is for: a server restart, a failover or an idle timeout closes pooled
    connections while nobody uses them; the next request must not fail on one."""
    engine = make_engine(db_url, ping_after_idle=0.2)
    try:
        pid = _backend_pid(engine)
        _terminate(db_url, pid)
        time.sleep(0.3)
        assert _backend_pid(engine) != pid  # a new connection, and no error
    finally:
        engine.dispose()


def test_regression_a_connection_back_from_use_moments_ago_is_not_pinged(engine: Engine, pinged: list[object]
                                                                          ) -> None:
    """Issue 15: a ping per session was a twelfth of a worker's CPU under load."""
    for _ in range(5):
        with read_session(engine) as session:
            session.exec(select(Rep)).all()
    assert len(pinged) <= 1  # the first checkout may find a connection the migrations left idle


def test_a_new_connection_is_not_pinged_and_an_idle_one_is(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine(db_url, ping_after_idle=0.2)
    pings = _count_pings(engine, monkeypatch)
    try:
        first = _backend_pid(engine)
        assert pings == []  # connected a moment ago
        time.sleep(0.3)
        assert _backend_pid(engine) == first and len(pings) == 1
    finally:
        engine.dispose()


def test_after_a_restart_every_pooled_connection_is_replaced_without_an_error(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart closes every connection in the pool: the first ping that fails invalidates them
    all, so no request fails and none waits for a ping per dead connection."""
    engine = make_engine(db_url, ping_after_idle=0.2)
    pings = _count_pings(engine, monkeypatch)
    try:
        sessions = [read_session(engine) for _ in range(3)]
        pids = set()
        for opened in sessions:  # three connections at once, so the pool keeps three
            session = opened.__enter__()
            pids.add(int(session.execute(text("SELECT pg_backend_pid()")).scalar_one()))
        for opened in sessions:
            opened.__exit__(None, None, None)
        for pid in pids:
            _terminate(db_url, pid)
        time.sleep(0.3)
        pings.clear()
        after = {_backend_pid(engine) for _ in range(3)}
        assert not after & pids
        assert len(pings) == 1  # the first found the restart; the others were replaced unasked
    finally:
        engine.dispose()


def test_a_ping_that_fails_for_another_reason_than_a_closed_connection_is_raised(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a closed connection is replaced; any other error is the caller's to see."""
    engine = make_engine(db_url, ping_after_idle=0.0)
    try:
        _backend_pid(engine)

        def failing(_dbapi_connection: Any) -> bool:
            raise ProgrammingError("not a disconnect")

        monkeypatch.setattr(engine.dialect, "do_ping", failing)
        with pytest.raises(DBAPIError) as raised, read_session(engine) as session:
            session.execute(text("SELECT 1"))
        assert isinstance(raised.value.orig, ProgrammingError) and not raised.value.connection_invalidated
    finally:
        engine.dispose()
