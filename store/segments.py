"""Customer segments: one query per definition, computed from the store.

Every definition is written once here and used by the digest, Slack
(`/crm segment ...`), `rapport segment ...` and `rapport export segment NAME`.
The precise definitions (and the currency table) are in docs/digest.md.

The unit of a segment is the *contact*: an order counts for its contact
(orders without a contact count for nobody). A contact's owner is its effective
owner (store/owners.py: the contact's owner, else its company's owner).
"""

from __future__ import annotations

import calendar
import itertools
import math
import statistics
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import Select, Table, Text, and_, case, cast, func, literal, literal_column, or_, select, text
from sqlmodel import Session

from store.hours import UnknownZone, zone
from store.models import (
    Company,
    Contact,
    ContactKind,
    FollowUp,
    Order,
    Rep,
    Stage,
)
from store.orders import counted
from store.owners import effective_owner_id, owned_by
from store.touches import last_touch_at, last_touch_columns, touch_params


def table(model: type[Any]) -> Table:
    """The Core table of a SQLModel class: typed columns for hand-built queries."""
    return model.__table__


_order = table(Order).c
_contact = table(Contact).c
_company = table(Company).c
_followup = table(FollowUp).c
_rep = table(Rep).c
_contact_owner_table = table(Rep).alias("contact_owner")
_company_owner_table = table(Rep).alias("company_owner")
_contact_owner = _contact_owner_table.c
_company_owner = _company_owner_table.c

# Fixed rates to EUR used to rank customers whose orders are in several
# currencies. They are for ranking only, not accounting; docs/digest.md lists
# them. Orders in a currency missing here are left out of values and counted
# in `unconverted_orders` so nobody is silently mis-ranked.
EUR_RATES: dict[str, Decimal] = {
    "EUR": Decimal("1"),
    "USD": Decimal("0.92"),
    "GBP": Decimal("1.17"),
    "CHF": Decimal("1.05"),
    "SEK": Decimal("0.087"),
    "NOK": Decimal("0.085"),
    "DKK": Decimal("0.134"),
    "PLN": Decimal("0.23"),
    "CZK": Decimal("0.040"),
    "HUF": Decimal("0.0025"),
    "CAD": Decimal("0.67"),
    "AUD": Decimal("0.60"),
    "JPY": Decimal("0.0061"),
}
SEGMENT_NAMES = ("top", "lapsed", "stalled", "partners")
FOLLOWUP_LOCAL_HOUR = 9  # post-purchase follow-ups fall due at 09:00 in the rep's time zone
OWNER_CHUNK = 2000  # contacts per owner look-up (an IN list)
POST_PURCHASE_LOCK = 0x5261_7070  # PostgreSQL advisory lock id: one creator at a time


class UnknownSegment(ValueError):
    """A segment name that does not exist; the message lists the valid ones."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown segment {name!r}; choose one of: {', '.join(SEGMENT_NAMES)}")


@dataclass(frozen=True)
class SegmentParams:
    """The tuning of every segment (rapport.toml [segments]; defaults are the documented ones)."""

    top_n: int = 10
    top_months: int = 12
    lapsed_gap_factor: float = 2.0
    lapsed_min_days: int = 60
    lapsed_min_orders: int = 3
    post_purchase_days: int = 14
    post_purchase_kinds: tuple[str, ...] = (ContactKind.customer.value,)
    stalled_days: int = 21
    partner_quiet_days: int = 45

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> SegmentParams:
        """Build from a config section or a JSON payload; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        picked = {k: v for k, v in values.items() if k in known}
        if "post_purchase_kinds" in picked:
            picked["post_purchase_kinds"] = tuple(str(k) for k in picked["post_purchase_kinds"])
        return cls(**picked)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["post_purchase_kinds"] = list(self.post_purchase_kinds)
        return data


@dataclass(frozen=True)
class Owner:
    id: int | None
    name: str | None
    email: str | None
    slack_user_id: str | None


@dataclass(frozen=True)
class TopCustomer:
    contact_id: int
    name: str
    owner: Owner
    recent_value_eur: Decimal  # over the last `top_months` months, as `orders`
    orders: int
    rank: int  # 1 = highest value
    top_decile: bool


@dataclass(frozen=True)
class LapsedCustomer:
    contact_id: int
    name: str
    owner: Owner
    lifetime_value_eur: Decimal
    orders: int
    purchase_days: int  # distinct days with an order
    last_order_on: date
    median_gap_days: float
    threshold_days: float  # max(factor × median gap, min days)
    days_since: int


