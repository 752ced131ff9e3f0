"""Commands that only read run in a read session: under load they never queue for the write lock.

`bot.commands.COMMANDS` says which commands change data; the others run in
`store.db.read_and_append`, where a card shown is still audited (the entry is inserted
after the read) and any other change is refused, so a wrong declaration fails here.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

import bot.app
from bot.commands import COMMANDS, BotOptions, Ctx, command_writes, run_command
from bot.identity import RepIds
from store.db import ChangedWhileReading, read_and_append, read_session, session_scope
from store.models import AuditEntry, Rep
from store.validation import CATEGORIES
from tests.bot.conftest import ALICE, CAROL, Clock, Seeded, all_text, rep_id
from tests.servers.fake_slack import FakeSlack

READING = ["", "help", "find stastny", "find smiht", "followups", "my", "segment top", "segment lapsed",
           "segment stalled", "segment partners", "thread stastny", "thread #1", "reply #1 On its way.",
           "nonsense words"]


def _audited_views(engine: Engine) -> list[AuditEntry]:
    with read_session(engine) as session:
        return list(session.exec(select(AuditEntry).where(AuditEntry.action == "card.view")).all())


def test_regression_commands_declared_read_only_change_nothing_but_append_the_audit(
    engine: Engine, seeded: Seeded, clock: Clock,
) -> None:
    assert {name for name, command in COMMANDS.items() if not command.writes} == {
        "help", "find", "followups", "my", "segment", "thread", "reply"}
    for text in READING:
        assert not command_writes(text), text
        for email in ("alice@nordlys.example", "carol@nordlys.example"):  # a rep and a manager
            with read_and_append(engine) as session:  # raises ChangedWhileReading on any other change
                rep = session.get(Rep, rep_id(engine, email))
                assert rep is not None
                run_command(Ctx(session, rep, clock(), BotOptions(categories=CATEGORIES)), text)
    views = [entry.target_id for entry in _audited_views(engine)]  # `find` with one hit shows a card
    assert views.count(seeded.jan) == 2 and all(entry.actor.endswith("@nordlys.example")
                                                for entry in _audited_views(engine))


@pytest.mark.parametrize("text", ["away monday 9am", "back", 'remind "Jan Šťastný" tomorrow 9am call',
                                  "log call stastny talked about the offer", "stage stastny purchase"])
def test_a_command_that_writes_is_declared_so_and_refused_in_a_read(
    engine: Engine, seeded: Seeded, clock: Clock, text: str,
) -> None:
    assert command_writes(text)
    with pytest.raises(ChangedWhileReading), read_and_append(engine) as session:
        rep = session.get(Rep, rep_id(engine, "alice@nordlys.example"))
        assert rep is not None
        reply = run_command(Ctx(session, rep, clock(), BotOptions(categories=CATEGORIES)), text)
        assert "Usage" not in all_text(reply.blocks), "the command did not run: the test proves nothing"
        session.add(rep)  # `away`/`back` change the rep; the others add rows and touch nothing read
        if not session.is_modified(rep):  # an insert alone is what a read may append: show it is not all
            rep.away_until = clock()


def test_regression_read_only_commands_answer_while_the_write_lock_is_held(
    engine: Engine, seeded: Seeded, slash: Callable[..., tuple[int, dict[str, Any]]],
) -> None:
    """The inbox commits a batch, another rep logs a call: `my` and a pick list do not wait for it
    (they used to begin IMMEDIATE and queue; past 2 s Slack got "Working on…")."""
    holder = sqlite3.connect(str(engine.url.database), isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # SQLite's one write lock, held by "another writer"
        _, mine = slash("my", user=ALICE)
        assert "Working on" not in mine["text"] and mine["text"] == "My work"
        _, picks = slash("find smiht", user=CAROL)
        assert "John Smith" in all_text(picks["blocks"])
        assert _audited_views(engine) == []
    finally:
        holder.rollback()
        holder.close()
    _, card = slash("find stastny", user=ALICE)  # one hit: the card, and its view audited after the read
    assert "Jan Šťastný" in all_text(card["blocks"])
    assert [entry.target_id for entry in _audited_views(engine)] == [seeded.jan]


def test_regression_writing_commands_waiting_for_the_lock_leave_connections_for_reads(
    engine: Engine, seeded: Seeded, slash: Callable[..., tuple[int, dict[str, Any]]], fake_slack: FakeSlack,
) -> None:
    """Sixteen writing commands waiting for SQLite's write lock (the inbox committing) held every
    connection of the pool when commands ran on threads as many as the listeners: `my` then waited
    for a connection, and Slack got "Working on…" for a command that only reads."""
    holder = sqlite3.connect(str(engine.url.database), isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with ThreadPoolExecutor(max_workers=16) as reps:
            acks = list(reps.map(lambda _: slash("back", user=ALICE)[1], range(16)))
        assert all("Working on" in ack["text"] for ack in acks)  # past the ack budget, still waiting
        _, mine = slash("my", user=ALICE)
        assert mine["text"] == "My work"
    finally:
        holder.rollback()
        holder.close()
    deadline = time.monotonic() + 30  # each `back` then runs and answers late, before the service stops
    while len(fake_slack.calls("chat.postEphemeral") + fake_slack.calls("chat.postMessage")) < 16:
        assert time.monotonic() < deadline, "the writing commands did not all answer"
        time.sleep(0.05)


def _slowed(monkeypatch: pytest.MonkeyPatch, seconds: float, *, then_fail: bool = False) -> None:
    """Each command takes `seconds` longer than it does, against an ack budget of 0.3 s."""
    monkeypatch.setattr(bot.app, "ACK_BUDGET_SECONDS", 0.3)
    run = bot.app.run_command

    def slow(ctx: Ctx, text: str) -> Any:
        time.sleep(seconds)
        if then_fail:
            raise RuntimeError("the database went away")
        return run(ctx, text)

    monkeypatch.setattr(bot.app, "run_command", slow)


def test_a_reading_command_past_its_budget_is_acked_then_answered_by_message(
    seeded: Seeded, slash: Callable[..., tuple[int, dict[str, Any]]], fake_slack: FakeSlack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reading command runs in its listener's own thread (issue 15), so the ack for one that runs
    long comes from elsewhere: at the budget, not when the command is done."""
    _slowed(monkeypatch, 1.5)
    started = time.monotonic()
    _, ack = slash("find stastny", user=ALICE)
    assert time.monotonic() - started < 1.2
    assert ack["text"] == "Working on `find stastny`…"
    [answer] = fake_slack.wait_for("chat.postEphemeral", timeout=10)
    assert answer.params["user"] == ALICE and "Jan Šťastný" in str(answer.params["blocks"])


