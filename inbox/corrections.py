"""Applying a person's correction of a category: training data, and routing that follows it.

One function for every entry point (`rapport nlp correct`, Slack's Recategorise);
it only writes rows, so the new owner's DM leaves through the outbox after the commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session

from inbox.assign import REROUTE, reroute
from inbox.options import Route
from store.assignments import hand_over
from store.corrections import CorrectionApplied, record_correction
from store.models import Conversation, Message, Rep


def apply_correction(
    session: Session,
    category: str,
    *,
    message: Message | None,
    conversation: Conversation | None,
    rep: Rep | None,
    by: str,
    routes: Sequence[Route] = (),
    keyword_prefix: str = "rapport",
    now: datetime,
) -> CorrectionApplied:
    """Store the correction (with its text, for retraining), set the category, and re-route the
    conversation when its owner came from category or language routing.

    Applying the same correction twice changes nothing the second time: the
    routing picks the owner it already picked, so no second assignment or DM.
    """
    if conversation is None and message is not None and message.conversation_id is not None:
        conversation = session.get(Conversation, message.conversation_id)
    correction = record_correction(session, category, message=message, conversation=conversation, rep=rep,
                                   at=now)
    if conversation is None:
        return CorrectionApplied(correction, None, "the message belongs to no conversation")
    outcome = reroute(session, conversation, routes=routes, now=now)
    if not outcome.applied or outcome.owner is None:
        return CorrectionApplied(correction, None, outcome.reason)
    who = rep.name if rep is not None else by
    reason = f"category corrected from {correction.old_category or 'none'} to {category} by {who}; {outcome.reason}"
    assignment = hand_over(session, conversation, outcome.owner, rule=REROUTE, reason=reason, by=by,
                           keyword_prefix=keyword_prefix, now=now)
    return CorrectionApplied(correction, assignment, f"re-routed to {outcome.owner.name}: {outcome.reason}")
