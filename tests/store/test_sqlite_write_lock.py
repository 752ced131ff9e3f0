"""SQLite writers wait for the write lock by trying again every millisecond (store.db), not in
SQLite's busy handler (up to 100 ms between tries); the busy timeout and its error are unchanged."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

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


class _RecoveringOnce(sqlite3.Connection):
    """A connection whose first BEGIN IMMEDIATE meets SQLITE_BUSY_RECOVERY: another connection is
    rebuilding the WAL index (the first opener after a crash) and holds the write lock meanwhile."""

    refused = False

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "BEGIN IMMEDIATE" and not self.refused:
            self.refused = True
            error = sqlite3.OperationalError("database is locked")
            error.sqlite_errorcode = 261  # SQLITE_BUSY_RECOVERY
            error.sqlite_errorname = "SQLITE_BUSY_RECOVERY"
            raise error
        return super().execute(sql, *args)


def test_a_writer_waits_while_another_connection_recovers_the_wal(tmp_path: Path) -> None:
    """SQLite reports a busy lock with an extended code (SQLITE_BUSY_RECOVERY, _SNAPSHOT, ...) that
    its own busy handler retries like SQLITE_BUSY."""
    driver = sqlite3.connect(tmp_path / "recovering.db", isolation_level=None, factory=_RecoveringOnce)
    assert store.db._begin_immediate(driver)
    assert driver.in_transaction
