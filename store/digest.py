"""The figures of a manager's digest, computed from the store for one period.

Each figure is defined once, in the docstring of the function that computes it,
and in docs/digest.md. Counts come from SQL aggregates (range scans on indexed times);
the response-time percentiles are computed exactly from the response times of
the period (fetched by one indexed query), never sampled or estimated.

Snapshot figures (open, unanswered, overdue conversations; overdue follow-ups)
describe the store at `now`, the time the digest is computed; the others count
what happened in the period [start, end).
"""

from __future__ import annotations

import bisect
import math
from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, literal, select
from sqlmodel import Session

from store.conversations import missed_sla, overdue, waiting_on_us
from store.hours import zone
from store.models import Activity as _Activity
from store.models import (
    ActivityKind,
    Assignment,
    Company,
    Contact,
    ContactKind,
    ConversationStatus,
    Direction,
    FollowUpStatus,
    Rep,
    Role,
    Stage,
)
from store.models import Conversation as _Conversation
from store.models import FollowUp as _FollowUp
from store.models import Message as _Message
from store.segments import (
    ContactOrders,
    LapsedCustomer,
    SegmentParams,
    TopCustomer,
    _owned_by,
    lapsed_customers,
    order_totals,
    table,
    top_customers,
)
from store.surveys import SurveyFigures, survey_figures
from store.types import utcnow
from store.winback import WonBack, contacts_without_owner, won_back

Period = Literal["day", "week"]
PERIODS: tuple[Period, ...] = ("day", "week")
NO_CATEGORY = "uncategorised"
NO_LANGUAGE = "unknown"
NO_REASON = "unspecified"
ACTION_LIMIT = 10  # items listed per action list; the rest are counted ("and N more")

_conversation = table(_Conversation).c
_message = table(_Message).c
_activity = table(_Activity).c
_followup = table(_FollowUp).c
_assignment = table(Assignment).c
_conversation_table = table(_Conversation)
_contact = table(Contact).c
_company = table(Company).c


class DigestError(ValueError):
    """A digest that cannot be computed as asked (bad period, unknown zone); the message says why."""


@dataclass(frozen=True)
class ResponseTimes:
    """First-response times in seconds of the conversations first answered in the period."""

    count: int
    median_seconds: float | None
    p90_seconds: float | None


@dataclass
class RepFigures:
    rep_id: int
    name: str
    email: str
    open: int = 0
    unanswered: int = 0
    overdue: int = 0
    assigned: int = 0
    answered: int = 0
    first_response: ResponseTimes = field(default_factory=lambda: ResponseTimes(0, None, None))
    sla_breaches: int = 0
    calls: int = 0
    other_activities: dict[str, int] = field(default_factory=dict)
    followups_done: int = 0
    followups_overdue: int = 0
    satisfaction: SurveyFigures = field(default_factory=SurveyFigures)  # surveys of the conversations this rep owned

    @property
    def is_idle(self) -> bool:
        return not any(
            (
                self.open,
                self.assigned,
                self.answered,
                self.first_response.count,
                self.calls,
                self.other_activities,
                self.followups_done,
                self.followups_overdue,
            )
        )


@dataclass(frozen=True)
class SeriesPoint:
    """One bucket of the chart: an hour (daily digest) or a day (weekly), local time."""

    start: datetime  # in the manager's time zone
    new_conversations: int
    median_response_seconds: float | None


@dataclass(frozen=True)
class Funnel:
    """The team's contacts in the buying process: how many are in each stage at `now`
    (every stage, in order, zeros included), how many moved stage in the period, and
    how many prospects became customers in the period."""

    by_stage: dict[str, int]
    moved: int
    became_customers: int


@dataclass(frozen=True)
class Headline:
    """The four figures a digest leads with, for one period (the current one or the one before)."""

    new_conversations: int
    answered: int
    first_reply_seconds: float | None  # median
    sla_breaches: int


@dataclass(frozen=True)
class WaitingConversation:
    """A team conversation waiting for our reply (snapshot), for the action list."""

    id: int
    subject: str
    contact: str | None  # the contact's name
    owner: str | None  # the owner's name; None: in the fallback queue
    waiting_since: datetime  # the customer's latest mail (else the opening)
    overdue: bool


