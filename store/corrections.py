"""Corrections: a person's fix of a message's category, kept as training data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from store.models import Assignment, Conversation, Correction, Direction, Message, Rep


class NotCorrectable(ValueError):
    """A message the inbox never classifies, so it has no category to correct."""


def unclassified_kind(message: Message) -> str | None:
    """What the message is when the inbox never classifies it (a staff reply, automatic mail),
    else None: only classified mail has a category a person can correct."""
    if message.direction == Direction.outbound:
        return "a staff member's outbound reply"
    if message.is_automatic:
        return f"automatic mail ({message.automatic_reason or 'an auto-reply, list mail or bounce'})"
    return None


def check_correctable(message: Message) -> None:
    """Raise NotCorrectable, saying what the message is and which can be corrected."""
    kind = unclassified_kind(message)
    if kind is not None:
        raise NotCorrectable(
            f"message {message.id} is {kind}; the inbox never classifies those.\n"
            "Only inbound mail from people can be corrected, not staff replies\n"
            "or automatic mail (auto-replies, mailing lists, bounces)."
        )


def latest_correctable_message(session: Session, conversation_id: int) -> Message | None:
    """The conversation's newest message a correction can be about (see `unclassified_kind`)."""
    query = (
        select(Message)
        .where(Message.conversation_id == conversation_id)
        .order_by(col(Message.received_at).desc(), col(Message.id).desc())
    )
    return next((m for m in session.exec(query) if unclassified_kind(m) is None), None)


def find_message(session: Session, ref: str) -> Message | None:
    """A message by its database id or by its Message-ID header (with or without <>)."""
    if ref.isdigit():
        return session.get(Message, int(ref))
    message_id = ref if ref.startswith("<") else f"<{ref}>"
    return session.exec(select(Message).where(Message.message_id == message_id)).first()


def training_text(message: Message) -> str:
    """What the classifier read for this message: the subject and the new text."""
    return f"{message.subject}\n\n{message.new_text or message.text}".strip()


def record_correction(
    session: Session,
    category: str,
    *,
    message: Message | None,
    conversation: Conversation | None,
    rep: Rep | None = None,
    at: datetime,
) -> Correction:
    """Store the fix with the text the classifier read and apply it to the message and the conversation.

    Without a message (a conversation with no inbound mail) the subject is the text. A message
    the inbox never classifies is refused (`check_correctable`).
    """
    if message is not None:
        check_correctable(message)
    old = (message.category if message else None) or (conversation.category if conversation else None)
    language = (message.language if message else None) or (conversation.language if conversation else None)
    correction = Correction(
        message_id=message.id if message else None,
        text=training_text(message) if message else (conversation.subject if conversation else ""),
        old_category=old,
        new_category=category,
        language=language,
        rep_id=rep.id if rep else None,
        created_at=at,
    )
    session.add(correction)
    if message is not None:
        message.category = category
        session.add(message)
    if conversation is not None:
        conversation.category = category
        session.add(conversation)
    session.flush()
    return correction


@dataclass(frozen=True)
class CorrectionApplied:
    """A correction and what it did to the routing: the new assignment, or why the owner stayed."""

    correction: Correction
    reassigned: Assignment | None
    routing: str  # one line for a person


def last_correction_id(session: Session) -> int | None:
    return session.exec(select(func.max(Correction.id))).one()


def training_corrections(session: Session, *, through: int | None = None) -> list[tuple[str, str]]:
    """(text, category) pairs up to the correction id `through` (all by default), the newest of each message winning."""
    latest: dict[object, tuple[str, str]] = {}
    query = select(Correction).order_by(col(Correction.id))
    if through is not None:
        query = query.where(col(Correction.id) <= through)
    for correction in session.exec(query):
        key = correction.message_id if correction.message_id is not None else ("text", correction.text)
        if correction.text.strip():
            latest[key] = (correction.text, correction.new_category)
    return list(latest.values())


def corrections_by_language_and_category(
    session: Session, *, after: int | None = None
) -> list[tuple[str | None, str, int]]:
    """(language, category, count) of the corrections with an id above `after` (all by default)."""
    query = select(Correction.language, Correction.new_category, func.count()).group_by(
        col(Correction.language), col(Correction.new_category)
    )
    if after is not None:
        query = query.where(col(Correction.id) > after)
    rows = session.exec(query).all()
    return sorted(((language, category, int(n)) for language, category, n in rows),
                  key=lambda row: (row[0] or "", row[1]))
