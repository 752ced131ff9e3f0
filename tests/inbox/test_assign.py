"""Assignment rules: each rule wins in its own situation, and each explains itself."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from inbox.assign import Team, explain, unavailable_because
from inbox.options import IngestOptions, Route
from inbox.pipeline import FetchedMessage, process_batch
from rapport.settings import load_settings
from rapport.wiring import Runtime, ingest_options
from store.assignments import ReassignError, open_load, reassign, record_assignment
from store.db import session_scope
from store.hours import is_working, parse_working_hours
from store.models import (
    Assignment,
    Company,
    CompanyDomain,
    Contact,
    ContactEmail,
    Conversation,
    OutboxItem,
    Rep,
)
from store.types import utcnow
from tests.inbox.helpers import NOW, KeywordClassifier, add_rep, mail


def ingest_one(engine: Engine, raw: bytes, options: IngestOptions, classifier: KeywordClassifier) -> Assignment:
    with session_scope(engine) as session:
        process_batch(session, [FetchedMessage(raw, "support@shop.example", "INBOX")], checkpoint=None,
                      options=options, classifier=classifier)
    with session_scope(engine) as session:
        return session.exec(select(Assignment).order_by(Assignment.id.desc())).first()  # type: ignore[union-attr]


def give_open_conversations(engine: Engine, rep_id: int, count: int, status: str = "open") -> None:
    with session_scope(engine) as session:
        for i in range(count):
            session.add(Conversation(subject=f"busy {i}", owner_id=rep_id, status=status))


def test_least_busy_counts_only_open_work_and_includes_reps_with_none(
    sqlite_engine: Engine, options: IngestOptions, keyword_classifier: KeywordClassifier
) -> None:
    alice = add_rep(sqlite_engine, "alice@shop.example")
    bob = add_rep(sqlite_engine, "bob@shop.example")
    carol = add_rep(sqlite_engine, "carol@shop.example")
    give_open_conversations(sqlite_engine, alice, 1)
    give_open_conversations(sqlite_engine, bob, 40, status="closed")  # closed work is not load
    give_open_conversations(sqlite_engine, carol, 2)
    with session_scope(sqlite_engine) as session:
        assert open_load(session) == {alice: 1, bob: 0, carol: 2}

    assignment = ingest_one(sqlite_engine, mail(), options, keyword_classifier)
    assert (assignment.rule, assignment.owner_id) == ("least_busy", bob)
    assert "Bob has 0 open" in assignment.reason


def test_least_busy_skips_reps_away_outside_hours_or_full(
    sqlite_engine: Engine, options: IngestOptions, keyword_classifier: KeywordClassifier
) -> None:
    add_rep(sqlite_engine, "away@shop.example", away_until=NOW + timedelta(days=3))
    add_rep(sqlite_engine, "night@shop.example", working_hours="Mon-Fri 22:00-06:00")
    add_rep(sqlite_engine, "tokyo@shop.example", timezone="Asia/Tokyo")  # 19:00 there
    full = add_rep(sqlite_engine, "full@shop.example", capacity=1)
    give_open_conversations(sqlite_engine, full, 1)
    busy = add_rep(sqlite_engine, "busy@shop.example")
    give_open_conversations(sqlite_engine, busy, 5)

    assignment = ingest_one(sqlite_engine, mail(), options, keyword_classifier)
    assert (assignment.rule, assignment.owner_id) == ("least_busy", busy)


def test_fallback_queue_when_nobody_can_take_it(
    sqlite_engine: Engine, keyword_classifier: KeywordClassifier
) -> None:
    add_rep(sqlite_engine, "away@shop.example", away_until=NOW + timedelta(days=1))
    options = IngestOptions(now=NOW, fallback_queue="inbox-triage")
    assignment = ingest_one(sqlite_engine, mail(), options, keyword_classifier)
    assert (assignment.rule, assignment.owner_id, assignment.queue) == ("fallback", None, "inbox-triage")
    with session_scope(sqlite_engine) as session:
        [conversation] = session.exec(select(Conversation)).all()
        assert conversation.queue == "inbox-triage"
        tag = session.exec(select(OutboxItem).where(OutboxItem.kind == "imap-tag")).first()
    assert tag is None  # no UID (not from IMAP): nothing to tag


def test_contact_owner_wins_then_company_owner(
    sqlite_engine: Engine, options: IngestOptions, keyword_classifier: KeywordClassifier
) -> None:
    add_rep(sqlite_engine, "idle@shop.example")
    dana = add_rep(sqlite_engine, "dana@shop.example")
    erik = add_rep(sqlite_engine, "erik@shop.example")
    give_open_conversations(sqlite_engine, dana, 9)
    give_open_conversations(sqlite_engine, erik, 9)
    with session_scope(sqlite_engine) as session:
        company = Company(name="Acme", owner_id=erik)
        session.add(company)
        session.flush()
        assert company.id is not None
        session.add(CompanyDomain(company_id=company.id, domain="acme.example"))
        contact = Contact(name="Eva", owner_id=dana, company_id=company.id)
        session.add(contact)
        session.flush()
        assert contact.id is not None
        session.add(ContactEmail(contact_id=contact.id, email="eva@acme.example"))

    by_contact = ingest_one(sqlite_engine, mail(sender="eva@acme.example", message_id="<a@acme>"), options, keyword_classifier)
    by_company = ingest_one(sqlite_engine, mail(sender="new@acme.example", message_id="<b@acme>", subject="Other"),
                            options, keyword_classifier)
    assert (by_contact.rule, by_contact.owner_id) == ("account_owner", dana)
    assert "contact Eva" in by_contact.reason
    assert (by_company.rule, by_company.owner_id) == ("account_owner", erik)
    assert "company Acme" in by_company.reason


def test_skill_routing_prefers_a_rep_who_speaks_the_language(
    sqlite_engine: Engine, options: IngestOptions, keyword_classifier: KeywordClassifier
) -> None:
    add_rep(sqlite_engine, "idle@shop.example")
    add_rep(sqlite_engine, "refunds.en@shop.example", skills=["refund"], languages=["en"])
    refunds_de = add_rep(sqlite_engine, "refunds.de@shop.example", skills=["refund"], languages=["de"])
    german = mail(subject="Erstattung", body="Guten Tag, ich möchte bitte eine Erstattung und danke.")
    assignment = ingest_one(sqlite_engine, german, options, keyword_classifier)
    assert (assignment.rule, assignment.owner_id) == ("skill", refunds_de)
    assert "handles refund and speaks de" in assignment.reason


def test_language_routing_when_no_skill_matches(
    sqlite_engine: Engine, options: IngestOptions, keyword_classifier: KeywordClassifier
) -> None:
    add_rep(sqlite_engine, "idle@shop.example", languages=["en"])
    slovak = add_rep(sqlite_engine, "sk@shop.example", languages=["sk"])
    give_open_conversations(sqlite_engine, slovak, 3)
    assignment = ingest_one(sqlite_engine, mail(subject="Otázka", body="Dobrý deň, som zákazník, prosím o pomoc."),
                            options, keyword_classifier)
    assert (assignment.rule, assignment.owner_id) == ("language", slovak)


def test_configured_route_sends_a_category_to_a_team(
    sqlite_engine: Engine, keyword_classifier: KeywordClassifier
) -> None:
    add_rep(sqlite_engine, "idle@shop.example")
    f1 = add_rep(sqlite_engine, "f1@shop.example", team="finance")
    f2 = add_rep(sqlite_engine, "f2@shop.example", team="finance")
    give_open_conversations(sqlite_engine, f1, 2)
    options = IngestOptions(now=NOW, routes=[Route(category="billing", team="finance")])
    assignment = ingest_one(sqlite_engine, mail(subject="Invoice 55 is wrong"), options, keyword_classifier)
    assert (assignment.rule, assignment.owner_id) == ("skill", f2)
    assert "route billing → team finance" in assignment.reason


def test_explain_lists_the_rules_tried_up_to_the_stored_winner(
    sqlite_engine: Engine, options: IngestOptions, keyword_classifier: KeywordClassifier
) -> None:
    add_rep(sqlite_engine, "alice@shop.example")
    assignment = ingest_one(sqlite_engine, mail(subject="Where is my parcel?"), options, keyword_classifier)
    with session_scope(sqlite_engine) as session:
        outcomes = explain(session, assignment.conversation_id).rules
    assert [o.rule for o in outcomes] == ["thread_owner", "account_owner", "skill", "language", "least_busy"]
    assert not outcomes[0].applied and outcomes[0].reason == "no earlier owner in this thread"
    assert outcomes[2].reason == "no rep has the skill delivery"
    least_busy = outcomes[4]
    assert least_busy.applied and least_busy.owner is not None and least_busy.owner.email == "alice@shop.example"
    assert least_busy.reason == assignment.reason


def test_regression_explain_never_shows_the_fallback_as_applicable_after_a_winner(
    sqlite_engine: Engine, options: IngestOptions, keyword_classifier: KeywordClassifier
) -> None:
    """Every rule table ended in "fallback | yes | no rep could take it", even when a rep took it."""
    add_rep(sqlite_engine, "alice@shop.example")
    assignment = ingest_one(sqlite_engine, mail(), options, keyword_classifier)
    with session_scope(sqlite_engine) as session:
        outcomes = explain(session, assignment.conversation_id).rules
    assert [o.rule for o in outcomes if o.applied] == ["least_busy"] and outcomes[-1].applied


def test_regression_explain_says_automatic_mail_was_never_assigned_and_why(
    sqlite_engine: Engine, options: IngestOptions, keyword_classifier: KeywordClassifier
) -> None:
    """A newsletter's explanation named a least-busy rep above an empty assignment history."""
    add_rep(sqlite_engine, "alice@shop.example")
    newsletter = mail(sender="news@list.example", headers={"List-Id": "Weekly <weekly.list.example>"})
    with session_scope(sqlite_engine) as session:
        process_batch(session, [FetchedMessage(newsletter, "support@shop.example", "INBOX")], checkpoint=None,
                      options=options, classifier=keyword_classifier)
    with session_scope(sqlite_engine) as session:
        conversation = session.exec(select(Conversation)).one()
        assert conversation.id is not None
        explained = explain(session, conversation.id)
    assert explained.rules == []
    assert explained.unassigned == ("automatic mail, never assigned as work: "
                                    "mailing list (List-Id: Weekly <weekly.list.example>)")


