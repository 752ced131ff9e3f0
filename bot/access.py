"""What a person may act on, checked once for every button press and form (bot.app's middleware).

A block action or a view submission names records by id (a conversation in a button's
value, a contact or company in a picker, a note's "about" choice or the modal's
metadata). Slack signs the request, not its content: a crafted payload can carry any
id. `refused_targets` finds every id the payload names and keeps those the rep may not
act on (bot.identity.may_act_on on the record's owner, a contact's being the one owner
rule of store/owners.py: own and team for reps and support, the team for managers,
everything for admins). Buttons that only show something (READ_ACTIONS: open a card,
show a conversation) are checked with the reading rule instead (bot.identity.can_see:
managers read every team's records, as `find` shows them).

Buttons that act on a list (the win-back buttons) name no record: what they touch is
chosen by the handler from what the rep may act on (bot/winback.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from bot.identity import can_see, may_act_on
from bot.modals import metadata, state_value
from bot.text import whole_number
from store.models import Company, Conversation, FollowUp, Rep
from store.owners import owner_id_of

# action_id (or its prefix) -> what its value names before ":"
ACTION_TARGETS = {
    "conv_": "conversation",
    "followup_done": "followup",
    "followup_snooze_": "followup",
    "contact_open": "contact",
    "log_call_open": "contact",
    "followup_open": "contact",
    "note_open": "contact",
    "contact_kind": "contact",
    "contact_stage": "contact",
    "thread_page": "conversation",
    "consent_change": "contact",
}
READ_ACTIONS = ("contact_open", "conv_thread", "thread_page")  # they show, they change nothing
# what the audit log calls a button or form (one name per idea, as `rapport assign reassign` records it)
AUDIT_NAMES = {
    "conv_claim": "conversation.claim",
    "conv_reassign": "conversation.reassign",
    "conv_recategorise": "conversation.recategorise",
    "conv_answered": "conversation.answered",
    "followup_done": "followup.done",
    "contact_open": "card.view",
    "log_call_open": "activity.log_call",
    "followup_open": "followup.add",
    "log_call": "activity.log_call",
    "add_followup": "followup.add",
    "log_message": "activity.log_message",
    "privacy_confirm": "privacy.confirm",
    "contact_kind": "contact.kind",
    "contact_stage": "contact.stage",
    "note_open": "activity.note",
    "add_note": "activity.note",
    "conv_thread": "conversation.view",
    "conv_reply": "conversation.reply",
    "email_reply": "conversation.reply",
    "consent_change": "consent.change",
    "winback_create": "winback.followups",
    "winback_assign": "winback.assign_owners",
}
SEE_ALL = "rep"  # a conversation handed to another rep: that rep must be one the actor may see


@dataclass(frozen=True)
class Target:
    kind: str  # "conversation", "followup", "contact", "company", "rep"
    id: int
    read_only: bool = False  # a button that only shows the record


def audit_name(action_or_callback: str) -> str:
    """The audit log's name for a Slack action id or view callback id."""
    if action_or_callback.startswith("followup_snooze_"):
        return "followup.snooze"
    return AUDIT_NAMES.get(action_or_callback, action_or_callback)


def _action_value(action: dict[str, Any]) -> str:
    selected = action.get("selected_option")
    if isinstance(selected, dict):
        return str(selected.get("value") or "")
    return str(action.get("value") or "")


def targets_of(body: dict[str, Any]) -> tuple[str, list[Target]]:
    """(what is being done, the records it names) for a block action or view submission."""
    targets: list[Target] = []
    if body.get("type") == "block_actions":
        names = []
        for action in body.get("actions") or []:
            action_id = str(action.get("action_id") or "")
            names.append(action_id)
            kind = next((k for prefix, k in ACTION_TARGETS.items() if action_id.startswith(prefix)), None)
            if kind is None:
                continue
            first, _, rest = _action_value(action).partition(":")
            if (number := whole_number(first)) is not None:
                targets.append(Target(kind, number, read_only=action_id in READ_ACTIONS))
            if action_id == "conv_reassign" and (new_owner := whole_number(rest)) is not None:
                targets.append(Target(SEE_ALL, new_owner))
        return ",".join(map(audit_name, names)) or "action", targets
    if body.get("type") == "view_submission":
        view = body.get("view") or {}
        for block, kind in (("contact", "contact"), ("company", "company")):  # the pickers
            if (picked := whole_number(state_value(view, block) or "")) is not None:
                targets.append(Target(kind, picked))
        about_kind, _, about_id = (state_value(view, "about") or "").partition(":")  # a note's "About"
        if about_kind in ("contact", "company") and (number := whole_number(about_id)) is not None:
            targets.append(Target(about_kind, number))
        for key, kind in (("contact_id", "contact"), ("conversation_id", "conversation")):
            meta = metadata(view).get(key)
            if isinstance(meta, int | str) and (number := whole_number(str(meta))) is not None:
                targets.append(Target(kind, number))
        return audit_name(str(view.get("callback_id") or "view")), targets
    return "", targets


def may_act(session: Session, rep: Rep, target: Target) -> bool:
    """Whether `rep` may act on `target`; a record that no longer exists is left to the handler."""
    owner: int | None
    if target.kind == "conversation":
        conversation = session.get(Conversation, target.id)
        if conversation is None:
            return True
        owner = conversation.owner_id
    elif target.kind == "followup":
        followup = session.get(FollowUp, target.id)
        if followup is None:
            return True
        owner = followup.rep_id
    elif target.kind == "contact":
        owner = owner_id_of(session, target.id)  # the contact's owner, else its company's
    elif target.kind == "company":
        company = session.get(Company, target.id)
        if company is None:
            return True
        owner = company.owner_id
    else:
        owner = target.id
    return can_see(session, rep, owner) if target.read_only else may_act_on(session, rep, owner)


def refused_targets(session: Session, rep: Rep, targets: list[Target]) -> list[Target]:
    return [target for target in targets if not may_act(session, rep, target)]
