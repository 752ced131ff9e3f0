"""Cluster-wide locks: one process at a time for work that must not run twice (watching a mailbox).

On PostgreSQL a session-level advisory lock, held by a dedicated connection for
as long as the work runs and released when the connection closes (also when the
process dies). SQLite runs in one process, so the lock is always granted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import Engine

# Server-side TCP keepalive of a lock's connection (a killed process's socket closes at once;
# these cover a host or network that disappears).
KEEPALIVE = {"tcp_keepalives_idle": 10, "tcp_keepalives_interval": 3, "tcp_keepalives_count": 3}


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for `name` (advisory locks take a bigint)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[bool]:
    """Try to take the lock `name`; yields whether this process holds it for the block."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    key = lock_key(name)
    with engine.connect() as connection:
        held = bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())
        if held:  # if this host vanishes without closing the socket, the server frees the lock within ~20 s
            for setting, value in KEEPALIVE.items():
                connection.execute(text(f"SET {setting} = {value}"))
        connection.commit()  # the lock is the session's, not the transaction's: keep no transaction open
        try:
            yield held
        finally:
            if held:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()
