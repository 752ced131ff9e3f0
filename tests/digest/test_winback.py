"""Win-back (store/winback.py): follow-ups once per lapse, owners for lapsed customers without one,
customers won back, and what the manager's digest shows of them; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.digest import render_digest_blocks, render_digest_html, render_digest_text
from store.db import session_scope
from store.digest import DigestFigures, compute_digest, period_bounds
from store.models import Company, Contact, Conversation, FollowUp, Order, Rep
from store.segments import SegmentParams, lapsed_customers
from store.winback import WINBACK, assign_lapsed_owners, create_winback_followups, group_lapsed, won_back

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # a Monday, 13:00 in Stockholm
PARAMS = SegmentParams()
RHYTHM = (date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1))  # monthly, then silence: lapsed


@dataclass
class Store:
    reps: dict[str, int]
    contacts: dict[str, int]


def _build(engine: Engine) -> Store:
    with session_scope(engine) as session:
        reps = {
            "mia": Rep(name="Mia Manager", email="mia@x.example", role="manager", team="sales",
                       timezone="Europe/Stockholm", digest_via=["email"]),
            "sam": Rep(name="Sam Seller", email="sam@x.example", team="sales", skills=["sales"], languages=["sv"],
                       timezone="Europe/Stockholm"),
            "pia": Rep(name="Pia Prodaja", email="pia@x.example", team="sales", skills=["sales"], languages=["de"]),
            "dora": Rep(name="Dora Busy", email="dora@x.example", team="sales", skills=["sales"], languages=["de"]),
            "sue": Rep(name="Sue Support", email="sue@x.example", role="support", team="support",
                       skills=["sales"], languages=["de"]),  # not a sales rep: support
            "old": Rep(name="Olaf Left", email="old@x.example", team="sales", skills=["sales"], active=False),
        }
        session.add_all(reps.values())
        session.flush()
        gone = Company(name="Gone AB", owner_id=reps["old"].id)  # its owner left
        kept = Company(name="Kept AB", owner_id=reps["sam"].id)
        session.add_all([gone, kept])
        session.flush()
        contacts = {
            "lisa": Contact(name="Lisa Lapsed", kind="customer", owner_id=reps["sam"].id),
            "una": Contact(name="Una Unowned", kind="customer", language="de"),
            "ulf": Contact(name="Ulf Gone", kind="customer", language="sv", company_id=gone.id),
            "carl": Contact(name="Carl Kept", kind="customer", owner_id=reps["old"].id, company_id=kept.id),
        }
        session.add_all(contacts.values())
        session.flush()
        for key, contact in contacts.items():
            for day in RHYTHM:
                session.add(Order(external_id=f"{key}-{day}", contact_id=contact.id, amount=Decimal(100),
                                  ordered_on=day))
        for n in range(2):  # Dora is busier than Pia
            session.add(Conversation(subject=f"open {n}", owner_id=reps["dora"].id))
        return Store({k: r.id or 0 for k, r in reps.items()}, {k: c.id or 0 for k, c in contacts.items()})


def _lapsed(session: Session, now: datetime = NOW) -> dict[str, object]:
    return {c.name: c for c in lapsed_customers(session, now=now, params=PARAMS)}


def _digest(engine: Engine, store: Store, local_day: date) -> DigestFigures:
    with Session(engine) as session:
        mia = session.get(Rep, store.reps["mia"])
        assert mia is not None
        start, end = period_bounds("week", local_day, "Europe/Stockholm")
        return compute_digest(session, manager=mia, period="week", start=start, end=end, params=PARAMS,
                              now=max(NOW, end))


def test_winback_followups_are_created_once_per_lapse(engine: Engine) -> None:
    store = _build(engine)
    for _ in range(2):  # the button clicked twice
        with session_scope(engine) as session:
            lisa = [c for c in lapsed_customers(session, now=NOW, params=PARAMS) if c.name == "Lisa Lapsed"]
            result = create_winback_followups(session, lisa, now=NOW)
    assert (result.created, result.already) == (0, 1)
    with Session(engine) as session:
        followup = session.exec(select(FollowUp)).one()
    assert (followup.contact_id, followup.rep_id, followup.source) == (store.contacts["lisa"], store.reps["sam"],
                                                                       WINBACK)
    assert followup.lapsed_since == RHYTHM[-1]
    assert followup.due_at == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)  # Sam's next 09:00 (Stockholm)

    # she orders again, then lapses again: a new lapse, a new follow-up
    with session_scope(engine) as session:
        session.add(Order(external_id="lisa-back", contact_id=store.contacts["lisa"], amount=Decimal(100),
                          ordered_on=date(2026, 12, 1)))
    later = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)
    with session_scope(engine) as session:
        lisa = [c for c in lapsed_customers(session, now=later, params=PARAMS) if c.name == "Lisa Lapsed"]
        assert lisa[0].last_order_on == date(2026, 12, 1)
        assert create_winback_followups(session, lisa, now=later).created == 1
    with Session(engine) as session:
        assert sorted(f.lapsed_since for f in session.exec(select(FollowUp))) == [RHYTHM[-1], date(2026, 12, 1)]


def test_customers_without_an_owner_get_none_and_managers_see_them(engine: Engine) -> None:
    store = _build(engine)
    with session_scope(engine) as session:
        customers = lapsed_customers(session, now=NOW, params=PARAMS)
        former = {store.reps["old"]}
        rep_view = group_lapsed(customers, rep_id=store.reps["sam"], team_ids=set(store.reps.values()),
                                manager=False, former=former)
        manager_view = group_lapsed(customers, rep_id=store.reps["mia"], team_ids=set(store.reps.values()),
                                    manager=True, former=former)
        result = create_winback_followups(session, customers, now=NOW)
    assert [c.name for c in rep_view.mine] == ["Lisa Lapsed"] and rep_view.unowned == []
    assert [c.name for c in manager_view.team] == ["Lisa Lapsed"]
    assert sorted(c.name for c in manager_view.unowned) == ["Carl Kept", "Ulf Gone", "Una Unowned"]
    assert (result.created, result.without_owner) == (1, 3)  # nobody to give Una's, Ulf's and Carl's to


def test_assign_owners_account_owner_else_least_busy_sales_rep_with_the_language(engine: Engine) -> None:
    store = _build(engine)
    with session_scope(engine) as session:
        mia = session.get(Rep, store.reps["mia"])
        assert mia is not None
        choices = assign_lapsed_owners(session, lapsed_customers(session, now=NOW, params=PARAMS), by=mia, now=NOW)
    got = {c.name: (c.rep_id, c.reason) for c in choices}
    assert got["Carl Kept"] == (store.reps["sam"], "Sam Seller owns the company Kept AB")  # account owner
    assert got["Una Unowned"][0] == store.reps["pia"]  # speaks de, 0 open (Dora 2; Sue is support)
    assert "who speaks de" in got["Una Unowned"][1]
    assert got["Ulf Gone"][0] == store.reps["sam"]  # the company's owner left; Sam speaks sv
    assert "Lisa Lapsed" not in got  # Sam owns her already
    with Session(engine) as session:
        una = session.get(Contact, store.contacts["una"])
        assert una is not None and una.owner_id == store.reps["pia"]


def test_assign_owners_chooses_only_reps_the_manager_may_act_on(engine: Engine) -> None:
    """A manager hands lapsed customers only to reps of their team (bot.identity.actable_owner_ids):
    not even to the account owner when that owner is in another team."""
    store = _build(engine)
    allowed = {store.reps["pia"], store.reps["dora"], store.reps["mia"]}  # Sam is not among them
    with session_scope(engine) as session:
        mia = session.get(Rep, store.reps["mia"])
        assert mia is not None
        choices = assign_lapsed_owners(session, lapsed_customers(session, now=NOW, params=PARAMS), by=mia, now=NOW,
                                       owner_ids=allowed)
    got = {c.name: c.rep_id for c in choices}
    assert got["Carl Kept"] in allowed and got["Ulf Gone"] in allowed and got["Una Unowned"] in allowed


def test_digest_lists_lapsed_customers_without_owner_then_their_new_owners(engine: Engine) -> None:
    """Regression: the manager read "Lapsed customers worth a call: none" while three had no owner."""
    store = _build(engine)
    before = _digest(engine, store, date(2026, 11, 16))
    assert sorted(c.name for c in before.lapsed_without_owner) == ["Carl Kept", "Ulf Gone", "Una Unowned"]
    assert [c.name for c in before.lapsed_worth_a_call] == ["Lisa Lapsed"]
    text = render_digest_text(before)
    assert "Lapsed customers without an owner" in text and "Una Unowned" in text
    assert "Customers won back this period: 0" in text
    assert "Una Unowned" in json.dumps(render_digest_blocks(before)) and "Una Unowned" in render_digest_html(before)
    with session_scope(engine) as session:
        mia = session.get(Rep, store.reps["mia"])
        assert mia is not None
        assign_lapsed_owners(session, lapsed_customers(session, now=NOW, params=PARAMS), by=mia, now=NOW)
    after = _digest(engine, store, date(2026, 11, 16))
    assert after.lapsed_without_owner == []
    assert "Lapsed customers without an owner" not in render_digest_text(after)
    assert sorted(c.name for c in after.lapsed_worth_a_call) == ["Carl Kept", "Lisa Lapsed", "Ulf Gone",
                                                                 "Una Unowned"]


@pytest.mark.parametrize("order_day, won, in_week", [
    (date(2026, 11, 20), False, False),  # ordered before the win-back follow-up: not won back by it
    (date(2026, 11, 23), True, False),  # the day of the follow-up: won back, the week before
    (date(2026, 11, 30), True, True),  # Monday: the week's first day
    (date(2026, 12, 6), True, True),  # Sunday: the week's last day
    (date(2026, 12, 7), True, False),  # the next week
])
def test_customers_won_back_per_period(engine: Engine, order_day: date, won: bool, in_week: bool) -> None:
    store = _build(engine)
    with session_scope(engine) as session:
        lisa = [c for c in lapsed_customers(session, now=NOW, params=PARAMS) if c.name == "Lisa Lapsed"]
        create_winback_followups(session, lisa, now=NOW)
        session.add(Order(external_id="lisa-back", contact_id=store.contacts["lisa"], amount=Decimal(100),
                          ordered_on=order_day))
        session.add(Order(external_id="lisa-cancelled", contact_id=store.contacts["lisa"], amount=Decimal(1),
                          ordered_on=date(2026, 11, 30), status="cancelled"))  # never counts
    figures = _digest(engine, store, date(2026, 11, 30))  # the week 2026-11-30 .. 2026-12-06
    assert [w.name for w in figures.won_back] == (["Lisa Lapsed"] if in_week else [])
    with Session(engine) as session:
        every_day = won_back(session, first_day=date(2026, 1, 1), after_day=date(2027, 1, 1))
        others_team = won_back(session, first_day=date(2026, 1, 1), after_day=date(2027, 1, 1),
                               rep_ids=[store.reps["pia"]])
    assert [(w.name, w.rep_id) for w in every_day] == ([("Lisa Lapsed", store.reps["sam"])] if won else [])
    assert others_team == []