def test_explain_follows_the_stored_rule_when_the_account_changed_since(
    sqlite_engine: Engine, options: IngestOptions, keyword_classifier: KeywordClassifier
) -> None:
    alice = add_rep(sqlite_engine, "alice@shop.example")
    assignment = ingest_one(sqlite_engine, mail(), options, keyword_classifier)
    with session_scope(sqlite_engine) as session:  # the contact gets an owner after the assignment
        conversation = session.get(Conversation, assignment.conversation_id)
        assert conversation is not None
        contact = session.get(Contact, conversation.contact_id)
        assert contact is not None
        contact.owner_id = alice
        session.add(contact)
    with session_scope(sqlite_engine) as session:
        outcomes = explain(session, assignment.conversation_id).rules
    account = next(o for o in outcomes if o.rule == "account_owner")
    assert not account.applied
    assert account.reason.startswith("did not apply when assigned; today: Alice owns the contact")
    assert (outcomes[-1].rule, outcomes[-1].reason) == ("least_busy", assignment.reason)


def test_explain_of_a_manual_reassignment_is_the_person_s_choice(
    sqlite_engine: Engine, options: IngestOptions, keyword_classifier: KeywordClassifier
) -> None:
    add_rep(sqlite_engine, "alice@shop.example")
    add_rep(sqlite_engine, "bob@shop.example")
    first = ingest_one(sqlite_engine, mail(), options, keyword_classifier)
    with session_scope(sqlite_engine) as session:
        manual = reassign(session, first.conversation_id, "bob@shop.example", by="manager@shop.example",
                          reason="Bob knows this customer", now=utcnow())
    with session_scope(sqlite_engine) as session:
        [decided] = explain(session, first.conversation_id).rules
    assert (decided.rule, decided.applied, decided.reason) == ("manual", True, manual.reason)
    assert decided.owner is not None and decided.owner.email == "bob@shop.example"


