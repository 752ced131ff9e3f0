"""`read_and_append`: a read whose new rows are inserted after it; a change to a row read is refused."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import event, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from store.audit import Actor, audit_values, record_audit
from store.db import (
    ChangedWhileReading,
    append_rows,
    make_engine,
    read_and_append,
    read_session,
    session_scope,
    upgrade,
)
from store.models import AuditEntry, Rep

AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ANNA = Actor("anna@nordlys.example", "slack", "slack:U1 in D1")
AUDIT = AuditEntry.__table__  # type: ignore[attr-defined]
_ENTRY = audit_values(ANNA, "card.view", at=AT)


def _entries(engine: Engine) -> list[AuditEntry]:
    with read_session(engine) as session:
        return list(session.exec(select(AuditEntry)).all())


def test_new_rows_are_inserted_after_the_read(engine: Engine) -> None:
    with read_and_append(engine) as session:
        record_audit(session, ANNA, "card.view", target_kind="contact", target_id=7, contact_id=7, at=AT)
        assert session.exec(select(AuditEntry)).all() == []  # nothing is written in the read
    assert [(e.action, e.target_id, e.at) for e in _entries(engine)] == [("card.view", 7, AT)]


def test_an_entry_recorded_in_a_plain_read_session_is_refused_not_lost(engine: Engine) -> None:
    """A read session's writes are refused by PostgreSQL (READ ONLY) and dropped by SQLite at its
    end: an audit entry there is a bug, said at once."""
    with pytest.raises(ChangedWhileReading, match="audit"), read_session(engine) as session:
        record_audit(session, ANNA, "card.view", at=AT)
    assert _entries(engine) == []


def test_an_object_added_in_the_read_is_refused_as_a_change(engine: Engine) -> None:
    """New rows are appended as rows (`append_rows`); an object added would be a write nobody
    asked for, or one silently dropped."""
    with pytest.raises(ChangedWhileReading, match="Rep"), read_and_append(engine) as session:
        session.add(Rep(name="Anna Berg", email="anna@nordlys.example"))
        record_audit(session, ANNA, "card.view", at=AT)
    with read_session(engine) as session:
        assert session.exec(select(Rep)).all() == []
    assert _entries(engine) == []


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


def test_a_statement_or_a_flush_that_writes_in_the_read_is_refused_and_nothing_is_written(engine: Engine) -> None:
    """On PostgreSQL the read is no READ ONLY transaction (its new rows end it), and on SQLite a
    write in it would vanish when it ends: both refuse it the same way."""
    with session_scope(engine) as session:
        session.add(Rep(name="Anna Berg", email="anna@nordlys.example"))
    with pytest.raises(ChangedWhileReading, match="writes"), read_and_append(engine) as session:
        session.execute(update(Rep).values(team="sales"))
    with pytest.raises(ChangedWhileReading, match="flush"), read_and_append(engine) as session:
        rep = session.exec(select(Rep)).one()
        rep.team = "sales"
        session.flush()
    with read_session(engine) as session:
        assert session.exec(select(Rep.team)).one() is None
    assert _entries(engine) == []


def _append_in_threads(engine: Engine, rows: list[dict[str, object]]) -> list[BaseException | None]:
    """Each audit row appended by a thread of its own while SQLite's write lock is held, then freed."""
    outcomes: list[BaseException | None] = [None] * len(rows)

    def append(index: int) -> None:
        try:
            with read_and_append(engine) as session:
                append_rows(session, AUDIT, [rows[index]])
        except BaseException as error:
            outcomes[index] = error

    threads = [threading.Thread(target=append, args=(i,)) for i in range(len(rows))]
    with session_scope(engine) as holder:
        holder.add(Rep(name="Lock Holder", email="holder@nordlys.example"))
        holder.flush()  # BEGIN IMMEDIATE: the appends queue behind this transaction
        for thread in threads:
            thread.start()
        time.sleep(0.5)
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


def test_rows_appended_while_a_writer_holds_sqlite_go_in_together_once_it_is_done(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'append.db'}")
    upgrade(engine)
    commits: list[str] = []
    event.listen(engine, "commit", lambda _conn: commits.append(threading.current_thread().name))
    outcomes = _append_in_threads(engine, [{**_ENTRY, "target_kind": "contact", "target_id": i} for i in range(10)])
    assert outcomes == [None] * 10
    assert sorted(e.target_id or 0 for e in _entries(engine)) == list(range(10))
    assert 1 <= commits.count("rapport-append") < 10  # one asker for the lock, not ten


def test_a_bad_row_fails_its_own_caller_only_when_it_shares_a_commit(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'append.db'}")
    upgrade(engine)
    outcomes = _append_in_threads(engine, [_ENTRY, {**_ENTRY, "actor": None}, _ENTRY])  # an entry names its actor
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], IntegrityError)
    assert len(_entries(engine)) == 2
