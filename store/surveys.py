"""Satisfaction surveys (CSAT): who is due one, the signed link tokens, and recording an answer.

After an answered conversation stays quiet for the configured days (per category
and per contact kind; 0 turns it off), `enqueue_due_surveys` writes one `Survey`
row and its `SurveyMail` outbox row in the same transaction (bot/surveys.py
renders and sends the mail). Never for automatic mail, never for a conversation
that was reopened, never to a contact without consent for surveys (or who
withdrew it), never twice to a contact within `SURVEY_GAP`.

An answer comes by reply (the inbox reads the score, inbox/surveys.py) or by a
one-click link (`/csat/<token>/<score>`, bot/surveys.py); `record_answer`
records it once. A score of `LOW_SCORE` or less makes a follow-up for the owner
and a `LowScore` DM to their managers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ScalarSelect, exists, func
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from store.activities import log_activity
from store.followups import create_followup
from store.models import (
    Consent,
    ConsentPurpose,
    Contact,
    ContactEmail,
    Conversation,
    ConversationStatus,
    Direction,
    Message,
    Survey,
)
from store.outbox import LowScore, SurveyMail, enqueue

SURVEY_GAP = timedelta(days=30)  # never two surveys to one contact within this
LOW_SCORE = 2  # this or less: a follow-up for the owner and a word to the manager
SCORES = range(1, 6)
SUBJECT_TOKEN = re.compile(r"\bCSAT-([0-9a-f]{12})\b")


@dataclass(frozen=True)
class SurveyPolicy:
    """When a survey goes out (`[survey]` in rapport.toml)."""

    enabled: bool = False
    quiet_days: float = 3.0  # after the last message of an answered conversation
    quiet_days_by_category: Mapping[str, float] = field(default_factory=dict)  # 0: none for that category
    quiet_days_by_kind: Mapping[str, float] = field(default_factory=dict)  # 0: none for that contact kind
    needs_consent: bool = True  # False: a contact with no record is asked (legitimate interest); never after a withdrawal
    link_days: float = 30.0  # the one-click links work this long
    window_days: float = 14.0  # conversations quiet for longer than quiet + this are not surveyed (an old backlog)
    domain: str = "rapport.invalid"  # of the survey mails' Message-IDs

    def quiet_for(self, category: str | None, kind: str | None) -> float | None:
        """Days of quiet before a survey for this category and contact kind; None: no survey."""
        days = self.quiet_days
        for overrides, key in ((self.quiet_days_by_kind, kind), (self.quiet_days_by_category, category)):
            if key is not None and key in overrides:
                if overrides[key] <= 0:
                    return None
                days = overrides[key]
        return days


# --------------------------------------------------------------------------- who is due


def enqueue_due_surveys(session: Session, *, now: datetime, policy: SurveyPolicy, limit: int = 200) -> int:
    """A survey (row + outbox row) for each conversation due one; returns how many."""
    if not policy.enabled:
        return 0
    count = 0
    asked: set[int] = set()
    for conversation, contact, email in due_conversations(session, now=now, policy=policy, limit=limit):
        if contact.id in asked:
            continue
        create_survey(session, conversation, contact, email, now=now, policy=policy)
        asked.add(contact.id or 0)
        count += 1
    return count


def due_conversations(
    session: Session, *, now: datetime, policy: SurveyPolicy, limit: int = 200, page: int = 500
) -> list[tuple[Conversation, Contact, str]]:
    """Answered conversations quiet long enough, with their contact and the address to write to.

    Every rule but the per-category and per-kind quiet days is SQL; those are checked
    here, page by page, so conversations still waiting never hide the ones that are due."""
    days = [policy.quiet_days, *policy.quiet_days_by_category.values(), *policy.quiet_days_by_kind.values()]
    shortest = min((d for d in days if d > 0), default=policy.quiet_days)
    longest = max(days)
    quiet_since = func.coalesce(col(Conversation.last_message_at), col(Conversation.answered_at))
    off_categories = [c for c, d in policy.quiet_days_by_category.items() if d <= 0]
    off_kinds = [k for k, d in policy.quiet_days_by_kind.items() if d <= 0]
    query = (
        select(Conversation, Contact)
        .join(Contact, col(Contact.id) == col(Conversation.contact_id))
        .where(
            Conversation.status == ConversationStatus.answered,
            col(Conversation.is_automatic).is_(False),
            quiet_since <= now - timedelta(days=shortest),
            quiet_since >= now - timedelta(days=longest + policy.window_days),
            ~exists().where(col(Survey.conversation_id) == col(Conversation.id)),
            ~exists().where(col(Survey.contact_id) == col(Contact.id), col(Survey.sent_at) > now - SURVEY_GAP),
            exists().where(col(ContactEmail.contact_id) == col(Contact.id), col(ContactEmail.bouncing).is_(False)),
            _consent_allows(policy.needs_consent),
            ~_reopened(),
        )
        .order_by(quiet_since, col(Conversation.id))
    )
    if off_categories:
        query = query.where(func.coalesce(col(Conversation.category), "").not_in(off_categories))
    if off_kinds:
        query = query.where(col(Contact.kind).not_in(off_kinds))
    due: list[tuple[Conversation, Contact]] = []
    offset = 0
    while len(due) < limit:
        rows = list(session.exec(query.offset(offset).limit(page)).all())
        for conversation, contact in rows:
            quiet = policy.quiet_for(conversation.category, contact.kind)
            since = conversation.last_message_at or conversation.answered_at
            if quiet is not None and since is not None and since <= now - timedelta(days=quiet):
                due.append((conversation, contact))
        if len(rows) < page:
            break
        offset += page
    addresses = _addresses(session, {contact.id for _, contact in due if contact.id is not None})
    return [(conversation, contact, addresses[contact.id or 0]) for conversation, contact in due[:limit]]


def _consent_allows(needs_consent: bool) -> Any:
    """SQL: the contact has not withdrawn consent for surveys and, when consent is needed, gave it."""
    withdrawn = exists().where(col(Consent.contact_id) == col(Contact.id), col(Consent.purpose) == ConsentPurpose.survey,
                               col(Consent.withdrawn_at).is_not(None))
    if not needs_consent:
        return ~withdrawn
    return exists().where(col(Consent.contact_id) == col(Contact.id), col(Consent.purpose) == ConsentPurpose.survey,
                          col(Consent.granted_at).is_not(None), col(Consent.withdrawn_at).is_(None))


def _reopened() -> Any:
    """SQL: the customer wrote again after staff had answered (a mail before and one after the first response)."""
    before, after = aliased(Message), aliased(Message)

    def inbound(message: Any) -> Any:
        return ((col(message.conversation_id) == col(Conversation.id)) & (col(message.direction) == Direction.inbound)
                & col(message.is_automatic).is_(False))

    return (exists().where(inbound(before), col(before.received_at) < col(Conversation.first_response_at))
            & exists().where(inbound(after), col(after.received_at) > col(Conversation.first_response_at)))


def _addresses(session: Session, contact_ids: Collection[int]) -> dict[int, str]:
    """Each contact's address to write to: the primary one first, never a bouncing one."""
    if not contact_ids:
        return {}
    query = (select(ContactEmail.contact_id, ContactEmail.email)
             .where(col(ContactEmail.contact_id).in_(list(contact_ids)), col(ContactEmail.bouncing).is_(False))
             .order_by(col(ContactEmail.is_primary).desc(), col(ContactEmail.id)))
    found: dict[int, str] = {}
    for contact_id, email in session.exec(query).all():
        found.setdefault(contact_id, email)
    return found


