"""What a contact card costs: a fixed number of statements, however much the contact has.

Regression guard for issue 15 (`rapport serve` under load): every request's statements are
CPU under the GIL, and a statement per row (N+1) would grow with a busy contact's history.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import event
from sqlalchemy.engine import Engine

from store.contacts_view import contact_card, rep_queue
from store.db import read_session, session_scope
from store.followups import open_followups
from store.models import (
    Activity,
    ActivityKind,
    Company,
    Consent,
    Contact,
    ContactEmail,
    Conversation,
    FollowUp,
    Message,
    Order,
    Rep,
    Survey,
)

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
CARD_STATEMENTS = 7  # the contact with its company, owner, addresses and single values, then one per list of the card


def _contact_with_history(engine: Engine, n: int) -> int:
    """A contact at a company whose owner is a rep, with `n` of everything the card shows."""
    with session_scope(engine) as session:
        rep = Rep(name="Anna Berg", email=f"anna{n}@nordlys.example", team="sales")
        session.add(rep)
        session.flush()
        company = Company(name=f"Acme {n}", owner_id=rep.id)
        session.add(company)
        session.flush()
        contact = Contact(name=f"Jan Novák {n}", company_id=company.id)
        session.add(contact)
        session.flush()
        cid = contact.id
        for i in range(n):
            at = NOW - timedelta(days=i + 1)
            conversation = Conversation(subject=f"Order {i}", contact_id=cid, owner_id=rep.id, opened_at=at)
            session.add_all([
                ContactEmail(contact_id=cid, email=f"jan{n}.{i}@acme.example", is_primary=i == 0),
                Consent(contact_id=cid, purpose=f"purpose-{i}", basis="consent", granted_at=at),
                Order(external_id=f"O-{n}-{i}", contact_id=cid, amount=Decimal(100), currency=("EUR", "CZK")[i % 2],
                      ordered_on=date(2026, 1, 1) + timedelta(days=i)),
                conversation,
                Activity(kind=ActivityKind.call, contact_id=cid, rep_id=rep.id, summary=f"call {i}", occurred_at=at),
                Activity(kind=ActivityKind.note, company_id=company.id, rep_id=rep.id, summary=f"note {i}",
                         occurred_at=at),
                Activity(kind=ActivityKind.move, contact_id=cid, rep_id=rep.id, summary=f"move {i}", occurred_at=at),
                FollowUp(contact_id=cid, rep_id=rep.id, due_at=NOW + timedelta(days=i + 1), note=f"call back {i}"),
            ])
            session.flush()
            session.add(Survey(conversation_id=conversation.id, contact_id=cid, email=f"jan{n}.{i}@acme.example",
                               ref=f"ref-{n}-{i}", message_id=f"<survey-{n}-{i}@rapport>", sent_at=at,
                               expires_at=NOW + timedelta(days=30), answered_at=at, score=4))
        assert cid is not None
        return cid


@contextmanager
def counting_statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL run on `engine` inside the block (every statement is CPU under the GIL)."""
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_a_card_costs_the_same_few_statements_for_a_busy_contact_as_for_a_quiet_one(engine: Engine) -> None:
    quiet, busy = _contact_with_history(engine, 1), _contact_with_history(engine, 8)
    costs = {}
    for contact_id in (quiet, busy):
        with read_session(engine) as session, counting_statements(engine) as statements:
            card = contact_card(session, contact_id, now=NOW)
        assert card is not None and card.owner is not None and card.owner.endswith("(via company Acme 1)"
                                                                                  if contact_id == quiet
                                                                                  else "(via company Acme 8)")
        costs[contact_id] = len([s for s in statements if s.lstrip().upper().startswith("SELECT")])
    assert costs == {quiet: CARD_STATEMENTS, busy: CARD_STATEMENTS}
    with read_session(engine) as session:
        card = contact_card(session, busy, now=NOW)
    assert card is not None
    assert (len(card.emails), len(card.consents), card.order_count, len(card.open_conversations)) == (8, 8, 8, 5)
    assert card.last_score == 4 and card.last_touch_at is not None and card.next_followup is not None


