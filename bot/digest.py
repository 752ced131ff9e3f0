"""Manager digests: rendering (Slack blocks, plain text, HTML, a chart) and delivery.

The scheduler calls `enqueue_due_digests` every minute or so; it writes one
outbox row per manager and period (`digest:{email}:{period}:{local date}`,
unique), so a digest is enqueued once however often, and from however many
processes, it runs. The outbox dispatcher hands each `kind="digest"` row to
`deliver_digest`, which computes the figures and sends them to Slack and/or by
email. Slack messages carry the outbox key in their metadata and a retry skips
the parts already posted, so a retry after a crash does not post twice.
"""

from __future__ import annotations

import html
import io
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, select

from bot.email import SmtpOptions, build_message, new_cid, send_message
from bot.text import escape
from store.digest import (
    DigestFigures,
    Funnel,
    Period,
    RepFigures,
    ResponseTimes,
    compute_digest,
    last_complete_period,
)
from store.hours import WEEKDAYS, zone
from store.models import Rep, Role
from store.outbox import Digest, Job, enqueue
from store.reps import rep_by_email
from store.segments import LapsedCustomer, Owner, SegmentParams, TopCustomer
from store.stages import stage_label

if TYPE_CHECKING:  # bot.notify hands digests here: only the type comes back
    from bot.notify import SlackSender

log = logging.getLogger("rapport.digest")

KIND = Digest.kind
MAX_TEXT = 3000  # Slack's limit for a section's text
MAX_FIELD = 2000  # Slack's limit for a section field


class DigestDeliveryError(RuntimeError):
    """A digest could not be delivered (no Slack client, no SMTP, unknown Slack user...)."""


@dataclass(frozen=True)
class DigestOptions:
    """What `enqueue_due_digests` needs from rapport.toml ([digest] and [segments])."""

    period: Period = "day"
    weekday: str = "Mon"  # weekly digests go out on this local weekday
    channel: str | None = None  # also post every digest to this Slack channel
    params: SegmentParams = field(default_factory=SegmentParams)


# --------------------------------------------------------------------------- formatting


def format_duration(seconds: float | None) -> str:
    """`45m`, `3h 05m`, `2d 4h`; `–` when there is nothing to measure."""
    if seconds is None:
        return "–"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def format_eur(value: Decimal) -> str:
    return f"€{value:,.2f}"


def _counts(counts: dict[str, int], limit: int = 8) -> str:
    items = list(counts.items())
    shown = ", ".join(f"{name} {count}" for name, count in items[:limit])
    rest = sum(count for _, count in items[limit:])
    return shown + (f", others {rest}" if rest else "") if items else "none"


def format_orders(count: int) -> str:
    return "1 order" if count == 1 else f"{count} orders"


def _response(times: ResponseTimes) -> str:
    if not times.count:
        return "no first responses"
    return (f"median {format_duration(times.median_seconds)}, p90 {format_duration(times.p90_seconds)} "
            f"({times.count} conversations)")


def _owner_text(owner: Owner) -> str:
    return owner.name or owner.email or "no owner"


def _title(figures: DigestFigures) -> str:
    audience = f"team {figures.team}" if figures.team else "everyone"
    return f"Rapport digest for {figures.manager_name} ({audience}), {figures.label} ({figures.timezone})"


def _top_line(customer: TopCustomer) -> str:
    decile = ", top 10%" if customer.top_decile else ""
    return (f"#{customer.rank} {customer.name}: {format_eur(customer.value_eur)} in {format_orders(customer.orders)}"
            f"{decile}")


def _lapsed_line(customer: LapsedCustomer) -> str:
    return (f"{customer.name}: last order {customer.last_order_on.isoformat()}, {customer.days_since} days ago "
            f"(usually every {customer.median_gap_days:g} days), {format_eur(customer.value_eur)} so far")


def _summary_lines(figures: DigestFigures) -> list[str]:
    return [
        f"New conversations: {figures.new_conversations} ({_counts(figures.new_by_category)})",
        f"Languages: {_counts(figures.new_by_language)}",
        f"Urgent or high: {sum(figures.new_by_urgency.get(level, 0) for level in ('urgent', 'high'))} "
        f"({_counts(figures.new_by_urgency)})",
        f"Open now: {figures.open} (unanswered {figures.unanswered}, overdue {figures.overdue})",
        f"SLA breaches: {figures.sla_breaches}",
        f"First response: {_response(figures.first_response)}",
        f"Follow-ups: {figures.followups_done} done, {figures.followups_overdue} overdue",
        f"Automatic mail filtered: {figures.automatic_filtered} ({_counts(figures.automatic_by_reason)})",
        *funnel_lines(figures.funnel),
    ]


