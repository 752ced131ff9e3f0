"""Who gets a satisfaction survey, signed link tokens, reading a score, consent per purpose, and the
digest's satisfaction figures (store/surveys.py, store/consent.py), on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.digest import render_digest_text
from store.audit import SCHEDULER
from store.consent import ConsentError, may_contact, record_consent, withdraw_consent, withdraw_consent_many
from store.db import session_scope
from store.digest import compute_digest
from store.models import (
    Activity,
    Contact,
    ContactEmail,
    Conversation,
    Direction,
    Message,
    OutboxItem,
    Rep,
    Survey,
)
from store.segments import SegmentParams
from store.surveys import (
    SURVEY_GAP,
    Answer,
    SurveyPolicy,
    TokenError,
    due_conversations,
    enqueue_due_surveys,
    parse_score,
    read_token,
    record_answer,
    sign_token,
    survey_figures,
)

T = datetime(2026, 11, 23, 9, tzinfo=UTC)  # when the conversations were answered
POLICY = SurveyPolicy(enabled=True, quiet_days=3, needs_consent=True, domain="nordlys.example")
DUE = T + timedelta(days=3, hours=1)


@pytest.fixture
def people(engine: Engine) -> dict[str, int]:
    """Alice (rep), Carol (manager), and contacts Jan (customer, survey consent) and Pia (partner, consent)."""
    with session_scope(engine) as session:
        alice = Rep(name="Alice", email="alice@nordlys.example")
        carol = Rep(name="Carol", email="carol@nordlys.example", role="manager")
        jan = Contact(name="Jan", kind="customer", language="cs")
        pia = Contact(name="Pia", kind="partner")
        session.add_all([alice, carol, jan, pia])
        session.flush()
        session.add_all([ContactEmail(contact_id=jan.id, email="jan@acme.example", is_primary=True),  # type: ignore[arg-type]
                         ContactEmail(contact_id=pia.id, email="pia@partner.example", is_primary=True)])  # type: ignore[arg-type]
        for contact in (jan, pia):
            record_consent(session, contact, "survey", source="import", at=T - timedelta(days=90), actor=SCHEDULER)
        ids = {"alice": alice.id, "carol": carol.id, "jan": jan.id, "pia": pia.id}
        return {k: v for k, v in ids.items() if v is not None}


def answered(engine: Engine, contact_id: int, owner_id: int, *, at: datetime = T, category: str = "delivery",
             reopened: bool = False, automatic: bool = False) -> int:
    """A conversation the customer opened and staff answered at `at` (reopened: the customer wrote
    again after the answer, and was answered again)."""
    with session_scope(engine) as session:
        first = at if not reopened else at - timedelta(days=1)
        conversation = Conversation(subject=f"About {category}", contact_id=contact_id, owner_id=owner_id,
                                    category=category, status="answered", opened_at=first - timedelta(hours=2),
                                    first_response_at=first, answered_at=at, last_message_at=at,
                                    is_automatic=automatic)
        session.add(conversation)
        session.flush()
        times = [first - timedelta(hours=2), *([at - timedelta(hours=3)] if reopened else [])]
        for n, when in enumerate(times):
            session.add(Message(conversation_id=conversation.id, contact_id=contact_id, direction=Direction.inbound,
                                message_id=f"<{conversation.id}.{n}@x>", received_at=when))
        assert conversation.id is not None
        return conversation.id


def surveys(engine: Engine) -> list[tuple[int, int]]:
    with Session(engine) as session:
        return [(s.conversation_id, s.contact_id) for s in session.exec(select(Survey).order_by(col(Survey.id)))]


def run(engine: Engine, now: datetime, policy: SurveyPolicy = POLICY) -> int:
    with session_scope(engine) as session:
        return enqueue_due_surveys(session, now=now, policy=policy)


def test_one_survey_after_the_quiet_period_with_its_outbox_row(engine: Engine, people: dict[str, int]) -> None:
    conversation = answered(engine, people["jan"], people["alice"])
    assert run(engine, T + timedelta(days=2)) == 0
    assert run(engine, DUE) == 1
    assert run(engine, DUE + timedelta(days=1)) == 0
    assert surveys(engine) == [(conversation, people["jan"])]
    with Session(engine) as session:
        survey = session.exec(select(Survey)).one()
        assert (survey.language, survey.email, survey.rep_id) == ("cs", "jan@acme.example", people["alice"])
        assert survey.message_id == f"<csat.{survey.ref}@nordlys.example>"
        [row] = session.exec(select(OutboxItem).where(OutboxItem.kind == "survey")).all()
        assert row.key == f"survey:{survey.id}"


def test_never_twice_to_a_contact_within_30_days(engine: Engine, people: dict[str, int]) -> None:
    first = answered(engine, people["jan"], people["alice"])
    answered(engine, people["jan"], people["alice"], category="billing")  # same contact, same time
    assert run(engine, DUE) == 1
    answered(engine, people["jan"], people["alice"], at=T + timedelta(days=10))
    assert run(engine, T + timedelta(days=14)) == 0  # 13 days after the first survey
    assert surveys(engine) == [(first, people["jan"])]
    after_gap = DUE + SURVEY_GAP + timedelta(hours=1)
    assert run(engine, after_gap, replace(POLICY, window_days=60)) == 1  # one again, one at a time
    assert len(surveys(engine)) == 2


def test_never_for_a_reopened_or_automatic_conversation(engine: Engine, people: dict[str, int]) -> None:
    answered(engine, people["jan"], people["alice"], reopened=True)
    answered(engine, people["pia"], people["alice"], automatic=True)
    assert run(engine, DUE) == 0


def test_consent_opt_out_and_contacts_without_a_record(engine: Engine, people: dict[str, int]) -> None:
    with session_scope(engine) as session:
        nobody = Contact(name="No Record", kind="customer")
        session.add(nobody)
        session.flush()
        session.add(ContactEmail(contact_id=nobody.id, email="nr@x.example", is_primary=True))  # type: ignore[arg-type]
        nobody_id = nobody.id
        jan = session.get(Contact, people["jan"])
        assert jan is not None and nobody_id is not None
        withdraw_consent(session, jan, "survey", source="slack", at=T, actor=SCHEDULER)
    answered(engine, people["jan"], people["alice"])
    answered(engine, nobody_id, people["alice"])
    assert run(engine, DUE) == 0  # Jan opted out; no record and consent needed
    assert run(engine, DUE, replace(POLICY, needs_consent=False)) == 1  # legitimate interest: the one without a record
    assert surveys(engine)[0][1] == nobody_id


def test_quiet_days_per_category_and_contact_kind(engine: Engine, people: dict[str, int]) -> None:
    policy = replace(POLICY, quiet_days_by_category={"complaint": 0}, quiet_days_by_kind={"partner": 7})
    answered(engine, people["jan"], people["alice"], category="complaint")  # off for complaints
    partner = answered(engine, people["pia"], people["alice"])
    assert run(engine, DUE, policy) == 0  # the partner waits 7 days
    assert run(engine, T + timedelta(days=7, hours=1), policy) == 1
    assert surveys(engine) == [(partner, people["pia"])]
    assert policy.quiet_for("complaint", "partner") is None and policy.quiet_for("order", "customer") == 3


def test_an_old_backlog_is_not_surveyed(engine: Engine, people: dict[str, int]) -> None:
    answered(engine, people["jan"], people["alice"], at=T - timedelta(days=60))
    assert run(engine, DUE) == 0


def test_link_tokens_are_signed_and_expire(engine: Engine, people: dict[str, int]) -> None:
    answered(engine, people["jan"], people["alice"])
    run(engine, DUE)
    with Session(engine) as session:
        survey = session.exec(select(Survey)).one()
    token = sign_token("secret", survey)
    assert read_token("secret", token, now=DUE) == survey.ref
    with pytest.raises(TokenError):
        read_token("another secret", token, now=DUE)
    ref, expiry, signature = token.split(".")
    with pytest.raises(TokenError):
        read_token("secret", f"{ref}.{int(expiry) + 1}.{signature}", now=DUE)
    with pytest.raises(TokenError, match="expired"):
        read_token("secret", token, now=survey.expires_at + timedelta(seconds=1))


@pytest.mark.parametrize(("text", "expected"), [
    ("4 – quick help, thanks", (4, "quick help, thanks")),
    ("5", (5, "")),
    ("2/5 too slow", (2, "too slow")),
    ("Score: 3. ok", (3, "ok")),
    ("1 - never again\n\nthe parcel came broken", (1, "never again\n\nthe parcel came broken")),
    ("10 out of 10", None),
    ("2,5", None),
    ("Thanks, I will think about it", None),
    ("6", None),
])
def test_reading_a_score_from_a_reply(text: str, expected: tuple[int, str] | None) -> None:
    assert parse_score(text) == expected


def test_an_answer_is_recorded_once_and_a_low_one_makes_work(engine: Engine, people: dict[str, int]) -> None:
    answered(engine, people["jan"], people["alice"])
    run(engine, DUE)
    with session_scope(engine) as session:
        survey = session.exec(select(Survey)).one()
        assert record_answer(session, survey, 2, "  slow  ", via="link", at=DUE) is Answer.recorded
        assert record_answer(session, survey, 5, via="reply", at=DUE) is Answer.already
        assert (survey.score, survey.comment) == (2, "slow")
        kinds = session.exec(select(OutboxItem.kind)).all()
        assert "low-score" in kinds
        notes = session.exec(select(Activity.summary).where(Activity.contact_id == people["jan"])).all()
        assert "Satisfaction survey answered: 2/5: slow" in notes


def test_consent_given_withdrawn_and_given_again(engine: Engine, people: dict[str, int]) -> None:
    with session_scope(engine) as session:
        jan = session.get(Contact, people["jan"])
        assert jan is not None
        assert not may_contact(session, people["jan"], "marketing")
        assert may_contact(session, people["jan"], "marketing", needs_consent=False)
        record_consent(session, jan, "marketing", basis="consent", source="slack", at=T, actor=SCHEDULER)
        assert may_contact(session, people["jan"], "marketing")
        assert withdraw_consent(session, jan, "marketing", source="email", at=T + timedelta(days=1), actor=SCHEDULER) is not None
        assert withdraw_consent(session, jan, "marketing", source="email", at=T + timedelta(days=2), actor=SCHEDULER) is None
        assert not may_contact(session, people["jan"], "marketing", needs_consent=False)
        consent = record_consent(session, jan, "marketing", source="slack", at=T + timedelta(days=3), actor=SCHEDULER)
        assert (consent.granted_at, consent.withdrawn_at) == (T + timedelta(days=3), None)
        with pytest.raises(ConsentError):
            record_consent(session, jan, "marketing", basis="because", source="slack", at=T, actor=SCHEDULER)
        notes = session.exec(select(Activity.summary).where(Activity.contact_id == people["jan"])
                             .order_by(col(Activity.id))).all()
    assert [n.split(" (")[0] for n in notes][-3:] == ["Consent for marketing given", "Consent for marketing withdrawn",
                                                      "Consent for marketing given"]


def test_digest_satisfaction_figures_per_rep(engine: Engine, people: dict[str, int]) -> None:
    answered(engine, people["jan"], people["alice"])
    answered(engine, people["pia"], people["alice"])
    run(engine, DUE)
    with session_scope(engine) as session:
        first = session.exec(select(Survey).order_by(col(Survey.id))).first()
        assert first is not None
        record_answer(session, first, 4, via="reply", at=DUE + timedelta(hours=2))
    start, end = DUE - timedelta(hours=3), DUE + timedelta(hours=21)
    with Session(engine) as session:
        everyone, per_rep = survey_figures(session, start=start, end=end)
        assert (everyone.sent, everyone.answered, everyone.scores, everyone.average) == (2, 1, 1, 4.0)
        assert everyone.response_rate == 0.5 and per_rep[people["alice"]].average == 4.0
        carol = session.get(Rep, people["carol"])
        assert carol is not None
        figures = compute_digest(session, manager=carol, period="day", start=start, end=end,
                                 params=SegmentParams(), now=end)
    assert figures.satisfaction.average == 4.0
    assert next(r for r in figures.reps if r.email == "alice@nordlys.example").satisfaction.sent == 2
    text = render_digest_text(figures)
    assert "Satisfaction\n------------\n4.0 of 5 from 1 answer; 2 sent, 50% answered" in text
    assert "- Alice\n  4.0 of 5 from 1 answer; 2 sent, 50% answered" in text
    assert figures.to_json()["satisfaction"]["average"] == 4.0


def test_conversations_still_waiting_do_not_hide_one_that_is_due(engine: Engine, people: dict[str, int]) -> None:
    """Regression: one page of partner conversations that wait longer must not starve a due customer one."""
    policy = replace(POLICY, quiet_days_by_kind={"partner": 7})
    for n in range(5):
        answered(engine, people["pia"], people["alice"], at=T - timedelta(hours=n + 1), category=f"c{n}")
    due = answered(engine, people["jan"], people["alice"])
    with Session(engine) as session:
        found = due_conversations(session, now=DUE, policy=policy, limit=1, page=2)
    assert [conversation.id for conversation, _, _ in found] == [due]


def test_withdrawing_many_at_once_reports_what_was_news(engine: Engine, people: dict[str, int]) -> None:
    with session_scope(engine) as session:
        assert withdraw_consent_many(session, [people["jan"], people["pia"]], "survey", "hubspot", T, actor=SCHEDULER) == {
            people["jan"], people["pia"]}
        assert withdraw_consent_many(session, [people["jan"]], "survey", "hubspot", T, actor=SCHEDULER) == set()
        assert not may_contact(session, people["jan"], "survey", needs_consent=False)