def test_the_cards_single_values_are_the_latest_score_and_the_latest_touch(engine: Engine) -> None:
    """Regression guard: they are columns of the contact's statement now, not statements of their own."""
    first, later, latest = NOW - timedelta(days=9), NOW - timedelta(days=3), NOW - timedelta(days=1)
    with session_scope(engine) as session:
        contact = Contact(name="Eva Horváth")
        session.add(contact)
        session.flush()
        cid = contact.id
        assert cid is not None
        conversations = [Conversation(subject=f"Delivery {n}", contact_id=cid, opened_at=first) for n in range(3)]
        session.add_all(conversations)
        session.flush()
        for n, (sent, answered, score) in enumerate([(first, later, 2), (first, first, 5), (latest, None, None)]):
            session.add(Survey(conversation_id=conversations[n].id, contact_id=cid, email="eva@example.test",
                               ref=f"eva-{n}", message_id=f"<eva-{n}@rapport>", sent_at=sent,
                               expires_at=NOW + timedelta(days=30), answered_at=answered, score=score))
        session.add_all([Activity(kind=ActivityKind.call, contact_id=cid, summary="call", occurred_at=later),
                         Message(contact_id=cid, conversation_id=conversations[0].id, message_id="<m1@example.test>",
                                 received_at=latest)])
    with read_session(engine) as session:
        card = contact_card(session, cid, now=NOW)
    assert card is not None
    # the latest answered survey (answered later, scored lower), not the unanswered newest one
    assert (card.last_score, card.last_score_at) == (2, later)
    assert card.last_touch_at == latest  # the mail, newer than the call
    with session_scope(engine) as session:
        quiet = Contact(name="Nobody Yet", created_at=first)
        session.add(quiet)
        session.flush()
        quiet_id, quiet_at = quiet.id, quiet.created_at
    with read_session(engine) as session:
        card = contact_card(session, quiet_id or 0, now=NOW)
    # nothing happened with them yet: they count from their creation, as in the quiet segments
    assert card is not None and (card.last_score, card.last_score_at, card.last_touch_at) == (None, None, quiet_at)


def test_regression_the_card_the_queue_and_follow_ups_read_their_lines_as_columns_not_as_objects(
        engine: Engine) -> None:
    """A card, the queue (`my`, App Home) and a rep's follow-ups read the columns they show, no
    object: loading the contact, its company and owner as objects was a quarter of a card's
    instructions, whole Conversation objects a tenth of `my`'s, and activities and follow-ups
    as objects a third of their statements' (issue 15)."""
    contact_id = _contact_with_history(engine, 6)
    loaded: list[object] = []

    def on_load(target: object, _context: object) -> None:
        loaded.append(target)

    models = (Contact, Company, Rep, Conversation, Consent, Activity, FollowUp)
    for model in models:
        event.listen(model, "load", on_load)
    try:
        with read_session(engine) as session:
            card = contact_card(session, contact_id, now=NOW)
            assert card is not None and card.owner_id is not None
            queue, total = rep_queue(session, card.owner_id, limit=4)
            followups = open_followups(session, card.owner_id, limit=2)
    finally:
        for model in models:
            event.remove(model, "load", on_load)
    assert loaded == []
    assert (card.name, card.company, card.owner) == ("Jan Novák 6", "Acme 6", "Anna Berg (via company Acme 6)")
    assert [line.purpose for line in card.consents] == [f"purpose-{i}" for i in range(6)]
    assert [line.subject for line in card.open_conversations] == [f"Order {i}" for i in range(5)]
    # most urgent first; none of these has a reply due, so the oldest first
    assert [line.subject for line in queue] == [f"Order {i}" for i in reversed(range(2, 6))] and total == 6
    assert {(line.owner, line.contact) for line in card.open_conversations} == {("Anna Berg", None)}
    assert {(line.owner, line.contact) for line in queue} == {(None, "Jan Novák 6")}
    # the newest first (of one time, the later written): the company's note and a call of each
    # day; moves are listed apart
    assert [(a.kind, a.summary) for a in card.activities] == [
        ("note", "note 0"), ("call", "call 0"), ("note", "note 1"), ("call", "call 1"), ("note", "note 2")]
    assert [(m.activity.summary, m.by) for m in card.moves][:2] == [("move 0", "Anna Berg"), ("move 1", "Anna Berg")]
    assert card.next_followup is not None and card.next_followup.note == "call back 0"
    assert [(f.note, f.contact) for f in followups] == [("call back 0", "Jan Novák 6"), ("call back 1", "Jan Novák 6")]
