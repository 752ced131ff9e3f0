"""What `/crm find`, `/crm my` and a click cost: a fixed number of statements, however much
matches or is due.

Regression guard for issue 15 (`rapport serve` under load), beside tests/store/test_card_cost.py:
each statement is CPU under the GIL on every request, and a statement per row (a follow-up's
contact read one by one) grows with a busy rep's day. Counted as `bot.app` runs a command: the
rep read, then the command, in one read session.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Engine

from bot.blocks import Reply
from bot.commands import BotOptions, Ctx, run_command
from bot.identity import rep_with_team
from store.db import read_and_append, session_scope
from store.models import Contact, ContactEmail, Conversation, FollowUp
from store.search import refresh_index
from store.validation import CATEGORIES
from tests.bot.conftest import ALICE, START, Clock, Seeded, all_text, rep_id
from tests.servers import slack_requests
from tests.servers.fake_slack import FakeSlack
from tests.store.test_card_cost import CARD_STATEMENTS, counting_statements

SEARCH_STATEMENTS = 2  # the matching terms, then the candidates' rows with their addresses
FIND_STATEMENTS = 1 + SEARCH_STATEMENTS  # the rep with their team, the search
MY_STATEMENTS = 1 + 3  # the rep with their team; due follow-ups with their contacts, the queue with its size, contacts owned


def _selects(engine: Engine, email: str, text: str, clock: Clock) -> tuple[Reply, int]:
    rep_key = rep_id(engine, email)
    with read_and_append(engine) as session, counting_statements(engine) as statements:
        rep = rep_with_team(session, rep_key)
        assert rep is not None
        reply = run_command(Ctx(session, rep, clock(), BotOptions(categories=CATEGORIES)), text)
    return reply, len([s for s in statements if s.lstrip().upper().startswith("SELECT")])


def _add_smiths(engine: Engine, n: int) -> None:
    """`n` more contacts that `find smith` matches, unowned (everyone sees them)."""
    with session_scope(engine) as session:
        for i in range(n):
            contact = Contact(name=f"Jane Smith {n}.{i}")
            session.add(contact)
            session.flush()
            assert contact.id is not None
            session.add(ContactEmail(contact_id=contact.id, email=f"jane{n}.{i}@smith.example", is_primary=True))
        session.flush()
        refresh_index(session)


def _busy_day(engine: Engine, owner: int, n: int) -> None:
    """`n` open conversations and `n` due follow-ups, each about another contact."""
    with session_scope(engine) as session:
        for i in range(n):
            contact = Contact(name=f"Customer {n}.{i}", owner_id=owner)
            session.add(contact)
            session.flush()
            session.add_all([
                Conversation(subject=f"Question {i}", contact_id=contact.id, owner_id=owner,
                             opened_at=START - timedelta(hours=i + 1), sla_due_at=START + timedelta(hours=i)),
                FollowUp(contact_id=contact.id, rep_id=owner, due_at=START - timedelta(minutes=i + 1),
                         note=f"call back {i}"),
            ])


def test_find_costs_the_same_few_statements_for_one_match_as_for_many(
    engine: Engine, seeded: Seeded, clock: Clock,
) -> None:
    reply, one = _selects(engine, "alice@nordlys.example", "find stastny", clock)
    assert "Jan Šťastný" in all_text(reply.blocks) and "Contact:" in reply.text  # one match: its card
    assert one == FIND_STATEMENTS + CARD_STATEMENTS

    costs = []
    for more in (1, 7):
        _add_smiths(engine, more)
        reply, cost = _selects(engine, "alice@nordlys.example", "find smith", clock)
        assert reply.text.endswith("contacts match smith"), reply.text  # a pick list
        costs.append(cost)
    assert costs == [FIND_STATEMENTS, FIND_STATEMENTS]


def test_my_costs_the_same_few_statements_on_a_busy_day_as_on_a_quiet_one(
    engine: Engine, seeded: Seeded, clock: Clock,
) -> None:
    alice = rep_id(engine, "alice@nordlys.example")
    costs = []
    for n in (1, 8):
        _busy_day(engine, alice, n)
        reply, cost = _selects(engine, "alice@nordlys.example", "my", clock)
        assert f"Customer {n}.{n - 1}" in all_text(reply.blocks) and "call back" in all_text(reply.blocks)
        costs.append(cost)
    assert costs == [MY_STATEMENTS, MY_STATEMENTS]


def test_regression_a_click_reads_its_rep_and_their_team_once(
    engine: Engine, seeded: Seeded, interact: Callable[[dict[str, Any]], tuple[int, bytes]], fake_slack: FakeSlack,
) -> None:
    """Issue 15: the middleware's permission check and then the listener each read the rep and
    their team, four of a card click's sixteen statements. The rep and their team are one
    statement now, and the listener takes them from the check."""
    payload = slack_requests.block_action_payload("contact_open", str(seeded.jan), user_id=ALICE,
                                                  channel_id=f"D{ALICE}")
    with counting_statements(engine) as statements:
        status, _ = interact(payload)
        opened = fake_slack.wait_for("views.open")
    assert status == 200 and "Jan Šťastný" in str(opened[-1].params)
    flat = [" ".join(statement.split()) for statement in statements]
    assert len([s for s in flat if re.search(r"FROM rep WHERE rep\.id = ", s)]) == 1
    assert not [s for s in flat if re.search(r"FROM rep WHERE rep\.team = ", s)]  # read with the rep
