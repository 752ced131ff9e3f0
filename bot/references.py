"""How reps name records in commands, as `my`, cards and reminders show them: a conversation
`#42`, a follow-up `F17`. The one writer and the one reader of each, for every command that
takes one (`thread`, `reply`, `claim`, `answered`, `done`, `snooze`)."""

from __future__ import annotations

from bot.access import Target
from bot.text import whole_number

CONVERSATION_MARK = "#"
FOLLOWUP_MARK = "F"  # never `#`: a follow-up's number is not a conversation's
MARKS = {CONVERSATION_MARK: "conversation", FOLLOWUP_MARK: "followup"}  # a reference's first character
KINDS = {"conversation": "a conversation", "followup": "a follow-up"}


def conversation_ref(conversation_id: int) -> str:
    """How reps name a conversation in commands (`thread #42`, `claim #42`): `#42`."""
    return f"{CONVERSATION_MARK}{conversation_id}"


def followup_ref(followup_id: int) -> str:
    """How reps name a follow-up in commands (`done F17`): `F17`."""
    return f"{FOLLOWUP_MARK}{followup_id}"


def read_reference(word: str, *, bare: str | None = None) -> Target | None:
    """The record a typed word names: `#42` a conversation, `F17` (or `f17`) a follow-up; a bare
    `42` is of kind `bare` (`claim 42`: the conversation commands take nothing else). None: not a
    reference (a contact's name)."""
    kind = MARKS.get(word[:1].upper())
    if kind is not None and (number := whole_number(word[1:])) is not None:
        return Target(kind, number)
    if bare is not None and (number := whole_number(word)) is not None:
        return Target(bare, number)
    return None


def names_other(target: Target | None, expected: str) -> str:
    """What a reference of another kind than `expected` names (`thread F17`, `done #42`), ahead of
    a usage hint; empty when it names the expected kind or nothing."""
    if target is None or target.kind == expected:
        return ""
    typed = conversation_ref(target.id) if target.kind == "conversation" else followup_ref(target.id)
    return f"`{typed}` names {KINDS[target.kind]}. "
