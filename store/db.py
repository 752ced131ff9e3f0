"""Engine, sessions and schema upgrades for SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import weakref
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from itertools import groupby
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, ColumnElement, String, Table, any_, bindparam, event, func, insert, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Engine, Result
from sqlalchemy.exc import DBAPIError, InvalidatePoolError
from sqlalchemy.orm import ORMExecuteState
from sqlalchemy.sql import Executable
from sqlalchemy.types import NullType
from sqlmodel import Session, SQLModel, create_engine

log = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "sqlite:///rapport.db"
READ_ONLY_OPTION = "rapport_readonly"  # the execution option that marks a read session's engine
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


PING_AFTER_IDLE_SECONDS = 1.0  # a server restart or failover takes longer: every connection it closed is checked
_IDLE_SINCE = "rapport_idle_since"  # in a pooled connection's info: when it went back to the pool
BUSY_MILLISECONDS = 10_000  # how long a writer waits for SQLite's write lock before "database is locked"
WRITE_LOCK_RETRY_SECONDS = 0.001


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (Slack handlers) run while the watcher writes; foreign
    # keys are off by default in SQLite; the busy timeout turns lock clashes
    # between our own processes into short waits instead of errors.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_MILLISECONDS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _reads_only(bind: Connection | Engine) -> bool:
    return bool(bind.get_execution_options().get(READ_ONLY_OPTION, False))


def _sqlite_begin(connection: Any) -> None:
    # Readers stay deferred: under WAL they never wait for a writer.
    if _reads_only(connection):
        connection.exec_driver_sql("BEGIN")
        return
    driver: sqlite3.Connection = connection.connection.driver_connection
    driver.execute("PRAGMA busy_timeout=0")
    try:
        if not _begin_immediate(driver):
            # still locked: one more try, without waiting, raises the error as SQLAlchemy wraps it
            connection.exec_driver_sql("BEGIN IMMEDIATE")
    finally:
        driver.execute(f"PRAGMA busy_timeout={BUSY_MILLISECONDS}")


def _begin_immediate(driver: sqlite3.Connection) -> bool:
    """BEGIN IMMEDIATE, tried every millisecond while another writer holds the lock; False after
    the busy timeout or on another error. SQLite's own busy handler sleeps up to 100 ms between
    tries: under load a request's audit row waited long after the inbox's batch had committed,
    and often lost the lock to the next batch (issue 15)."""
    deadline = time.monotonic() + BUSY_MILLISECONDS / 1000
    while True:
        try:
            driver.execute("BEGIN IMMEDIATE")
            return True
        except sqlite3.OperationalError as error:
            # the whole BUSY family, as SQLite's busy handler: SQLITE_BUSY_RECOVERY while another
            # connection rebuilds the WAL index after a crash
            if error.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                return False
        time.sleep(WRITE_LOCK_RETRY_SECONDS)


def make_engine(url: str = DEFAULT_DATABASE_URL, *, echo: bool = False,
                ping_after_idle: float = PING_AFTER_IDLE_SECONDS) -> Engine:
    """An engine for `url` with Rapport's connection settings applied; on PostgreSQL a connection
    idle in the pool for `ping_after_idle` seconds is checked before use."""
    if url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgres://")
    elif url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        # isolation_level=None stops pysqlite from managing transactions itself: left
        # to it, a SAVEPOINT opens no transaction and its RELEASE commits, so a
        # rolled-back import or outbox savepoint would stick. We emit BEGIN
        # ourselves; IMMEDIATE takes the write lock up front, so two writers
        # queue on the busy timeout instead of failing with "database is locked".
        engine = create_engine(
            url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30, "isolation_level": None}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    # 10 kept, not the default 5: a worker's request threads use more at once under load, and each
    # connection beyond the kept ones is opened and closed again per use (a new PostgreSQL backend)
    engine = create_engine(url, echo=echo, pool_size=10, max_overflow=5)
    event.listen(engine, "begin", _postgres_begin)
    event.listen(engine, "checkin", _postgres_checkin)
    event.listen(engine, "connect", _stamp_idle)
    event.listen(engine, "checkout", partial(_ping_if_idle, engine.dialect, ping_after_idle))
    return engine


def _ping_if_idle(dialect: Any, idle_seconds: float, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """SQLAlchemy's pre-ping, for a connection that sat in the pool `idle_seconds` or more: a
    restarted or failed-over server, an idle timeout or a dropped link closes connections while
    nobody uses them, and one found closed invalidates the pool (the pool then connects anew, as
    after its own pre-ping). A connection back from use moments ago was working then: pinging it
    too cost a round trip per session, a twelfth of a worker's CPU under load (issue 15)."""
    if time.monotonic() - record.info.get(_IDLE_SINCE, 0.0) < idle_seconds:
        return
    try:
        dialect.do_ping(dbapi_connection)
    except dialect.loaded_dbapi.Error as error:
        if not dialect.is_disconnect(error, dbapi_connection, None):
            raise
        raise InvalidatePoolError(f"a pooled connection no longer answers: {error}") from error