@dataclass(frozen=True)
class QuietContact:
    """A stalled prospect or a quiet partner: nothing happened with them for too long."""

    contact_id: int
    name: str
    kind: str
    stage: str
    owner: Owner
    last_touch_at: datetime  # store/touches.py
    days_quiet: int


@dataclass(frozen=True)
class TopSegment:
    customers: list[TopCustomer]  # ranks 1..max(top_n, decile size)
    ranked_contacts: int  # contacts with a positive value in the window
    decile_size: int
    unconverted_orders: int  # orders in the window in a currency missing from EUR_RATES


# --------------------------------------------------------------------------- shared pieces


def eur_value() -> Any:
    """SQL: an order's amount in EUR (NULL for a currency missing from EUR_RATES)."""
    # the simple CASE form upper-cases the currency once per row, not once per rate
    rates = {code: _order.amount * literal(rate) for code, rate in EUR_RATES.items()}
    return case(rates, value=func.upper(_order.currency), else_=None)


def _counted_order() -> Any:
    return and_(_order.contact_id.is_not(None), counted(_order.status))


def months_before(day: date, months: int) -> date:
    """The same day `months` calendar months earlier (clamped to that month's last day)."""
    year, month0 = divmod(day.year * 12 + day.month - 1 - months, 12)
    last_day = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(day.day, last_day))


def _with_owner(query: Select[Any]) -> Select[Any]:
    """Add the contact's effective owner columns (contact owner, else company owner)."""
    return (
        query.outerjoin(table(Company), _company.id == _contact.company_id)
        .outerjoin(_contact_owner_table, _contact_owner.id == _contact.owner_id)
        .outerjoin(_company_owner_table, _company_owner.id == _company.owner_id)
        .add_columns(
            effective_owner_id(_contact_owner.id, _company_owner.id).label("owner_id"),
            func.coalesce(_contact_owner.name, _company_owner.name).label("owner_name"),
            func.coalesce(_contact_owner.email, _company_owner.email).label("owner_email"),
            func.coalesce(_contact_owner.slack_user_id, _company_owner.slack_user_id).label("owner_slack"),
        )
    )


def _owner(row: Any) -> Owner:
    return Owner(row.owner_id, row.owner_name, row.owner_email, row.owner_slack)


def _owned_by(owner_ids: Collection[int] | None) -> Any:
    """SQL filter on the effective owner; None means everyone (no filter)."""
    return owned_by(effective_owner_id(_contact.owner_id, _company.owner_id), owner_ids)


def _money(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal("0.01"))


# --------------------------------------------------------------------------- top customers


class ContactOrders(NamedTuple):
    """One contact's counted orders (see `top_customers`) up to a day, from one pass
    (a tuple: tens of thousands are built per digest)."""

    contact_id: int
    value: float  # all-time, in EUR
    orders: int  # all-time
    last_order_on: date
    days: str  # the order days, ISO, comma-separated, unsorted, duplicates kept
    window_value: float  # in the top-customer window, in EUR
    window_orders: int
    window_unconverted: int  # window orders in a currency missing from EUR_RATES


def order_totals(session: Session, *, now: datetime, params: SegmentParams) -> list[ContactOrders]:
    """Per contact with counted orders up to the UTC date of `now`: what both `top_customers`
    and `lapsed_customers` need, in one pass over the orders (the digest uses both)."""
    today = now.astimezone(UTC).date()
    contact_id, ordered_on = _scanned(session, "contact_id"), _scanned(session, "ordered_on")
    # the subquery converts each order once; the aggregates reuse it
    rows = (
        select(
            contact_id.label("contact_id"),
            _order.ordered_on.label("day"),
            eur_value().label("eur"),
            (_order.ordered_on > months_before(today, params.top_months)).label("recent"),
        )
        .where(contact_id.is_not(None), counted(_order.status), ordered_on <= today)
        .subquery()
    )
    query = select(
        rows.c.contact_id,
        func.sum(rows.c.eur),
        func.count(),
        func.max(rows.c.day),
        _order_days(session, rows.c.day),
        func.sum(case((rows.c.recent, rows.c.eur), else_=None)),
        func.sum(case((rows.c.recent, 1), else_=0)),
        func.sum(case((and_(rows.c.recent, rows.c.eur.is_(None)), 1), else_=0)),
    ).group_by(rows.c.contact_id)
    return [
        ContactOrders(contact_id, float(value or 0), int(orders), last, str(days), float(window_value or 0),
                      int(window_orders or 0), int(unconverted or 0))
        for contact_id, value, orders, last, days, window_value, window_orders, unconverted
        in session.execute(query)
    ]