def create_survey(
    session: Session, conversation: Conversation, contact: Contact, email: str, *, now: datetime, policy: SurveyPolicy
) -> Survey:
    """The survey row and its outbox row, in the caller's transaction."""
    assert conversation.id is not None and contact.id is not None
    ref = secrets.token_hex(6)
    survey = Survey(
        conversation_id=conversation.id, contact_id=contact.id, rep_id=conversation.owner_id, email=email,
        language=(contact.language or conversation.language or "en").lower()[:8], ref=ref,
        message_id=f"<csat.{ref}@{policy.domain}>", sent_at=now, expires_at=now + timedelta(days=policy.link_days),
    )
    session.add(survey)
    session.flush()
    assert survey.id is not None
    enqueue(session, SurveyMail(survey.id), now=now)
    return survey


def subject_token(survey: Survey) -> str:
    """What the survey's subject carries so that a reply is recognised even without threading headers."""
    return f"CSAT-{survey.ref}"


# --------------------------------------------------------------------------- link tokens


class TokenError(ValueError):
    """A link token that is not ours, was altered, or has expired; the message says which."""


def sign_token(secret: str, survey: Survey) -> str:
    """`<ref>.<expiry as Unix seconds>.<HMAC-SHA256, base64url>`: names the survey, cannot be forged or extended."""
    body = f"{survey.ref}.{int(survey.expires_at.timestamp())}"
    return f"{body}.{_signature(secret, body)}"


