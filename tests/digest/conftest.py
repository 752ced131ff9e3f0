"""Fixtures for the digest tests: a migrated database holding the hand-built store."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from store.db import session_scope
from tests.digest import known_store


@pytest.fixture
def known(engine: Engine) -> known_store.Known:
    """The hand-built store of known_store.py, committed."""
    with session_scope(engine) as session:
        return known_store.build(session)
