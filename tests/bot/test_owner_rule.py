"""One owner rule (store/owners.py): the card, `my`, visibility, search and segments agree; a contact
hidden by visibility says so; pick lists leave out unrelated names."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.commands import BotOptions, Ctx, run_command
from bot.notify import render_consent_withdrawn
from store.audit import INBOX
from store.consent import may_change_consent, withdraw_consent
from store.contacts_view import contact_card
from store.db import session_scope
from store.models import Company, Contact, Order, Rep
from store.outbox import ConsentWithdrawn, enqueue, job_of
from store.owners import contact_owner, owner_id_of
from store.search import refresh_index, search_contacts
from store.segments import SegmentParams, lapsed_customers
from store.validation import CATEGORIES
from tests.bot.conftest import all_text, engine_for

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@dataclass
class Team:
    anna: int  # sales rep, owns the company Acme
    sven: int  # support rep, another team
    acme_buyer: int  # at Acme, no owner of its own: Anna's through the company
    own: int  # owned by Anna directly


def _seed(engine: Engine) -> Team:
    with session_scope(engine) as session:
        anna = Rep(name="Anna Berg", email="anna@x.example", team="sales")
        sven = Rep(name="Sven Support", email="sven@x.example", team="support", role="support")
        session.add_all([anna, sven])
        session.flush()
        acme = Company(name="Acme", owner_id=anna.id)
        kras = Company(name="Kras Arhitekti")
        rheinland = Company(name="Rheinland Analytik GmbH")
        session.add_all([acme, kras, rheinland])
        session.flush()
        buyer = Contact(name="Petra Šťastná", kind="customer", company_id=acme.id)
        own = Contact(name="Olle Own", kind="customer", owner_id=anna.id)
        session.add_all([buyer, own, Contact(name="Anja Kovačič", company_id=kras.id),
                         Contact(name="Nina Zupan", company_id=kras.id),
                         Contact(name="Claudia Schäfer", company_id=rheinland.id)])
        session.flush()
        for day in (date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)):  # a lapsed customer
            session.add(Order(external_id=f"A-{day}", contact_id=buyer.id, amount=Decimal(100), ordered_on=day))
        refresh_index(session)
        assert anna.id and sven.id and buyer.id and own.id
        return Team(anna.id, sven.id, buyer.id, own.id)


def _run(engine: Engine, rep_id: int, text: str) -> str:
    with session_scope(engine) as session:
        rep = session.get(Rep, rep_id)
        assert rep is not None
        return all_text(run_command(Ctx(session, rep, NOW, BotOptions(categories=CATEGORIES)), text).blocks)


def test_the_card_my_search_and_segments_share_the_owner_rule(db_url: str) -> None:
    engine = engine_for(db_url)
    team = _seed(engine)
    with Session(engine) as session:
        buyer = session.get(Contact, team.acme_buyer)
        assert buyer is not None
        assert contact_owner(session, buyer).describe() == "Anna Berg (via company Acme)"
        card = contact_card(session, team.acme_buyer, now=NOW)
        assert card is not None and card.owner_id == owner_id_of(session, team.acme_buyer) == team.anna
        hit = search_contacts(session, "stastna")[0]
        assert hit.owner_id == team.anna
        lapsed = lapsed_customers(session, now=NOW, params=SegmentParams())
        assert [(c.contact_id, c.owner.id) for c in lapsed] == [(team.acme_buyer, team.anna)]
    assert "Anna Berg (via company Acme)" in _run(engine, team.anna, "find stastna")
    assert "You own 2 contacts (1 through their company)" in _run(engine, team.anna, "my")


def test_a_contact_of_another_team_says_so_instead_of_no_match(db_url: str) -> None:
    """Regression: a contact unowned itself but owned through its company was visible to every
    team; hidden ones answered "No contact matches", sending the rep looking for a typo."""
    engine = engine_for(db_url)
    team = _seed(engine)
    answer = _run(engine, team.sven, "find stastna")
    assert "owned by another team (team sales)" in answer and "Petra" not in answer
    assert "owned by another team" in _run(engine, team.sven, "log call stastna called about the order")
    assert "No contact matches" in _run(engine, team.sven, "find qqqzzz")


def test_regression_log_call_anna_offers_no_unrelated_names(db_url: str) -> None:
    """`log call anna` offered Anja, Nina, Claudia, David and Lucie: "anna" is half of "Analytik"."""
    engine = engine_for(db_url)
    team = _seed(engine)
    with Session(engine) as session:
        assert search_contacts(session, "anna") == []
        assert [h.name for h in search_contacts(session, "kovacic")] == ["Anja Kovačič"]
        assert [h.name for h in search_contacts(session, "kovacci")] == ["Anja Kovačič"]  # a typo still finds
    answer = _run(engine, team.anna, "log call anna talked about the offer")
    assert "No contact matches" in answer
    for unrelated in ("Anja", "Nina", "Claudia"):
        assert unrelated not in answer


def test_regression_an_unsubscribe_mail_tells_the_company_s_owner_not_the_managers(db_url: str) -> None:
    """An "odhláste ma z newslettera" from a contact owned through his company DMed a manager, not
    the owner: the DM (and who may change consent) read the contact's own owner only."""
    engine = engine_for(db_url)
    team = _seed(engine)
    with session_scope(engine) as session:
        session.add(Rep(name="Karin Lindqvist", email="karin@x.example", team="sales", role="manager"))
        buyer = session.get(Contact, team.acme_buyer)
        assert buyer is not None
        consent = withdraw_consent(session, buyer, "marketing", source="email", at=NOW, actor=INBOX)
        assert consent is not None and consent.id is not None
        item = enqueue(session, ConsentWithdrawn(consent.id, NOW.isoformat()), now=NOW)
        assert item is not None
        told = render_consent_withdrawn(session, job_of(item), NOW)
        anna, sven = session.get(Rep, team.anna), session.get(Rep, team.sven)
        assert anna is not None and sven is not None
        assert may_change_consent(session, anna, team.acme_buyer)
        assert not may_change_consent(session, sven, team.acme_buyer)
    assert [(dm.rep.name, dm.text) for dm in told] == [
        ("Anna Berg", "Petra Šťastná unsubscribed from marketing")]
