"""Replies to satisfaction surveys: recognised by threading or by the token in the subject.

A survey mail is not a stored message, so `SurveyReplies.load` also teaches the
batch's `ThreadIndex` that the survey's Message-ID belongs to its conversation:
an auto-reply joins it without reopening it, and a reply without a score is an
ordinary customer mail in that conversation. A reply that starts with a score
(`store.surveys.parse_score`) is stored in the conversation and recorded on the
survey, without reopening the conversation or assigning anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlmodel import Session

from inbox.parse import ParsedMessage
from inbox.threads import ThreadIndex
from store.models import Conversation, Survey
from store.surveys import SUBJECT_TOKEN, parse_score, surveys_for_reply


@dataclass
class SurveyReplies:
    """The surveys one batch's mail may answer."""

    by_key: dict[str, Survey] = field(default_factory=dict)  # survey Message-ID or subject token -> survey

    @classmethod
    def load(cls, session: Session, mails: Sequence[ParsedMessage], threads: ThreadIndex) -> SurveyReplies:
        parents = {p for m in mails for p in (m.in_reply_to, *m.references) if p}
        found = surveys_for_reply(session, parents, [m.subject for m in mails])
        for survey in {s.id: s for s in found.values()}.values():
            conversation = session.get(Conversation, survey.conversation_id)
            if conversation is not None:
                threads.thread_of.setdefault(survey.message_id, conversation)
        return cls(found)

    def survey_for(self, parsed: ParsedMessage) -> Survey | None:
        """The survey this mail answers: by In-Reply-To or References, else by the token in its subject."""
        for parent in (parsed.in_reply_to, *reversed(list(parsed.references))):
            if parent and parent in self.by_key:
                return self.by_key[parent]
        match = SUBJECT_TOKEN.search(parsed.subject or "")
        return self.by_key.get(match.group(0)) if match else None


def survey_answer(replies: SurveyReplies, parsed: ParsedMessage) -> tuple[Survey, int, str] | None:
    """(survey, score, comment) when the mail answers a survey with a score; None otherwise."""
    survey = replies.survey_for(parsed)
    if survey is None:
        return None
    scored = parse_score(parsed.new_text or parsed.text)
    if scored is None:
        return None
    return survey, scored[0], scored[1]


__all__ = ["SurveyReplies", "survey_answer"]
