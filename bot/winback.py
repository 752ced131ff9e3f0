"""`/crm segment lapsed` and its buttons: win-back follow-ups and owners for lapsed customers.

What is lapsed, who owns it and what a click does live in store (segments.py, owners.py,
winback.py); this module picks what the rep sees and renders it.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from bot.blocks import MAX_BLOCKS, Block, actions, button, context, header, section
from bot.identity import actable_owner_ids, is_manager, team_member_ids
from bot.interactions import Outcome
from bot.segments import segment_line
from bot.text import escape
from store.models import Rep
from store.segments import SegmentParams, lapsed_customers
from store.winback import (
    LapsedGroups,
    assign_lapsed_owners,
    create_winback_followups,
    former_rep_ids,
    group_lapsed,
)

CREATE_ACTION = "winback_create"
ASSIGN_ACTION = "winback_assign"
MAX_ROWS = MAX_BLOCKS - 10  # header, context, group titles, buttons


def lapsed_groups(session: Session, rep: Rep, params: SegmentParams, *, now: datetime) -> LapsedGroups:
    """The lapsed customers `rep` sees: theirs, their team's; for managers also the rest and the unowned."""
    assert rep.id is not None
    customers = lapsed_customers(session, now=now, params=params)
    return group_lapsed(customers, rep_id=rep.id, team_ids=team_member_ids(session, rep), manager=is_manager(rep),
                        former=former_rep_ids(session))


def lapsed_blocks(session: Session, rep: Rep, params: SegmentParams, *, now: datetime) -> list[Block]:
    """Mine first, then my team's (managers: other teams' and those without an owner), with the buttons."""
    groups = lapsed_groups(session, rep, params, now=now)
    total = len(groups.shown)
    blocks: list[Block] = [header("Lapsed customers to win back"),
                           context(f"{total} to win back · yours first · `rapport export segment lapsed` for all")]
    room = MAX_ROWS
    for title, rows in (("Yours", groups.mine), ("Your team's", groups.team), ("Other teams'", groups.others),
                        ("No owner yet", groups.unowned)):
        if rows and room > 0:
            blocks.append(section(f"*{title}*"))
            blocks += [section(segment_line(row)) for row in rows[:room]]
            room -= len(rows[:room])
    if not total:
        blocks.append(section("Nobody right now."))
        return blocks
    if total > MAX_ROWS:
        blocks.append(context(f"…and {total - MAX_ROWS} more"))
    buttons = []
    if len(groups.shown) > len(groups.unowned):
        buttons.append(button("Create win-back follow-ups", CREATE_ACTION, style="primary"))
    if groups.unowned:
        buttons.append(button("Assign owners", ASSIGN_ACTION))
    if buttons:
        blocks.append(actions(*buttons, block_id="winback"))
    return blocks


def create_followups(session: Session, rep: Rep, params: SegmentParams, now: datetime) -> Outcome:
    """"Create win-back follow-ups": one per owned lapsed customer the rep may act on (a manager:
    their team's; other teams' are shown, not touched), for its owner, once per lapse."""
    groups = lapsed_groups(session, rep, params, now=now)
    actable = actable_owner_ids(session, rep)
    owned = [*groups.mine, *groups.team, *groups.others]
    mine = [c for c in owned if actable is None or c.owner.id in actable]
    result = create_winback_followups(session, mine, now=now)
    parts = [f"Created {result.created} win-back follow-up{'s' if result.created != 1 else ''} for the owners"]
    if result.already:
        parts.append(f"{result.already} already had one for this lapse")
    if len(owned) > len(mine):
        parts.append(f"{len(owned) - len(mine)} of other teams' left to their managers")
    if groups.unowned:
        parts.append(f"{len(groups.unowned)} without an owner: *Assign owners* first")
    return Outcome("; ".join(parts) + ".")


def assign_owners(session: Session, rep: Rep, params: SegmentParams, now: datetime) -> Outcome:
    """"Assign owners" (managers): the account owner, else the least busy sales rep with the language;
    only reps the manager may act on (their team's; all for admins and managers without a team)."""
    if not is_manager(rep):
        return Outcome("Only managers can assign owners.", ok=False)
    groups = lapsed_groups(session, rep, params, now=now)
    choices = assign_lapsed_owners(session, groups.unowned, by=rep, now=now,
                                   owner_ids=actable_owner_ids(session, rep))
    if not choices:
        return Outcome("Every lapsed customer has an owner already.")
    names = {r.id: r.name for r in (session.get(Rep, c.rep_id) for c in choices if c.rep_id) if r is not None}
    lines = [f"• *{escape(c.name)}* → {escape(names[c.rep_id])}: {escape(c.reason)}" if c.rep_id in names
             else f"• *{escape(c.name)}*: nobody could take it ({escape(c.reason)})" for c in choices]
    return Outcome("Owners assigned:\n" + "\n".join(lines))


__all__ = ["ASSIGN_ACTION", "CREATE_ACTION", "assign_owners", "create_followups", "lapsed_blocks", "lapsed_groups"]
