"""What buttons and forms do: plain functions over the store, shared by Slack and tests.

Each returns a short outcome text for the person who clicked; permission
problems and stale clicks (a follow-up already done) are outcomes, not errors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlmodel import Session

from bot.dates import next_local, parse_when
from bot.identity import can_see, can_see_contact, is_manager
from bot.modals import metadata, state_value
from bot.text import clip, escape, local_time, whole_number
from store.activities import log_activity
from store.assignments import reassign
from store.conversations import marked_answered
from store.corrections import CorrectionApplied, latest_correctable_message
from store.followups import complete_followup, create_followup, snooze_followup
from store.models import (
    ActivityKind,
    Company,
    Contact,
    Conversation,
    ConversationStatus,
    FollowUp,
    Message,
    Rep,
)
from store.validation import Invalid, check_category

SNOOZES = ("1h", "tomorrow", "week")
MAX_CALL_MINUTES = 24 * 60


@dataclass(frozen=True)
class Outcome:
    """What a click did: `ok` False means nothing changed (no permission, stale click)."""

    text: str
    ok: bool = True


# What a follow-up's (or a conversation's) button does: the record's id, then the clock.
FollowUpAct = Callable[[Session, Rep, int, datetime], Outcome]


def _refused(text: str) -> Outcome:
    return Outcome(text, ok=False)


@dataclass
class Submission:
    """A form's result: field errors to show in the modal, or what was done."""

    errors: dict[str, str] = field(default_factory=dict)
    text: str = ""


# --------------------------------------------------------------------------- conversations


def claim_conversation(
    session: Session, rep: Rep, conversation_id: int, now: datetime, *, keyword_prefix: str = "rapport"
) -> Outcome:
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        return _refused("That conversation no longer exists.")
    if conversation.owner_id == rep.id:
        return _refused("It's already yours.")
    if not (is_manager(rep) or can_see(session, rep, conversation.owner_id)):
        return _refused("Only its owner's team or a manager can take this conversation.")
    reassign(session, conversation_id, rep.email, by=rep.email, reason=f"claimed by {rep.name} in Slack",
             keyword_prefix=keyword_prefix, notify=False, now=now)
    return Outcome(f"Claimed by {escape(rep.name)}.")


def reassign_conversation(
    session: Session, rep: Rep, conversation_id: int, new_owner_id: int, now: datetime, *,
    keyword_prefix: str = "rapport",
) -> tuple[Outcome, Rep | None]:
    """Managers move a conversation to another rep; returns (outcome, the new owner if moved)."""
    if not is_manager(rep):
        return _refused("Only a manager can reassign a conversation."), None
    conversation = session.get(Conversation, conversation_id)
    new_owner = session.get(Rep, new_owner_id)
    if conversation is None or new_owner is None or not new_owner.active:
        return _refused("That conversation or rep no longer exists."), None
    if conversation.owner_id == new_owner.id:
        return _refused(f"It's already with {escape(new_owner.name)}."), None
    reassign(session, conversation_id, new_owner.email, by=rep.email, reason=f"reassigned by {rep.name}",
             keyword_prefix=keyword_prefix, now=now)
    return Outcome(f"Reassigned to {escape(new_owner.name)} by {escape(rep.name)}."), new_owner


class CorrectionApplier(Protocol):
    """`inbox.corrections.apply_correction` with the routing settings bound (rapport wires it)."""

    def __call__(
        self,
        session: Session,
        category: str,
        *,
        message: Message | None,
        conversation: Conversation | None,
        rep: Rep | None,
        by: str,
        now: datetime,
    ) -> CorrectionApplied: ...


def recategorise(
    session: Session, rep: Rep, conversation_id: int, category: str, *, apply: CorrectionApplier | None,
    categories: Sequence[str] | None, now: datetime,
) -> tuple[Outcome, Rep | None]:
    """Fix a conversation's category to one of `categories` (the model's; None: not readable
    here), kept as training data; returns (outcome, the new owner if re-routed)."""
    if apply is None:
        return _refused("Recategorising is not set up in this process."), None
    if categories is None:
        return _refused("Recategorising is off here: this machine cannot read the model `[nlp] model` "
                        "names, so its categories are unknown."), None
    try:
        check_category(category, categories)
    except Invalid as exc:
        problem = escape(str(exc))
        return _refused(f"{problem[:1].upper()}{problem[1:]}."), None
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        return _refused("That conversation no longer exists."), None
    if not can_see(session, rep, conversation.owner_id):
        return _refused("That conversation is not yours to change."), None
    applied = apply(session, category, message=latest_correctable_message(session, conversation_id), conversation=conversation,
                    rep=rep, by=rep.email, now=now)
    old = applied.correction.old_category or "none"
    text = f"Category changed from `{escape(old)}` to `{category}` by {escape(rep.name)}."
    new_owner = session.get(Rep, applied.reassigned.owner_id) if applied.reassigned and applied.reassigned.owner_id else None
    if new_owner is not None:
        text += f" Re-routed to {escape(new_owner.name)}."
    return Outcome(text), new_owner


