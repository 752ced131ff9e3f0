"""The relationship moves: a contact's kind and buying stage, and the rules that change them.

Every change is one `Activity` of kind `move` carrying the kind and stage before and
after, who made it (`rep_id`; None: Rapport, by a rule), when, and why (`summary`),
and an audit entry per field (`contact.kind`, `contact.stage`: `move_audits`) naming
the actor and where they acted from.
People move contacts from Slack (`/crm stage`, `/crm kind`, the card's menus); the
rules, each defined once here, move them too:

- an order: a prospect becomes a customer, and a contact before `purchase`
  (need, information search, evaluation) moves to `purchase` (`order_move`,
  applied where orders are created: the order import);
- `post_purchase_days` after its latest order, a contact at `purchase` moves to
  `post_purchase` (`advance_to_post_purchase`, run by the scheduler); when a rep's
  move is what put the contact at `purchase`, only orders placed on or after its
  day count, so the rep is not overruled by an order from before; a rule's later
  move (an order, an import) puts every order back in;
- a prospect at `need` who writes a sales enquiry (category `sales`) moves to
  `information_search` (`sales_enquiry_stage`, applied by the inbox pipeline in
  the batch's transaction);
- a contacts import moves a contact only forward: to a later stage, and to
  customer or partner, never back to prospect (`import_move`): what Rapport
  recorded since (an order, a rep's move) stands when the same file comes again,
  and each value the import holds back is a warning on its row.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, case, func, or_, select
from sqlmodel import Session, col

from store.activities import ACTIVITY_LINE, ActivityLine
from store.audit import SCHEDULER, Actor, audit_values, record_audits
from store.db import execute_columns
from store.models import Activity, ActivityKind, Contact, ContactKind, Order, Rep, Stage
from store.orders import counted, counts

SALES_ENQUIRY = "sales"  # the category of a sales enquiry (docs/architecture.md, "Categories")
BEFORE_PURCHASE = (Stage.need.value, Stage.information_search.value, Stage.evaluation.value)
KINDS: tuple[str, ...] = tuple(kind.value for kind in ContactKind)
STAGES: tuple[str, ...] = tuple(stage.value for stage in Stage)


class UnknownValue(ValueError):
    """A kind or stage that does not exist; the message lists the valid ones."""


def stage_label(stage: str) -> str:
    """`information_search` -> `information search`: how people read a stage."""
    return stage.replace("_", " ")


def check_kind(value: str) -> str:
    """A contact kind as typed (any case): the stored value, or UnknownValue."""
    folded = value.strip().lower()
    if folded not in KINDS:
        raise UnknownValue(f"unknown kind {value!r}; choose one of: {', '.join(KINDS)}")
    return folded


def check_stage(value: str) -> str:
    """A buying stage as typed (`information search`, `post-purchase`, any case): the stored value."""
    folded = value.strip().lower().replace("-", "_").replace(" ", "_")
    if folded not in STAGES:
        raise UnknownValue(f"unknown stage {value!r}; choose one of: {', '.join(STAGES)}")
    return folded


def move_activity(
    contact: Contact,
    *,
    reason: str,
    at: datetime,
    kind_from: str | None = None,
    kind_to: str | None = None,
    stage_from: str | None = None,
    stage_to: str | None = None,
    rep_id: int | None = None,
    conversation_id: int | None = None,
) -> Activity:
    """The activity that records a move (not added to a session: the caller adds or bulk-inserts it)."""
    assert contact.id is not None, "a move is recorded for a stored contact"
    return Activity(
        kind=ActivityKind.move,
        contact_id=contact.id,
        company_id=contact.company_id,
        rep_id=rep_id,
        conversation_id=conversation_id,
        summary=reason.strip(),
        contact_kind_from=kind_from,
        contact_kind_to=kind_to,
        stage_from=stage_from,
        stage_to=stage_to,
        occurred_at=at,
        created_at=at,
    )


def move_contact(
    session: Session,
    contact: Contact,
    *,
    reason: str,
    at: datetime,
    kind: str | None = None,
    stage: str | None = None,
    actor: Actor,
    rep_id: int | None = None,
    conversation_id: int | None = None,
) -> Activity | None:
    """Set the contact's kind and/or stage and record the move (an activity and its audit entries,
    by `actor`); None when nothing changes.

    Raises UnknownValue for a kind or stage that does not exist.
    """
    kind = check_kind(kind) if kind is not None else None
    stage = check_stage(stage) if stage is not None else None
    new_kind = kind if kind is not None and kind != contact.kind else None
    new_stage = stage if stage is not None and stage != contact.stage else None
    if new_kind is None and new_stage is None:
        return None
    activity = move_activity(
        contact, reason=reason, at=at, rep_id=rep_id, conversation_id=conversation_id,
        kind_from=contact.kind if new_kind else None, kind_to=new_kind,
        stage_from=contact.stage if new_stage else None, stage_to=new_stage,
    )
    if new_kind:
        contact.kind = new_kind
    if new_stage:
        contact.stage = new_stage
    contact.updated_at = at
    session.add(contact)
    session.add(activity)
    session.flush()
    record_audits(session, move_audits(actor, activity, at=at))
    return activity


def move_audits(actor: Actor, activity: Activity, *, at: datetime) -> list[dict[str, Any]]:
    """The audit entries of a move (`record_audits`), `contact.kind` and/or `contact.stage`, from
    and to: the inbox writes a batch's in one statement."""
    return [audit_values(actor, f"contact.{field}", target_kind="contact", target_id=activity.contact_id,
                         contact_id=activity.contact_id, detail={"from": before, "to": after}, at=at)
            for field, before, after in (("kind", activity.contact_kind_from, activity.contact_kind_to),
                                         ("stage", activity.stage_from, activity.stage_to))
            if after is not None]