def _stamp_idle(_dbapi_connection: Any, record: Any, *_: Any) -> None:
    # at check-in, and at connect: a connection just made needs no ping either
    record.info[_IDLE_SINCE] = time.monotonic()


def _postgres_begin(connection: Any) -> None:
    # psycopg sends BEGIN READ ONLY for a read session: PostgreSQL itself refuses its writes, so
    # `read_session` may end it with COMMIT
    connection.connection.driver_connection.read_only = _reads_only(connection)


def _postgres_checkin(dbapi_connection: Any, record: Any) -> None:
    # back to the server's default for whoever takes the connection without SQLAlchemy's begin
    from psycopg.pq import TransactionStatus  # only PostgreSQL's engines get here

    _stamp_idle(dbapi_connection, record)
    if dbapi_connection is not None and dbapi_connection.info.transaction_status == TransactionStatus.IDLE:
        dbapi_connection.read_only = None


def is_read_only(session: Session) -> bool:
    """The session came from `read_session`: whatever it writes is thrown away."""
    return _reads_only(session.get_bind())


@contextmanager
def session_scope(bind: Engine | Connection) -> Iterator[Session]:
    """One transaction: commits on success, rolls back on any error. `bind` is usually the engine;
    a connection held across many transactions keeps its SQLite page cache (an import's writer)."""
    with Session(bind, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A session for reading only: on SQLite it never waits for (or blocks) a writer."""
    session = Session(engine.execution_options(**{READ_ONLY_OPTION: True}), expire_on_commit=False)
    try:
        yield session
        if engine.dialect.name == "postgresql" and session.in_transaction():
            # COMMIT, not ROLLBACK: at a rollback psycopg forgets the statements it prepared on
            # that connection, so every query was planned anew, most of PostgreSQL's work under
            # load (issue 15). Expunged first, nothing is flushed.
            session.expunge_all()
            try:
                session.commit()
            except DBAPIError as error:  # what was read stands: a read-only transaction loses nothing
                log.warning("ending a read-only transaction failed: %s", error.orig)
    finally:
        # close(), not rollback(): it ends the transaction without expiring what was
        # read, so the objects stay usable after the block
        session.close()


def execute_columns(
    session: Session, statement: Executable, params: Mapping[str, Any]
) -> Result[*tuple[Any, ...]]:
    """A SELECT of columns, not ORM objects, run on the session's connection: the ORM's handling
    of a statement it has no objects to load for was a quarter of its CPU (issue 15: a card's
    lists, `my`'s queue, a search). What the session has pending is flushed first, as the ORM's
    autoflush would (a card shown after a change in the same session). Never a statement that
    writes: it would pass `read_and_append`'s refusal, which watches the ORM's statements."""
    if session.autoflush:
        session.flush()  # nothing to do, and no statement, when nothing is pending
    return session.connection().execute(statement, params)


def append_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """New rows of `table` (the audit log's), as rows: inserted now on the session's connection,
    in its transaction, or in `read_and_append` after the read. Not ORM objects: an audit entry
    built as an object and inserted by the unit of work cost three times its INSERT (issue 15:
    a tenth of a card's instructions)."""
    if not rows:
        return
    appended: list[_Row] | None = session.info.get(_APPENDED)
    if appended is not None:
        appended.extend((table, row) for row in rows)
    elif is_read_only(session):  # PostgreSQL would refuse it, SQLite drop it at the read's end
        raise ChangedWhileReading(f"rows of {table.name} appended in a read_session: use read_and_append")
    else:
        _insert(session.connection(), [(table, row) for row in rows])


_Row = tuple[Table, Mapping[str, Any]]


def _insert(connection: Connection, rows: Sequence[_Row]) -> None:
    """One statement per run of rows of the same table and columns."""
    for (table, _), run in groupby(rows, key=lambda row: (row[0], _column_names(row[1]))):
        values = [row for _, row in run]
        connection.execute(insert(table), values[0] if len(values) == 1 else values)


class ChangedWhileReading(Exception):
    """Code run in a read changed, deleted or added a row: it belongs in `session_scope` (or, for
    rows appended, in `read_and_append`)."""


@contextmanager
def read_and_append(engine: Engine) -> Iterator[Session]:
    """A read whose new rows (`append_rows`: the audit entry of a card viewed) are inserted after
    it, before the block returns. Changing, deleting or adding an object is a bug
    (`ChangedWhileReading`); nothing is flushed in the read (no autoflush).

    On SQLite the read is a read session and the rows go in a short transaction of their own, so
    the one write lock is held for those inserts only, not while the answer is rendered; rows
    appended in other threads meanwhile share that transaction (`_Appender`). PostgreSQL's writers
    do not hold up its readers: there the rows end the read's own transaction, one transaction
    per request instead of two, and no hand-over to another thread (issue 15: 7-9 % of a card's
    or a search's CPU).
    """
    if engine.dialect.name == "postgresql":
        with Session(engine, expire_on_commit=False, autoflush=False) as session:
            try:
                _refuse_writes_in(session)
                yield session
                if appended := _end_read(session):
                    _insert(session.connection(), appended)
                session.commit()
            except BaseException:
                session.rollback()
                raise
        return
    with read_session(engine) as session:
        session.autoflush = False
        _refuse_writes_in(session)
        yield session
        appended = _end_read(session)
    if appended:
        _appender(engine).insert(appended)


_READING = "rapport_reading"  # Session.info: inside read_and_append's block
_APPENDED = "rapport_appended"  # Session.info: the rows `append_rows` keeps for after the read


def _refuse_writes_in(session: Session) -> None:
    """Within the read, a statement that writes or a flush is refused (the listeners below): on
    PostgreSQL the read is no READ ONLY transaction, and on SQLite its writes would be dropped
    when it ends. New rows wait for its end."""
    session.info[_READING] = True
    session.info[_APPENDED] = []


def _end_read(session: Session) -> list[_Row]:
    """The rows appended in the read, once nothing was changed: from here the session may write."""
    _refuse_changes(session)
    session.info[_READING] = False
    appended: list[_Row] = session.info.pop(_APPENDED)
    return appended


@event.listens_for(Session, "do_orm_execute")
def _refuse_statement_that_writes(state: ORMExecuteState) -> None:
    # on every session's statements, hence a flag and not a listener per session (one cost 4 % of a card)
    if state.session.info.get(_READING) and (state.is_insert or state.is_update or state.is_delete):
        raise ChangedWhileReading("a statement that writes")


@event.listens_for(Session, "before_flush")
def _refuse_flush_in_a_read(session: Session, _context: Any, _instances: Any) -> None:
    if session.info.get(_READING):
        raise ChangedWhileReading("a flush inside the read")


def _refuse_changes(session: Session) -> None:
    changed = [*session.new, *session.deleted, *(obj for obj in session.dirty if session.is_modified(obj))]
    if changed:
        raise ChangedWhileReading(", ".join(sorted({type(obj).__name__ for obj in changed})))


class _Rows:
    """One caller's rows, waiting for the commit that holds them."""

    def __init__(self, rows: list[_Row]) -> None:
        self.rows = rows
        self.done = threading.Event()
        self.error: BaseException | None = None


class _Appender:
    """Inserts what `read_and_append` callers append, one thread per engine, every caller's rows
    waiting at that moment in one transaction (a group commit). Measured under load (issue 15):
    fifty request threads each asking SQLite's one write lock for a single audit row, while the
    inbox held it for a batch, waited 70 s in 20 s in the busy handler's sleeps (up to 100 ms
    between tries, and no order among them); one asker per engine waits once for everyone. The
    thread ends when idle and starts again with the next rows."""

    IDLE_SECONDS = 1.0

    def __init__(self, engine: Engine) -> None:
        self._engine = weakref.ref(engine)  # a strong one would keep every engine (and its pool) alive
        self._pending: list[_Rows] = []
        self._wake = threading.Condition()
        self._running = False

    def insert(self, appended: list[_Row]) -> None:
        """Commit `appended` (with whatever else is pending); returns when they are in."""
        rows = _Rows(appended)
        with self._wake:
            self._pending.append(rows)
            if self._running:
                self._wake.notify()
            else:
                self._running = True
                threading.Thread(target=self._run, name="rapport-append", daemon=True).start()
        rows.done.wait()
        if rows.error is not None:
            raise rows.error

    def _run(self) -> None:
        while True:
            with self._wake:
                if not self._pending:
                    self._wake.wait(self.IDLE_SECONDS)
                if not self._pending:
                    self._running = False
                    return
                batch, self._pending = self._pending, []
            self._write(batch)

    def _write(self, batch: list[_Rows]) -> None:
        engine = self._engine()
        assert engine is not None  # the callers waiting hold it
        try:
            with session_scope(engine) as writer:
                _insert(writer.connection(), [row for rows in batch for row in rows.rows])
        except BaseException as error:
            if len(batch) == 1:
                batch[0].error = error
            else:  # one caller's bad row must not fail the others: each on its own
                for rows in batch:
                    try:
                        with session_scope(engine) as writer:
                            _insert(writer.connection(), rows.rows)
                    except BaseException as own:
                        rows.error = own
        for rows in batch:
            rows.done.set()


_appenders: weakref.WeakKeyDictionary[Engine, _Appender] = weakref.WeakKeyDictionary()
_appenders_lock = threading.Lock()


def _appender(engine: Engine) -> _Appender:
    with _appenders_lock:
        appender = _appenders.get(engine)
        if appender is None:
            appender = _appenders[engine] = _Appender(engine)
        return appender


def insert_rows(session: Session, model: type[SQLModel], rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """INSERT many rows into a table with an integer ``id``; returns the new ids in row order.

    On SQLite, INSERT ... RETURNING in parameter order runs one statement per row (a third of
    a backlog sync's time). There a writing transaction holds the database's write lock
    (``session_scope`` begins IMMEDIATE), so the ids after the largest one are free: the rows
    go in with their ids, one executemany per set of columns.
    """
    if not rows:
        return []
    table: Table = model.__table__  # type: ignore[attr-defined]
    if session.get_bind().dialect.name != "sqlite":
        if len(rows) >= COPY_FROM and not any(isinstance(c.type, JSON) for c in table.c):
            return _copy_rows(session, table, rows)
        # Core, not ORM (whose bulk insert ran one statement per row for an import's contacts),
        # one statement per run of rows with the same columns.
        statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        return [
            int(row[0])
            for _, group in groupby(rows, key=_column_names)
            for row in session.execute(statement, list(group))
        ]
    first = (session.execute(select(func.max(table.c.id))).scalar() or 0) + 1
    with_ids = [{**row, "id": first + index} for index, row in enumerate(rows)]
    for _, group in groupby(with_ids, key=_column_names):
        session.execute(insert(table), list(group))
    return [row["id"] for row in with_ids]


def any_of(session: Session, column: Any, values: Collection[Any]) -> ColumnElement[bool]:
    """`column IN values` for a batch's hundreds of values. On PostgreSQL one array parameter
    (`= ANY(...)`): a list of a thousand parameters cost the driver and the server more than
    the look-up itself."""
    if session.get_bind().dialect.name != "postgresql":
        return column.in_(values)
    element = String() if isinstance(column.type, NullType) else column.type
    return column == any_(bindparam(None, list(values), type_=ARRAY(element)))


COPY_FROM = 100  # rows from which PostgreSQL gets them by COPY (a multi-row INSERT is parsed client-side)


def _copy_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """PostgreSQL: ids drawn from the table's sequence, then the rows by COPY, in the session's transaction."""
    connection = session.connection()
    # One row holding them all, not a row per id. The sequence is named once (the CTE): as
    # nextval's text argument it was looked up again for every id, six times the cost of the ids.
    ids: list[int] = connection.execute(
        text("WITH s AS MATERIALIZED (SELECT CAST(pg_get_serial_sequence(:table, 'id') AS regclass) AS seq) "
             "SELECT array_agg(nextval(s.seq)) FROM s, generate_series(1, :n)"),
        {"table": table.name, "n": len(rows)},
    ).scalar_one()
    with connection.connection.cursor() as cursor:  # type: ignore[attr-defined]
        start = 0
        for names, group in groupby(rows, key=_column_names):
            batch = list(group)
            columns = ["id", *sorted(names)]
            quoted = ", ".join(f'"{name}"' for name in columns)
            with cursor.copy(f'COPY "{table.name}" ({quoted}) FROM STDIN') as copy:
                for new_id, row in zip(ids[start : start + len(batch)], batch, strict=True):
                    copy.write_row([new_id, *(row[name] for name in columns[1:])])
            start += len(batch)
    return ids


def _column_names(row: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(row)


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or migrate the schema to `revision` (alembic)."""
    from alembic import command

    command.upgrade(_alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    """The schema's revision; None for an empty database, or a SQLite file that is not there
    (asking does not create it)."""
    from alembic.runtime.migration import MigrationContext

    if _missing_sqlite_file(engine):
        return None
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _missing_sqlite_file(engine: Engine) -> bool:
    # connecting to a SQLite file creates it
    url = engine.url
    in_memory = not url.database or url.database == ":memory:" or bool(url.query.get("uri"))
    return url.get_backend_name() == "sqlite" and not in_memory and not Path(url.database or "").exists()


def head_revision(engine: Engine) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(engine)).get_current_head()