def mark_answered(session: Session, rep: Rep, conversation_id: int, now: datetime) -> Outcome:
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        return _refused("That conversation no longer exists.")
    if conversation.owner_id != rep.id and not is_manager(rep):
        return _refused("Only its owner or a manager can mark it answered.")
    if conversation.status != ConversationStatus.open:
        return _refused(f"It is already {conversation.status}.")
    marked_answered(conversation, now)
    session.add(conversation)
    return Outcome(f"Marked answered by {escape(rep.name)}.")


# --------------------------------------------------------------------------- follow-ups


def _own_followup(session: Session, rep: Rep, followup_id: int) -> FollowUp | None:
    followup = session.get(FollowUp, followup_id)
    return followup if followup is not None and followup.rep_id == rep.id else None


def complete(session: Session, rep: Rep, followup_id: int, now: datetime) -> Outcome:
    followup = _own_followup(session, rep, followup_id)
    if followup is None:
        return _refused("That follow-up is not yours (or no longer exists).")
    if not complete_followup(session, followup, now):
        return _refused(f"That follow-up is already {followup.status}.")
    return Outcome("Done. :white_check_mark:")


def snooze_until(choice: str, *, tz: str, now: datetime) -> datetime:
    if choice == "1h":
        return now + timedelta(hours=1)
    if choice == "tomorrow":
        return next_local(9, tz=tz, now=now)
    return next_local(9, tz=tz, now=now, days_ahead=7)


def snooze(session: Session, rep: Rep, followup_id: int, choice: str, now: datetime) -> Outcome:
    if choice not in SNOOZES:
        return _refused("Unknown snooze.")
    followup = _own_followup(session, rep, followup_id)
    if followup is None:
        return _refused("That follow-up is not yours (or no longer exists).")
    # from its due time when that is later: a snooze never brings a follow-up forward
    until = snooze_until(choice, tz=rep.timezone, now=max(now, followup.due_at))
    if not snooze_followup(session, followup, until):
        return _refused(f"That follow-up is already {followup.status}.")
    return Outcome(f"Snoozed until {local_time(until, rep.timezone)}.")


# --------------------------------------------------------------------------- forms


def _contact_id(session: Session, rep: Rep, view: dict[str, Any], errors: dict[str, str], *, required: bool) -> int | None:
    raw = state_value(view, "contact")
    if raw is None:
        if required:
            errors["contact"] = "Pick a contact."
        return None
    contact_id = whole_number(raw)
    contact = session.get(Contact, contact_id) if contact_id is not None else None
    if contact is None or contact.id is None or not can_see_contact(session, rep, contact.id):
        errors["contact"] = "That contact is not there (or not yours to see)."
        return None
    return contact.id


def _when(rep: Rep, raw: str | None, now: datetime, errors: dict[str, str], block: str) -> datetime | None:
    if raw is None:
        return None
    try:
        due = parse_when(raw, tz=rep.timezone, languages=rep.languages or [], now=now)
    except Invalid as error:  # "31 February is not a date"
        errors[block] = f"{error}."
        return None
    if due is None:
        errors[block] = "I could not read that time; try `tomorrow 9am` or `in 3 days`."
    elif due <= now:
        errors[block] = f"{local_time(due, rep.timezone)} has already passed."
        return None
    return due


def submit_log_call(session: Session, rep: Rep, view: dict[str, Any], now: datetime) -> Submission:
    errors: dict[str, str] = {}
    contact_id = _contact_id(session, rep, view, errors, required=True)
    notes = state_value(view, "notes") or ""
    if not notes:
        errors["notes"] = "Write what was said."
    duration_raw = state_value(view, "duration")
    duration = whole_number(duration_raw, MAX_CALL_MINUTES) if duration_raw else None
    if duration_raw and duration is None:
        errors["duration"] = f"Minutes as a whole number (at most {MAX_CALL_MINUTES})."
    due = _when(rep, state_value(view, "followup"), now, errors, "followup")
    if errors:
        return Submission(errors=errors)
    next_step = state_value(view, "next_step")
    log_activity(session, contact_id=contact_id, rep_id=rep.id, summary=notes, kind=ActivityKind.call,
                 outcome=state_value(view, "outcome"), duration_minutes=duration, next_step=next_step,
                 occurred_at=now)
    text = f"Call logged: {escape(clip(notes, 200))}"
    if due is not None and rep.id is not None:
        create_followup(session, rep_id=rep.id, due_at=due, note=next_step or clip(notes, 200),
                        contact_id=contact_id, source="call", now=now)
        text += f"\nFollow-up set for {local_time(due, rep.timezone)}."
    return Submission(text=text)


