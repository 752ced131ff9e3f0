"""`/crm segment top|lapsed|stalled|partners`: a segment as Slack blocks, with owners.

The definitions live in store/segments.py; this module only renders them.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlmodel import Session

from bot.blocks import MAX_BLOCKS
from bot.text import escape, plural
from store.segments import (
    SEGMENT_NAMES,
    LapsedCustomer,
    Owner,
    QuietContact,
    SegmentParams,
    TopCustomer,
    UnknownSegment,
    segment_rows,
)
from store.types import utcnow

TITLES = {
    "top": "Top customers (order value, last {top_period})",
    "lapsed": "Lapsed customers to win back",
    "stalled": "Stalled prospects (evaluation, quiet for {stalled_days}+ days)",
    "partners": "Partners without contact for {partner_quiet_days}+ days",
}
MAX_ROWS = MAX_BLOCKS - 3  # header, summary and the "more" note


def format_eur(value: Decimal, *, cents: bool = True) -> str:
    return f"€{value:,.2f}" if cents else f"€{value:,.0f}"


def top_period(months: int) -> str:
    """The top customers' window as people say it: `12 months`, `1 month` (rapport.toml top_months)."""
    return plural(months, "month")


def describe(template: str, params: SegmentParams) -> str:
    """`template` with the segment settings filled in: `{stalled_days}`, `{top_period}`..."""
    return template.format(**params.as_dict(), top_period=top_period(params.top_months))


def owner_mention(owner: Owner) -> str:
    """A Slack mention of the owner when they have a Slack id, else their escaped name."""
    return f"<@{owner.slack_user_id}>" if owner.slack_user_id else escape(owner.name or owner.email or "no owner")


def segment_blocks(
    session: Session, name: str, params: SegmentParams, *, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Blocks listing segment `name` (best first, with each row's owner mentioned) for one
    message; an unknown name gives a block that says which names exist (never raises)."""
    now = now or utcnow()
    name = name.strip().lower()
    try:
        rows = segment_rows(session, name, now=now, params=params)
    except UnknownSegment as exc:
        return [_section(f":warning: {escape(str(exc))}. Try `segment {SEGMENT_NAMES[0]}`.")]
    title = describe(TITLES[name], params)
    shown = rows[:MAX_ROWS]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"{len(rows)} in the segment"
                                          + (f", the first {len(shown)} shown" if len(rows) > len(shown) else "")
                                          + " · `rapport export segment " + name + "` for all"}]},
    ]
    blocks += [_section(segment_line(row)) for row in shown]
    if not rows:
        blocks.append(_section("Nobody right now."))
    return blocks


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def segment_line(row: TopCustomer | LapsedCustomer | QuietContact) -> str:
    """One row of a segment in mrkdwn, with its owner mentioned."""
    name = f"*{escape(row.name)}*"
    if isinstance(row, TopCustomer):
        decile = " · top 10%" if row.top_decile else ""
        return f"{row.rank}. {name}: {format_eur(row.recent_value_eur)} in {plural(row.orders, 'order')}{decile} · {owner_mention(row.owner)}"
    if isinstance(row, LapsedCustomer):
        return (f"{name}: last order {row.last_order_on.isoformat()} ({row.days_since} days; usually every "
                f"{row.median_gap_days:g}) · {format_eur(row.lifetime_value_eur)} lifetime · {owner_mention(row.owner)}")
    return f"{name} ({row.kind}, {row.stage}): quiet for {row.days_quiet} days · {owner_mention(row.owner)}"


__all__ = ["segment_blocks", "segment_line"]
