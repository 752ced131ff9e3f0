"""Digest figures and segments against the hand-built store (tests/digest/known_store.py).

The expected numbers are worked out by hand from the rows (see the comments in
known_store.py); percentiles are checked against the standard library's own
implementation of the same definition.
"""

from __future__ import annotations

import statistics
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.blocks import render_text
from bot.cards import contact_card_blocks
from store.contacts_view import contact_card
from store.db import session_scope
from store.digest import (
    DigestError,
    DigestFigures,
    compute_digest,
    last_complete_period,
    percentile,
    period_bounds,
)
from store.hours import UnknownZone
from store.models import Activity, Contact, FollowUp, Order, Rep
from store.segments import (
    SegmentParams,
    UnknownSegment,
    create_post_purchase_followups,
    export_segment,
    lapsed_customers,
    quiet_partners,
    stalled_prospects,
    top_customers,
)
from tests.digest.known_store import NOW, E, Known, S
from tests.digest.race import race

PARAMS = SegmentParams(top_n=3)


def _digest(engine: Engine, known: Known, manager: str = "maja") -> DigestFigures:
    with Session(engine) as session:
        rep = session.get(Rep, known.reps[manager].id)
        assert rep is not None
        return compute_digest(session, manager=rep, period="day", start=S, end=E, params=PARAMS, now=NOW)


def _p90(values: list[float]) -> float:
    # statistics' "inclusive" method is the same linear-interpolation definition
    return statistics.quantiles(values, n=10, method="inclusive")[8]


def test_team_digest_counts(engine: Engine, known: Known) -> None:
    figures = _digest(engine, known)

    assert figures.team == "nordics"
    assert (figures.start, figures.end) == (S, E)
    assert figures.new_conversations == 5  # c1, c2, c3, c5, c6: not c4 (earlier), c7 (automatic), c8 (Carol)
    assert figures.new_by_category == {"order": 3, "billing": 1, "uncategorised": 1}
    assert figures.new_by_language == {"en": 2, "sv": 2, "unknown": 1}
    assert figures.new_by_urgency == {"normal": 4, "high": 1}  # c3
    assert (figures.open, figures.unanswered, figures.overdue) == (2, 1, 1)  # c3 and c10; c3 twice
    assert figures.sla_breaches == 2  # c2 answered late, c3 never answered
    assert (figures.followups_done, figures.followups_overdue) == (1, 1)
    assert figures.automatic_filtered == 2  # mailbox-wide, in the period only
    assert figures.automatic_by_reason == {"auto_reply": 1, "bounce": 1}


def test_action_lists_and_the_previous_period(engine: Engine, known: Known) -> None:
    figures = _digest(engine, known)

    # open = waiting for our reply; overdue is always a part of it (one definition)
    assert [(w.subject, w.owner, w.overdue) for w in figures.waiting] == [
        ("conversation c10", "Alice Andersson", False),  # opened two days before: waiting longest
        ("conversation c3", "Alice Andersson", True),
    ]
    assert figures.waiting[1].contact == "Cleo Small"
    assert len(figures.waiting) == figures.open
    assert [(f.rep, f.due_at) for f in figures.due_followups] == [("Alice Andersson", S)]
    # the day before: c4 (Bob's) opened at S-10h and missed its SLA at S-2h; no reply was sent that day
    assert figures.previous is not None
    assert (figures.previous.new_conversations, figures.previous.sla_breaches) == (1, 1)
    assert (figures.previous.answered, figures.previous.first_reply_seconds) == (0, None)
    assert (figures.headline.new_conversations, figures.headline.answered) == (5, 5)
    assert not figures.is_empty


def test_first_response_median_and_p90(engine: Engine, known: Known) -> None:
    figures = _digest(engine, known)

    everyone = known.team_responses["alice"] + known.team_responses["bob"]
    assert sorted(everyone) == [1800, 3600, 7200, 10800, 39600]
    assert figures.first_response.count == 5
    assert figures.first_response.median_seconds == 7200
    assert figures.first_response.p90_seconds == pytest.approx(_p90(everyone)) == 28080
    by_rep = {rep.name: rep for rep in figures.reps}
    alice, bob = by_rep["Alice Andersson"], by_rep["Bob Berg"]
    assert alice.first_response.median_seconds == statistics.median(known.team_responses["alice"]) == 7200
    assert alice.first_response.p90_seconds == pytest.approx(10080)
    assert bob.first_response.median_seconds == 7200
    assert bob.first_response.p90_seconds == pytest.approx(_p90(known.team_responses["bob"])) == 33120


