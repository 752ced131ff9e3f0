"""Mail that answers a satisfaction survey, and "unsubscribe me" in the ten languages (inbox/surveys.py,
inbox/consent.py), through the pipeline on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from inbox.consent import asks_to_unsubscribe
from inbox.options import IngestOptions
from inbox.pipeline import FetchedMessage, process_batch
from store.db import session_scope
from store.models import Assignment, Consent, Contact, Conversation, Message, OutboxItem, Survey
from store.surveys import SurveyPolicy, create_survey
from tests.inbox.helpers import NOW, KeywordClassifier, add_rep, mail

CUSTOMER = "jana@customer.example"


def ingest(engine: Engine, raws: Sequence[bytes], options: IngestOptions, *, outbound: bool = False) -> None:
    fetched = [FetchedMessage(raw, "support@shop.example", "Sent" if outbound else "INBOX", outbound=outbound)
               for raw in raws]
    with session_scope(engine) as session:
        process_batch(session, fetched, checkpoint=None, options=options, classifier=KeywordClassifier())


@pytest.fixture
def surveyed(engine: Engine, options: IngestOptions) -> Survey:
    """Jana asked, Alice answered, and a survey about it went out three days later."""
    add_rep(engine, "alice@shop.example")
    ingest(engine, [mail(sender=CUSTOMER, subject="Parcel late", body="Where is my parcel? The delivery is late.")],
           options)
    ingest(engine, [mail(sender="alice@shop.example", to=CUSTOMER, subject="Re: Parcel late", body="Today.",
                         message_id="<r1@shop.example>", in_reply_to="<m1@customer.example>",
                         date=NOW + timedelta(hours=1))], options, outbound=True)
    with session_scope(engine) as session:
        conversation = session.exec(select(Conversation)).one()
        contact = session.get(Contact, conversation.contact_id)
        assert conversation.status == "answered" and contact is not None
        survey = create_survey(session, conversation, contact, CUSTOMER, now=NOW + timedelta(days=3),
                               policy=SurveyPolicy(enabled=True, domain="shop.example"))
        session.expunge(survey)
        return survey


def state(engine: Engine) -> tuple[str, int, int | None, int]:
    with Session(engine) as session:
        conversation = session.exec(select(Conversation)).one()
        survey = session.exec(select(Survey)).one()
        conversations = len(session.exec(select(Conversation)).all())
        assert conversation.id is not None
        messages = len(session.exec(select(Message).where(Message.conversation_id == conversation.id)).all())
        return conversation.status, conversations, survey.score, messages


def test_an_auto_reply_to_the_survey_joins_its_conversation_without_reopening_it(
    engine: Engine, options: IngestOptions, surveyed: Survey
) -> None:
    ingest(engine, [mail(sender=CUSTOMER, subject="Automatic reply: How satisfied were you?", body="I am away.",
                         message_id="<ooo@customer.example>", in_reply_to=surveyed.message_id,
                         date=NOW + timedelta(days=3, minutes=1), headers={"Auto-Submitted": "auto-replied"})],
           options)
    assert state(engine) == ("answered", 1, None, 3)


def test_a_reply_without_a_score_is_a_customer_mail_in_the_conversation(
    engine: Engine, options: IngestOptions, surveyed: Survey
) -> None:
    assignments = len(select_all(engine, Assignment))
    ingest(engine, [mail(sender=CUSTOMER, subject="Re: How satisfied were you?", message_id="<more@customer.example>",
                         body="Thanks, but could you also send the invoice for it?", in_reply_to=surveyed.message_id,
                         date=NOW + timedelta(days=3, hours=2))], options)
    assert state(engine) == ("open", 1, None, 3)  # real work: the conversation is open again
    assert len(select_all(engine, Assignment)) == assignments + 1


def test_a_scored_reply_in_a_batch_with_other_mail_is_recorded_once(
    engine: Engine, options: IngestOptions, surveyed: Survey
) -> None:
    reply = mail(sender=CUSTOMER, subject="Re: survey", message_id="<score@customer.example>", body="5 great",
                 references=f"<m1@customer.example> {surveyed.message_id}", date=NOW + timedelta(days=3, hours=2))
    other = mail(sender="olle@else.example", subject="Invoice copy", message_id="<o@else.example>",
                 body="Please send the invoice again.", date=NOW + timedelta(days=3, hours=2))
    ingest(engine, [reply, other], options)
    ingest(engine, [reply], options)  # read again: a duplicate, not a second answer
    with Session(engine) as session:
        survey = session.exec(select(Survey)).one()
        assert (survey.score, survey.comment) == (5, "great")
        assert len(session.exec(select(Conversation)).all()) == 2  # the other mail opened its own


def select_all(engine: Engine, model: type) -> list[object]:
    with Session(engine) as session:
        return list(session.exec(select(model)).all())


def test_unsubscribe_mail_withdraws_marketing_consent_of_a_new_sender(engine: Engine, options: IngestOptions) -> None:
    ingest(engine, [mail(sender="ola@newsletter-reader.example", subject="Newsletter",
                         body="Please unsubscribe me from your newsletter.")], options)
    with Session(engine) as session:
        consent = session.exec(select(Consent)).one()
        assert (consent.purpose, consent.withdrawn_at, consent.granted_at) == ("marketing", NOW, None)
        assert [row.kind for row in session.exec(select(OutboxItem))].count("consent-withdrawn") == 1


@pytest.mark.parametrize(("language", "text"), [
    ("en", "Hi, please unsubscribe me from all your mailings."),
    ("en", "Kindly remove me from your mailing list."),
    ("de", "Bitte melden Sie mich vom Newsletter ab."),
    ("fr", "Merci de me désinscrire de votre newsletter."),
    ("es", "Por favor, denme de baja de su lista."),
    ("sv", "Ta gärna bort mig\nfrån era nyhetsbrev."),
    ("sk", "Prosím, odhláste ma z odberu noviniek."),
    ("cs", "Odhlaste mě prosím z odběru."),
    ("hu", "Szeretnék leiratkozni a hírlevélről."),
    ("sl", "Prosim, odjavite me od e-novic."),
    ("pl", "Proszę o wypisanie z newslettera."),
])
def test_unsubscribe_requests_in_the_ten_languages(language: str, text: str) -> None:
    assert asks_to_unsubscribe(text), language


@pytest.mark.parametrize("text", [
    "How do I cancel my subscription to the software?",
    "Please cancel my order NS-480744.",
    "Bitte melden Sie mich für die Schulung an.",
    "Ich möchte mein Abo kündigen.",
])
def test_other_requests_are_not_opt_outs(text: str) -> None:
    assert not asks_to_unsubscribe(text)
