"""Fixtures for the digest tests: a migrated database holding the hand-built store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from store.db import make_engine, session_scope, upgrade
from tests.digest import known_store


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated, empty database (SQLite and PostgreSQL)."""
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def known(engine: Engine) -> known_store.Known:
    """The hand-built store of known_store.py, committed."""
    with session_scope(engine) as session:
        return known_store.build(session)
