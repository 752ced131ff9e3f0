"""Win-back: lapsed customers (store/segments.py) get a follow-up for their owner, once per lapse;
those without an owner get one; customers who order again afterwards count as won back.

A *lapse* is a contact and the date of its last order before it lapsed
(`FollowUp.lapsed_since`): the database keeps one win-back follow-up per lapse
(`uq_followup_lapse`), so clicking twice, or two managers at once, create one.
When the customer orders again and lapses later, that is a new lapse.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from store.activities import log_activity
from store.assignments import least_loaded, open_load
from store.hours import UnknownZone, zone
from store.models import Company, Contact, FollowUp, Order, Rep, Role
from store.orders import counted
from store.owners import effective_owner_id
from store.segments import (
    FOLLOWUP_LOCAL_HOUR,
    LapsedCustomer,
    followup_due_at,
)

WINBACK = "winback"  # FollowUp.source of a win-back follow-up
SALES_SKILL = "sales"  # "a sales rep": role rep with this skill


@dataclass(frozen=True)
class LapsedGroups:
    """The lapsed customers a rep sees, in the order `/crm segment lapsed` shows them."""

    mine: list[LapsedCustomer]
    team: list[LapsedCustomer]  # the rep's team's, not the rep's own
    others: list[LapsedCustomer]  # other teams' (managers only)
    unowned: list[LapsedCustomer]  # no owner at all (managers only)

    @property
    def shown(self) -> list[LapsedCustomer]:
        return [*self.mine, *self.team, *self.others, *self.unowned]


def former_rep_ids(session: Session) -> set[int]:
    """Reps who left (inactive): what they own has nobody to look after it."""
    return {i for i in session.exec(select(Rep.id).where(Rep.active == False)).all() if i is not None}  # noqa: E712


def without_owner(customer: LapsedCustomer, former: Collection[int]) -> bool:
    """No effective owner (store/owners.py), or one who left."""
    return customer.owner.id is None or customer.owner.id in former


def contacts_without_owner(session: Session) -> set[int]:
    """Contacts with no effective owner (store/owners.py), or one who left."""
    owner = effective_owner_id(col(Contact.owner_id), col(Company.owner_id))
    query = (
        select(col(Contact.id))
        .outerjoin(Company, col(Company.id) == col(Contact.company_id))
        .outerjoin(Rep, col(Rep.id) == owner)
        .where(or_(owner.is_(None), col(Rep.active).is_(False)))
    )
    return {i for i in session.exec(query).all() if i is not None}


def group_lapsed(
    customers: Sequence[LapsedCustomer], *, rep_id: int, team_ids: Collection[int], manager: bool,
    former: Collection[int] = (),
) -> LapsedGroups:
    """Mine first, then my team's; managers also see other teams' and those without an owner
    (`former`: ids of reps who left, whose customers count as without an owner)."""
    owned = [c for c in customers if not without_owner(c, former)]
    mine = [c for c in owned if c.owner.id == rep_id]
    team = [c for c in owned if c.owner.id != rep_id and c.owner.id in team_ids]
    others = [c for c in owned if manager and c.owner.id not in team_ids and c.owner.id != rep_id]
    unowned = [c for c in customers if manager and without_owner(c, former)]
    return LapsedGroups(mine, team, others, unowned)


# --------------------------------------------------------------------------- follow-ups


@dataclass(frozen=True)
class WinbackFollowups:
    created: int
    already: int  # lapses that had their win-back follow-up already
    without_owner: int  # skipped: nobody to give it to


def create_winback_followups(
    session: Session, customers: Sequence[LapsedCustomer], *, now: datetime
) -> WinbackFollowups:
    """One open follow-up per lapsed customer for its owner (source `winback`, due at the owner's
    next 09:00), never two for the same lapse. Customers without an owner (or whose owner left)
    are skipped. The caller commits."""
    created = already = unowned = 0
    former = former_rep_ids(session)
    for customer in customers:
        if customer.owner.id is None or without_owner(customer, former):
            unowned += 1
            continue
        exists = session.exec(select(FollowUp.id).where(
            FollowUp.contact_id == customer.contact_id, FollowUp.lapsed_since == customer.last_order_on)).first()
        if exists is not None:
            already += 1
            continue
        owner = session.get(Rep, customer.owner.id)
        try:
            with session.begin_nested():  # another click at the same moment: the unique index decides
                session.add(FollowUp(
                    contact_id=customer.contact_id, rep_id=customer.owner.id, source=WINBACK,
                    lapsed_since=customer.last_order_on, created_at=now,
                    due_at=_next_nine(now, owner.timezone if owner else "UTC"),
                    note=(f"Win back: no order since {customer.last_order_on.isoformat()} "
                          f"({customer.days_since} days; usually every {customer.median_gap_days:g})."),
                ))
            created += 1
        except IntegrityError:
            already += 1
    return WinbackFollowups(created, already, unowned)


def _next_nine(now: datetime, tz_name: str) -> datetime:
    """The next 09:00 in the rep's time zone (today's when it is still before 09:00)."""
    try:
        local = now.astimezone(zone(tz_name))
    except UnknownZone:
        local = now
    day = local.date() if local.hour < FOLLOWUP_LOCAL_HOUR else local.date() + timedelta(days=1)
    return followup_due_at(day, tz_name)


# --------------------------------------------------------------------------- owners


@dataclass(frozen=True)
class OwnerChoice:
    contact_id: int
    name: str
    rep_id: int | None  # None: nobody could take it (reason says why)
    reason: str


def assign_lapsed_owners(
    session: Session, customers: Sequence[LapsedCustomer], *, by: Rep, now: datetime,
    owner_ids: Collection[int] | None = None,
) -> list[OwnerChoice]:
    """Give each lapsed customer without an owner (none, or one who left) one: its company's owner
    when the contact's own owner left (the account owner), else
    the least busy sales rep (role rep, skill `sales`, active, not away) who speaks the contact's
    language, else the least busy sales rep. Busy = open conversations (`store.assignments.open_load`,
    the load inbox assignment uses) plus accounts given in this run. Reps of `by`'s team come first.
    Only reps among `owner_ids` (None: any) are chosen, the account owner too.
    Each choice is stored as the contact's owner and noted as an activity. The caller commits."""
    load = open_load(session)
    given: dict[int, int] = {}  # lapsed accounts given in this run (also counted in `load`)
    sales = [rep for rep in session.exec(select(Rep).where(Rep.active == True, Rep.role == Role.rep)  # noqa: E712
                                         .order_by(col(Rep.id))).all()
             if SALES_SKILL in (rep.skills or []) and not (rep.away_until and rep.away_until > now)
             and (owner_ids is None or rep.id in owner_ids)]
    in_team = [rep for rep in sales if by.team and rep.team == by.team]
    former = former_rep_ids(session)
    choices: list[OwnerChoice] = []
    for customer in customers:
        contact = session.get(Contact, customer.contact_id)
        if contact is None or not without_owner(customer, former):
            continue
        rep, reason = _account_owner(session, contact)
        if rep is not None and owner_ids is not None and rep.id not in owner_ids:
            reason = f"{rep.name} owns the company, in another team"
            rep = None
        if rep is None:
            rep, reason = _least_busy(in_team or sales, load, contact.language, given)
        if rep is None or rep.id is None:
            choices.append(OwnerChoice(customer.contact_id, customer.name, None, reason))
            continue
        contact.owner_id, contact.updated_at = rep.id, now
        session.add(contact)
        load[rep.id] = load.get(rep.id, 0) + 1
        given[rep.id] = given.get(rep.id, 0) + 1
        log_activity(session, contact_id=contact.id, rep_id=by.id, occurred_at=now,
                     summary=f"Owner set to {rep.name} (win-back): {reason}")
        choices.append(OwnerChoice(customer.contact_id, customer.name, rep.id, reason))
    session.flush()
    return choices