def funnel_lines(funnel: Funnel) -> list[str]:
    """The buying stages in two short lines: `Stages: need 4, information search 2, ...` and
    `Stage moves: 3 contacts moved, 1 prospect became a customer`."""
    stages = ", ".join(f"{stage_label(stage)} {count}" for stage, count in funnel.by_stage.items()) or "none"
    moved = "1 contact moved" if funnel.moved == 1 else f"{funnel.moved} contacts moved"
    became = "1 prospect became a customer" if funnel.became_customers == 1 else \
        f"{funnel.became_customers} prospects became customers"
    return [f"Stages: {stages}", f"Stage moves: {moved}, {became}"]


# --------------------------------------------------------------------------- plain text


def render_digest_text(figures: DigestFigures) -> str:
    """The digest as plain text: for the terminal and the email's text part."""
    lines = [_title(figures), "", *_summary_lines(figures), "", "Per rep"]
    header = f"  {'Rep':<22} {'Open':>5} {'Assig':>5} {'Answ':>5} {'Median':>8} {'P90':>8} " \
             f"{'SLA!':>5} {'Calls':>5} {'Other':>5} {'FU ok':>5} {'FU !':>5}"
    lines.append(header)
    for rep in figures.reps:
        lines.append(
            f"  {rep.name[:22]:<22} {rep.open:>5} {rep.assigned:>5} {rep.answered:>5} "
            f"{format_duration(rep.first_response.median_seconds):>8} "
            f"{format_duration(rep.first_response.p90_seconds):>8} {rep.sla_breaches:>5} {rep.calls:>5} "
            f"{sum(rep.other_activities.values()):>5} {rep.followups_done:>5} {rep.followups_overdue:>5}"
        )
    if not figures.reps:
        lines.append("  (no reps)")
    lines += ["", "Top customers who wrote"]
    lines += [f"  {_top_line(c)} (owner {_owner_text(c.owner)})"
              for c in figures.top_customers_who_wrote] or ["  none"]
    lines += ["", "Lapsed customers worth a call"]
    lines += [f"  {_lapsed_line(c)} (owner {_owner_text(c.owner)})"
              for c in figures.lapsed_worth_a_call] or ["  none"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- Slack blocks


def _clip(value: str, limit: int = MAX_TEXT) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _section(value: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(value)}}


def owner_mention(owner: Owner) -> str:
    """A Slack mention of the owner when they have a Slack id, else their escaped name."""
    return f"<@{owner.slack_user_id}>" if owner.slack_user_id else escape(_owner_text(owner))


def _list_sections(title: str, lines: list[str]) -> list[dict[str, Any]]:
    """A titled list, split into sections of at most MAX_TEXT characters."""
    if not lines:
        return [_section(f"*{title}*\nnone")]
    sections, current = [], f"*{title}*"
    for line in lines:
        if len(current) + len(line) + 1 > MAX_TEXT:
            sections.append(_section(current))
            current = ""
        current = f"{current}\n{line}" if current else line
    sections.append(_section(current))
    return sections


def _rep_block(rep: RepFigures) -> dict[str, Any]:
    others = ", ".join(f"{kind} {n}" for kind, n in rep.other_activities.items()) or "none"
    fields = [
        f"*{escape(rep.name)}*\nopen {rep.open} (unanswered {rep.unanswered}, overdue {rep.overdue})",
        f"*Assigned / answered*\n{rep.assigned} / {rep.answered}",
        f"*First response*\n{_response(rep.first_response)}",
        f"*SLA breaches*\n{rep.sla_breaches}",
        f"*Calls / other*\n{rep.calls} / {others}",
        f"*Follow-ups*\n{rep.followups_done} done, {rep.followups_overdue} overdue",
    ]
    return {"type": "section", "fields": [{"type": "mrkdwn", "text": _clip(f, MAX_FIELD)} for f in fields]}


def render_digest_blocks(figures: DigestFigures) -> list[dict[str, Any]]:
    """All the digest's blocks, in order (may be more than one message holds: see split_blocks)."""
    top = [f"{escape(_top_line(c))} · {owner_mention(c.owner)}"
           for c in figures.top_customers_who_wrote]
    lapsed = [f"{escape(_lapsed_line(c))} · {owner_mention(c.owner)}"
              for c in figures.lapsed_worth_a_call]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(_title(figures), 150)}},
        _section("\n".join(escape(line) for line in _summary_lines(figures))),
        {"type": "divider"},
        _section("*Per rep*" if figures.reps else "*Per rep*\nno reps"),
        *(_rep_block(rep) for rep in figures.reps),
        {"type": "divider"},
        *_list_sections("Top customers who wrote", top),
        *_list_sections("Lapsed customers worth a call", lapsed),
    ]
    return blocks


