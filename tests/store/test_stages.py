"""The rules that move a contact (store/stages.py): an imported order, post_purchase N days after
an order (the scheduler's step), and the activity each move leaves with its reason."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from store.audit import SCHEDULER, audit_entries
from store.db import session_scope
from store.importing import ImportReport
from store.models import Activity, AuditEntry, Contact, ContactEmail, Order, Rep
from store.stages import (
    KINDS,
    STAGES,
    UnknownValue,
    advance_to_post_purchase,
    check_stage,
    import_move,
    move_contact,
    stage_history,
)
from tests.imports import import_builtin

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _contact(engine: Engine, email: str, *, kind: str = "prospect", stage: str = "need") -> int:
    with session_scope(engine) as session:
        contact = Contact(name=email.partition("@")[0].title(), kind=kind, stage=stage)
        session.add(contact)
        session.flush()
        assert contact.id is not None
        session.add(ContactEmail(contact_id=contact.id, email=email, is_primary=True))
        return contact.id


def _moves(engine: Engine, contact_id: int) -> list[Activity]:
    with Session(engine) as session:
        query = select(Activity).where(Activity.contact_id == contact_id, Activity.kind == "move")
        return list(session.exec(query.order_by(col(Activity.id))).all())


def _state(engine: Engine, contact_id: int) -> tuple[str, str]:
    with Session(engine) as session:
        contact = session.get(Contact, contact_id)
        assert contact is not None
        return contact.kind, contact.stage


def _audit(engine: Engine, contact_id: int) -> list[AuditEntry]:
    with Session(engine) as session:
        return audit_entries(session, contact_ids=[contact_id])


def test_a_prospects_first_imported_order_makes_it_a_customer_at_purchase(engine: Engine, tmp_path: Path) -> None:
    prospect = _contact(engine, "pia@prospect.example")
    evaluating = _contact(engine, "eva@customer.example", kind="customer", stage="evaluation")
    partner = _contact(engine, "pat@partner.example", kind="partner", stage="post_purchase")
    cancelled = _contact(engine, "cal@prospect.example")
    orders = tmp_path / "orders.csv"
    orders.write_text(
        "order_id,email,amount,ordered_on,status\n"
        "NS-10,pia@prospect.example,100,2026-11-20,completed\n"
        "NS-11,pia@prospect.example,50,2026-11-21,completed\n"  # a second order moves nothing more
        "NS-12,eva@customer.example,70,2026-11-21,completed\n"
        "NS-13,pat@partner.example,70,2026-11-21,completed\n"  # already past purchase, and a partner stays one
        "NS-14,cal@prospect.example,70,2026-11-21,cancelled\n",
        encoding="utf-8",
    )
    assert import_builtin(engine, "orders", orders).imported == 5

    assert _state(engine, prospect) == ("customer", "purchase")
    [move] = _moves(engine, prospect)
    assert (move.contact_kind_from, move.contact_kind_to, move.stage_from, move.stage_to) == (
        "prospect", "customer", "need", "purchase")
    assert move.summary == "first order NS-10 of 2026-11-20" and move.rep_id is None
    assert _state(engine, evaluating) == ("customer", "purchase")
    assert _moves(engine, evaluating)[0].summary == "first order NS-12 of 2026-11-21"
    assert _state(engine, partner) == ("partner", "post_purchase") and _moves(engine, partner) == []
    assert _state(engine, cancelled) == ("prospect", "need") and _moves(engine, cancelled) == []

    assert import_builtin(engine, "orders", orders).imported == 0  # a re-import moves nobody again
    assert len(_moves(engine, prospect)) == 1
    # the audit log: each field the import changed, by the person who ran it, once
    assert [(e.action, e.via, e.detail) for e in _audit(engine, prospect)] == [
        ("contact.kind", "cli", {"from": "prospect", "to": "customer"}),
        ("contact.stage", "cli", {"from": "need", "to": "purchase"})]
    assert all(e.actor.startswith("cli:") for e in _audit(engine, prospect))
    assert _audit(engine, cancelled) == []


def test_post_purchase_follows_n_days_after_the_latest_order(engine: Engine) -> None:
    buyer = _contact(engine, "bo@customer.example", kind="customer", stage="purchase")
    recent = _contact(engine, "ro@customer.example", kind="customer", stage="purchase")
    no_orders = _contact(engine, "no@customer.example", kind="customer", stage="purchase")
    with session_scope(engine) as session:
        session.add_all([
            Order(external_id="A-1", contact_id=buyer, amount=Decimal(10), ordered_on=date(2026, 11, 1)),
            Order(external_id="A-2", contact_id=buyer, amount=Decimal(10), ordered_on=date(2026, 11, 9)),
            Order(external_id="B-1", contact_id=recent, amount=Decimal(10), ordered_on=date(2026, 11, 1)),
            Order(external_id="B-2", contact_id=recent, amount=Decimal(10), ordered_on=date(2026, 11, 10)),
        ])
    with session_scope(engine) as session:  # 14 days after 9 Nov is 23 Nov: due; 10 Nov is not yet
        assert advance_to_post_purchase(session, now=NOW, days=14) == 1
    with session_scope(engine) as session:
        assert advance_to_post_purchase(session, now=NOW, days=14) == 0  # once
    assert _state(engine, buyer) == ("customer", "post_purchase")
    [move] = _moves(engine, buyer)
    assert (move.stage_from, move.stage_to, move.summary, move.occurred_at) == (
        "purchase", "post_purchase", "14 days after the order of 2026-11-09", NOW)
    assert _state(engine, recent)[1] == "purchase" and _state(engine, no_orders)[1] == "purchase"
    assert [(e.action, e.actor, e.via, e.at) for e in _audit(engine, buyer)] == [
        ("contact.stage", "rapport", "scheduler", NOW)]
    with session_scope(engine) as session:
        assert advance_to_post_purchase(session, now=NOW + timedelta(days=1), days=14) == 1
    assert _state(engine, recent)[1] == "post_purchase"


def _rep_moves(engine: Engine, contact_id: int, stage: str, *, at: datetime) -> None:
    """A rep moves the contact, as `/crm stage` does."""
    with session_scope(engine) as session:
        rep = Rep(name="Anna Berg", email=f"anna{contact_id}@nordlys.example")
        session.add(rep)
        session.flush()
        contact = session.get(Contact, contact_id)
        assert contact is not None
        move_contact(session, contact, stage=stage, reason="renewal signed today", at=at, rep_id=rep.id,
                     actor=SCHEDULER)


def test_post_purchase_ignores_orders_older_than_a_reps_move_to_purchase(engine: Engine) -> None:
    # regression: a rep put a customer at purchase; the next tick moved it on, citing a September order
    renewing = _contact(engine, "mo@customer.example", kind="customer", stage="information_search")
    with session_scope(engine) as session:
        session.add(Order(external_id="C-1", contact_id=renewing, amount=Decimal(10), ordered_on=date(2026, 9, 14)))
    _rep_moves(engine, renewing, "purchase", at=NOW)
    with session_scope(engine) as session:
        assert advance_to_post_purchase(session, now=NOW, days=14) == 0
    with session_scope(engine) as session:  # nor later: the old order is no evidence for this purchase
        assert advance_to_post_purchase(session, now=NOW + timedelta(days=60), days=14) == 0
    assert _state(engine, renewing)[1] == "purchase"

    with session_scope(engine) as session:  # the order of the move's day counts
        session.add(Order(external_id="C-2", contact_id=renewing, amount=Decimal(10), ordered_on=NOW.date()))
    with session_scope(engine) as session:
        assert advance_to_post_purchase(session, now=NOW + timedelta(days=13), days=14) == 0
        assert advance_to_post_purchase(session, now=NOW + timedelta(days=14), days=14) == 1
    assert _moves(engine, renewing)[-1].summary == "14 days after the order of 2026-11-23"


def test_a_reps_later_move_back_to_purchase_is_not_undone_by_the_same_order(engine: Engine) -> None:
    buyer = _contact(engine, "bb@customer.example", kind="customer", stage="purchase")
    with session_scope(engine) as session:
        session.add(Order(external_id="D-1", contact_id=buyer, amount=Decimal(10), ordered_on=date(2026, 11, 1)))
    with session_scope(engine) as session:
        assert advance_to_post_purchase(session, now=NOW, days=14) == 1
    _rep_moves(engine, buyer, "purchase", at=NOW + timedelta(days=1))  # "not yet: the second half is pending"
    with session_scope(engine) as session:
        assert advance_to_post_purchase(session, now=NOW + timedelta(days=2), days=14) == 0
    assert _state(engine, buyer)[1] == "purchase"


def test_post_purchase_follows_an_older_order_imported_after_a_reps_move_to_evaluation(
    engine: Engine, tmp_path: Path
) -> None:
    # regression: the rep's move to evaluation (10 Nov) hid the order of 5 Nov that the order
    # import (20 Nov) moved the contact to purchase for: it never reached post purchase
    buyer = _contact(engine, "ev@customer.example", kind="customer", stage="information_search")
    _rep_moves(engine, buyer, "evaluation", at=datetime(2026, 11, 10, 9, 0, tzinfo=UTC))
    orders = tmp_path / "orders.csv"
    orders.write_text("order_id,email,amount,ordered_on\nE-1,ev@customer.example,100,2026-11-05\n",
                      encoding="utf-8")
    assert import_builtin(engine, "orders", orders, now=datetime(2026, 11, 20, 9, 0, tzinfo=UTC)).imported == 1
    assert _state(engine, buyer) == ("customer", "purchase")

    with session_scope(engine) as session:  # 30 days after 5 Nov is 5 Dec
        assert advance_to_post_purchase(session, now=datetime(2026, 12, 4, 9, 0, tzinfo=UTC), days=30) == 0
        assert advance_to_post_purchase(session, now=datetime(2026, 12, 5, 9, 0, tzinfo=UTC), days=30) == 1
    latest = _moves(engine, buyer)[-1]
    assert (latest.stage_to, latest.summary) == ("post_purchase", "30 days after the order of 2026-11-05")


def test_a_move_without_change_records_nothing_and_unknown_values_are_refused(engine: Engine) -> None:
    contact_id = _contact(engine, "x@prospect.example")
    with session_scope(engine) as session:
        contact = session.get(Contact, contact_id)
        assert contact is not None
        assert move_contact(session, contact, stage="need", reason="same", at=NOW, actor=SCHEDULER) is None
        with pytest.raises(UnknownValue, match="choose one of: need, information_search"):
            move_contact(session, contact, stage="negotiation", reason="?", at=NOW, actor=SCHEDULER)
        move_contact(session, contact, stage="Post-purchase", reason="typed loosely", at=NOW, actor=SCHEDULER)
    with Session(engine) as session:
        [move] = stage_history(session, contact_id)
    assert (move.activity.stage_to, move.by) == ("post_purchase", None)
    assert check_stage("information search") == "information_search"


STAGES_CSV = Path(__file__).parent.parent / "fixtures" / "csv" / "contacts_stages.csv"


def _contact_id(engine: Engine, email: str) -> int:
    with Session(engine) as session:
        return session.exec(select(ContactEmail.contact_id).where(ContactEmail.email == email)).one()


def test_regression_reimport_never_moves_a_stage_back_without_a_trace(engine: Engine) -> None:
    """Re-importing the demo's contacts moved Mojca Novak from post purchase back to information
    search, with no move and no audit entry: her card and her stage history disagreed."""
    import_builtin(engine, "contacts", STAGES_CSV, now=NOW)
    mojca = _contact_id(engine, "mojca.novak@medlab-lj.si")
    with session_scope(engine) as session:  # Rapport moves her on (an order, the scheduler, a rep)
        contact = session.get_one(Contact, mojca)
        move_contact(session, contact, stage="post_purchase", reason="after her order", at=NOW, actor=SCHEDULER)

    again = import_builtin(engine, "contacts", STAGES_CSV, now=NOW + timedelta(days=1))

    assert (again.updated, again.unchanged) == (0, 2)
    assert _state(engine, mojca) == ("customer", "post_purchase")
    assert [m.stage_to for m in _moves(engine, mojca)] == ["post_purchase"]
    assert _warnings(again) == [(2, "file says information search; kept post purchase (move back with /crm stage)")]


def _import_contacts(engine: Engine, tmp_path: Path, *lines: str) -> ImportReport:
    """Import a contacts file of these lines (the header first)."""
    rows = tmp_path / "contacts.csv"
    rows.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return import_builtin(engine, "contacts", rows, now=NOW)


def _warnings(report: ImportReport) -> list[tuple[int, str]]:
    return [(w.line, w.reason) for w in report.warnings]


def test_reimport_makes_a_customer_a_partner_and_warns_of_the_stage_it_keeps(
    engine: Engine, tmp_path: Path
) -> None:
    # regression: a customer at post purchase re-imported as "partner, need" came out unchanged,
    # without a word: the change of kind was dropped along with the step back
    buyer = _contact(engine, "pp@customer.example", kind="customer", stage="post_purchase")
    report = _import_contacts(engine, tmp_path, "Email,Type,Lifecycle Stage", "pp@customer.example,partner,need")

    assert (report.updated, report.unchanged) == (1, 0)
    assert _state(engine, buyer) == ("partner", "post_purchase")
    [move] = _moves(engine, buyer)
    assert (move.contact_kind_from, move.contact_kind_to, move.stage_to) == ("customer", "partner", None)
    assert _warnings(report) == [(2, "file says need; kept post purchase (move back with /crm stage)")]


def test_an_import_turns_a_partner_into_a_customer_but_nobody_back_into_a_prospect(
    engine: Engine, tmp_path: Path
) -> None:
    partner = _contact(engine, "pa@partner.example", kind="partner", stage="purchase")
    customer = _contact(engine, "cu@customer.example", kind="customer", stage="evaluation")
    report = _import_contacts(engine, tmp_path, "Email,Type", "pa@partner.example,customer",
                              "cu@customer.example,prospect")

    assert (report.updated, report.unchanged) == (1, 1)
    assert _state(engine, partner) == ("customer", "purchase")
    assert _state(engine, customer) == ("customer", "evaluation") and _moves(engine, customer) == []
    assert _warnings(report) == [(3, "file says prospect; kept customer (change with /crm kind)")]


@given(kind=st.sampled_from(KINDS), stage=st.sampled_from(STAGES),
       file_kind=st.none() | st.sampled_from(KINDS), file_stage=st.none() | st.sampled_from(STAGES))
def test_an_import_never_steps_back_and_warns_of_every_value_it_keeps(
    kind: str, stage: str, file_kind: str | None, file_stage: str | None
) -> None:
    move, held = import_move(kind, stage, file_kind, file_stage, source="contacts.csv")
    new_kind = move.kind if move and move.kind else kind
    new_stage = move.stage if move and move.stage else stage
    assert STAGES.index(new_stage) >= STAGES.index(stage)
    assert new_kind == kind or new_kind != "prospect"
    if file_kind in ("customer", "partner"):
        assert new_kind == file_kind
    kept_back = (file_kind not in (None, new_kind)) + (file_stage not in (None, new_stage))
    assert len(held) == kept_back


def test_an_import_moves_a_contact_forward_as_a_recorded_move(engine: Engine) -> None:
    import_builtin(engine, "contacts", STAGES_CSV, now=NOW)
    mojca = _contact_id(engine, "mojca.novak@medlab-lj.si")
    agnieszka = _contact_id(engine, "agnieszka.wojcik@wislabiuro.pl")

    later = import_builtin(engine, "contacts", STAGES_CSV.with_name("contacts_stages_later.csv"), now=NOW)

    assert (later.updated, later.unchanged) == (2, 0)
    assert _state(engine, mojca) == ("customer", "evaluation")
    assert _state(engine, agnieszka) == ("customer", "purchase")
    [move] = _moves(engine, agnieszka)
    assert (move.contact_kind_from, move.contact_kind_to, move.stage_from, move.stage_to) == (
        "prospect", "customer", "need", "purchase")
    assert move.summary == "import of contacts_stages_later.csv"
    assert [(e.action, e.detail) for e in _audit(engine, agnieszka)] == [
        ("contact.kind", {"from": "prospect", "to": "customer"}),
        ("contact.stage", {"from": "need", "to": "purchase"}),
    ]