def _account_owner(session: Session, contact: Contact) -> tuple[Rep | None, str]:
    company = session.get(Company, contact.company_id) if contact.company_id else None
    rep = session.get(Rep, company.owner_id) if company is not None and company.owner_id else None
    if company is None or rep is None or not rep.active:
        return None, "no account owner"
    return rep, f"{rep.name} owns the company {company.name}"


def _least_busy(
    reps: Sequence[Rep], load: dict[int, int], language: str | None, given: dict[int, int]
) -> tuple[Rep | None, str]:
    speakers = [rep for rep in reps if language and language in (rep.languages or [])]
    for group, note in ((speakers, f" who speaks {language}"), (reps, "")):
        if group:
            rep = least_loaded(group, load)
            earlier = given.get(rep.id or -1, 0)
            busy = load.get(rep.id or -1, 0) - earlier
            return rep, (f"least busy sales rep{note} ({busy} open conversations"
                         + (f", {earlier} more lapsed accounts given now)" if earlier else ")"))
    return None, "no active sales rep (role rep with the skill sales) to take it"


# --------------------------------------------------------------------------- won back


@dataclass(frozen=True)
class WonBack:
    contact_id: int
    name: str
    rep_id: int  # whose win-back follow-up it was
    ordered_on: date  # the first order after the follow-up


def won_back(
    session: Session, *, first_day: date, after_day: date, rep_ids: Collection[int] | None = None
) -> list[WonBack]:
    """Customers won back in [first_day, after_day): a win-back follow-up (of one of `rep_ids`;
    None: anyone's) whose contact placed a counted order after the lapse, on or after the day the
    follow-up was created, the first such order falling in the period. Once per lapse."""
    query = select(FollowUp, Contact.name).join(Contact, col(Contact.id) == col(FollowUp.contact_id)).where(
        FollowUp.source == WINBACK, col(FollowUp.lapsed_since).is_not(None))
    if rep_ids is not None:
        query = query.where(col(FollowUp.rep_id).in_(sorted(rep_ids)))
    found: list[WonBack] = []
    for followup, name in session.exec(query).all():
        assert followup.lapsed_since is not None and followup.contact_id is not None
        since = max(followup.lapsed_since + timedelta(days=1), followup.created_at.date())
        first: date | None = session.execute(
            select(col(Order.ordered_on))
            .where(Order.contact_id == followup.contact_id, col(Order.ordered_on) >= since,
                   counted(col(Order.status)))
            .order_by(col(Order.ordered_on)).limit(1)
        ).scalar()
        if first is not None and first_day <= first < after_day:
            found.append(WonBack(followup.contact_id, name, followup.rep_id, first))
    found.sort(key=lambda w: (w.ordered_on, w.contact_id))
    return found


__all__ = [
    "WINBACK",
    "LapsedGroups",
    "OwnerChoice",
    "WinbackFollowups",
    "WonBack",
    "assign_lapsed_owners",
    "contacts_without_owner",
    "create_winback_followups",
    "former_rep_ids",
    "group_lapsed",
    "without_owner",
    "won_back",
]