# --------------------------------------------------------------------------- HTML and chart


def render_digest_html(figures: DigestFigures, *, chart_cid: str | None = None) -> str:
    """A self-contained HTML body (inline styles, as mail clients want); the chart is
    `<img src="cid:{chart_cid}">` when a cid is given."""
    e = html.escape
    cell = 'style="padding:4px 8px;border-bottom:1px solid #ddd;text-align:right"'
    left = 'style="padding:4px 8px;border-bottom:1px solid #ddd;text-align:left"'
    heads = ["Rep", "Open", "Assigned", "Answered", "Median", "P90", "SLA breaches", "Calls", "Other",
             "Follow-ups done", "Overdue"]
    rows = "".join(
        f"<tr><td {left}>{e(r.name)}</td>"
        + "".join(f"<td {cell}>{e(str(v))}</td>" for v in (
            r.open, r.assigned, r.answered, format_duration(r.first_response.median_seconds),
            format_duration(r.first_response.p90_seconds), r.sla_breaches, r.calls,
            sum(r.other_activities.values()), r.followups_done, r.followups_overdue))
        + "</tr>"
        for r in figures.reps
    )
    summary = "".join(f"<li>{e(line)}</li>" for line in _summary_lines(figures))
    top = "".join(f"<li>{e(_top_line(c))} (owner {e(_owner_text(c.owner))})</li>"
                  for c in figures.top_customers_who_wrote) or "<li>none</li>"
    lapsed = "".join(f"<li>{e(_lapsed_line(c))} (owner {e(_owner_text(c.owner))})</li>"
                     for c in figures.lapsed_worth_a_call) or "<li>none</li>"
    chart = (f'<p><img src="cid:{e(chart_cid)}" alt="New conversations and first-response time" '
             f'style="max-width:100%"></p>' if chart_cid else "")
    head_cells = "".join(f"<th {left if h == 'Rep' else cell}>{e(h)}</th>" for h in heads)
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head>'
        '<body style="font-family:Arial,Helvetica,sans-serif;color:#222;font-size:14px">'
        f"<h2>{e(_title(figures))}</h2><ul>{summary}</ul>{chart}"
        f'<h3>Per rep</h3><table style="border-collapse:collapse"><tr>{head_cells}</tr>{rows}</table>'
        f"<h3>Top customers who wrote</h3><ul>{top}</ul>"
        f"<h3>Lapsed customers worth a call</h3><ul>{lapsed}</ul>"
        "</body></html>"
    )


def render_chart(figures: DigestFigures) -> bytes:
    """A PNG: new conversations per hour (day) or per day (week) as bars, the median
    first-response time in hours as a line on a second axis."""
    # matplotlib takes a while to import: only processes that draw a chart pay for it
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    points = figures.series
    label_format = "%H" if figures.period == "day" else "%a %d"
    labels = [p.start.strftime(label_format) for p in points]
    positions = list(range(len(points)))
    figure = Figure(figsize=(8, 3.2), dpi=100)
    volume = figure.add_subplot()
    volume.bar(positions, [p.new_conversations for p in points], color="#4C78A8", label="new conversations")
    volume.set_ylabel("new conversations")
    volume.set_xticks(positions, labels, fontsize=8)
    volume.yaxis.set_major_locator(MaxNLocator(integer=True))
    hours = volume.twinx()
    hours.plot(positions, [math.nan if p.median_response_seconds is None else p.median_response_seconds / 3600
                           for p in points], color="#F58518", marker="o", label="median first response")
    hours.set_ylabel("median first response (h)")
    hours.set_ylim(bottom=0)
    volume.set_title(f"{figures.label} ({figures.timezone})", fontsize=10)
    figure.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


# --------------------------------------------------------------------------- scheduling


def digest_managers(session: Session) -> list[Rep]:
    """Active managers and admins who chose at least one way to get a digest."""
    reps = session.exec(select(Rep).where(Rep.active == True, Rep.role.in_([Role.manager, Role.admin])))  # type: ignore[attr-defined]  # noqa: E712
    return [rep for rep in reps if rep.digest_via]


