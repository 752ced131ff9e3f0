"""Moving the relationship from Slack: `/crm stage`, `/crm kind` and the card's menus.

The change itself (and the activity that records who, when and why) is
`store.stages.move_contact`; here are the Slack words around it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlmodel import Session

from bot.blocks import Reply, section
from bot.commands import Ctx, resolve_contact
from bot.commands import usage as usage_reply
from bot.identity import can_see_contact
from bot.interactions import Outcome
from bot.text import clip, escape
from store.audit import Actor
from store.models import Contact, Rep
from store.stages import (
    KINDS,
    STAGES,
    UnknownValue,
    check_kind,
    check_stage,
    move_contact,
    move_text,
    stage_label,
)

CARD_REASON = "changed on the contact card"
COMMAND_REASON = "changed with {command}"
MOVE_FIELDS = ("kind", "stage")


def change_contact(
    session: Session, rep: Rep, contact_id: int, *, field: str, value: str, reason: str, now: datetime, actor: Actor
) -> Outcome:
    """Set a contact's kind or stage for `rep` (who must be able to see the contact); the move is
    recorded as an activity with the rep, the time and `reason`, and audited as done by `actor`."""
    contact = session.get(Contact, contact_id)
    if contact is None or contact.id is None or not can_see_contact(session, rep, contact.id):
        return Outcome("That contact is not there (or not yours to see).", ok=False)
    if field not in MOVE_FIELDS:
        return Outcome(f"I can change a contact's kind or stage, not {escape(clip(field, 40))}.", ok=False)
    try:
        activity = move_contact(session, contact, reason=reason, at=now, rep_id=rep.id, actor=actor,
                                kind=value if field == "kind" else None, stage=value if field == "stage" else None)
    except UnknownValue as exc:
        return Outcome(escape(str(exc)), ok=False)
    if activity is None:
        current = contact.kind if field == "kind" else stage_label(contact.stage)
        return Outcome(f"{escape(contact.name)} is already {'a ' if field == 'kind' else 'at '}{escape(current)}.",
                       ok=False)
    return Outcome(f"*{escape(contact.name)}*: {escape(move_text(activity))} (by {escape(rep.name)}).")


def stage_command(ctx: Ctx, args: list[str]) -> Reply:
    """`stage CONTACT STAGE [REASON]`."""
    return _move_command(ctx, args, "stage", check_stage, STAGES)


def kind_command(ctx: Ctx, args: list[str]) -> Reply:
    """`kind CONTACT KIND [REASON]`."""
    return _move_command(ctx, args, "kind", check_kind, KINDS)


def _move_command(ctx: Ctx, args: list[str], field: str, check: Callable[[str], str], choices: tuple[str, ...]) -> Reply:
    usage = f"{field} CONTACT {field.upper()} [REASON]"
    hint = f"{field.capitalize()}s: {', '.join(stage_label(c) for c in choices)}."
    if not args:
        return usage_reply(ctx, usage, hint)
    hit, rest, problem = resolve_contact(ctx, args)
    if problem is not None:
        return problem
    assert hit is not None
    value, reason_words = _leading_value(rest, check)
    if value is None:
        return usage_reply(ctx, usage, f"Which {field} for *{escape(hit.name)}*? {hint}")
    reason = " ".join(reason_words).strip() or COMMAND_REASON.format(command=f"{ctx.options.command} {field}")
    outcome = change_contact(ctx.session, ctx.rep, hit.contact_id, field=field, value=value, reason=reason,
                             now=ctx.now, actor=ctx.actor)
    return Reply(outcome.text, [section(outcome.text)], ok=outcome.ok)


def _leading_value(words: list[str], check: Callable[[str], str]) -> tuple[str | None, list[str]]:
    """A kind or stage at the start of `words` (two words first: `information search`), and the rest."""
    for count in (2, 1):
        if len(words) >= count:
            try:
                return check(" ".join(words[:count])), words[count:]
            except UnknownValue:
                continue
    return None, words


def move_from_card(session: Session, rep: Rep, contact_id: int, argument: str, *, now: datetime,
                   actor: Actor) -> Outcome:
    """A card's menu: `argument` is `kind:VALUE` or `stage:VALUE`."""
    field, _, value = argument.partition(":")
    return change_contact(session, rep, contact_id, field=field, value=value, reason=CARD_REASON, now=now,
                          actor=actor)
