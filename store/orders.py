"""Orders that count: the one definition of which orders brought money (card, segments, stages, win-back)."""

from __future__ import annotations

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Mapped

# orders that did not (or no longer) bring money; imports store statuses lower-cased
EXCLUDED_ORDER_STATUSES = ("cancelled", "canceled", "refunded", "returned")


def counts(status: str) -> bool:
    """Whether an order with this status counts (for value, order counts, stages and lapses)."""
    return status not in EXCLUDED_ORDER_STATUSES


def counted(status: ColumnElement[str] | Mapped[str]) -> ColumnElement[bool]:
    """SQL: the order whose status column is `status` counts (the rule of `counts`)."""
    return status.not_in(EXCLUDED_ORDER_STATUSES)