def move_text(activity: Activity | ActivityLine) -> str:
    """`prospect → customer, need → purchase`: what a move changed."""
    parts = []
    if activity.contact_kind_to:
        parts.append(f"{activity.contact_kind_from or '?'} → {activity.contact_kind_to}")
    if activity.stage_to:
        parts.append(f"{stage_label(activity.stage_from or '?')} → {stage_label(activity.stage_to)}")
    return ", ".join(parts)


@dataclass(frozen=True)
class Move:
    """One line of a contact's stage history: the move and the name of the rep who made it (None: a rule)."""

    activity: ActivityLine
    by: str | None


def stage_history(session: Session, contact_id: int, *, limit: int = 10) -> list[Move]:
    """The contact's moves, newest first."""
    rows = execute_columns(session, _STAGE_HISTORY, {"contact_id": contact_id, "limit": limit})
    return [Move(ActivityLine(*row[:-1]), row[-1]) for row in rows]


_STAGE_HISTORY = (  # built once: every card asks (issue 15)
    select(*ACTIVITY_LINE, col(Rep.name))
    .outerjoin(Rep, col(Rep.id) == col(Activity.rep_id))
    .where(col(Activity.contact_id) == bindparam("contact_id"), col(Activity.kind) == ActivityKind.move)
    .order_by(col(Activity.occurred_at).desc(), col(Activity.id).desc())
    .limit(bindparam("limit"))
)


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class RuleMove:
    """What a rule would change (None: unchanged) and why."""

    kind: str | None
    stage: str | None
    reason: str


def order_move(contact: Contact, order: Order, *, first: bool) -> RuleMove | None:
    """An order: a prospect becomes a customer; a contact before `purchase` moves to `purchase`.

    Cancelled, refunded and returned orders move nobody. `first` says whether it is the
    contact's first counted order (it only words the reason)."""
    if not counts(order.status):
        return None
    kind = ContactKind.customer.value if contact.kind == ContactKind.prospect else None
    stage = Stage.purchase.value if contact.stage in BEFORE_PURCHASE else None
    if kind is None and stage is None:
        return None
    which = "first order" if first else "order"
    return RuleMove(kind, stage, f"{which} {order.external_id} of {order.ordered_on.isoformat()}")


def apply_order(session: Session, order: Order, *, at: datetime, actor: Actor) -> Activity | None:
    """Move the order's contact as `order_move` says (an order without a contact moves nobody)."""
    if order.contact_id is None:
        return None
    contact = session.get(Contact, order.contact_id)
    if contact is None:
        return None
    earlier = session.scalar(
        select(func.count()).select_from(Order).where(
            col(Order.contact_id) == contact.id,
            col(Order.id) != order.id,
            counted(col(Order.status)),
        )
    )
    move = order_move(contact, order, first=not earlier)
    if move is None:
        return None
    return move_contact(session, contact, kind=move.kind, stage=move.stage, reason=move.reason, at=at, actor=actor)


