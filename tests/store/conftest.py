from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from store.db import make_engine, upgrade


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated, empty database: SQLite and PostgreSQL (the `db_url` parameters)."""
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()