def test_workload_and_activities_per_rep(engine: Engine, known: Known) -> None:
    figures = _digest(engine, known)

    by_rep = {rep.name: rep for rep in figures.reps}
    assert set(by_rep) == {"Alice Andersson", "Bob Berg", "Maja Manager"}  # never Carol (other team)
    alice, bob = by_rep["Alice Andersson"], by_rep["Bob Berg"]
    assert (alice.open, alice.unanswered, alice.overdue, alice.assigned, alice.answered) == (2, 1, 1, 3, 2)
    assert (bob.open, bob.assigned, bob.answered) == (0, 2, 3)  # c4, c5 (replied twice), c6
    assert (alice.sla_breaches, bob.sla_breaches) == (2, 0)
    assert (alice.calls, alice.other_activities) == (2, {"meeting": 1})  # the call before the period is out
    assert (bob.calls, bob.other_activities) == (0, {"note": 1})
    assert (alice.followups_done, alice.followups_overdue) == (1, 1)
    assert (bob.followups_done, bob.followups_overdue) == (0, 0)


def test_customers_in_the_digest(engine: Engine, known: Known) -> None:
    figures = _digest(engine, known)

    # Ada Big (#1) and Cleo Small (#3) wrote; Ben Mid (#2) is Carol's conversation; Filler 1 is no top
    # customer. Ranks count within the team's list: no jump from #1 to #3
    assert [(c.name, c.rank) for c in figures.top_customers_who_wrote] == [("Ada Big", 1), ("Cleo Small", 2)]
    assert [c.name for c in figures.lapsed_worth_a_call] == ["Lotta Bigger", "Lars Lapsed"]


def test_admin_digest_covers_everyone(engine: Engine, known: Known) -> None:
    figures = _digest(engine, known, "ada")

    assert figures.team is None
    assert figures.new_conversations == 7  # plus Carol's c8 and the unowned c9
    assert figures.new_by_language["it"] == 1
    assert figures.sla_breaches == 4  # plus c8 (answered after its SLA) and c9 (never answered)
    assert figures.open == 3  # plus c9 in the triage queue
    assert "Carol Costa" in {rep.name for rep in figures.reps}
    assert [c.name for c in figures.lapsed_worth_a_call] == ["Lotta Bigger", "Lars Lapsed", "Leo South"]


def test_top_customers_rank_in_eur_over_twelve_months(engine: Engine, known: Known) -> None:
    with Session(engine) as session:
        segment = top_customers(session, now=NOW, params=PARAMS)

    # 5 customers, 7 fillers, L1-L4 and L6 have counted orders in the window; k4 is cancelled, k5 in XYZ
    assert segment.ranked_contacts == 15
    assert segment.decile_size == 2
    assert segment.unconverted_orders == 1
    assert [(c.name, c.recent_value_eur, c.rank, c.top_decile) for c in segment.customers] == [
        ("Ada Big", Decimal("5920.00"), 1, True),  # 5000 EUR + 1000 USD × 0.92
        ("Ben Mid", Decimal("3510.00"), 2, True),  # 3000 GBP × 1.17; the 10000 EUR of 2025-11-23 is too old
        ("Cleo Small", Decimal("100.00"), 3, False),
    ]
    assert segment.customers[2].owner.name == "Alice Andersson"  # through Cleo AB's owner


def test_lapsed_customers(engine: Engine, known: Known) -> None:
    with Session(engine) as session:
        lapsed = lapsed_customers(session, now=NOW, params=PARAMS)

    assert [c.name for c in lapsed] == ["Lotta Bigger", "Lars Lapsed", "Leo South"]
    lars = lapsed[1]
    assert (lars.purchase_days, lars.median_gap_days, lars.threshold_days, lars.days_since) == (3, 29.5, 60, 267)
    assert lapsed[0].lifetime_value_eur == Decimal("3000.00")
    # Lena (gap 121 days, 145 days ago), Lou (2 purchase days), Liv (recent) and Lia (exactly at her
    # threshold of 80 days) are not lapsed
    with Session(engine) as session:
        stricter = lapsed_customers(session, now=NOW + timedelta(days=1), params=PARAMS)
    assert "Lia Edge" in {c.name for c in stricter}  # one day later she is


