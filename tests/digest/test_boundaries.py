"""Edges the hand-built store does not reach: three or more gaps between purchases, an SLA due
exactly where one digest period ends and the next begins."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy.engine import Engine
from sqlmodel import Session

from store.db import session_scope
from store.digest import compute_digest
from store.models import Contact, Conversation, Order, Rep
from store.segments import SegmentParams, lapsed_customers
from tests.digest.known_store import NOW, TODAY, E, Known, S


def test_lapsed_uses_the_median_gap_not_the_mean(engine: Engine, known: Known) -> None:
    """Gaps of 10, 10 and 100 days: median 10 (threshold 20), mean 40 (threshold 80); 50 days silent."""
    with session_scope(engine) as session:
        contact = Contact(name="Gil Gaps", kind="customer", owner_id=known.reps["alice"].id)
        session.add(contact)
        session.flush()
        for n, back in enumerate((170, 160, 150, 50)):
            session.add(Order(external_id=f"gap-{n}", contact_id=contact.id, amount=Decimal(1), currency="EUR",
                              ordered_on=TODAY - timedelta(days=back)))
    params = SegmentParams(lapsed_min_days=1, lapsed_gap_factor=2.0)
    with Session(engine) as session:
        gil = next(c for c in lapsed_customers(session, now=NOW, params=params) if c.name == "Gil Gaps")
    assert (gil.median_gap_days, gil.threshold_days, gil.days_since) == (10, 20, 50)


def _both_days(engine: Engine, known: Known, figure: str) -> tuple[int, int]:
    """`figure` of Maja's digest for the day that ends at E and for the day that begins there."""
    with Session(engine) as session:
        maja = session.get(Rep, known.reps["maja"].id)
        assert maja is not None
        first, second = (
            getattr(compute_digest(session, manager=maja, period="day", start=start, end=start + (E - S),
                                   params=SegmentParams(), now=E + timedelta(days=2)), figure)
            for start in (S, E)
        )
    return first, second


def _added_at_the_boundary(engine: Engine, known: Known, figure: str, **conversation: object) -> tuple[int, int]:
    """How much `figure` grows on each side of E when a conversation is added."""
    before = _both_days(engine, known, figure)
    with session_scope(engine) as session:
        session.add(Conversation(owner_id=known.reps["alice"].id, status="open", **conversation))
    after = _both_days(engine, known, figure)
    return after[0] - before[0], after[1] - before[1]


def test_an_sla_due_at_a_period_boundary_counts_in_one_digest_only(engine: Engine, known: Known) -> None:
    # the later day's, not both, not none
    assert _added_at_the_boundary(engine, known, "sla_breaches", subject="due at midnight", opened_at=S,
                                  sla_due_at=E) == (0, 1)


def test_a_conversation_opened_at_a_period_boundary_is_new_in_the_later_period(engine: Engine,
                                                                               known: Known) -> None:
    assert _added_at_the_boundary(engine, known, "new_conversations", subject="opened at midnight",
                                  opened_at=E) == (0, 1)
