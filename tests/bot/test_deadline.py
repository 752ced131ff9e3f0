"""`bot.deadline.Deadlines`: a late answer is given exactly once, by the command or at its deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from bot.deadline import Deadlines


@pytest.fixture
def deadlines() -> Iterator[Deadlines]:
    watcher = Deadlines()
    yield watcher
    watcher.stop()


def test_an_unclaimed_answer_is_given_at_its_deadline_and_cannot_be_claimed_after(deadlines: Deadlines) -> None:
    fired = threading.Event()
    pending = deadlines.watch(time.monotonic() + 0.2, fired.set)
    assert not fired.wait(0.1)
    assert fired.wait(1.0)
    assert not deadlines.claim(pending)


def test_a_claimed_answer_is_never_given_at_its_deadline(deadlines: Deadlines) -> None:
    fired = threading.Event()
    pending = deadlines.watch(time.monotonic() + 0.1, fired.set)
    assert deadlines.claim(pending)
    assert not deadlines.claim(pending)  # once
    assert not fired.wait(0.4)


def test_regression_an_earlier_deadline_than_the_one_waited_for_is_kept(deadlines: Deadlines) -> None:
    """A command that waited long in the queue is due before one that came later: the thread,
    asleep until the later one, must wake for it (else its ack goes out after Slack's 3 s)."""
    later, earlier = threading.Event(), threading.Event()
    deadlines.watch(time.monotonic() + 5.0, later.set)
    time.sleep(0.1)  # the thread now sleeps until the later deadline
    started = time.monotonic()
    deadlines.watch(time.monotonic() + 0.2, earlier.set)
    assert earlier.wait(2.0) and time.monotonic() - started < 0.6
    assert not later.is_set()


def test_an_answer_that_fails_does_not_stop_the_others(deadlines: Deadlines) -> None:
    def broken() -> None:
        raise RuntimeError("Slack is down")

    fired = threading.Event()
    deadlines.watch(time.monotonic() + 0.05, broken)
    deadlines.watch(time.monotonic() + 0.1, fired.set)
    assert fired.wait(1.0)