def test_stalled_prospects_and_quiet_partners(engine: Engine, known: Known) -> None:
    with Session(engine) as session:
        stalled = stalled_prospects(session, now=NOW, params=PARAMS)
        partners = quiet_partners(session, now=NOW, params=PARAMS)

    # Pia: last call 30 days ago; Pat: last (outbound) mail 25 days ago, after a call 40 days ago.
    # Per wrote 10 days ago, Pam is not evaluating yet, Pol was created 5 days ago.
    assert [(c.name, c.days_quiet) for c in stalled] == [("Pia Stalled", 30), ("Pat Mail", 25)]
    # Rolf (at a partner company) was never touched since his creation 100 days ago; Rita's call was
    # 50 days ago; Ruth wrote 10 days ago
    assert [(c.name, c.days_quiet) for c in partners] == [("Rolf AtPartner", 100), ("Rita Partner", 50)]


def test_regression_a_partner_s_recent_order_is_a_touch_and_a_rule_s_move_is_not(
    engine: Engine, known: Known
) -> None:
    """A top-ten partner who last ordered weeks ago was listed 180 days quiet: orders were no
    touch, and the stage moves a rule wrote at import time hid other partners altogether."""
    today = NOW.date()
    with Session(engine) as session:
        _order(session, _contact(session, known, "r1"), today - timedelta(days=10))  # Rita ordered
        # Rolf's cancelled order 60 days ago was still contact with him
        _order(session, _contact(session, known, "r2"), today - timedelta(days=60), "cancelled")
        _order(session, _contact(session, known, "r3"), today + timedelta(days=1))  # not yet: no touch
        # a rule moved Pia's stage yesterday; nobody spoke to her
        session.add(Activity(kind="move", occurred_at=NOW - timedelta(days=1), contact_id=known.contacts["p1"].id))
        # imported today, with an order from 80 days ago: quiet since the order, not since the import
        late = Contact(name="Lea Imported", kind="partner", created_at=NOW)
        session.add(late)
        session.flush()
        _order(session, late, today - timedelta(days=80))

        partners = quiet_partners(session, now=NOW, params=PARAMS)
        stalled = stalled_prospects(session, now=NOW, params=PARAMS)

    assert [(c.name, c.days_quiet, c.last_touch_at) for c in partners] == [
        ("Lea Imported", 80, datetime.combine(today - timedelta(days=80), time(), UTC)),
        ("Rolf AtPartner", 60, datetime.combine(today - timedelta(days=60), time(), UTC)),
    ]
    assert [(c.name, c.days_quiet) for c in stalled] == [("Pia Stalled", 30), ("Pat Mail", 25)]


def test_regression_a_contact_s_card_and_the_quiet_segments_read_one_last_touch(
    engine: Engine, known: Known
) -> None:
    """The card counted a rule's stage move and no order: `stalled` listed Pia as 30 days quiet
    while her card said "Last contact 1d ago", and a partner quiet since an order was "never"."""
    with Session(engine) as session:
        pia = _contact(session, known, "p1")
        session.add(Activity(kind="move", occurred_at=NOW - timedelta(days=1), contact_id=pia.id))
        lea = Contact(name="Lea Imported", kind="partner", created_at=NOW)
        session.add(lea)
        session.flush()
        _order(session, lea, NOW.date() - timedelta(days=80))
        # Pia (a call), Pat (a mail), Rolf (his creation), Rita (a call) and Lea (an order)
        quiet = [*stalled_prospects(session, now=NOW, params=PARAMS), *quiet_partners(session, now=NOW, params=PARAMS)]
        cards = {c.contact_id: contact_card(session, c.contact_id, now=NOW) for c in quiet}
    assert {c.name for c in quiet} == {"Pia Stalled", "Pat Mail", "Rolf AtPartner", "Rita Partner", "Lea Imported"}
    assert {cid: card.last_touch_at for cid, card in cards.items() if card} == {c.contact_id: c.last_touch_at
                                                                                 for c in quiet}
    pia_card = cards[pia.id]
    assert pia_card is not None
    assert "*Last touch*\n30d ago" in render_text(contact_card_blocks(pia_card, now=NOW, tz="UTC"))


def test_regression_a_contact_s_card_counts_the_orders_the_segments_count(engine: Engine, known: Known) -> None:
    """The card left out only "cancelled" orders: a customer's lifetime value included a returned
    order that the top customers (and docs/digest.md) leave out."""
    with Session(engine) as session:
        cleo = _contact(session, known, "k3")  # one 100 EUR order
        for status in ("returned", "refunded", "canceled", "cancelled"):
            _order(session, cleo, NOW.date() - timedelta(days=1), status)
        card = contact_card(session, cleo.id, now=NOW)
        top = top_customers(session, now=NOW, params=PARAMS, contact_ids=[cleo.id])
    assert card is not None
    assert (card.order_count, card.lifetime_value, card.last_order_on) == (1, {"EUR": Decimal("100.00")},
                                                                           date(2026, 9, 1))
    assert [c.recent_value_eur for c in top.customers] == [Decimal("100.00")]