def _scanned(session: Session, name: str) -> Any:
    """An order column that SQLite must not use an index for (`+column`).

    Left to itself SQLite reads every order through the contact_id (or
    ordered_on) index, one random table look-up per row: twice as slow as one
    scan and a sort. PostgreSQL plans this well on its own.
    """
    column = _order[name]
    if session.get_bind().dialect.name != "sqlite":
        return column
    return literal_column(f'+"order".{name}', type_=column.type)


def top_customers(
    session: Session,
    *,
    now: datetime,
    params: SegmentParams,
    contact_ids: Collection[int] | None = None,
    totals: Sequence[ContactOrders] | None = None,
) -> TopSegment:
    """Top customers: contacts ranked by order value in EUR over the last `top_months` months.

    The window is the `top_months` calendar months up to and including the UTC
    date of `now` (an order on the same day `top_months` months earlier is
    outside). Counted orders have a contact and a status that counts
    (store/orders.py); amounts convert to EUR with EUR_RATES. Contacts
    with a positive value are ranked by value (ties: lower contact id first).
    The segment is the first max(top_n, ceil(ranked / 10)) of them; each row
    says whether it is in the top decile (rank <= ceil(ranked / 10)).
    `contact_ids` keeps only those contacts' rows (ranks stay company-wide);
    `totals` reuses an `order_totals` pass made with the same `now` and params.
    """
    totals = order_totals(session, now=now, params=params) if totals is None else totals
    ranked = sorted((t for t in totals if t.window_value > 0), key=lambda t: (-t.window_value, t.contact_id))
    decile = math.ceil(len(ranked) / 10)
    ranks = {
        t.contact_id: (rank, t)
        for rank, t in enumerate(ranked[: max(params.top_n, decile)], start=1)
        if contact_ids is None or t.contact_id in contact_ids
    }
    customers = [
        TopCustomer(row.id, row.name, _owner(row), _money(ranks[row.id][1].window_value),
                    ranks[row.id][1].window_orders, ranks[row.id][0], ranks[row.id][0] <= decile)
        for row in _contacts_with_owner(session, list(ranks))
    ]
    customers.sort(key=lambda c: c.rank)
    return TopSegment(customers, len(ranked), decile, sum(t.window_unconverted for t in totals))


def _contacts_with_owner(session: Session, contact_ids: list[int]) -> list[Any]:
    rows: list[Any] = []
    for start in range(0, len(contact_ids), OWNER_CHUNK):  # below every driver's parameter limit
        chunk = contact_ids[start: start + OWNER_CHUNK]
        query = _with_owner(select(_contact.id, _contact.name)).where(_contact.id.in_(chunk))
        rows.extend(session.execute(query))
    return rows


# --------------------------------------------------------------------------- lapsed customers


def lapsed_customers(
    session: Session,
    *,
    now: datetime,
    params: SegmentParams,
    owner_ids: Collection[int] | None = None,
    limit: int | None = None,
    totals: Sequence[ContactOrders] | None = None,
) -> list[LapsedCustomer]:
    """Lapsed customers to win back: bought repeatedly, then stopped.

    A contact's purchase days are the distinct days with a counted order (see
    `top_customers`) up to the UTC date of `now`. A contact is lapsed when it has
    at least `lapsed_min_orders` purchase days and the days since the last one
    exceed max(lapsed_gap_factor × median gap between consecutive purchase days,
    lapsed_min_days). Ranked by all-time value in EUR (ties: lower contact id).
    `owner_ids` keeps contacts whose effective owner is one of them; `totals`
    reuses an `order_totals` pass made with the same `now` and params.
    """
    today = now.astimezone(UTC).date()
    latest_possible = today - timedelta(days=params.lapsed_min_days)
    totals = order_totals(session, now=now, params=params) if totals is None else totals
    # the threshold is at least lapsed_min_days: only contacts silent that long can qualify
    candidates = sorted(
        (t for t in totals if t.orders >= params.lapsed_min_orders and t.last_order_on < latest_possible),
        key=lambda t: (-t.value, t.contact_id),
    )
    lapsed: list[LapsedCustomer] = []
    # best first, a chunk at a time, until `limit` lapsed customers of the team are found
    for start in range(0, len(candidates), OWNER_CHUNK):
        found = [(t, history) for t in candidates[start: start + OWNER_CHUNK]
                 if (history := _lapsed_history(t, today, params)) is not None]
        owners = {row.id: row for row in _contacts_with_owner(session, [t.contact_id for t, _ in found])}
        for t, history in found:
            row = owners[t.contact_id]
            if owner_ids is None or row.owner_id in owner_ids:
                median_gap = _median_gap(history)
                lapsed.append(LapsedCustomer(
                    t.contact_id, row.name, _owner(row), _money(t.value), t.orders, len(history), history[-1],
                    median_gap, _lapse_threshold(median_gap, params), (today - history[-1]).days,
                ))
        if limit is not None and len(lapsed) >= limit:
            return lapsed[:limit]
    return lapsed


