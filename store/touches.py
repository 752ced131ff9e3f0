"""A contact's last touch: the one rule, used by the contact card and the quiet segments.

A contact's *last touch* is the latest of, up to now: a message from or to them
(inbound or outbound), an activity logged with them (a call, note, meeting, email
or Slack message; not a move: a rule changing a stage is no contact with the
person), an order of theirs (any status: a cancelled order was contact too; from
the start of its day, UTC). A contact with none of these counts from its creation
(an imported contact's is the one its CRM exported). docs/digest.md says the same.
The card's *Last touch* and the `stalled` and `partners` segments read it here, so
a contact the segment lists as quiet for weeks cannot have a card saying otherwise.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import BindParameter, bindparam, func
from sqlmodel import col, select

from store.models import Activity, ActivityKind, Message, Order

# "Now" comes as parameters (`touch_params`), so a statement built once (the card's) can carry it.
_NOW: BindParameter[datetime] = bindparam("touch_now")
_TODAY: BindParameter[date] = bindparam("touch_today")


def last_touch_columns(contact_id: Any, created_at: Any) -> list[Any]:
    """SQL columns for `last_touch_at`, in its parameters' order, for the contact whose id and
    creation are the columns `contact_id` and `created_at`; run with `touch_params(now)`."""
    last_message = select(func.max(Message.received_at)).where(
        col(Message.contact_id) == contact_id, col(Message.received_at) <= _NOW
    )
    last_activity = select(func.max(Activity.occurred_at)).where(
        col(Activity.contact_id) == contact_id, col(Activity.kind) != ActivityKind.move,
        col(Activity.occurred_at) <= _NOW,
    )
    last_order = select(func.max(Order.ordered_on)).where(
        col(Order.contact_id) == contact_id, col(Order.ordered_on) <= _TODAY
    )
    return [
        last_message.scalar_subquery().label("last_message"),
        last_activity.scalar_subquery().label("last_activity"),
        last_order.scalar_subquery().label("last_order"),
        created_at.label("created_at"),
    ]


def touch_params(now: datetime) -> dict[str, Any]:
    """The parameters `last_touch_columns` reads up to."""
    return {"touch_now": now, "touch_today": now.astimezone(UTC).date()}


def last_touch_at(
    last_message: datetime | str | None,
    last_activity: datetime | str | None,
    last_order: date | str | None,
    created_at: datetime,
) -> datetime:
    """A contact's last touch, aware UTC, from the values of `last_touch_columns`."""
    touches = [_aware(t) for t in (last_message, last_activity, last_order) if t is not None]
    return max(touches, default=_aware(created_at))


def _aware(value: datetime | date | str) -> datetime:
    # scalar subqueries of max() lose the column type on some dialects: re-attach UTC
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        value = datetime.combine(value, time())
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
