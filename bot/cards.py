"""Block Kit views of the store: contact card, pick list, follow-ups, my queue, App Home."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from bot.blocks import (
    MAX_SECTION_TEXT,
    Block,
    actions,
    button,
    context,
    divider,
    fields,
    fit,
    header,
    option,
    plain,
    section,
)
from bot.consent import consent_select
from bot.references import conversation_ref, followup_ref
from bot.text import age, clip, escape, local_time, until
from store.activities import ActivityLine, recent_activities
from store.contacts_view import ContactCard, OpenConversation, rep_queue
from store.followups import FollowUpLine, open_followups
from store.models import ActivityKind, Company, Contact, Rep
from store.owners import owned_contacts
from store.search import SearchHit
from store.stages import KINDS, STAGES, Move, move_text, stage_label

SNOOZE_CHOICES = (("1 hour", "1h"), ("Tomorrow 9:00", "tomorrow"), ("Next week", "week"))


def contact_card_blocks(card: ContactCard, *, now: datetime, tz: str) -> list[Block]:
    title = escape(card.name) + (f" · {escape(card.title)}" if card.title else "")
    blocks: list[Block] = [
        section(f"*{title}*\n{escape(', '.join(card.emails) or 'no email')}"
                + (f" · {escape(card.phone)}" if card.phone else "")),
        fields(
            f"*Kind*\n{escape(card.kind)}",
            f"*Stage*\n{escape(card.stage.replace('_', ' '))}",
            f"*Company*\n{escape(card.company or '—')}",
            f"*Owner*\n{escape(card.owner or 'unassigned')}",
            f"*Consent*\n{_consent_text(card)}",
            f"*Last touch*\n{age(card.last_touch_at, now)} ago",
            f"*Orders*\n{card.order_count}" + (f" (last {card.last_order_on})" if card.last_order_on else ""),
            f"*Lifetime value*\n{_money(card)}",
            f"*Satisfaction*\n{_score_text(card, now)}",
        ),
    ]
    if card.open_conversations:
        blocks.append(section("*Open conversations*"))
        blocks += [conversation_row(c, now) for c in card.open_conversations]
    if card.activities:
        lines = [_activity_line(a, now, about=card.company if a.contact_id is None else None) for a in card.activities]
        blocks.append(section("*Last activities*\n" + "\n".join(lines)))
    if card.moves:
        blocks.append(section("*Stage history*\n" + "\n".join(_move_line(m, now, tz) for m in card.moves)))
    followup = card.next_followup
    blocks.append(context(
        f"Next follow-up {followup_ref(followup.id)}: {local_time(followup.due_at, tz)} ({until(followup.due_at, now)}) "
        f"{escape(clip(followup.note, 80))}" if followup else "No follow-up planned"
    ))
    blocks.append(actions(
        button("Log a call", "log_call_open", str(card.id), style="primary"),
        button("Add follow-up", "followup_open", str(card.id)),
        button("Add a note", "note_open", str(card.id)),
        consent_select(card),
        block_id=f"card:{card.id}",
    ))
    blocks.append(move_selects(card))
    return blocks


def move_selects(card: ContactCard) -> Block:
    """The card's kind and stage menus (store.stages moves the contact; the value is `ID:kind:VALUE`)."""
    def menu(action_id: str, field: str, current: str, choices: tuple[str, ...]) -> Block:
        options = [option(stage_label(choice), f"{card.id}:{field}:{choice}") for choice in choices]
        element: Block = {"type": "static_select", "action_id": action_id, "placeholder": plain(field.capitalize()),
                          "options": options}
        element.update(("initial_option", o) for o in options if o["value"].endswith(f":{current}"))
        return element

    return actions(menu("contact_kind", "kind", card.kind, KINDS), menu("contact_stage", "stage", card.stage, STAGES),
                   block_id=f"move:{card.id}")


def _move_line(move: Move, now: datetime, tz: str) -> str:
    """`• need → purchase — Mon 23 Nov 2026 10:00 CET (2h ago), by Rapport: first order ...`"""
    activity, who = move.activity, escape(move.by) if move.by else "Rapport"
    when = f"{local_time(activity.occurred_at, tz)} ({age(activity.occurred_at, now)} ago)"
    return f"• {escape(move_text(activity))} — {when}, by {who}: {escape(clip(activity.summary, 120))}"


def _consent_text(card: ContactCard) -> str:
    if not card.consents:
        return "none recorded"
    parts = []
    for consent in card.consents:
        state = "withdrawn" if consent.withdrawn_at else "given" if consent.granted_at else "not given"
        when = consent.withdrawn_at or consent.granted_at
        how = [consent.basis.replace("_", " "), *([f"via {consent.source}"] if consent.source else [])]
        parts.append(f"{escape(consent.purpose)}: {state}" + (f" {when:%Y-%m-%d}" if when else "")
                     + f" ({escape(', '.join(how))})")
    return "\n".join(parts)


def _score_text(card: ContactCard, now: datetime) -> str:
    if card.last_score is None:
        return "no survey answer"
    return f"{card.last_score}/5" + (f" ({age(card.last_score_at, now)} ago)" if card.last_score_at else "")


def _money(card: ContactCard) -> str:
    if not card.lifetime_value:
        return "—"
    return ", ".join(f"{total:,.2f} {escape(currency)}" for currency, total in sorted(card.lifetime_value.items()))