@dataclass(frozen=True)
class DueFollowUp:
    """An overdue follow-up (snapshot), for the action list."""

    id: int
    note: str
    contact: str | None
    contact_id: int | None
    rep: str
    due_at: datetime


@dataclass
class DigestFigures:
    manager_name: str
    manager_email: str
    digest_via: list[str]  # the manager's own setting ("slack", "email"): the footer quotes it
    team: str | None  # None: everyone
    period: Period
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive
    now: datetime  # UTC: when snapshot figures were taken
    timezone: str
    new_conversations: int
    new_by_category: dict[str, int]
    new_by_language: dict[str, int]
    new_by_urgency: dict[str, int]
    open: int
    unanswered: int
    overdue: int
    first_response: ResponseTimes
    sla_breaches: int
    followups_done: int
    followups_overdue: int
    automatic_filtered: int
    automatic_by_reason: dict[str, int]
    reps: list[RepFigures]
    top_customers_who_wrote: list[TopCustomer]
    top_months: int  # the window of their recent_value_eur (SegmentParams.top_months)
    lapsed_worth_a_call: list[LapsedCustomer]
    series: list[SeriesPoint]
    funnel: Funnel = field(default_factory=lambda: Funnel({}, 0, 0))
    answered: int = 0
    previous: Headline | None = None  # the period before, for the change in each headline figure
    waiting: list[WaitingConversation] = field(default_factory=list)  # oldest first, ACTION_LIMIT at most
    due_followups: list[DueFollowUp] = field(default_factory=list)  # longest overdue first, ACTION_LIMIT at most
    satisfaction: SurveyFigures = field(default_factory=SurveyFigures)  # CSAT: store.surveys.survey_figures
    lapsed_without_owner: list[LapsedCustomer] = field(default_factory=list)
    won_back: list[WonBack] = field(default_factory=list)

    @property
    def headline(self) -> Headline:
        return Headline(self.new_conversations, self.answered, self.first_response.median_seconds,
                        self.sla_breaches)

    @property
    def is_empty(self) -> bool:
        """Nothing happened and nothing waits: the digest is one short line."""
        return not any((self.new_conversations, self.answered, self.first_response.count, self.sla_breaches,
                        self.open, self.followups_done, self.followups_overdue, self.lapsed_worth_a_call,
                        self.lapsed_without_owner, self.won_back,
                        self.top_customers_who_wrote, self.funnel.moved, self.satisfaction.sent,
                        self.satisfaction.scores))

    @property
    def local_start(self) -> datetime:
        return self.start.astimezone(zone(self.timezone))

    @property
    def label(self) -> str:
        """`day 2026-11-22` or `week 2026-11-16 – 2026-11-22` (local dates)."""
        first = self.local_start.date()
        if self.period == "day":
            return f"day {first.isoformat()}"
        last = (self.end.astimezone(zone(self.timezone)) - timedelta(seconds=1)).date()
        return f"week {first.isoformat()} – {last.isoformat()}"

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-ready data (times ISO 8601, money as strings)."""
        return _jsonable(asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


# --------------------------------------------------------------------------- periods


def period_bounds(period: str, local_day: date, timezone: str) -> tuple[datetime, datetime]:
    """The UTC [start, end) of the local day `local_day`, or of the Monday-to-Sunday
    week that contains it, in `timezone` (DST days are 23 or 25 hours long)."""
    tz = zone(timezone)
    if period == "day":
        first, after = local_day, local_day + timedelta(days=1)
    elif period == "week":
        first = local_day - timedelta(days=local_day.weekday())
        after = first + timedelta(days=7)
    else:
        raise DigestError(f"unknown period {period!r}; use one of: {', '.join(PERIODS)}")
    return (
        datetime.combine(first, time(), tzinfo=tz).astimezone(UTC),
        datetime.combine(after, time(), tzinfo=tz).astimezone(UTC),
    )


def last_complete_period(period: str, now: datetime, timezone: str) -> tuple[datetime, datetime]:
    """The latest day (or Monday-to-Sunday week) that has ended by `now` in `timezone`."""
    today = now.astimezone(zone(timezone)).date()
    step = timedelta(days=1 if period == "day" else 7)
    return period_bounds(period, today - step, timezone)


def previous_period(period: str, start: datetime, timezone: str) -> tuple[datetime, datetime]:
    """The day (or week) before the one that starts at `start`, in `timezone`."""
    first = start.astimezone(zone(timezone)).date()
    return period_bounds(period, first - timedelta(days=1 if period == "day" else 7), timezone)


# --------------------------------------------------------------------------- team


def team_of(session: Session, manager: Rep) -> list[Rep] | None:
    """The reps a manager's digest covers: those with the manager's team, or None
    (everyone, unowned conversations included) for an admin or a manager without a team."""
    if manager.role == Role.admin or not manager.team:
        return None
    return list(session.scalars(select(Rep).where(table(Rep).c.team == manager.team).order_by(Rep.name)))


def _owner_filter(owner_ids: Collection[int] | None, column: Any) -> Any:
    return literal(True) if owner_ids is None else column.in_(list(owner_ids))


# --------------------------------------------------------------------------- percentiles


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between closest ranks
    (the "type 7" definition used by NumPy and spreadsheets); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def response_times(seconds: Sequence[float]) -> ResponseTimes:
    """Count, median and 90th percentile, rounded to the millisecond (no float noise in JSON)."""
    median, p90 = percentile(seconds, 50), percentile(seconds, 90)
    return ResponseTimes(len(seconds), None if median is None else round(median, 3),
                         None if p90 is None else round(p90, 3))


# --------------------------------------------------------------------------- the digest


def compute_digest(
    session: Session,
    *,
    manager: Rep,
    period: Period,
    start: datetime,
    end: datetime,
    params: SegmentParams,
    now: datetime | None = None,
) -> DigestFigures:
    """All figures of `manager`'s digest for [start, end) (aware datetimes).

    `period` only labels the digest and picks the chart's buckets (hours for a
    day, days for a week, in the manager's time zone); `params` tunes the
    customer segments; `now` (default: the current time) is when snapshot
    figures are taken.
    """
    if start.tzinfo is None or end.tzinfo is None or start >= end:
        raise DigestError("a digest period needs aware start < end")
    if period not in PERIODS:
        raise DigestError(f"unknown period {period!r}; use one of: {', '.join(PERIODS)}")
    now = now or utcnow()
    tz_name = manager.timezone or "UTC"
    zone(tz_name)
    team = team_of(session, manager)
    owner_ids = None if team is None else [rep.id for rep in team if rep.id is not None]
    window = _Window(session, start.astimezone(UTC), end.astimezone(UTC), now, owner_ids)

    by_category, by_language, by_urgency = window.new_conversations()
    opened_at = window.opened_times()
    responses = window.first_responses()
    snapshot = window.open_snapshot()
    breaches = window.sla_breaches()
    assigned = window.assignments()
    answered = window.answered()
    activities = window.activities()
    done, overdue_followups = window.followups()
    totals = order_totals(session, now=now, params=params)  # one pass over the orders for both segments
    lapsed_worth_a_call, lapsed_without_owner = _lapsed(session, now=now, params=params, owner_ids=owner_ids,
                                                        totals=totals)
    local = zone(tz_name)
    reps = _rep_figures(
        session, team, snapshot, responses, breaches, assigned, answered, activities, done, overdue_followups
    )
    before = _Window(session, *previous_period(period, window.start, tz_name), now, owner_ids)
    satisfaction, satisfaction_by_rep = survey_figures(session, start=window.start, end=window.end, owner_ids=owner_ids)
    for rep in reps:
        rep.satisfaction = satisfaction_by_rep.get(rep.rep_id, rep.satisfaction)
    return DigestFigures(
        manager_name=manager.name,
        manager_email=manager.email,
        digest_via=list(manager.digest_via),
        team=None if team is None else manager.team,
        period=period,
        start=window.start,
        end=window.end,
        now=now,
        timezone=tz_name,
        new_conversations=sum(by_category.values()),
        new_by_category=_ranked(by_category),
        new_by_language=_ranked(by_language),
        new_by_urgency=_ranked(by_urgency),
        open=sum(row[0] for row in snapshot.values()),
        unanswered=sum(row[1] for row in snapshot.values()),
        overdue=sum(row[2] for row in snapshot.values()),
        first_response=response_times([s for _, _, s in responses]),
        sla_breaches=sum(breaches.values()),
        followups_done=sum(done.values()),
        followups_overdue=sum(overdue_followups.values()),
        automatic_filtered=sum((reasons := window.automatic_mail()).values()),
        automatic_by_reason=_ranked(reasons),
        reps=reps,
        top_customers_who_wrote=window.top_customers_who_wrote(params, totals),
        top_months=params.top_months,
        lapsed_worth_a_call=lapsed_worth_a_call,
        series=_series(period, window.start, window.end, tz_name, opened_at, responses),
        funnel=window.funnel(),
        answered=sum(answered.values()),
        previous=before.headline(),
        waiting=window.waiting(),
        due_followups=window.due_followups(),
        satisfaction=satisfaction,
        lapsed_without_owner=lapsed_without_owner,
        won_back=won_back(session, first_day=window.start.astimezone(local).date(),
                          after_day=window.end.astimezone(local).date(), rep_ids=owner_ids),
    )


def _lapsed(
    session: Session, *, now: datetime, params: SegmentParams, owner_ids: list[int] | None,
    totals: list[ContactOrders],
) -> tuple[list[LapsedCustomer], list[LapsedCustomer]]:
    """Lapsed customers worth a call: the segment's customers the team owns (everyone: anyone owns),
    best first, at most top_n; and those without an owner (no effective owner, store/owners.py,
    or one who left), for every manager to give an owner, at most top_n."""
    unowned_ids = contacts_without_owner(session)
    owned = lapsed_customers(session, now=now, params=params, owner_ids=owner_ids, limit=params.top_n,
                             totals=[t for t in totals if t.contact_id not in unowned_ids])
    unowned = lapsed_customers(session, now=now, params=params, limit=params.top_n,
                               totals=[t for t in totals if t.contact_id in unowned_ids])
    return owned, unowned


def _ranked(counts: dict[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


@dataclass
class _Window:
    """The queries of one digest: a period, a snapshot time and a team (None: everyone)."""

    session: Session
    start: datetime
    end: datetime
    now: datetime
    owner_ids: list[int] | None

    def _in_team(self, column: Any) -> Any:
        return _owner_filter(self.owner_ids, column)

    def _human_conversations(self) -> Any:
        return and_(_conversation.is_automatic.is_(False), self._in_team(_conversation.owner_id))

    def new_conversations(self) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
        """New conversations: not automatic, opened in [start, end), owned by the team;
        counted by category (none: "uncategorised"), by language (none: "unknown") and by urgency."""
        query = (
            select(_conversation.category, _conversation.language, _conversation.urgency, func.count())
            .where(
                _conversation.opened_at >= self.start,
                _conversation.opened_at < self.end,
                self._human_conversations(),
            )
            .group_by(_conversation.category, _conversation.language, _conversation.urgency)
        )
        by_category: Counter[str] = Counter()
        by_language: Counter[str] = Counter()
        by_urgency: Counter[str] = Counter()
        for category, language, urgency, count in self.session.execute(query):
            by_category[category or NO_CATEGORY] += count
            by_language[language or NO_LANGUAGE] += count
            by_urgency[urgency] += count
        return dict(by_category), dict(by_language), dict(by_urgency)

    def opened_times(self) -> list[datetime]:
        query = select(_conversation.opened_at).where(
            _conversation.opened_at >= self.start,
            _conversation.opened_at < self.end,
            self._human_conversations(),
        )
        return list(self.session.scalars(query))

    def first_responses(self) -> list[tuple[int | None, datetime, float]]:
        """First-response times: for each not-automatic team conversation whose first
        response happened in [start, end): (owner, first response, seconds since opened)."""
        query = select(
            _conversation.owner_id, _conversation.opened_at, _conversation.first_response_at
        ).where(
            _conversation.first_response_at >= self.start,
            _conversation.first_response_at < self.end,
            self._human_conversations(),
        )
        return [
            (owner, answered, max(0.0, (answered - opened).total_seconds()))
            for owner, opened, answered in self.session.execute(query)
        ]

    def headline(self) -> Headline:
        """The headline figures of this window (the previous period's, for the change)."""
        new = sum(self.new_conversations()[0].values())
        responses = response_times([s for _, _, s in self.first_responses()])
        return Headline(new, sum(self.answered().values()), responses.median_seconds,
                        sum(self.sla_breaches().values()))

    def open_snapshot(self) -> dict[int | None, tuple[int, int, int]]:
        """Per owner at `now`: open conversations (waiting for our reply: the customer wrote
        last), of which never answered (no first response yet) and overdue (`store.conversations.overdue`)."""
        query = (
            select(
                _conversation.owner_id,
                func.count(),
                func.sum(case((_conversation.first_response_at.is_(None), 1), else_=0)),
                func.sum(case((overdue(self.now), 1), else_=0)),
            )
            .where(waiting_on_us(), self._human_conversations())
            .group_by(_conversation.owner_id)
        )
        return {owner: (int(n), int(u or 0), int(o or 0)) for owner, n, u, o in self.session.execute(query)}

    def waiting(self) -> list[WaitingConversation]:
        """Open team conversations (see open_snapshot), the longest waiting first, ACTION_LIMIT at most."""
        contact, rep = table(Contact).c, table(Rep).c
        since = func.coalesce(_conversation.last_inbound_at, _conversation.opened_at)
        query = (
            select(_conversation.id, _conversation.subject, contact.name,
                   rep.name, since, case((overdue(self.now), True), else_=False))
            .select_from(_conversation_table.outerjoin(table(Contact), contact.id == _conversation.contact_id)
                         .outerjoin(table(Rep), rep.id == _conversation.owner_id))
            .where(waiting_on_us(), self._human_conversations())
            .order_by(since, _conversation.id)
            .limit(ACTION_LIMIT)
        )
        return [WaitingConversation(i, subject or "", who, owner, at, bool(late))
                for i, subject, who, owner, at, late in self.session.execute(query)]

    def due_followups(self) -> list[DueFollowUp]:
        """Overdue follow-ups of team reps (see followups), the longest overdue first, ACTION_LIMIT at most."""
        contact, rep = table(Contact).c, table(Rep).c
        query = (
            select(_followup.id, _followup.note, contact.name, _followup.contact_id, rep.name, _followup.due_at)
            .select_from(table(_FollowUp).join(table(Rep), rep.id == _followup.rep_id)
                         .outerjoin(table(Contact), contact.id == _followup.contact_id))
            .where(_followup.status == FollowUpStatus.open, _followup.due_at < self.now,
                   self._in_team(_followup.rep_id))
            .order_by(_followup.due_at, _followup.id)
            .limit(ACTION_LIMIT)
        )
        return [DueFollowUp(*row) for row in self.session.execute(query)]

    def sla_breaches(self) -> dict[int | None, int]:
        """SLA breaches per owner: not-automatic team conversations whose SLA fell due in
        [start, end) (and before `now`) without a first response by then."""
        due_end = min(self.end, self.now)
        query = (
            select(_conversation.owner_id, func.count())
            .where(
                # every status listed so the (status, sla_due_at) index serves the range
                _conversation.status.in_([s.value for s in ConversationStatus]),
                _conversation.sla_due_at >= self.start,
                _conversation.sla_due_at < due_end,
                missed_sla(),
                self._human_conversations(),
            )
            .group_by(_conversation.owner_id)
        )
        return {owner: int(n) for owner, n in self.session.execute(query)}

    def assignments(self) -> dict[int, int]:
        """Assigned per rep: assignment rows to the rep made in [start, end) (a conversation
        reassigned to the rep counts again)."""
        query = (
            select(_assignment.owner_id, func.count())
            .where(
                _assignment.assigned_at >= self.start,
                _assignment.assigned_at < self.end,
                _assignment.owner_id.is_not(None),
                self._in_team(_assignment.owner_id),
            )
            .group_by(_assignment.owner_id)
        )
        return {owner: int(n) for owner, n in self.session.execute(query)}

    def answered(self) -> dict[int | None, int]:
        """Answered per owner: team conversations with at least one outbound message
        stored in [start, end), counted once each, credited to the conversation's owner."""
        query = (
            select(_conversation.owner_id, func.count(func.distinct(_message.conversation_id)))
            .select_from(
                table(_Message).join(_conversation_table, _conversation.id == _message.conversation_id)
            )
            .where(
                _message.received_at >= self.start,
                _message.received_at < self.end,
                _message.direction == Direction.outbound,
                self._in_team(_conversation.owner_id),
            )
            .group_by(_conversation.owner_id)
        )
        return {owner: int(n) for owner, n in self.session.execute(query)}

    def activities(self) -> dict[int, dict[str, int]]:
        """Activities per rep and kind: activities by a team rep that occurred in [start, end)."""
        query = (
            select(_activity.rep_id, _activity.kind, func.count())
            .where(
                _activity.occurred_at >= self.start,
                _activity.occurred_at < self.end,
                _activity.rep_id.is_not(None),
                self._in_team(_activity.rep_id),
            )
            .group_by(_activity.rep_id, _activity.kind)
        )
        kinds: dict[int, dict[str, int]] = defaultdict(dict)
        for rep_id, kind, count in self.session.execute(query):
            kinds[rep_id][kind] = int(count)
        return kinds

    def followups(self) -> tuple[dict[int, int], dict[int, int]]:
        """Per rep: follow-ups marked done in [start, end), and follow-ups still open
        whose due time is before `now` (overdue)."""
        done = (
            select(_followup.rep_id, func.count())
            .where(
                _followup.status == FollowUpStatus.done,
                _followup.done_at >= self.start,
                _followup.done_at < self.end,
                self._in_team(_followup.rep_id),
            )
            .group_by(_followup.rep_id)
        )
        overdue = (
            select(_followup.rep_id, func.count())
            .where(
                _followup.status == FollowUpStatus.open,
                _followup.due_at < self.now,
                self._in_team(_followup.rep_id),
            )
            .group_by(_followup.rep_id)
        )
        return (
            {rep: int(n) for rep, n in self.session.execute(done)},
            {rep: int(n) for rep, n in self.session.execute(overdue)},
        )

    def automatic_mail(self) -> dict[str, int]:
        """Automatic mail filtered: inbound messages stored in [start, end) marked automatic
        (auto-replies, bounces, bulk and list mail), by reason; mailbox-wide, since
        automatic mail is never assigned to anyone."""
        query = (
            select(_message.automatic_reason, func.count())
            .where(
                _message.received_at >= self.start,
                _message.received_at < self.end,
                _message.direction == Direction.inbound,
                _message.is_automatic.is_(True),
            )
            .group_by(_message.automatic_reason)
        )
        reasons: Counter[str] = Counter()
        for reason, count in self.session.execute(query):
            reasons[reason or NO_REASON] += int(count)
        return dict(reasons)

    def writers(self) -> set[int]:
        """Contacts who wrote: senders of not-automatic inbound messages stored in
        [start, end) in team conversations."""
        query = (
            select(_message.contact_id)
            .select_from(
                table(_Message).join(_conversation_table, _conversation.id == _message.conversation_id)
            )
            .where(
                _message.received_at >= self.start,
                _message.received_at < self.end,
                _message.direction == Direction.inbound,
                _message.is_automatic.is_(False),
                _message.contact_id.is_not(None),
                self._in_team(_conversation.owner_id),
            )
            .distinct()
        )
        return set(self.session.scalars(query))

    def top_customers_who_wrote(self, params: SegmentParams, totals: list[ContactOrders]) -> list[TopCustomer]:
        """Top customers (the segment, chosen company-wide at `now`) who wrote in the period,
        best first, at most top_n, ranked 1, 2, 3... among themselves (no gaps where another
        team's customer stands)."""
        writers = self.writers()
        if not writers:
            return []
        segment = top_customers(self.session, now=self.now, params=params, contact_ids=writers, totals=totals)
        return [replace(c, rank=i) for i, c in enumerate(segment.customers[: params.top_n], 1)]

    def funnel(self) -> Funnel:
        return _funnel(self)


def _funnel(window: _Window) -> Funnel:
    """Contacts by stage (snapshot), contacts whose stage moved in [start, end) (`move`
    activities, each contact once), and contacts that moved from prospect to customer in
    [start, end); each for the team's contacts (contact owner, else company owner)."""
    contacts = table(Contact).outerjoin(table(Company), _company.id == _contact.company_id)
    team = _owned_by(window.owner_ids)  # the contact's owner, else its company's (store.segments)
    by_stage = dict.fromkeys((stage.value for stage in Stage), 0)
    query = select(_contact.stage, func.count()).select_from(contacts).where(team).group_by(_contact.stage)
    for stage, count in window.session.execute(query):
        by_stage[stage] = by_stage.get(stage, 0) + int(count)
    moves = contacts.join(table(_Activity), _activity.contact_id == _contact.id)
    in_period = and_(
        _activity.kind == ActivityKind.move,
        _activity.occurred_at >= window.start,
        _activity.occurred_at < window.end,
        team,
    )

    def distinct_contacts(condition: Any) -> int:
        statement = select(func.count(func.distinct(_contact.id))).select_from(moves).where(in_period, condition)
        return int(window.session.execute(statement).scalar_one())

    return Funnel(
        by_stage=by_stage,
        moved=distinct_contacts(_activity.stage_to.is_not(None)),
        became_customers=distinct_contacts(and_(_activity.contact_kind_from == ContactKind.prospect,
                                                _activity.contact_kind_to == ContactKind.customer)),
    )


def _rep_figures(
    session: Session,
    team: list[Rep] | None,
    snapshot: dict[int | None, tuple[int, int, int]],
    responses: list[tuple[int | None, datetime, float]],
    breaches: dict[int | None, int],
    assigned: dict[int, int],
    answered: dict[int | None, int],
    activities: dict[int, dict[str, int]],
    done: dict[int, int],
    overdue: dict[int, int],
) -> list[RepFigures]:
    """One row per team rep (everyone: every rep), leaving out inactive reps with nothing to show."""
    reps = team if team is not None else list(session.scalars(select(Rep).order_by(Rep.name)))
    seconds: dict[int | None, list[float]] = defaultdict(list)
    for owner, _, value in responses:
        seconds[owner].append(value)
    rows = []
    for rep in reps:
        rep_id = rep.id
        if rep_id is None:
            continue
        kinds = dict(activities.get(rep_id, {}))
        open_, unanswered, late = snapshot.get(rep_id, (0, 0, 0))
        row = RepFigures(
            rep_id=rep_id,
            name=rep.name,
            email=rep.email,
            open=open_,
            unanswered=unanswered,
            overdue=late,
            assigned=assigned.get(rep_id, 0),
            answered=answered.get(rep_id, 0),
            first_response=response_times(seconds.get(rep_id, [])),
            sla_breaches=breaches.get(rep_id, 0),
            calls=kinds.pop(ActivityKind.call.value, 0),
            other_activities=_ranked(kinds),
            followups_done=done.get(rep_id, 0),
            followups_overdue=overdue.get(rep_id, 0),
        )
        if rep.active or not row.is_idle:
            rows.append(row)
    return rows


def _series(
    period: Period,
    start: datetime,
    end: datetime,
    tz_name: str,
    opened: list[datetime],
    responses: list[tuple[int | None, datetime, float]],
) -> list[SeriesPoint]:
    """New conversations and median first-response time per local hour (day) or day (week);
    a response is bucketed by when it was sent."""
    tz = zone(tz_name)
    bounds = _bucket_starts(period, start, end, tz)
    counts = [0] * len(bounds)
    for moment in opened:
        counts[bisect.bisect_right(bounds, moment) - 1] += 1
    waits: list[list[float]] = [[] for _ in bounds]
    for _, answered, value in responses:
        waits[bisect.bisect_right(bounds, answered) - 1].append(value)
    return [SeriesPoint(b.astimezone(tz), counts[i], percentile(waits[i], 50)) for i, b in enumerate(bounds)]


def _bucket_starts(period: Period, start: datetime, end: datetime, tz: ZoneInfo) -> list[datetime]:
    if period == "day":
        hours = math.ceil((end - start).total_seconds() / 3600)
        return [start + timedelta(hours=h) for h in range(hours)]
    first = start.astimezone(tz).date()
    days = []
    day = first
    while (moment := datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)) < end:
        days.append(max(moment, start))
        day += timedelta(days=1)
    return days


__all__ = [
    "PERIODS",
    "DigestError",
    "DigestFigures",
    "DueFollowUp",
    "Funnel",
    "Headline",
    "Period",
    "RepFigures",
    "ResponseTimes",
    "SeriesPoint",
    "WaitingConversation",
    "compute_digest",
    "last_complete_period",
    "percentile",
    "period_bounds",
    "previous_period",
    "team_of",
]