def enqueue_due_digests(
    session: Session,
    *,
    now: datetime,
    options: DigestOptions,
    managers: Sequence[Rep] | None = None,
) -> int:
    """Enqueue the digests that are due at `now` (aware); returns how many were new.

    A manager's digest is due from their `digest_hour` (in `Rep.timezone`) until
    local midnight, on every day for `options.period == "day"` and on
    `options.weekday` for "week"; it covers the last complete local day (or
    Monday-to-Sunday week). `managers` defaults to `digest_managers(session)`.
    The outbox key `digest:{email}:{period}:{local date}` is unique, so calling
    this again, after a restart or from another process on the same database,
    enqueues nothing twice. The caller commits.
    """
    count = 0
    for manager in digest_managers(session) if managers is None else managers:
        if _enqueue_one(session, manager, now=now, options=options):
            count += 1
    return count


def _enqueue_one(session: Session, manager: Rep, *, now: datetime, options: DigestOptions) -> bool:
    try:
        local = now.astimezone(zone(manager.timezone or "UTC"))
    except ValueError as exc:
        log.warning("no digest for %s: %s", manager.email, exc)
        return False
    if local.hour < manager.digest_hour or not manager.digest_via:
        return False
    if options.period == "week" and WEEKDAYS[local.weekday()] != options.weekday:
        return False
    start, end = last_complete_period(options.period, now, manager.timezone or "UTC")
    payload = Digest(manager.email, options.period, start.isoformat(), end.isoformat(), local.date().isoformat(),
                     list(manager.digest_via), options.channel, options.params.as_dict())
    return enqueue(session, payload, now=now) is not None


# --------------------------------------------------------------------------- delivery


def deliver_digest(
    session: Session,
    job: Job,
    *,
    slack: SlackSender | None,
    smtp: SmtpOptions | None,
    now: datetime | None = None,
) -> None:
    """Compute the figures of a `Digest` row's period as of `now` and send them (`send_digest`).
    Raises on failure: the dispatcher retries, and Slack parts already posted are skipped."""
    payload = job.payload
    assert isinstance(payload, Digest)
    manager = rep_by_email(session, payload.manager_email)
    if manager is None:
        log.warning("digest %s: manager %s no longer exists; nothing sent", job.key, payload.manager_email)
        return
    figures = compute_digest(
        session, manager=manager, period=payload.period,  # type: ignore[arg-type]
        start=datetime.fromisoformat(payload.start), end=datetime.fromisoformat(payload.end),
        params=SegmentParams.from_mapping(payload.params), now=now,
    )
    send_digest(figures, manager=manager, key=job.key, via=payload.via or manager.digest_via,
                channel=payload.channel, slack=slack, smtp=smtp, session=session, since=job.created_at)


def send_digest(
    figures: DigestFigures,
    *,
    manager: Rep,
    key: str,
    via: Iterable[str],
    channel: str | None = None,
    slack: SlackSender | None = None,
    smtp: SmtpOptions | None = None,
    session: Session,
    since: datetime | None,
) -> None:
    """Figures to Slack (DM, plus `channel`) and/or by email, as `via` says (DigestDeliveryError
    when that channel is not set up); Slack parts posted under `key` since `since` are not repeated."""
    via = set(via)
    chart = render_chart(figures)
    if "slack" in via or channel:
        if slack is None:
            raise DigestDeliveryError("a digest goes to Slack but no Slack client is configured (SLACK_BOT_TOKEN)")
        targets = [slack.dm_channel(session, manager)] if "slack" in via else []
        targets += [channel] if channel else []
        for target in targets:
            stamps, already = slack.post(target, _clip(_title(figures), MAX_TEXT), render_digest_blocks(figures),
                                         key=key, since=since)
            if already < len(stamps):  # a retry whose messages all went out already uploaded its chart
                slack.upload(target, chart, filename="digest.png", title=f"Digest chart, {figures.label}")
    if "email" in via:
        if smtp is None:
            raise DigestDeliveryError("a digest goes by email but SMTP is not configured (RAPPORT_SMTP_HOST)")
        send_digest_email(smtp, figures, to=manager.email, chart=chart)


def send_digest_email(smtp: SmtpOptions, figures: DigestFigures, *, to: str, chart: bytes) -> None:
    cid = new_cid()
    message = build_message(
        from_addr=smtp.from_addr, to=to, subject=_title(figures), text=render_digest_text(figures),
        html=render_digest_html(figures, chart_cid=cid), image=chart, image_cid=cid,
    )
    send_message(smtp, message)