def submit_followup(session: Session, rep: Rep, view: dict[str, Any], now: datetime) -> Submission:
    errors: dict[str, str] = {}
    contact_id = _contact_id(session, rep, view, errors, required=False)
    raw_when = state_value(view, "when")
    if raw_when is None:
        errors["when"] = "When should I remind you?"
    due = _when(rep, raw_when, now, errors, "when")
    if errors or due is None or rep.id is None:
        return Submission(errors=errors or {"when": "When should I remind you?"})
    note = state_value(view, "note") or ""
    create_followup(session, rep_id=rep.id, due_at=due, note=note, contact_id=contact_id, source="slack", now=now)
    return Submission(text=f"I'll remind you {local_time(due, rep.timezone)}" + (f": {escape(clip(note, 200))}" if note else "."))


def submit_log_message(session: Session, rep: Rep, view: dict[str, Any], now: datetime) -> Submission:
    """The "Log to CRM" shortcut: a Slack message filed under a contact or a company, as a message or a note."""
    errors: dict[str, str] = {}
    target = note_target(session, rep, view, errors)
    summary = state_value(view, "summary") or ""
    if not summary:
        errors["summary"] = "There is nothing to log."
    if errors or target is None:
        return Submission(errors=errors)
    link = metadata(view).get("link")
    kind = ActivityKind.note if state_value(view, "log_as") == ActivityKind.note else ActivityKind.slack
    return Submission(text=add_note(session, rep, target, summary, now, kind=kind, link=str(link) if link else None))


@dataclass(frozen=True)
class NoteTarget:
    """What a note is about: a contact, or a company (contact_id None)."""

    contact_id: int | None
    company_id: int | None
    name: str


def contact_target(session: Session, rep: Rep, contact_id: int | None) -> NoteTarget | None:
    contact = session.get(Contact, contact_id) if contact_id is not None else None
    if contact is None or contact.id is None or not can_see_contact(session, rep, contact.id):
        return None
    return NoteTarget(contact.id, None, contact.name)


def company_target(session: Session, rep: Rep, company_id: int | None) -> NoteTarget | None:
    company = session.get(Company, company_id) if company_id is not None else None
    if company is None or company.id is None or not can_see(session, rep, company.owner_id):
        return None
    return NoteTarget(None, company.id, company.name)


def note_target(session: Session, rep: Rep, view: dict[str, Any], errors: dict[str, str]) -> NoteTarget | None:
    """The contact or company a form is about: the "about" choice (`contact:ID`, `company:ID`), else
    the contact picker, else the company picker; a missing or hidden one is a field error."""
    about = state_value(view, "about")
    if about is not None:
        what, _, raw_id = about.partition(":")
        pick = contact_target if what == "contact" else company_target
        target = pick(session, rep, whole_number(raw_id))
        if target is None:
            errors["about"] = "That contact or company is not there (or not yours to see)."
        return target
    contact_raw, company_raw = state_value(view, "contact"), state_value(view, "company")
    if contact_raw is not None and company_raw is not None:
        errors["company"] = "Pick a contact or a company, not both."
        return None
    if contact_raw is not None:
        target = contact_target(session, rep, whole_number(contact_raw))
        if target is None:
            errors["contact"] = "That contact is not there (or not yours to see)."
        return target
    if company_raw is not None:
        target = company_target(session, rep, whole_number(company_raw))
        if target is None:
            errors["company"] = "That company is not there (or not yours to see)."
        return target
    errors["contact"] = "Pick a contact (or a company)."
    return None


def add_note(session: Session, rep: Rep, target: NoteTarget, text: str, now: datetime, *,
             kind: str = ActivityKind.note, link: str | None = None) -> str:
    """Write a note (or a logged Slack message) about `target`; returns the confirmation for the rep."""
    log_activity(session, contact_id=target.contact_id, company_id=target.company_id, rep_id=rep.id,
                 summary=text, kind=kind, link=link, occurred_at=now)
    what = "Note added to" if kind == ActivityKind.note else "Logged to"
    return f"{what} {escape(target.name)}: {escape(clip(text, 200))}"


def submit_note(session: Session, rep: Rep, view: dict[str, Any], now: datetime) -> Submission:
    errors: dict[str, str] = {}
    target = note_target(session, rep, view, errors)
    text = state_value(view, "note") or ""
    if not text:
        errors["note"] = "Write the note."
    if errors or target is None:
        return Submission(errors=errors)
    return Submission(text=add_note(session, rep, target, text, now))


def recategorise_options(categories: Sequence[str]) -> list[tuple[str, str]]:
    return [(category, category) for category in categories]
