"""The digest's buying-stage figures (store.digest.Funnel) against a small hand-built store.

Maja manages team "nordics" (Alice); Carol is in team "south". The period is the
Stockholm day of S; every row says why it is there and what it counts for.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.digest import DigestLinks, funnel_section, render_digest_text
from store.audit import SCHEDULER
from store.db import session_scope
from store.digest import Funnel, compute_digest
from store.models import Activity, Company, Contact, Rep
from store.segments import SegmentParams
from store.stages import move_contact

NOW = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
S = datetime(2026, 11, 21, 23, 0, tzinfo=UTC)  # Sunday 22 Nov, Stockholm
E = S + timedelta(days=1)


def _build(session: Session) -> dict[str, int]:
    reps = {
        "maja": Rep(name="Maja", email="maja@x.example", role="manager", team="nordics", timezone="Europe/Stockholm"),
        "alice": Rep(name="Alice", email="alice@x.example", team="nordics"),
        "carol": Rep(name="Carol", email="carol@x.example", team="south"),
        "ada": Rep(name="Ada", email="ada@x.example", role="admin"),
    }
    session.add_all(reps.values())
    session.flush()
    alices_company = Company(name="Cleo AB", owner_id=reps["alice"].id)
    session.add(alices_company)
    session.flush()

    def contact(name: str, kind: str, stage: str, owner: str | None, company: Company | None = None) -> Contact:
        row = Contact(name=name, kind=kind, stage=stage, owner_id=reps[owner].id if owner else None,
                      company_id=company.id if company else None)
        session.add(row)
        session.flush()
        return row

    a1 = contact("A1", "prospect", "need", "alice")
    a2 = contact("A2", "prospect", "need", "alice")
    a3 = contact("A3", "prospect", "need", None, alices_company)  # the team's through its company
    a4 = contact("A4", "customer", "purchase", "alice")
    a5 = contact("A5", "customer", "evaluation", "alice")
    c1 = contact("C1", "prospect", "need", "carol")  # another team
    contact("U1", "prospect", "need", None)  # nobody's: only the admin's digest counts it

    def move(row: Contact, at: datetime, **change: str) -> None:
        assert move_contact(session, row, reason="test", at=at, actor=SCHEDULER, **change) is not None

    move(a2, S + timedelta(hours=2), stage="information_search")  # moved in the period
    move(a2, S + timedelta(hours=3), stage="evaluation")  # ... twice: counted once
    move(a3, S + timedelta(hours=4), kind="customer", stage="purchase")  # moved, and became a customer
    move(a4, S - timedelta(hours=1), stage="post_purchase")  # before the period
    move(a5, E, kind="partner")  # at the period's end: outside it
    move(a1, S + timedelta(hours=5), kind="partner")  # a kind-only move: not a stage move
    move(a1, S + timedelta(hours=6), kind="customer")  # partner to customer: not a prospect that became one
    move(c1, S + timedelta(hours=2), kind="customer", stage="purchase")  # Carol's team
    session.add(Activity(kind="note", contact_id=a5.id, summary="not a move", occurred_at=S + timedelta(hours=1)))
    session.flush()
    return {key: rep.id for key, rep in reps.items() if rep.id is not None}


def _funnel(engine: Engine, manager_id: int) -> Funnel:
    with Session(engine) as session:
        manager = session.get(Rep, manager_id)
        assert manager is not None
        figures = compute_digest(session, manager=manager, period="day", start=S, end=E,
                                 params=SegmentParams(), now=NOW)
        assert "Buying stages" in render_digest_text(figures)
        return figures.funnel


def test_funnel_per_team_against_a_hand_built_store(engine: Engine) -> None:
    with session_scope(engine) as session:
        reps = _build(session)

    team = _funnel(engine, reps["maja"])
    assert team.by_stage == {"need": 1, "information_search": 0, "evaluation": 2, "purchase": 1,
                             "post_purchase": 1}  # A1; A2, A5; A3; A4
    assert (team.moved, team.became_customers) == (2, 1)  # A2 and A3; A3

    everyone = _funnel(engine, reps["ada"])
    assert everyone.by_stage == {"need": 2, "information_search": 0, "evaluation": 2, "purchase": 2,
                                 "post_purchase": 1}  # + U1; + C1
    assert (everyone.moved, everyone.became_customers) == (3, 2)


def test_the_funnel_section_reads_plainly() -> None:
    funnel = Funnel({"need": 4, "information_search": 2, "evaluation": 0, "purchase": 1, "post_purchase": 3}, 3, 1)
    figures = SimpleNamespace(funnel=funnel)
    section = funnel_section(figures, DigestLinks())  # type: ignore[arg-type]
    assert section is not None and section.title == "Buying stages"
    assert section.note == ("need 4, information search 2, evaluation 0, purchase 1, post purchase 3. "
                            "This period: 3 contacts moved, 1 prospect became a customer.")
    assert funnel_section(SimpleNamespace(funnel=Funnel(dict.fromkeys(funnel.by_stage, 0), 0, 0)),  # type: ignore[arg-type]
                          DigestLinks()) is None