def import_move(kind: str, stage: str, file_kind: str | None, file_stage: str | None, *,
                source: str) -> tuple[RuleMove | None, list[str]]:
    """What a contacts import may change of a contact at `kind` and `stage` (None: nothing), and
    a note for each value of the file it holds back.

    The stage moves only to a later one; the kind to customer or partner, never back to
    prospect. A step back is a person's decision, so the note says how to make it."""
    held: list[str] = []
    to_stage = to_kind = None
    if file_stage not in (None, stage):
        if STAGES.index(file_stage) > STAGES.index(stage):
            to_stage = file_stage
        else:
            held.append(f"file says {stage_label(file_stage)}; kept {stage_label(stage)} "
                        "(move back with /crm stage)")
    if file_kind not in (None, kind):
        if file_kind != ContactKind.prospect:
            to_kind = file_kind
        else:
            held.append(f"file says {file_kind}; kept {kind} (change with /crm kind)")
    if to_kind is None and to_stage is None:
        return None, held
    return RuleMove(to_kind, to_stage, f"import of {source}"), held


def sales_enquiry_stage(contact: Contact, category: str | None) -> RuleMove | None:
    """A prospect at `need` who writes a sales enquiry moves to `information_search`."""
    if category != SALES_ENQUIRY or contact.kind != ContactKind.prospect or contact.stage != Stage.need:
        return None
    return RuleMove(None, Stage.information_search.value, "wrote a sales enquiry")


def advance_to_post_purchase(
    session: Session, *, now: datetime, days: int, contact_ids: Collection[int] | None = None, limit: int = 500,
    actor: Actor = SCHEDULER,
) -> int:
    """Contacts at `purchase` whose latest counted order is `days` days old or more move to
    `post_purchase` (a contact at `purchase` without orders stays). When a rep put the contact
    at `purchase` by its latest stage move, orders placed before that move's day do not count:
    the rep judged the stage after them. A rule's later move (an order, an import) ends that.
    Returns how many moved. Safe to run repeatedly: a moved contact is no longer at
    `purchase`. The caller commits."""
    cutoff = now.astimezone(UTC).date() - timedelta(days=days)
    last_on = func.max(col(Order.ordered_on))
    rep_put_here_on = (  # the (UTC) day of the latest stage move if a rep's, to this stage; else NULL
        select(case((and_(col(Activity.rep_id).is_not(None), col(Activity.stage_to) == col(Contact.stage)),
                     func.date(col(Activity.occurred_at)))))
        .where(col(Activity.contact_id) == col(Contact.id), col(Activity.kind) == ActivityKind.move,
               col(Activity.stage_to).is_not(None))
        .order_by(col(Activity.occurred_at).desc(), col(Activity.id).desc())
        .limit(1)
        .scalar_subquery()
    )
    query = (
        select(col(Contact.id), last_on)
        .join(Order, col(Order.contact_id) == col(Contact.id))
        .where(col(Contact.stage) == Stage.purchase, counted(col(Order.status)),
               or_(rep_put_here_on.is_(None), col(Order.ordered_on) >= rep_put_here_on))
        .group_by(col(Contact.id))
        .having(last_on <= cutoff)
        .order_by(col(Contact.id))
        .limit(limit)
    )
    if contact_ids is not None:
        query = query.where(col(Contact.id).in_(list(contact_ids)))
    due = session.execute(query).all()
    moved = 0
    for contact_id, last_day in due:
        contact = session.get(Contact, contact_id)
        reason = f"{days} days after the order of {_day(last_day)}"
        if contact is not None and move_contact(session, contact, stage=Stage.post_purchase.value, reason=reason,
                                                at=now, actor=actor):
            moved += 1
    return moved


def _day(value: date | str) -> str:
    return value if isinstance(value, str) else value.isoformat()  # max() may come back as text on SQLite


__all__ = [
    "KINDS",
    "SALES_ENQUIRY",
    "STAGES",
    "Move",
    "RuleMove",
    "UnknownValue",
    "advance_to_post_purchase",
    "apply_order",
    "check_kind",
    "check_stage",
    "import_move",
    "move_activity",
    "move_audits",
    "move_contact",
    "move_text",
    "order_move",
    "sales_enquiry_stage",
    "stage_history",
    "stage_label",
]