def read_token(secret: str, token: str, *, now: datetime) -> str:
    """The survey ref a valid, unexpired token names; raises TokenError otherwise."""
    parts = token.split(".")
    if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{12}", parts[0]) or not parts[1].isdigit():
        raise TokenError("not a survey link")
    body = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_signature(secret, body), parts[2]):
        raise TokenError("not a survey link")
    if int(parts[1]) < now.timestamp():
        raise TokenError("this survey link has expired")
    return parts[0]


def _signature(secret: str, body: str) -> str:
    digest = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode().rstrip("=")


# --------------------------------------------------------------------------- answers


class Answer(StrEnum):
    recorded = "recorded"
    already = "already"  # answered before: the first answer stands


_SCORE = re.compile(r"^\W{0,3}?(?:score\W{0,3})?([1-5])(?:\s*/\s*5)?(?![\d]|[.,]\d)(.*)\Z", re.S | re.I)


def parse_score(text: str) -> tuple[int, str] | None:
    """A score 1–5 at the start of a reply's new text, and the rest as the comment:
    "4 – quick help, thanks" is (4, "quick help, thanks"); None when the text does not start with one."""
    match = _SCORE.match(text.strip())
    if match is None:
        return None
    comment = match.group(2).strip().lstrip("-–—:.,;!)/ \t").strip()
    return int(match.group(1)), comment


def survey_by_ref(session: Session, ref: str) -> Survey | None:
    return session.exec(select(Survey).where(Survey.ref == ref)).first()


def surveys_for_reply(session: Session, parents: Collection[str], subjects: Collection[str]) -> dict[str, Survey]:
    """Surveys a batch's mail may answer, by Message-ID (the survey's) and by ref (a subject's token)."""
    refs = {m.group(1) for s in subjects for m in [SUBJECT_TOKEN.search(s or "")] if m}
    found: dict[str, Survey] = {}
    if parents:
        for survey in session.exec(select(Survey).where(col(Survey.message_id).in_(list(parents)))).all():
            found[survey.message_id] = survey
    if refs:
        for survey in session.exec(select(Survey).where(col(Survey.ref).in_(list(refs)))).all():
            found[subject_token(survey)] = survey
    return found


def record_answer(
    session: Session, survey: Survey, score: int, comment: str = "", *, via: str, at: datetime,
    message_id: int | None = None,
) -> Answer:
    """The score (and comment) on the survey, once; a low score makes a follow-up and a manager DM."""
    if score not in SCORES:
        raise ValueError(f"a score is 1 to 5, not {score}")
    if survey.score is not None:
        return Answer.already
    survey.score, survey.comment = score, comment.strip()[:2000] or None
    survey.answered_at, survey.answered_via, survey.reply_message_id = at, via, message_id
    session.add(survey)
    conversation = session.get(Conversation, survey.conversation_id)
    subject = conversation.subject if conversation else ""
    said = f": {survey.comment}" if survey.comment else ""
    log_activity(session, contact_id=survey.contact_id, rep_id=None, conversation_id=survey.conversation_id,
                 summary=f"Satisfaction survey answered: {score}/5{said}", occurred_at=at)
    if score <= LOW_SCORE:
        owner_id = (conversation.owner_id if conversation else None) or survey.rep_id
        if owner_id is not None:
            create_followup(session, rep_id=owner_id, due_at=at, contact_id=survey.contact_id, source="survey", now=at,
                            note=f"Unhappy customer: {score}/5 for \u201c{subject[:120]}\u201d{said[:300]}")
        assert survey.id is not None
        enqueue(session, LowScore(survey.id), now=at)
    session.flush()
    return Answer.recorded


