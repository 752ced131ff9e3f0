"""`/crm claim`, `answered`, `done` and `snooze`: what the buttons on a DM, a reminder and App
Home do, typed, so that a rep works the queue from a command or from `rapport chat`, where
nothing can be clicked. Each calls the same function as its button (bot.interactions), after the
same permission check (bot.access.may_act), and is audited under the same name.

Records are typed as `my` and `followups` show them: a conversation `#42`, a follow-up `F17`
(read by bot.references), alone; a follow-up may also be named by its contact."""

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
from bot.references import followup_ref, names_other, read_reference
from bot.text import clip, escape
from store.audit import OK, REFUSED, record_audit
from store.followups import open_followups_with
from store.models import FollowUp

if TYPE_CHECKING:
    from bot.commands import Ctx

CLAIM_FORM = "claim #CONVERSATION"
ANSWERED_FORM = "answered #CONVERSATION"
DONE_FORM = "done FOLLOWUP|CONTACT"
SNOOZE_FORM = f"snooze FOLLOWUP|CONTACT {'|'.join(SNOOZES)}"


def claim_command(ctx: Ctx, args: list[str]) -> Reply:
    """`claim #42`: the conversation becomes mine, as the Claim button does."""
    return _on_conversation(ctx, args, CLAIM_FORM, "conv_claim",
                            lambda session, rep, number, now: claim_conversation(
                                session, rep, number, now, keyword_prefix=ctx.options.keyword_prefix))


def answered_command(ctx: Ctx, args: list[str]) -> Reply:
    """`answered #42`: no reply is owed any more, as the Mark answered button says."""
    return _on_conversation(ctx, args, ANSWERED_FORM, "conv_answered", mark_answered)


def done_command(ctx: Ctx, args: list[str]) -> Reply:
    """`done F17`: that follow-up is done; `done CONTACT`: my next open follow-up with the contact."""
    return _on_followup(ctx, args, DONE_FORM, "followup_done", complete)


def snooze_command(ctx: Ctx, args: list[str]) -> Reply:
    """`snooze F17 tomorrow` or `snooze CONTACT 1h|tomorrow|week`: the follow-up comes back later."""
    choice = args[-1].lower() if args else ""
    if choice not in SNOOZES:
        from bot.commands import usage

        labels = ", ".join(f"`{value}` ({label.lower()})" for label, value in SNOOZE_CHOICES)
        return usage(ctx, SNOOZE_FORM, f"end with one of {labels}")
    return _on_followup(ctx, args[:-1], SNOOZE_FORM, f"followup_snooze_{choice}",
                        lambda session, rep, followup_id, now: snooze(session, rep, followup_id, choice, now))


def _on_conversation(ctx: Ctx, args: list[str], form: str, action: str, act: FollowUpAct) -> Reply:
    from bot.commands import usage

    target = read_reference(args[0], bare="conversation") if len(args) == 1 else None
    if target is None or target.kind != "conversation":
        name = form.split()[0]
        return usage(ctx, form,
                     names_other(target, "conversation") + f"E.g. `{name} #42` (`my` shows the numbers).")
    return _reply(_act_on(ctx, target, action, act))


def _on_followup(ctx: Ctx, args: list[str], form: str, action: str, act: FollowUpAct) -> Reply:
    from bot.commands import resolve_contact, usage

    # a reference only alone: `done F1 Motors` names a contact
    target = read_reference(args[0]) if len(args) == 1 else None
    if not args or (target is not None and target.kind != "followup"):
        return usage(ctx, form, names_other(target, "followup")
                     + "Name the follow-up (`F17`: `followups` lists them) or the contact it is about.")
    hit, rest = None, args[1:]
    if target is None:
        hit, rest, problem = resolve_contact(ctx, args)
        if problem is not None:
            return _with_followup_hint(problem, args[0])
    if rest:
        return usage(ctx, form, f"I don't know what `{escape(clip(' '.join(rest), 40))}` means here")
    if hit is None:
        assert target is not None
        followup = ctx.session.get(FollowUp, target.id)
        return _reply(_act_on(ctx, target, action, act, contact_id=followup.contact_id if followup else None))
    assert ctx.rep.id is not None
    mine = open_followups_with(ctx.session, ctx.rep.id, hit.contact_id)
    if not mine:
        text = f"You have no open follow-up with *{escape(hit.name)}*."
        return Reply(text, [section(text)], ok=False)
    # the soonest due: the one a reminder is about
    outcome = _act_on(ctx, Target("followup", mine[0].id), action, act, contact_id=hit.contact_id)
    more = f" ({len(mine) - 1} more open with {escape(hit.name)})" if len(mine) > 1 else ""
    return _reply(Outcome(outcome.text + more, outcome.ok))


def _with_followup_hint(problem: Reply, word: str) -> Reply:
    """`problem` with how to write a follow-up when `word` looks like one (`done 4`, `done F4 now`)."""
    target = read_reference(word, bare="followup")
    if target is None or target.kind != "followup":
        return problem
    hint = f"A follow-up is written `{followup_ref(target.id)}`, on its own (`followups` lists them)."
    return Reply(f"{problem.text} {hint}", [*problem.blocks, section(hint)], ok=problem.ok)


def _act_on(ctx: Ctx, target: Target, action: str, act: FollowUpAct, *, contact_id: int | None = None) -> Outcome:
    """`act` on the record, if the check every button passes first (RapportSlack._authorise) lets
    the rep: a manager acts on their own team's work; audited under the button's name."""
    if may_act(ctx.session, ctx.rep, target):
        outcome = act(ctx.session, ctx.rep, target.id, ctx.now)
    else:
        outcome = Outcome("That is not yours to see or change.", ok=False)
    record_audit(ctx.session, ctx.actor, audit_name(action), target_kind=target.kind, target_id=target.id,
                 contact_id=contact_id, outcome=OK if outcome.ok else REFUSED, at=ctx.now)
    return outcome


def _reply(outcome: Outcome) -> Reply:
    return Reply(outcome.text, [section(outcome.text)], changed_home=outcome.ok, ok=outcome.ok)
