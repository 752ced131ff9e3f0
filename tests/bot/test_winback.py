"""Win-back from Slack: `/crm segment lapsed` grouped by owner, "Create win-back follow-ups" once per
lapse, "Assign owners" for managers, and the new owners in the manager's digest; signed requests
to the real Bolt app, answers from the fake Web API."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.digest import render_digest_text
from store.db import session_scope
from store.digest import compute_digest, period_bounds
from store.models import Contact, FollowUp, Order, Rep
from store.search import refresh_index
from store.segments import SegmentParams
from tests.bot.conftest import ALICE, CAROL, START, Seeded, all_text, rep_id
from tests.servers import slack_requests
from tests.servers.fake_slack import FakeSlack

RHYTHM = (date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1))  # monthly, then silence: lapsed


def _lapse(engine: Engine, seeded: Seeded) -> int:
    """Lars (Alice's), John (Dave's, the support team) and Johanna (nobody's) lapse; Alice and Bob sell."""
    with session_scope(engine) as session:
        lars = Contact(name="Lars Lapsed", kind="customer", owner_id=rep_id(engine, "alice@nordlys.example"))
        session.add(lars)
        session.flush()
        assert lars.id is not None
        for contact_id in (lars.id, seeded.john, seeded.johanna):
            for day in RHYTHM:
                session.add(Order(external_id=f"{contact_id}-{day}", contact_id=contact_id, amount=Decimal(100),
                                  ordered_on=day))
        johanna = session.get(Contact, seeded.johanna)
        assert johanna is not None
        johanna.language = "sv"
        for rep in session.exec(select(Rep).where(Rep.team == "sales", Rep.role == "rep")).all():
            rep.skills = ["sales"]
        refresh_index(session)
        return lars.id


def _click(interact: Any, action_id: str, user: str) -> None:
    interact(slack_requests.block_action_payload(action_id, "", user_id=user, block_id="winback"))


def test_lapsed_segment_is_grouped_by_owner(slash: Any, engine: Engine, seeded: Seeded) -> None:
    _lapse(engine, seeded)
    _, mine = slash("segment lapsed", user=ALICE)
    text = all_text(mine["blocks"])
    assert "Yours" in text and "Lars Lapsed" in text
    assert "Johanna" not in text and "John Smith" not in text  # unowned: managers; John: another team
    assert "winback_create" in text and "winback_assign" not in text
    _, managers = slash("segment lapsed", user=CAROL)
    text = all_text(managers["blocks"])
    order = [text.index(part) for part in ("Your team's", "Lars Lapsed", "Other teams'", "John Smith",
                                           "No owner yet", "Johanna Smithson")]
    assert order == sorted(order)
    assert "winback_create" in text and "winback_assign" in text


def test_winback_followups_once_per_lapse_and_assigned_owners_in_the_digest(
    slash: Any, interact: Any, engine: Engine, seeded: Seeded, fake_slack: FakeSlack
) -> None:
    lars = _lapse(engine, seeded)
    _click(interact, "winback_create", CAROL)
    _click(interact, "winback_create", CAROL)  # a second click: nothing new
    answers = fake_slack.wait_for("chat.postEphemeral", 2)
    # Carol manages sales: John (Dave's, support) is shown to her but is the support team's to act on
    texts = sorted(all_text(answer.params["blocks"]) for answer in answers)  # in either order
    assert "Created 0 win-back follow-ups for the owners; 1 already had one" in texts[0]
    assert "Created 1 win-back follow-up for the owners; 1 of other teams' left to their managers" in texts[1]
    assert "1 without an owner" in texts[0] and "1 without an owner" in texts[1]
    with Session(engine) as session:
        followups = {f.contact_id: f for f in session.exec(select(FollowUp)).all()}
    assert set(followups) == {lars}
    assert followups[lars].rep_id == rep_id(engine, "alice@nordlys.example")

    _click(interact, "winback_assign", ALICE)  # not a manager
    refused = fake_slack.wait_for("chat.postEphemeral", 3)[-1]
    assert "Only managers" in refused.params["text"]
    _click(interact, "winback_assign", CAROL)
    assigned = fake_slack.wait_for("chat.postEphemeral", 4)[-1]
    assert "Johanna Smithson* → Alice Berg: least busy sales rep who speaks sv" in all_text(assigned.params["blocks"])
    alice = rep_id(engine, "alice@nordlys.example")
    with Session(engine) as session:
        johanna = session.get(Contact, seeded.johanna)
        carol = session.exec(select(Rep).where(Rep.email == "carol@nordlys.example")).one()
        assert johanna is not None and johanna.owner_id == alice
        start, end = period_bounds("week", START.date(), carol.timezone)
        figures = compute_digest(session, manager=carol, period="week", start=start, end=end,
                                 params=SegmentParams(), now=START)
    assert "Johanna Smithson" in [c.name for c in figures.lapsed_worth_a_call]
    assert figures.lapsed_without_owner == []
    assert "Johanna Smithson" in render_digest_text(figures)
