"""A mailbox is watched by one process at a time: the advisory lock on PostgreSQL."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from store.db import make_engine
from store.locks import exclusive


def test_only_one_holder_at_a_time_and_the_lock_frees_on_exit(engine: Engine, db_url: str) -> None:
    other_process = make_engine(db_url)  # its own pool: like a second `rapport serve`
    with exclusive(engine, "mailbox:support@shop.example") as first:
        assert first
        with exclusive(other_process, "mailbox:support@shop.example") as second:
            # SQLite is single-process by design: there every holder is granted
            assert second == (engine.dialect.name != "postgresql")
        with exclusive(other_process, "mailbox:sales@shop.example") as unrelated:
            assert unrelated
    with exclusive(other_process, "mailbox:support@shop.example") as after:
        assert after
    other_process.dispose()
