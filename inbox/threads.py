"""Which conversation a message belongs to.

In order: the messages named in In-Reply-To and References; a stored message
that names this one (a reply read before its parent, e.g. Sent before INBOX);
then the normalised subject plus a shared participant within a time window, so
a reply whose client rewrote In-Reply-To (Outlook) still joins its thread.

A `ThreadIndex` answers for one batch: it reads what the batch can refer to
with a few queries, then learns the conversations the batch itself creates.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from store.models import Assignment, ContactEmail, Conversation, Message

QUERY_CHUNK = 500  # values per IN (...) list


@dataclass(frozen=True)
class ThreadKey:
    """What threading reads from a message."""

    message_id: str
    in_reply_to: str | None
    references: Sequence[str]
    normalized_subject: str
    at: datetime

    def parents(self) -> list[str]:
        """In-Reply-To first, then References newest first (the most specific parent first)."""
        ids = [self.in_reply_to] if self.in_reply_to else []
        ids.extend(reversed(list(self.references)))
        return [i for i in ids if i]


def select_in(session: Session, query: Any, column: Any, values: Iterable[Any]) -> list[Any]:
    """Run `query` with `column IN values`, in chunks."""
    unique = list(dict.fromkeys(v for v in values if v is not None))
    found: list[Any] = []
    for start in range(0, len(unique), QUERY_CHUNK):
        found.extend(session.exec(query.where(col(column).in_(unique[start : start + QUERY_CHUNK]))).all())
    return found


class ThreadIndex:
    def __init__(self, window: timedelta) -> None:
        self.window = window
        self.thread_of: dict[str, Conversation] = {}  # Message-ID -> its conversation
        self.reply_of: dict[str, Conversation] = {}  # Message-ID -> conversation of a stored reply to it
        self.by_subject: dict[tuple[str, str], list[Conversation]] = defaultdict(list)
        self.assigned: set[int] = set()  # stored conversations that already have an assignment

    @classmethod
    def load(cls, session: Session, keys: Sequence[ThreadKey], window: timedelta) -> ThreadIndex:
        index = cls(window)
        thread_ids = dict(_thread_ids(session, [p for k in keys for p in k.parents()]))
        reply_ids = dict(_reply_ids(session, [k.message_id for k in keys]))
        subject_rows = _subject_rows(session, keys, window)
        wanted = {*thread_ids.values(), *reply_ids.values(), *(row[0] for row in subject_rows)}
        stored = {c.id: c for c in select_in(session, select(Conversation), Conversation.id, wanted)}
        index.thread_of = {m: stored[c] for m, c in thread_ids.items() if c in stored}
        index.reply_of = {m: stored[c] for m, c in reply_ids.items() if c in stored}
        for conversation_id, subject, email in subject_rows:
            if conversation_id in stored:
                index.by_subject[(subject, email.lower())].append(stored[conversation_id])
        index.assigned = set(select_in(session, select(Assignment.conversation_id), Assignment.conversation_id,
                                       stored))
        return index

    def by_references(self, key: ThreadKey) -> Conversation | None:
        return next((self.thread_of[p] for p in key.parents() if p in self.thread_of), None)

    def find(self, key: ThreadKey, participants: Sequence[str]) -> Conversation | None:
        found = self.by_references(key) or self.reply_of.get(key.message_id)
        if found is not None or not key.normalized_subject:
            return found
        candidates = [
            c
            for p in participants
            for c in self.by_subject.get((key.normalized_subject, p.lower()), [])
            if (c.last_message_at or c.opened_at) >= key.at - self.window and c.opened_at <= key.at + self.window
        ]
        return max(candidates, key=lambda c: c.last_message_at or c.opened_at, default=None)

    def add_message(self, key: ThreadKey, conversation: Conversation) -> None:
        self.thread_of[key.message_id] = conversation
        if key.in_reply_to:
            self.reply_of.setdefault(key.in_reply_to, conversation)

    def add_conversation(self, conversation: Conversation, participant: str | None) -> None:
        if participant and conversation.normalized_subject:
            self.by_subject[(conversation.normalized_subject, participant.lower())].append(conversation)


def _thread_ids(session: Session, message_ids: list[str]) -> list[tuple[str, int]]:
    query = select(Message.message_id, Message.conversation_id).where(col(Message.conversation_id).is_not(None))
    return select_in(session, query, Message.message_id, message_ids)


def _reply_ids(session: Session, message_ids: list[str]) -> list[tuple[str, int]]:
    query = select(Message.in_reply_to, Message.conversation_id).where(col(Message.conversation_id).is_not(None))
    return select_in(session, query, Message.in_reply_to, message_ids)


def _subject_rows(session: Session, keys: Sequence[ThreadKey], window: timedelta) -> list[tuple[int, str, str]]:
    """(conversation id, subject, contact address) of recent conversations with a batch message's subject."""
    subjects = {k.normalized_subject for k in keys} - {""}
    if not subjects:
        return []
    earliest = min(k.at for k in keys) - window
    query = (
        select(Conversation.id, Conversation.normalized_subject, ContactEmail.email)
        .join(ContactEmail, col(ContactEmail.contact_id) == Conversation.contact_id)
        .where(col(Conversation.last_message_at) >= earliest)
    )
    return select_in(session, query, Conversation.normalized_subject, subjects)