def _lapsed_history(t: ContactOrders, today: date, params: SegmentParams) -> list[date] | None:
    """The contact's sorted purchase days if it is lapsed, else None."""
    history = sorted({date.fromisoformat(day) for day in t.days.split(",")})
    if len(history) < params.lapsed_min_orders:
        return None
    threshold = _lapse_threshold(_median_gap(history), params)
    return history if (today - history[-1]).days > threshold else None


def _median_gap(history: list[date]) -> float:
    return float(statistics.median((later - earlier).days for earlier, later in itertools.pairwise(history)))


def _lapse_threshold(median_gap: float, params: SegmentParams) -> float:
    return max(params.lapsed_gap_factor * median_gap, float(params.lapsed_min_days))


def _order_days(session: Session, day: Any) -> Any:
    """SQL: a contact's order days as one comma-separated ISO string (duplicates kept:
    DISTINCT would sort every group)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.string_agg(cast(day, Text), literal_column("','"))
    return func.group_concat(day)


# --------------------------------------------------------------------------- quiet contacts


def stalled_prospects(
    session: Session, *, now: datetime, params: SegmentParams, owner_ids: Collection[int] | None = None
) -> list[QuietContact]:
    """Stalled prospects: contacts of kind prospect in the `evaluation` stage whose last
    touch is more than `stalled_days` days before `now`. Longest silence first."""
    where = and_(_contact.kind == ContactKind.prospect, _contact.stage == Stage.evaluation)
    return _quiet_contacts(session, where, now=now, days=params.stalled_days, owner_ids=owner_ids)


def quiet_partners(
    session: Session, *, now: datetime, params: SegmentParams, owner_ids: Collection[int] | None = None
) -> list[QuietContact]:
    """Partners without contact: contacts of kind partner (or of a company of kind partner)
    whose last touch is more than `partner_quiet_days` days before `now`. Longest silence first."""
    where = or_(_contact.kind == ContactKind.partner, _company.kind == ContactKind.partner)
    return _quiet_contacts(session, where, now=now, days=params.partner_quiet_days, owner_ids=owner_ids)


def _quiet_contacts(
    session: Session, where: Any, *, now: datetime, days: int, owner_ids: Collection[int] | None
) -> list[QuietContact]:
    query = _with_owner(
        select(_contact.id, _contact.name, _contact.kind, _contact.stage,
               *last_touch_columns(_contact.id, _contact.created_at))
    ).where(where, _owned_by(owner_ids))
    cutoff = now - timedelta(days=days)
    quiet = []
    for row in session.execute(query, touch_params(now)):
        last_touch = last_touch_at(row.last_message, row.last_activity, row.last_order, row.created_at)
        if last_touch < cutoff:
            quiet.append(
                QuietContact(
                    row.id, row.name, row.kind, row.stage, _owner(row), last_touch, (now - last_touch).days
                )
            )
    quiet.sort(key=lambda c: (c.last_touch_at, c.contact_id))
    return quiet


# --------------------------------------------------------------------------- post-purchase follow-ups


def create_post_purchase_followups(
    session: Session,
    *,
    now: datetime,
    days: int,
    kinds: Sequence[str],
    max_late_days: int = 7,
) -> int:
    """Create the post-purchase follow-ups that have fallen due; returns how many were created.

    For each counted order (see `top_customers`) whose contact is of one of
    `kinds` and has `post_purchase_followup` on, a FollowUp (source
    "post_purchase", order_id set) is created once per order for the contact's
    owner, else the company's owner (orders whose contact has neither are
    skipped). It falls due `days` days after `ordered_on` at 09:00 in the
    rep's time zone, and is created once that date is reached (UTC date of
    `now`). Orders whose follow-up date is more than `max_late_days` days past
    are skipped, so importing a backlog of old orders does not flood reps.

    Safe to run repeatedly and from several processes: an order that already
    has a follow-up (in any status) gets none; on PostgreSQL an advisory lock
    serialises concurrent runs. The caller commits.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": POST_PURCHASE_LOCK})
    today = now.astimezone(UTC).date()
    rep_id = effective_owner_id(_contact.owner_id, _company.owner_id)
    has_followup = select(_followup.id).where(_followup.order_id == _order.id).exists()
    query = (
        select(_order.id, _order.ordered_on, _order.contact_id, _rep.id.label("rep_id"), _rep.timezone)
        .join(table(Contact), _contact.id == _order.contact_id)
        .outerjoin(table(Company), _company.id == _contact.company_id)
        .join(table(Rep), _rep.id == rep_id)
        .where(
            _counted_order(),
            _order.ordered_on <= today - timedelta(days=days),
            _order.ordered_on >= today - timedelta(days=days + max_late_days),
            _contact.kind.in_(list(kinds)),
            _contact.post_purchase_followup.is_(True),
            ~has_followup,
        )
    )
    created = 0
    for row in session.execute(query).all():
        due_day = row.ordered_on + timedelta(days=days)
        session.add(
            FollowUp(
                contact_id=row.contact_id,
                rep_id=row.rep_id,
                order_id=row.id,
                source="post_purchase",
                due_at=followup_due_at(due_day, row.timezone),
                created_at=now,
                note=f"Post-purchase: is the customer happy with the order of {row.ordered_on.isoformat()}?",
            )
        )
        created += 1
    session.flush()
    return created