def test_manual_reassign_is_recorded_like_any_assignment_and_notifies(
    sqlite_engine: Engine, options: IngestOptions, keyword_classifier: KeywordClassifier
) -> None:
    add_rep(sqlite_engine, "alice@shop.example")
    bob = add_rep(sqlite_engine, "bob@shop.example")
    first = ingest_one(sqlite_engine, mail(), options, keyword_classifier)
    with session_scope(sqlite_engine) as session:
        assignment = reassign(session, first.conversation_id, "BOB@shop.example", by="manager@shop.example", now=utcnow())
    assert (assignment.rule, assignment.owner_id, assignment.assigned_by) == ("manual", bob, "manager@shop.example")
    with session_scope(sqlite_engine) as session:
        dms = session.exec(select(OutboxItem).where(OutboxItem.kind == "assign-dm")).all()
        assert len(dms) == 2
        with pytest.raises(ReassignError, match="no rep"):
            reassign(session, first.conversation_id, "nobody@shop.example", by="x", now=utcnow())
        with pytest.raises(ReassignError, match="already owns"):
            reassign(session, first.conversation_id, "bob@shop.example", by="x", now=utcnow())
        with pytest.raises(ReassignError, match="no conversation"):
            reassign(session, 999, "bob@shop.example", by="x", now=utcnow())


