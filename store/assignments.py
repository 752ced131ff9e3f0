"""Assignments: who owns a conversation, by which rule and why (automatic or manual).

Inbox assignment and a manual reassignment from Slack or the CLI record the
same way, so `rapport assign explain` and the Slack DM read one history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from store.db import insert_rows
from store.models import Assignment, Conversation, ConversationStatus, Message, Rep
from store.outbox import AssignmentDm, ImapTag, enqueue
from store.reps import rep_by_email
from store.tags import owner_keyword


def record_assignment(
    session: Session,
    conversation: Conversation,
    *,
    owner: Rep | None,
    queue: str | None,
    rule: str,
    reason: str,
    by: str = "rapport",
    at: datetime,
) -> Assignment:
    """Give `conversation` to `owner` (or park it in `queue`) and store the rule and reason."""
    if conversation.id is None:
        session.add(conversation)
        session.flush()
    assert conversation.id is not None
    conversation.owner_id = owner.id if owner is not None else None
    conversation.queue = None if owner is not None else queue
    session.add(conversation)
    assignment = Assignment(
        conversation_id=conversation.id,
        owner_id=conversation.owner_id,
        queue=conversation.queue,
        rule=rule,
        reason=reason,
        assigned_by=by,
        assigned_at=at,
    )
    session.add(assignment)
    session.flush()
    return assignment


def open_load(session: Session) -> dict[int, int]:
    """Open conversations per active rep; reps with none are included with 0.

    Only `open` counts: answered and closed work is not load.
    """
    load = {rep_id: 0 for rep_id in session.exec(select(Rep.id).where(Rep.active == True)).all()}  # noqa: E712
    rows = session.exec(
        select(Conversation.owner_id, func.count())
        .where(Conversation.status == ConversationStatus.open, Conversation.owner_id.is_not(None))  # type: ignore[union-attr]
        .group_by(col(Conversation.owner_id))
    ).all()
    for owner_id, count in rows:
        if owner_id in load:
            load[owner_id] = int(count)
    return {rep_id: count for rep_id, count in load.items() if rep_id is not None}


def least_loaded(reps: Sequence[Rep], load: Mapping[int, int]) -> Rep:
    """The rep with the fewest open conversations in `load` (ties: the lower id); `reps` is not empty.
    Inbox assignment and win-back owners (store/winback.py) pick by this one rule."""
    return min(reps, key=lambda rep: (load.get(rep.id or -1, 0), rep.id or 0))


def assignment_history(session: Session, conversation_id: int) -> list[Assignment]:
    """Every (re)assignment of a conversation, oldest first."""
    return list(
        session.exec(
            select(Assignment)
            .where(Assignment.conversation_id == conversation_id)
            .order_by(Assignment.assigned_at, Assignment.id)  # type: ignore[arg-type]
        ).all()
    )


@dataclass(frozen=True)
class AssignmentDecision:
    """One assignment to record in bulk: the conversation must already have its id."""

    conversation: Conversation
    owner: Rep | None
    queue: str | None
    rule: str
    reason: str
    by: str = "rapport"


def record_assignments(
    session: Session, decisions: Sequence[AssignmentDecision], *, at: datetime
) -> list[int]:
    """Record many assignments at once (the inbox's batches); returns the new Assignment ids in order.

    Same effect as `record_assignment` for each decision: the conversation's owner
    (or queue) is set and an Assignment row stores the rule and the reason.
    """
    if not decisions:
        return []
    rows = []
    for decision in decisions:
        conversation = decision.conversation
        assert conversation.id is not None, "insert the conversation before recording its assignment"
        conversation.owner_id = decision.owner.id if decision.owner is not None else None
        conversation.queue = None if decision.owner is not None else decision.queue
        rows.append(
            {
                "conversation_id": conversation.id,
                "owner_id": conversation.owner_id,
                "queue": conversation.queue,
                "rule": decision.rule,
                "reason": decision.reason,
                "assigned_by": decision.by,
                "assigned_at": at,
            }
        )
    return insert_rows(session, Assignment, rows)


class ReassignError(LookupError):
    """The conversation or the rep does not exist; the message says which."""


def reassign(
    session: Session,
    conversation_id: int,
    rep_email: str,
    *,
    by: str,
    reason: str | None = None,
    keyword_prefix: str = "rapport",
    notify: bool = True,
    now: datetime,
) -> Assignment:
    """Give the conversation to the rep with `rep_email` (the CLI, Slack's Reassign and Claim).

    The new IMAP owner keyword and, with `notify`, the new owner's DM go in the
    same transaction, so the mail client and Slack follow every reassignment.
    """
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        raise ReassignError(f"no conversation {conversation_id}")
    rep = rep_by_email(session, rep_email)
    if rep is None:
        raise ReassignError(f"no rep with the email {rep_email.strip().lower()}")
    if not rep.active:
        raise ReassignError(f"{rep.email} is inactive")
    if conversation.owner_id == rep.id:
        raise ReassignError(f"{rep.email} already owns conversation {conversation_id}")
    return hand_over(session, conversation, rep, rule="manual", reason=reason or f"reassigned to {rep.email} by {by}",
                     by=by, keyword_prefix=keyword_prefix, notify=notify, now=now)


def hand_over(
    session: Session,
    conversation: Conversation,
    rep: Rep,
    *,
    rule: str,
    reason: str,
    by: str,
    keyword_prefix: str = "rapport",
    notify: bool = True,
    now: datetime,
) -> Assignment:
    """Record that `rep` now owns the conversation and, in the same transaction, enqueue the
    new owner's DM (with `notify`) and the swap of the IMAP owner keyword."""
    assert conversation.id is not None
    conversation_id = conversation.id
    previous = session.get(Rep, conversation.owner_id) if conversation.owner_id else None
    assignment = record_assignment(session, conversation, owner=rep, queue=None, rule=rule, reason=reason, by=by,
                                   at=now)
    messages = list(
        session.exec(
            select(Message)
            .where(Message.conversation_id == conversation_id)
            .order_by(col(Message.received_at))
        ).all()
    )
    if notify and assignment.id is not None:
        enqueue(session, AssignmentDm(assignment.id, conversation.id, messages[-1].id if messages else None),
                now=assignment.assigned_at)
    _retag(session, messages, assignment, rep, previous, keyword_prefix)
    return assignment


def _retag(
    session: Session,
    messages: list[Message],
    assignment: Assignment,
    rep: Rep,
    previous: Rep | None,
    prefix: str,
) -> None:
    """Swap the owner keyword on the conversation's mail that is still where Rapport read it."""
    add = [owner_keyword(prefix, rep)]
    remove = [owner_keyword(prefix, previous)] if previous and previous != rep else []
    for message in messages:
        if message.uid is None or message.uidvalidity is None or message.direction != "inbound":
            continue
        assert message.id is not None and message.mailbox and message.folder  # read from a folder: it has these
        enqueue(session, ImapTag(message.mailbox, message.folder, message.uidvalidity, message.uid, message.id,
                                 keywords=add, remove=remove, assignment_id=assignment.id), now=assignment.assigned_at)