def followup_due_at(day: date, name: str) -> datetime:
    """09:00 on `day` in the rep's time zone `name` (an unknown zone: 09:00 UTC), in UTC."""
    try:
        tz = zone(name)
    except UnknownZone:
        tz = zone("UTC")  # a rep with a broken zone still gets the follow-up, at 09:00 UTC
    return datetime.combine(day, time(FOLLOWUP_LOCAL_HOUR), tzinfo=tz).astimezone(UTC)


# --------------------------------------------------------------------------- export


def export_segment(
    session: Session, name: str, *, now: datetime, params: SegmentParams
) -> Iterator[dict[str, Any]]:
    """Rows of the segment `name` (top, lapsed, stalled, partners) as flat dicts for
    JSON lines or CSV: the owner is flattened to owner_name/owner_email."""
    for row in segment_rows(session, name, now=now, params=params):
        yield _flat(row)


def segment_rows(
    session: Session,
    name: str,
    *,
    now: datetime,
    params: SegmentParams,
    owner_ids: Collection[int] | None = None,
) -> list[TopCustomer] | list[LapsedCustomer] | list[QuietContact]:
    """The whole segment `name` as typed rows, best first; raises UnknownSegment."""
    if name == "top":
        customers = top_customers(session, now=now, params=params).customers
        if owner_ids is not None:
            customers = [c for c in customers if c.owner.id in owner_ids]
        return customers
    if name == "lapsed":
        return lapsed_customers(session, now=now, params=params, owner_ids=owner_ids)
    if name == "stalled":
        return stalled_prospects(session, now=now, params=params, owner_ids=owner_ids)
    if name == "partners":
        return quiet_partners(session, now=now, params=params, owner_ids=owner_ids)
    raise UnknownSegment(name)


def _flat(row: TopCustomer | LapsedCustomer | QuietContact) -> dict[str, Any]:
    data = asdict(row)
    owner = data.pop("owner")
    data["owner_name"] = owner["name"]
    data["owner_email"] = owner["email"]
    for key, value in data.items():
        if isinstance(value, Decimal):
            data[key] = str(value)
        elif isinstance(value, date | datetime):
            data[key] = value.isoformat()
    return data


__all__ = [
    "EUR_RATES",
    "SEGMENT_NAMES",
    "ContactOrders",
    "LapsedCustomer",
    "Owner",
    "QuietContact",
    "SegmentParams",
    "TopCustomer",
    "TopSegment",
    "UnknownSegment",
    "create_post_purchase_followups",
    "eur_value",
    "export_segment",
    "followup_due_at",
    "lapsed_customers",
    "months_before",
    "order_totals",
    "quiet_partners",
    "segment_rows",
    "stalled_prospects",
    "top_customers",
]
