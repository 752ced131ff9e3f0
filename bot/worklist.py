"""`/crm claim`, `answered`, `done` and `snooze`: what the buttons on a DM, a reminder and App
Home do, typed, so that a rep works the queue from a command or from `rapport chat`, where
nothing can be clicked. Each calls the same function as its button (bot.interactions) and is
audited under the same name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.access import Target, audit_name, may_act
from bot.blocks import Reply, section
from bot.cards import SNOOZE_CHOICES
from bot.interactions import (
    SNOOZES,
    FollowUpAct,
    Outcome,
    claim_conversation,
    complete,
    mark_answered,
    snooze,
)
from bot.text import escape, whole_number
from store.audit import OK, REFUSED, record_audit
from store.followups import open_followups_with

if TYPE_CHECKING:
    from bot.commands import Ctx


def claim_command(ctx: Ctx, args: list[str]) -> Reply:
    """`claim #42`: the conversation becomes mine, as the Claim button does."""
    return _on_conversation(ctx, args, "claim", "conv_claim",
                            lambda session, rep, number, now: claim_conversation(
                                session, rep, number, now, keyword_prefix=ctx.options.keyword_prefix))


def answered_command(ctx: Ctx, args: list[str]) -> Reply:
    """`answered #42`: no reply is owed any more, as the Mark answered button says."""
    return _on_conversation(ctx, args, "answered", "conv_answered", mark_answered)


def done_command(ctx: Ctx, args: list[str]) -> Reply:
    """`done CONTACT`: my next open follow-up with the contact is done."""
    return _on_followup(ctx, args, "done CONTACT", "followup_done", complete)


def snooze_command(ctx: Ctx, args: list[str]) -> Reply:
    """`snooze CONTACT 1h|tomorrow|week`: my next open follow-up with the contact comes back later."""
    choice = args[-1].lower() if args else ""
    form = f"snooze CONTACT {'|'.join(SNOOZES)}"
    if choice not in SNOOZES:
        from bot.commands import usage

        labels = ", ".join(f"`{value}` ({label.lower()})" for label, value in SNOOZE_CHOICES)
        return usage(ctx, form, f"end with one of {labels}")
    return _on_followup(ctx, args[:-1], form, f"followup_snooze_{choice}",
                        lambda session, rep, followup_id, now: snooze(session, rep, followup_id, choice, now))


def _on_conversation(ctx: Ctx, args: list[str], name: str, action: str, act: FollowUpAct) -> Reply:
    from bot.commands import usage

    number = whole_number(args[0].removeprefix("#")) if len(args) == 1 else None
    if number is None:
        return usage(ctx, f"{name} #CONVERSATION", f"e.g. `{name} #42` (`my` shows the numbers)")
    # the check every button passes first (RapportSlack._authorise): a manager acts on their own team's work
    if may_act(ctx.session, ctx.rep, Target("conversation", number)):
        outcome = act(ctx.session, ctx.rep, number, ctx.now)
    else:
        outcome = Outcome("That is not yours to see or change.", ok=False)
    record_audit(ctx.session, ctx.actor, audit_name(action), target_kind="conversation", target_id=number,
                 outcome=OK if outcome.ok else REFUSED, at=ctx.now)
    return _reply(outcome)


def _on_followup(ctx: Ctx, args: list[str], form: str, action: str, act: FollowUpAct) -> Reply:
    from bot.commands import resolve_contact, usage

    if not args:
        return usage(ctx, form, "name the contact the follow-up is about")
    hit, rest, problem = resolve_contact(ctx, args)
    if problem is not None:
        return problem
    assert hit is not None and ctx.rep.id is not None
    if rest:
        return usage(ctx, form, f"I don't know what `{escape(' '.join(rest))}` means here")
    mine = open_followups_with(ctx.session, ctx.rep.id, hit.contact_id)
    if not mine:
        text = f"You have no open follow-up with *{escape(hit.name)}*."
        return Reply(text, [section(text)], ok=False)
    followup = mine[0]  # the soonest due: the one a reminder is about (the rep's own: no other check)
    outcome = act(ctx.session, ctx.rep, followup.id, ctx.now)
    record_audit(ctx.session, ctx.actor, audit_name(action), target_kind="followup", target_id=followup.id,
                 contact_id=hit.contact_id, outcome=OK if outcome.ok else REFUSED, at=ctx.now)
    more = f" ({len(mine) - 1} more open with {escape(hit.name)})" if len(mine) > 1 else ""
    return _reply(Outcome(outcome.text + more, outcome.ok))


def _reply(outcome: Outcome) -> Reply:
    return Reply(outcome.text, [section(outcome.text)], changed_home=outcome.ok, ok=outcome.ok)
