"""Corrections: a person's fix of a message's category, kept as training data."""

from __future__ import annotations

from sqlmodel import Session, col, select

from store.models import Conversation, Correction, Message, Rep


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
    session: Session, message: Message, category: str, *, rep: Rep | None = None
) -> Correction:
    """Store the fix and apply it to the message and its conversation."""
    correction = Correction(
        message_id=message.id,
        text=training_text(message),
        old_category=message.category,
        new_category=category,
        rep_id=rep.id if rep else None,
    )
    session.add(correction)
    message.category = category
    session.add(message)
    if message.conversation_id is not None:
        conversation = session.get(Conversation, message.conversation_id)
        if conversation is not None:
            conversation.category = category
            session.add(conversation)
    return correction


def training_corrections(session: Session) -> list[tuple[str, str]]:
    """(text, category) pairs, the newest correction of each message winning."""
    latest: dict[object, tuple[str, str]] = {}
    for correction in session.exec(select(Correction).order_by(col(Correction.id))):
        key = correction.message_id if correction.message_id is not None else ("text", correction.text)
        if correction.text.strip():
            latest[key] = (correction.text, correction.new_category)
    return list(latest.values())