def test_a_command_in_time_answers_in_the_ack_and_never_also_by_message(
    seeded: Seeded, slash: Callable[..., tuple[int, dict[str, Any]]], fake_slack: FakeSlack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _slowed(monkeypatch, 0.1)
    for text in ("find stastny", "back"):  # a reading and a writing command
        _, ack = slash(text, user=ALICE)
        assert "Working on" not in ack["text"], text
    time.sleep(0.5)  # past the budget: the deadline must not answer a second time
    assert fake_slack.calls("chat.postEphemeral") == fake_slack.calls("chat.postMessage") == []


@pytest.mark.parametrize("seconds", [0.0, 1.0])
def test_a_command_that_fails_says_so_in_the_ack_or_later_by_message(
    seeded: Seeded, slash: Callable[..., tuple[int, dict[str, Any]]], fake_slack: FakeSlack,
    monkeypatch: pytest.MonkeyPatch, seconds: float,
) -> None:
    _slowed(monkeypatch, seconds, then_fail=True)
    _, ack = slash("my", user=ALICE)
    sorry = "Sorry, that failed; the error has been logged."
    if seconds == 0.0:
        assert ack["text"] == sorry
    else:
        assert ack["text"] == "Working on `my`…"
        [answer] = fake_slack.wait_for("chat.postEphemeral", timeout=10)
        assert answer.params["text"] == sorry


def test_rep_ids_remember_a_known_user_for_their_ttl_only(engine: Engine, seeded: Seeded) -> None:
    """`_identify` asks RepIds on every request: a rep deactivated elsewhere is refused once the TTL is over."""
    alice = rep_id(engine, "alice@nordlys.example")
    remembering, asking = RepIds(engine, None, ttl=3600), RepIds(engine, None, ttl=0)
    assert remembering(ALICE) == asking(ALICE) == alice
    assert remembering("U0NOBODY") is None
    with session_scope(engine) as session:
        rep = session.get(Rep, alice)
        assert rep is not None
        rep.active = False
        session.add(rep)
    assert remembering(ALICE) == alice  # within its TTL
    assert asking(ALICE) is None
