"""Run the same work from two "processes" (two engines on one database) at the same moment."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session

from store.db import make_engine, session_scope

T = TypeVar("T")


def race(db_url: str, work: Callable[[Session], T], *, racers: int = 2) -> list[T]:
    """Each racer runs `work` in its own transaction on its own engine, released together;
    returns their results. A racer's exception fails the caller (a thread's would be lost)."""
    engines = [make_engine(db_url) for _ in range(racers)]
    barrier = threading.Barrier(racers)
    results: list[T] = []
    errors: list[BaseException] = []

    def run(engine: Engine) -> None:
        try:
            barrier.wait(timeout=10)
            with session_scope(engine) as session:
                results.append(work(session))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for engine in engines:
        engine.dispose()
    if errors:
        raise errors[0]
    return results