def test_record_assignment_parks_in_queue_without_owner(sqlite_engine: Engine) -> None:
    with session_scope(sqlite_engine) as session:
        conversation = Conversation(subject="x")
        assignment = record_assignment(session, conversation, owner=None, queue="triage", rule="fallback",
                                       reason="nobody", at=utcnow())
        assert conversation.queue == "triage" and conversation.owner_id is None
        assert assignment.conversation_id == conversation.id


@pytest.mark.parametrize(
    ("spec", "weekday", "hour", "working"),
    [
        ("Mon-Fri 09:00-17:00", 0, 10, True),
        ("Mon-Fri 09:00-17:00", 5, 10, False),
        ("Mon-Fri 09:00-17:00", 0, 17, False),
        ("Sat-Sun 10:00-14:00", 6, 11, True),
        ("Mon,Wed 08:00-12:00", 2, 9, True),
        ("Mon,Wed 08:00-12:00", 1, 9, False),
        ("Mon-Fri 22:00-06:00", 1, 3, True),  # Monday's night shift, early Tuesday
        ("Mon-Fri 22:00-06:00", 0, 3, False),  # Sunday night: no shift started
    ],
)
def test_working_hours(spec: str, weekday: int, hour: int, working: bool) -> None:
    at = NOW + timedelta(days=weekday) + timedelta(hours=hour - NOW.hour)
    assert is_working(spec, "UTC", at) is working


def test_working_hours_in_the_reps_time_zone() -> None:
    assert not is_working("Mon-Fri 09:00-17:00", "America/New_York", NOW)  # 05:00 in New York
    assert is_working("Mon-Fri 09:00-17:00", "America/New_York", NOW + timedelta(hours=5))


def test_bad_working_hours_are_explained() -> None:
    with pytest.raises(ValueError, match="working hours"):
        parse_working_hours("weekdays 9 to 5")


def test_regression_unreadable_working_hours_never_mean_always_available() -> None:
    """`is_working` swallowed the parse error and treated the rep as always at work."""
    rep = Rep(id=1, name="Nightowl", email="n@x.example", working_hours="Mon-Fri 25:00-99:00", timezone="UTC")
    team = Team([rep], {1: 0}, NOW, (), "triage")
    reason = unavailable_because(rep, team)
    assert reason is not None and "25:00 is not a time of day" in reason


def test_a_skill_in_the_team_s_own_model_routes_that_category_to_the_rep(tmp_path: Path, our_model: Path) -> None:
    """A team that trained its own model gives its reps skills in its own categories."""
    config = tmp_path / "rapport.toml"
    config.write_text(f'[nlp]\nmodel = "{our_model}"\n\n'
                      '[[reps]]\nname = "Rita"\nemail = "rita@shop.example"\nskills = ["returns_de"]\n'
                      'working_hours = "Mon-Sun 00:00-24:00"\n\n'
                      '[[reps]]\nname = "Walt"\nemail = "walt@shop.example"\nskills = ["Warranty"]\n'
                      'working_hours = "Mon-Sun 00:00-24:00"\n', encoding="utf-8")
    rt = Runtime.load(load_settings(config_file=config, database_url=f"sqlite:///{tmp_path / 'rapport.db'}"))
    engine = rt.create_database()  # with rapport.toml's reps
    kettle = mail(subject="Kettle", body="The kettle broke after 3 weeks, is it under warranty?")
    with session_scope(engine) as session:
        process_batch(session, [FetchedMessage(kettle, "support@shop.example", "INBOX")], checkpoint=None,
                      options=replace(ingest_options(rt), now=NOW), classifier=rt.classifier)
    with session_scope(engine) as session:
        [conversation] = session.exec(select(Conversation)).all()
        [assignment] = session.exec(select(Assignment)).all()
        owner = session.get(Rep, conversation.owner_id)
        assert conversation.category == "warranty" and owner is not None and owner.email == "walt@shop.example"
        assert assignment.rule == "skill" and owner.skills == ["warranty"]