def _conversation_line(conv: OpenConversation, now: datetime) -> str:
    category = escape(conv.category or "uncategorised")
    owner = f" · {escape(conv.owner)}" if conv.owner else ""
    sla = f" · SLA {until(conv.sla_due_at, now)}" if conv.sla_due_at else ""
    who = f"{escape(conv.contact)}: " if conv.contact else ""
    pressing = f"*{escape(conv.urgency)}* " if conv.urgency in ("urgent", "high") else ""
    subject = escape(clip(conv.subject or "(no subject)", 80))
    return (f"• {conversation_ref(conv.id)} {pressing}{who}{subject} — `{category}` · "
            f"{age(conv.opened_at, now)} old{owner}{sla}")


def _activity_line(activity: ActivityLine, now: datetime, *, about: str | None = None) -> str:
    """`• call (connected), 2h ago: ...`; `about` names who it concerns (a company's note on a contact's card,
    the contact in App Home); a move shows what changed."""
    detail = activity.outcome or (move_text(activity) if activity.kind == ActivityKind.move else None)
    outcome = f" ({escape(detail)})" if detail else ""
    on = f" on {escape(about)}" if about else ""
    return (f"• {escape(activity.kind)}{on}{outcome}, {age(activity.occurred_at, now)} ago: "
            f"{escape(clip(activity.summary, 100))}")


def pick_list_blocks(query: str, hits: list[SearchHit]) -> list[Block]:
    blocks: list[Block] = [section(f"{len(hits)} contacts match *{escape(query)}*:")]
    for hit in hits:
        detail = " · ".join(escape(part) for part in (hit.company, hit.email) if part)
        blocks.append(section(f"*{escape(hit.name)}*" + (f"\n{detail}" if detail else ""),
                              accessory=button("Open", "contact_open", str(hit.contact_id))))
    return blocks


def followup_line(followup: FollowUpLine, *, now: datetime, tz: str) -> str:
    who = f"*{escape(followup.contact)}* " if followup.contact else ""
    note = escape(clip(followup.note, 120)) if followup.note else "(no note)"
    return f"{followup_ref(followup.id)} {who}{local_time(followup.due_at, tz)} ({until(followup.due_at, now)})\n{note}"


def followup_blocks(followups: list[FollowUpLine], *, now: datetime, tz: str) -> list[Block]:
    return [section(followup_line(followup, now=now, tz=tz), accessory=button("Done", "followup_done", str(followup.id)))
            for followup in followups]


def reminder_actions(followup_id: int) -> Block:
    return actions(
        button("Done", "followup_done", str(followup_id), style="primary"),
        *(button(f"Snooze: {label}", f"followup_snooze_{value}", str(followup_id)) for label, value in SNOOZE_CHOICES),
        block_id=f"reminder:{followup_id}",
    )


def conversation_row(conv: OpenConversation, now: datetime) -> Block:
    """One open conversation with its "Show conversation" button (card, `my`, App Home)."""
    return section(fit(_conversation_line(conv, now), MAX_SECTION_TEXT),
                   accessory=button("Show conversation", "conv_thread", str(conv.id)))


def queue_blocks(queue: list[OpenConversation], total: int, *, now: datetime) -> list[Block]:
    """The queue, a row per conversation; `total` open conversations, of which `queue` are the most urgent."""
    if not queue:
        return [section("No open conversations. :tada:")]
    rows = [conversation_row(c, now) for c in queue]
    return rows + ([context(f"…and {total - len(queue)} more")] if total > len(queue) else [])


def my_blocks(session: Session, rep: Rep, *, now: datetime) -> list[Block]:
    """`my`: open conversations by SLA urgency, then due follow-ups."""
    assert rep.id is not None
    due = open_followups(session, rep.id, due_before=now)
    queue = queue_blocks(*rep_queue(session, rep.id), now=now)
    blocks = [header("My open conversations"), *queue,
              header("My due follow-ups")]
    blocks += followup_blocks(due, now=now, tz=rep.timezone) or [section("Nothing due.")]
    blocks.append(owned_contacts_block(session, rep.id))
    return blocks


def owned_contacts_block(session: Session, rep_id: int) -> Block:
    """How many contacts the rep owns, by the one owner rule (store/owners.py)."""
    own, via_company = owned_contacts(session, rep_id)
    total = own + via_company
    noun = "contact" if total == 1 else "contacts"
    return context(f"You own {total} {noun}" + (f" ({via_company} through their company)" if via_company else "")
                   + ".")


def home_view(session: Session, rep: Rep, *, now: datetime) -> dict[str, Any]:
    """The App Home tab: my queue, due and overdue follow-ups, recent activities."""
    assert rep.id is not None
    followups = open_followups(session, rep.id, limit=15)
    due = [f for f in followups if f.due_at <= now]
    upcoming = [f for f in followups if f.due_at > now][:5]
    blocks: list[Block] = [
        header(f"Rapport for {rep.name}"[:150]),
        context(f"Updated {local_time(now, rep.timezone)}"),
        header("My queue"),
        *queue_blocks(*rep_queue(session, rep.id, limit=10), now=now),
        divider(),
        header("Due and overdue follow-ups"),
        *(followup_blocks(due, now=now, tz=rep.timezone) or [section("Nothing due.")]),
    ]
    if upcoming:
        blocks += [header("Coming up"), *followup_blocks(upcoming, now=now, tz=rep.timezone)]
    activities = recent_activities(session, rep_id=rep.id, limit=5)
    blocks += [divider(), header("My recent activities")]
    blocks.append(section("\n".join(_activity_line(a, now, about=activity_subject(session, a)) for a in activities))
                  if activities else section("No activities yet."))
    return {"type": "home", "blocks": blocks[:100]}


def activity_subject(session: Session, activity: ActivityLine) -> str | None:
    """The name of who an activity is about: its contact, else its company."""
    if activity.contact_id is not None:
        contact = session.get(Contact, activity.contact_id)
        return contact.name if contact else None
    company = session.get(Company, activity.company_id) if activity.company_id is not None else None
    return company.name if company else None
