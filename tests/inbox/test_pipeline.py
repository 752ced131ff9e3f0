"""The source-independent pipeline: de-duplication, threading, matching, automatic mail, backlog, outbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from inbox.options import IngestOptions
from inbox.pipeline import BatchResult, Checkpoint, FetchedMessage, process_batch
from nlp import CATEGORIES, NEEDS_TRIAGE
from store.conversations import overdue, waiting_on_us
from store.db import session_scope
from store.models import (
    Assignment,
    Company,
    CompanyDomain,
    Contact,
    ContactEmail,
    Conversation,
    MailboxCheckpoint,
    Message,
    OutboxItem,
)
from store.tags import keyword
from tests.inbox.helpers import NOW, CountingClassifier, add_rep, fixture_eml, mail


def ingest(
    engine: Engine,
    raws: Sequence[bytes],
    options: IngestOptions,
    classifier: CountingClassifier,
    *,
    folder: str = "INBOX",
    outbound: bool = False,
    first_uid: int | None = None,
    uidvalidity: int = 7,
) -> BatchResult:
    fetched = [
        FetchedMessage(
            raw, "support@shop.example", folder,
            uidvalidity=uidvalidity if first_uid is not None else None,
            uid=first_uid + i if first_uid is not None else None,
            outbound=outbound,
        )
        for i, raw in enumerate(raws)
    ]
    checkpoint = (
        Checkpoint("support@shop.example", folder, uidvalidity, first_uid + len(raws) - 1)
        if first_uid is not None
        else None
    )
    with session_scope(engine) as session:
        return process_batch(session, fetched, checkpoint=checkpoint, options=options, classifier=classifier)


def rows(engine: Engine, model: type) -> list:
    with session_scope(engine) as session:
        return list(session.exec(select(model)).all())


def test_new_mail_becomes_an_assigned_conversation_with_a_prospect_and_one_dm(
    engine: Engine, options: IngestOptions, classifier: CountingClassifier
) -> None:
    alice = add_rep(engine, "alice@shop.example")
    result = ingest(engine, [fixture_eml("question.eml")], options, classifier, first_uid=1)

    assert (result.new, result.duplicates, result.assigned) == (1, 0, 1)
    [conversation] = rows(engine, Conversation)
    [message] = rows(engine, Message)
    assert conversation.owner_id == alice
    assert message.category in (*CATEGORIES, NEEDS_TRIAGE) and message.model_version
    assert (conversation.category, conversation.language) == (message.category, message.language) == (
        message.category, "en")
    assert conversation.status == "open"
    assert conversation.sla_due_at == conversation.opened_at + timedelta(hours=options.sla_hours)
    [contact] = rows(engine, Contact)
    assert (contact.kind, contact.language, contact.source) == ("prospect", "en", "email")
    [address] = rows(engine, ContactEmail)
    assert address.email == "jana@customer.example"
    [assignment] = rows(engine, Assignment)
    assert assignment.rule == "least_busy" and "Alice has 0 open" in assignment.reason
    kinds = sorted((o.kind, o.key) for o in rows(engine, OutboxItem))
    assert kinds == [("assign-dm", f"assign-dm:{assignment.id}"), ("imap-tag", f"imap-tag:{message.id}")]
    tag = next(o for o in rows(engine, OutboxItem) if o.kind == "imap-tag")
    assert tag.payload["keywords"] == ["rapport/owner/alice", f"rapport/category/{message.category}"]
    dm = next(o for o in rows(engine, OutboxItem) if o.kind == "assign-dm")
    assert dm.payload == {"assignment_id": assignment.id, "conversation_id": conversation.id, "message_id": message.id}


def test_records_from_mail_take_the_ingest_clock_not_the_wall_clock(
    engine: Engine, options: IngestOptions, classifier: CountingClassifier
) -> None:
    """The demo's clock (`options.now`, long past here) stamps the prospect, its assignment and the
    checkpoint: a record made "later" than the clock reads as created in the future."""
    add_rep(engine, "alice@shop.example")
    ingest(engine, [fixture_eml("question.eml")], options, classifier, first_uid=1)

    [contact] = rows(engine, Contact)
    [assignment] = rows(engine, Assignment)
    [checkpoint] = rows(engine, MailboxCheckpoint)
    assert contact.created_at == contact.updated_at == options.now
    assert assignment.assigned_at == checkpoint.updated_at == options.now


def test_one_classifier_call_per_batch(engine: Engine, options: IngestOptions, classifier: CountingClassifier) -> None:
    raws = [mail(message_id=f"<b{i}@customer.example>", sender=f"c{i}@customer.example", subject=f"Q {i}")
            for i in range(5)]
    ingest(engine, raws, options, classifier)
    assert classifier.calls == [5]


def test_duplicates_by_message_id_and_by_position(
    engine: Engine, options: IngestOptions, classifier: CountingClassifier
) -> None:
    raw = fixture_eml("question.eml")
    ingest(engine, [raw], options, classifier, first_uid=1)
    again_same_position = ingest(engine, [raw], options, classifier, first_uid=1)
    again_new_position = ingest(engine, [raw, raw], options, classifier, first_uid=5, uidvalidity=8)

    assert (again_same_position.new, again_same_position.duplicates) == (0, 1)
    assert (again_new_position.new, again_new_position.duplicates) == (0, 2)
    [message] = rows(engine, Message)
    assert (message.uidvalidity, message.uid) == (8, 5)  # follows the mail to its new position
    assert len(rows(engine, Assignment)) == 1


def test_regression_mails_sharing_a_message_id_are_all_kept_once(
    engine: Engine, options: IngestOptions, classifier: CountingClassifier
) -> None:
    """Issue 15 finding 2: four of five mails with one Message-ID and different content were dropped."""
    raws = [mail(message_id="<reused@list.example>", sender=f"p{i}@customer.example", subject=f"Question {i}",
                 body=f"Question number {i}, about order {1000 + i}.") for i in range(5)]
    first = ingest(engine, raws[:2], options, classifier, first_uid=1)  # the rest meets stored mail
    rest = ingest(engine, raws[2:], options, classifier, first_uid=3)
    same_mail_twice = ingest(engine, [raws[0], raws[0]], options, classifier, folder="Archive", first_uid=1)
    resync = ingest(engine, raws, options, classifier, first_uid=1, uidvalidity=8)  # folder re-created

    assert (first.new, rest.new, same_mail_twice.new, resync.new) == (2, 3, 0, 0)
    assert (same_mail_twice.duplicates, resync.duplicates) == (2, 5)
    messages = sorted(rows(engine, Message), key=lambda m: m.id)
    assert [m.from_email for m in messages] == [f"p{i}@customer.example" for i in range(5)]
    assert len({m.content_hash for m in messages}) == 5
    assert [m.shares_id_with_id for m in messages] == [None] + [messages[0].id] * 4
    assert not any("also used by other mail" in p for p in messages[0].parse_problems)
    assert all(any("also used by other mail" in p for p in m.parse_problems) for m in messages[1:])
    assert all(m.conversation_id is not None for m in messages)  # threaded and assigned like any mail
    assert len(rows(engine, Assignment)) == 5
    assert [(m.uidvalidity, m.uid) for m in messages] == [(8, i + 1) for i in range(5)]


def test_mail_stored_before_content_hashes_is_recognised_once(
    engine: Engine, options: IngestOptions, classifier: CountingClassifier
) -> None:
    original = mail(message_id="<old@customer.example>", body="Stored by an older Rapport.")
    other = mail(message_id="<old@customer.example>", sender="else@customer.example", body="Different mail.")
    ingest(engine, [original], options, classifier, first_uid=1)
    with session_scope(engine) as session:  # as the migration leaves rows stored before it
        [message] = session.exec(select(Message)).all()
        message.content_hash = None
        session.add(message)

    again = ingest(engine, [original, other], options, classifier, first_uid=1, uidvalidity=9)

    assert (again.new, again.duplicates) == (1, 1)
    stored, new = sorted(rows(engine, Message), key=lambda m: m.id)
    assert stored.content_hash is not None and stored.content_hash != new.content_hash
    assert new.shares_id_with_id == stored.id


def test_mail_without_message_id_gets_a_stable_synthetic_one(
    engine: Engine, options: IngestOptions, classifier: CountingClassifier
) -> None:
    raw = fixture_eml("german_no_message_id.eml")
    first = ingest(engine, [raw], options, classifier)
    second = ingest(engine, [raw], options, classifier)
    assert (first.new, second.new, second.duplicates) == (1, 0, 1)
    [message] = rows(engine, Message)
    assert message.message_id.startswith("<") and message.message_id.endswith(">")
    [contact] = rows(engine, Contact)
    assert contact.language == "de" and contact.name == "Jürgen Müller"


def test_reply_with_in_reply_to_and_outlook_rewritten_reply_join_the_conversation(
    engine: Engine, options: IngestOptions, classifier: CountingClassifier
) -> None:
    add_rep(engine, "alice@shop.example")
    ingest(engine, [fixture_eml("question.eml")], options, classifier)
    direct = mail(subject="Re: Refund for order 1042", message_id="<q2@customer.example>",
                  in_reply_to="<q1@customer.example>", references="<q1@customer.example>")
    ingest(engine, [direct, fixture_eml("outlook_rewritten_reply.eml")], options, classifier)

    [conversation] = rows(engine, Conversation)
    assert {m.conversation_id for m in rows(engine, Message)} == {conversation.id}
    assert len(rows(engine, Assignment)) == 1  # still open: no second assignment, no second DM
    assert [o.kind for o in rows(engine, OutboxItem)].count("assign-dm") == 1


def test_same_subject_from_someone_else_is_a_new_conversation(
    engine: Engine, options: IngestOptions, classifier: CountingClassifier
) -> None:
    ingest(engine, [fixture_eml("question.eml")], options, classifier)
    other = mail(subject="RE: Refund for order 1042", sender="peter@elsewhere.example", message_id="<p1@elsewhere>")
    ingest(engine, [other], options, classifier)
    assert len(rows(engine, Conversation)) == 2


def test_staff_reply_in_sent_marks_answered_with_first_response_time(
    engine: Engine, options: IngestOptions, classifier: CountingClassifier
) -> None:
    add_rep(engine, "alice@shop.example")
    ingest(engine, [fixture_eml("question.eml")], options, classifier)
    result = ingest(engine, [fixture_eml("staff_reply.eml")], options, classifier, folder="Sent", outbound=True)

    assert result.outbound == 1
    [conversation] = rows(engine, Conversation)
    assert conversation.status == "answered"
    assert conversation.first_response_at == NOW.replace(minute=5)
    assert conversation.answered_at == conversation.first_response_at
    outbound = next(m for m in rows(engine, Message) if m.direction == "outbound")
    assert outbound.category is None  # staff text is not classified
    assert classifier.calls == [1]


def test_reply_read_before_its_question_still_threads(
    engine: Engine, options: IngestOptions, classifier: CountingClassifier
) -> None:
    add_rep(engine, "alice@shop.example")
    ingest(engine, [fixture_eml("staff_reply.eml")], options, classifier, folder="Sent", outbound=True)
    ingest(engine, [fixture_eml("question.eml")], options, classifier)

    [conversation] = rows(engine, Conversation)
    assert conversation.status == "answered"  # the question is older than the reply
    assert conversation.opened_at == NOW.replace(minute=30, hour=9)


def test_customer_writing_again_reopens_and_the_thread_owner_keeps_it(
    engine: Engine, options: IngestOptions, classifier: CountingClassifier
) -> None:
    alice = add_rep(engine, "alice@shop.example")
    ingest(engine, [fixture_eml("question.eml")], options, classifier)
    ingest(engine, [fixture_eml("staff_reply.eml")], options, classifier, outbound=True, folder="Sent")
    add_rep(engine, "bob@shop.example")  # less busy, but the thread is alice's
    follow_up = mail(subject="Re: Refund for order 1042", message_id="<q3@customer.example>",
                     in_reply_to="<r1@shop.example>", date=NOW + timedelta(minutes=30))
    result = ingest(engine, [follow_up], options, classifier)

    assert result.assigned == 1
    [conversation] = rows(engine, Conversation)
    assert (conversation.status, conversation.owner_id) == ("open", alice)
    last = rows(engine, Assignment)[-1]
    assert last.rule == "thread_owner"
    assert [o.kind for o in rows(engine, OutboxItem)].count("assign-dm") == 2


def test_automatic_mail_is_stored_marked_and_never_assigned_and_bounces_flag_the_address(
    engine: Engine, options: IngestOptions, classifier: CountingClassifier
) -> None:
    add_rep(engine, "alice@shop.example")
    with session_scope(engine) as session:
        contact = Contact(name="Old")
        session.add(contact)
        session.flush()
        assert contact.id is not None
        session.add(ContactEmail(contact_id=contact.id, email="old.address@customer.example"))
    ingest(engine, [fixture_eml("question.eml")], options, classifier)
    ingest(engine, [fixture_eml("staff_reply.eml")], options, classifier, outbound=True, folder="Sent")
    result = ingest(engine, [fixture_eml("out_of_office.eml"), fixture_eml("bounce.eml")], options, classifier)

    assert result.automatic == 2 and result.assigned == 0
    automatic = [m for m in rows(engine, Message) if m.is_automatic]
    assert len(automatic) == 2 and all(m.automatic_reason for m in automatic)
    conversations = rows(engine, Conversation)
    question = next(c for c in conversations if not c.is_automatic)
    assert question.status == "answered"  # the out-of-office reply did not reopen it
    ooo = next(m for m in automatic if m.message_id == "<ooo1@customer.example>")
    assert ooo.conversation_id == question.id
    assert [o.kind for o in rows(engine, OutboxItem)].count("assign-dm") == 1
    assert len(rows(engine, Assignment)) == 1
    flagged = next(e for e in rows(engine, ContactEmail) if e.email == "old.address@customer.example")
    assert flagged.bouncing and flagged.bounced_at is not None
    assert classifier.calls == [1]  # automatic mail is never classified


def test_auto_submitted_no_is_a_human(engine: Engine, options: IngestOptions, classifier: CountingClassifier) -> None:
    add_rep(engine, "alice@shop.example")
    raw = mail(subject="Invoice question", headers={"Auto-Submitted": "no"})
    result = ingest(engine, [raw], options, classifier)
    assert (result.automatic, result.assigned) == (0, 1)


def test_rate_guard_stops_a_mail_loop(engine: Engine, classifier: CountingClassifier) -> None:
    add_rep(engine, "alice@shop.example")
    options = IngestOptions(now=NOW, sender_rate_limit_per_hour=3)
    loop = [mail(subject=f"Ticket {i}", sender="robot@loop.example", message_id=f"<loop{i}@loop.example>",
                 date=NOW + timedelta(minutes=i)) for i in range(6)]
    first = ingest(engine, loop[:2], options, classifier)
    second = ingest(engine, loop[2:], options, classifier)

    assert (first.assigned, first.automatic) == (2, 0)
    assert (second.assigned, second.automatic) == (1, 3)
    guarded = [m for m in rows(engine, Message) if m.is_automatic]
    assert all("rate guard" in (m.automatic_reason or "") for m in guarded)


def test_free_mail_never_matches_a_company_but_a_company_domain_does(
    engine: Engine, options: IngestOptions, classifier: CountingClassifier
) -> None:
    with session_scope(engine) as session:
        acme = Company(name="Acme")
        gmail_co = Company(name="Gmail Fans")
        session.add_all([acme, gmail_co])
        session.flush()
        assert acme.id is not None and gmail_co.id is not None
        session.add(CompanyDomain(company_id=acme.id, domain="acme.example"))
        session.add(CompanyDomain(company_id=gmail_co.id, domain="gmail.com"))
    raws = [mail(sender="eva@acme.example", message_id="<e1@acme>", subject="A"),
            mail(sender="someone@gmail.com", message_id="<g1@gmail>", subject="B")]
    ingest(engine, raws, options, classifier)
    contacts = {c.name: c for c in rows(engine, Contact)}
    assert contacts["eva"].company_id == acme.id
    assert contacts["someone"].company_id is None


def test_backlog_gets_one_summary_across_batches_and_no_dms(
    engine: Engine, options: IngestOptions, classifier: CountingClassifier
) -> None:
    add_rep(engine, "alice@shop.example")
    old = [mail(subject=f"Old {i}", sender=f"c{i}@customer.example", message_id=f"<old{i}@c>",
                date=NOW - timedelta(days=30 - i)) for i in range(6)]
    fresh = mail(subject="New", sender="new@customer.example", message_id="<fresh@c>", date=NOW)
    ingest(engine, old[:3], options, classifier, first_uid=1)
    ingest(engine, [*old[3:], fresh], options, classifier, first_uid=4)

    outbox = rows(engine, OutboxItem)
    assert [o.kind for o in outbox].count("assign-dm") == 1
    [summary] = [o for o in outbox if o.kind == "backlog-summary"]
    assert summary.payload["count"] == 6
    assert summary.payload["owners"] == {"alice@shop.example": 6}
    assert summary.payload["oldest"] < summary.payload["newest"]
    assert all(c.sla_due_at is None for c in rows(engine, Conversation) if c.subject.startswith("Old"))


def test_mail_that_cannot_be_read_whole_is_kept_raw_with_its_problem(
    engine: Engine, options: IngestOptions, classifier: CountingClassifier
) -> None:
    fetched = [FetchedMessage(fixture_eml("question.eml")[:200], "support@shop.example", "INBOX", 7, 1,
                              problem="too large (60000000 bytes > 52428800); only the header was read")]
    with session_scope(engine) as session:
        result = process_batch(session, fetched, checkpoint=Checkpoint("support@shop.example", "INBOX", 7, 1),
                               options=options, classifier=classifier)
    assert (result.new, result.failed) == (1, 1)
    [message] = rows(engine, Message)
    assert message.conversation_id is None and message.raw_excerpt
    assert any("too large" in p for p in message.parse_problems)
    assert classifier.calls == []


def test_keywords_are_valid_imap_atoms() -> None:
    assert keyword("rapport", "owner", "Anna.Berg") == "rapport/owner/anna.berg"
    assert keyword("Rapport", "queue", "triage (EU) %*\\]") == "rapport/queue/triage-eu"
    assert keyword("crm", "category", "needs_triage") == "crm/category/needs_triage"


def test_regression_a_staff_reply_read_after_a_newer_customer_mail_leaves_it_open(
    engine: Engine, options: IngestOptions, classifier: CountingClassifier
) -> None:
    """Sent is read after INBOX: the customer wrote again after the reply, so the conversation waits on us."""
    add_rep(engine, "alice@shop.example")
    question = mail(message_id="<q@customer.example>", date=NOW - timedelta(hours=5))
    again = mail(message_id="<q2@customer.example>", in_reply_to="<r@shop.example>",
                 references="<q@customer.example> <r@shop.example>", subject="Re: Hello",
                 body="That did not help.", date=NOW - timedelta(hours=1))
    reply = mail(message_id="<r@shop.example>", sender="alice@shop.example", to="jana@customer.example",
                 in_reply_to="<q@customer.example>", subject="Re: Hello", body="Try this.",
                 date=NOW - timedelta(hours=3))
    ingest(engine, [question, again], options, classifier)
    ingest(engine, [reply], options, classifier, folder="Sent", outbound=True)
    with session_scope(engine) as session:
        conversation = session.exec(select(Conversation)).one()
        assert conversation.status == "open"
        assert conversation.first_response_at == NOW - timedelta(hours=3)


# The customer asks, staff reply within the hour, the customer writes again much later.
_THREAD = {
    "question": mail(message_id="<q@customer.example>", subject="Invoice copy",
                     body="Could you send me a copy of invoice 7214, please?", date=NOW - timedelta(hours=10)),
    "reply": mail(message_id="<r@shop.example>", sender="alice@shop.example", to="jana@customer.example",
                  in_reply_to="<q@customer.example>", subject="Re: Invoice copy", body="Attached.",
                  date=NOW - timedelta(hours=9)),
    "again": mail(message_id="<q2@customer.example>", in_reply_to="<r@shop.example>",
                  references="<q@customer.example> <r@shop.example>", subject="Re: Invoice copy",
                  body="The attachment is missing, could you send the invoice again?",
                  date=NOW - timedelta(hours=1)),
}


@pytest.mark.parametrize("reading", [
    [["question"], ["reply"], ["again"]],
    [["question", "again"], ["reply"]],
    [["reply"], ["question", "again"]],
], ids=["in order", "Sent read last", "Sent read first"])
def test_regression_the_sla_runs_from_the_customers_mail_after_the_reply_whatever_the_reading_order(
    engine: Engine, options: IngestOptions, classifier: CountingClassifier, reading: list[list[str]]
) -> None:
    """Demo #18 showed "SLA 2d overdue": with Sent read after INBOX, the reply was known only
    after the customer's later mail, and the SLA kept running from the answered first mail."""
    add_rep(engine, "alice@shop.example")
    for names in reading:
        sent = names == ["reply"]
        ingest(engine, [_THREAD[n] for n in names], options, classifier,
               folder="Sent" if sent else "INBOX", outbound=sent)
    with session_scope(engine) as session:
        conversation = session.exec(select(Conversation)).one()
        assert conversation.status == "open"
        assert conversation.sla_due_at == NOW - timedelta(hours=1) + timedelta(hours=options.sla_hours)
        # the digest's past-due count and `my` read this one state
        assert session.exec(select(Conversation.id).where(waiting_on_us())).all() == [conversation.id]
        assert session.exec(select(Conversation.id).where(overdue(NOW))).all() == []


def test_regression_a_late_read_reply_keeps_the_tighter_due_of_a_more_pressing_later_mail(
    engine: Engine, options: IngestOptions, classifier: CountingClassifier
) -> None:
    """Two mails after the reply, the second urgent: the SLA is the urgent one's, as when read in order."""
    add_rep(engine, "alice@shop.example")
    urgent = mail(message_id="<q3@customer.example>", in_reply_to="<q2@customer.example>",
                  subject="Re: Invoice copy", body="URGENT: our auditor needs the invoice today!",
                  date=NOW - timedelta(minutes=30))
    ingest(engine, [_THREAD["question"], _THREAD["again"], urgent], options, classifier)
    ingest(engine, [_THREAD["reply"]], options, classifier, folder="Sent", outbound=True)
    with session_scope(engine) as session:
        conversation = session.exec(select(Conversation)).one()
        level = session.exec(select(Message.urgency).where(Message.message_id == "<q3@customer.example>")).one()
        assert level in options.sla_hours_by_urgency
        due = NOW - timedelta(minutes=30) + timedelta(hours=options.sla_hours_by_urgency[level])
        assert (conversation.status, conversation.sla_due_at) == ("open", due)