def last_answer(contact_id: Any) -> tuple[ScalarSelect[Any], ScalarSelect[Any]]:
    """The score and the time of the latest answered survey of `contact_id` (a column, or a bound
    parameter), as two columns of another statement: the card's, where a statement of its own cost
    more CPU than the look-up (issue 15)."""

    def latest(column: Any) -> ScalarSelect[Any]:
        return (select(column)
                .where(col(Survey.contact_id) == contact_id, col(Survey.score).is_not(None))
                .order_by(col(Survey.answered_at).desc(), col(Survey.id).desc())
                .limit(1)
                .scalar_subquery())

    return latest(Survey.score), latest(Survey.answered_at)


# --------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class SurveyFigures:
    """Satisfaction in a period [start, end).

    `sent`: surveys sent in the period. `answered`: of those, how many were answered
    (by the time the figures were computed); `response_rate` = answered / sent.
    `scores`: answers given in the period (whenever the survey was sent), and
    `average` their mean score (None without answers)."""

    sent: int = 0
    answered: int = 0
    scores: int = 0
    average: float | None = None
    low: int = 0  # answers of LOW_SCORE or less in the period

    @property
    def response_rate(self) -> float | None:
        return self.answered / self.sent if self.sent else None


def survey_figures(
    session: Session, *, start: datetime, end: datetime, owner_ids: Collection[int] | None = None
) -> tuple[SurveyFigures, dict[int, SurveyFigures]]:
    """The period's figures for everyone in `owner_ids` (None: everyone), and per rep (the owner when sent)."""
    sent: dict[int | None, list[int]] = defaultdict(lambda: [0, 0])
    sent_query = select(Survey.rep_id, col(Survey.score).is_not(None)).where(
        col(Survey.sent_at) >= start, col(Survey.sent_at) < end)
    scored: dict[int | None, list[int]] = defaultdict(list)
    score_query = select(Survey.rep_id, Survey.score).where(
        col(Survey.answered_at) >= start, col(Survey.answered_at) < end, col(Survey.score).is_not(None))
    if owner_ids is not None:
        sent_query = sent_query.where(col(Survey.rep_id).in_(list(owner_ids)))
        score_query = score_query.where(col(Survey.rep_id).in_(list(owner_ids)))
    for rep_id, answered in session.exec(sent_query).all():
        sent[rep_id][0] += 1
        sent[rep_id][1] += int(bool(answered))
    for rep_id, score in session.exec(score_query).all():
        scored[rep_id].append(int(score or 0))

    def figures(counts: list[int], scores: list[int]) -> SurveyFigures:
        average = round(sum(scores) / len(scores), 2) if scores else None
        return SurveyFigures(counts[0], counts[1], len(scores), average, sum(1 for s in scores if s <= LOW_SCORE))

    everyone = figures([sum(c[0] for c in sent.values()), sum(c[1] for c in sent.values())],
                       [s for group in scored.values() for s in group])
    per_rep = {rep_id: figures(sent.get(rep_id, [0, 0]), scored.get(rep_id, []))
               for rep_id in {*sent, *scored} if rep_id is not None}
    return everyone, per_rep


__all__ = ["LOW_SCORE", "SURVEY_GAP", "Answer", "SurveyFigures", "SurveyPolicy", "TokenError", "create_survey",
           "due_conversations", "enqueue_due_surveys", "last_answer", "parse_score", "read_token", "record_answer",
           "sign_token", "subject_token", "survey_by_ref", "survey_figures", "surveys_for_reply"]
