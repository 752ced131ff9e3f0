"""SQLite writers wait for the write lock by trying again every millisecond (store.db), not in
SQLite's busy handler (up to 100 ms between tries); the busy timeout and its error are unchanged."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import select

import store.db
from store.db import BUSY_MILLISECONDS, make_engine, read_session, session_scope, upgrade
from store.models import Rep


def _engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'lock.db'}")
    upgrade(engine)
    return engine


def _busy_timeout(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.exec_driver_sql("PRAGMA busy_timeout").scalar_one())


def test_a_writer_waiting_for_the_lock_writes_once_the_holder_commits(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    order: list[str] = []

    def write() -> None:
        with session_scope(engine) as session:
            session.add(Rep(name="Ben Waiter", email="ben@nordlys.example"))
            session.flush()  # BEGIN IMMEDIATE
            order.append("waiter holds the lock")

    waiter = threading.Thread(target=write)
    with session_scope(engine) as holder:
        holder.add(Rep(name="Anna Holder", email="anna@nordlys.example"))
        holder.flush()  # BEGIN IMMEDIATE: the waiter's BEGIN is refused until this commits
        waiter.start()
        time.sleep(0.3)
        order.append("holder commits")
    waiter.join(timeout=30)
    assert order == ["holder commits", "waiter holds the lock"]
    with read_session(engine) as session:
        assert sorted(session.exec(select(Rep.name)).all()) == ["Anna Holder", "Ben Waiter"]
    assert _busy_timeout(engine) == BUSY_MILLISECONDS  # readers keep SQLite's own wait


def test_a_writer_still_locked_out_after_the_busy_timeout_gets_the_database_is_locked_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _engine(tmp_path)
    monkeypatch.setattr(store.db, "BUSY_MILLISECONDS", 200)
    with session_scope(engine) as holder:
        holder.add(Rep(name="Anna Holder", email="anna@nordlys.example"))
        holder.flush()
        started = time.monotonic()
        with pytest.raises(OperationalError, match="database is locked"), session_scope(engine) as waiter:
            waiter.add(Rep(name="Ben Waiter", email="ben@nordlys.example"))
        waited = time.monotonic() - started
    assert 0.2 <= waited < 5  # the timeout, not a second one after it
    assert _busy_timeout(engine) == 200
    with read_session(engine) as session:
        assert session.exec(select(Rep.name)).all() == ["Anna Holder"]
