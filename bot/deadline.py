"""Deadlines for answers: a slow command's ack goes out at its budget, one thread for all."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Pending:
    """One answer owed by `deadline` (time.monotonic()); `Deadlines.claim` it to give it yourself."""

    __slots__ = ("deadline", "on_late")

    def __init__(self, deadline: float, on_late: Callable[[], object]) -> None:
        self.deadline = deadline
        self.on_late = on_late


class Deadlines:
    """Calls a pending answer's `on_late` once its deadline has passed, unless the one who owes it
    claimed it first: exactly one of the two happens. A slash command runs in its listener's own
    thread and this thread acks "Working on…" for it when it runs long (issue 15: handing each
    command to another thread cost a thread wake-up there and back, about 7 % of the throughput
    under load; a Timer per command would start a thread per request). It sleeps until the
    earliest deadline, checks at most every CHECK_SECONDS, and is woken only for an answer due
    before it would wake anyway."""

    CHECK_SECONDS = 0.1

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._pending: set[Pending] = set()
        self._wakes_at: float | None = None  # None: asleep until told
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="rapport-deadlines", daemon=True)
        self._thread.start()

    def watch(self, deadline: float, on_late: Callable[[], object]) -> Pending:
        pending = Pending(deadline, on_late)
        with self._changed:
            self._pending.add(pending)
            if self._wakes_at is None or deadline < self._wakes_at:
                self._changed.notify()
        return pending

    def claim(self, pending: Pending) -> bool:
        """True: the answer is yours to give (its deadline was not acted on, and will not be)."""
        with self._changed:
            if pending in self._pending:
                self._pending.remove(pending)
                return True
            return False

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._changed:
                if self._stopped:
                    return
                now = time.monotonic()
                due = [pending for pending in self._pending if pending.deadline <= now]
                self._pending.difference_update(due)
                if not due:
                    earliest = min((pending.deadline for pending in self._pending), default=None)
                    self._wakes_at = None if earliest is None else max(earliest, now + self.CHECK_SECONDS)
                    self._changed.wait(None if self._wakes_at is None else self._wakes_at - now)
                    continue
            for pending in due:
                try:
                    pending.on_late()
                except Exception:
                    log.exception("answering a late command failed")