def test_export_segment_rows_are_flat(engine: Engine, known: Known) -> None:
    with Session(engine) as session:
        rows = list(export_segment(session, "lapsed", now=NOW, params=PARAMS))
        with pytest.raises(UnknownSegment, match="top, lapsed, stalled, partners"):
            list(export_segment(session, "vip", now=NOW, params=PARAMS))

    assert rows[0]["name"] == "Lotta Bigger"
    assert rows[0]["owner_email"] == "bob@rapport.example"
    assert rows[0]["last_order_on"] == "2025-07-01"
    assert rows[0]["lifetime_value_eur"] == "3000.00"


def _contact(session: Session, known: Known, key: str) -> Contact:
    contact = session.get(Contact, known.contacts[key].id)
    assert contact is not None
    return contact


def _order(session: Session, contact: Contact, day: date, status: str = "completed") -> Order:
    order = Order(external_id=f"pp-{contact.id}-{day}-{status}", contact_id=contact.id, amount=Decimal(50),
                  ordered_on=day, status=status)
    session.add(order)
    session.flush()
    return order


def test_post_purchase_followups_created_once(engine: Engine, known: Known) -> None:
    today = NOW.date()
    with session_scope(engine) as session:
        alice = session.get(Rep, known.reps["alice"].id)
        assert alice is not None
        alice.timezone = "Europe/Stockholm"
        people = {key: _contact(session, known, key) for key in ("k1", "k3", "k4", "r1", "p1")}
        people["k4"].post_purchase_followup = False
        due = {
            "owned": _order(session, people["k1"], today - timedelta(days=14)),
            "via_company": _order(session, people["k3"], today - timedelta(days=20)),
        }
        _order(session, people["k1"], today - timedelta(days=13))  # not yet
        _order(session, people["k1"], today - timedelta(days=30))  # more than 7 days late
        _order(session, people["k1"], today - timedelta(days=15), "cancelled")
        _order(session, people["k4"], today - timedelta(days=14))  # opted out
        _order(session, people["r1"], today - timedelta(days=14))  # partner: kind not listed
        _order(session, people["p1"], today - timedelta(days=14))  # prospect: kind not listed

    created = []
    for _ in range(2):  # the second run finds every order already followed up
        with session_scope(engine) as session:
            created.append(create_post_purchase_followups(session, now=NOW, days=14, kinds=["customer"]))
    assert created == [2, 0]

    with Session(engine) as session:
        followups = session.exec(select(FollowUp).where(FollowUp.source == "post_purchase")).all()
    assert {f.order_id: f.rep_id for f in followups} == {
        due["owned"].id: known.reps["alice"].id,
        due["via_company"].id: known.reps["alice"].id,  # Cleo has no owner: her company's owner
    }
    owned = next(f for f in followups if f.order_id == due["owned"].id)
    assert owned.due_at == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # 09:00 in Stockholm, 14 days after


def test_post_purchase_followups_from_two_processes_at_once(engine: Engine, known: Known, db_url: str) -> None:
    today = NOW.date()
    with session_scope(engine) as session:
        for key in ("k1", "k2", "k3"):
            _order(session, _contact(session, known, key), today - timedelta(days=14))
    created = race(db_url, lambda session: create_post_purchase_followups(session, now=NOW, days=14, kinds=["customer"]))
    assert sorted(created) == [0, 3]
    with Session(engine) as session:
        assert len(session.exec(select(FollowUp).where(FollowUp.source == "post_purchase")).all()) == 3


def test_period_bounds_follow_the_local_calendar() -> None:
    # Stockholm leaves summer time on 2026-10-25: that day has 25 hours
    start, end = period_bounds("day", date(2026, 10, 25), "Europe/Stockholm")
    assert (start, end - start) == (datetime(2026, 10, 24, 22, tzinfo=UTC), timedelta(hours=25))
    start, end = period_bounds("week", date(2026, 11, 19), "UTC")  # a Thursday
    assert (start.date(), end.date()) == (date(2026, 11, 16), date(2026, 11, 23))
    assert last_complete_period("day", NOW, "Europe/Stockholm") == (S, E)
    with pytest.raises(UnknownZone, match="unknown time zone"):
        period_bounds("day", date(2026, 1, 1), "Mars/Olympus")
    with pytest.raises(DigestError, match="unknown period"):
        period_bounds("month", date(2026, 1, 1), "UTC")


def test_percentile_definition() -> None:
    assert percentile([], 50) is None
    assert percentile([5.0], 90) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([10.0, 20.0], 90) == pytest.approx(19.0)
