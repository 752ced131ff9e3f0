"""Owner assignment: ordered rules, each explaining itself in one line.

thread owner → account owner (contact's, else company's) → skill and language
routing (rapport.toml routes, then each rep's skills and languages) → least-busy
available rep → fallback queue. Availability means active, not away, inside the
rep's working hours in their own time zone, and below capacity; load counts
open conversations only, and reps with none count as 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, col, select

from inbox.options import Route
from store.assignments import assignment_history, least_loaded, open_load
from store.hours import is_working
from store.models import Company, Contact, Conversation, Message, Rep, Role
from store.types import utcnow

WORKING_ROLES = (Role.rep, Role.support)
NO_ROUTING_CATEGORIES = ("needs_triage",)
# Owners chosen for who they are (the thread's, the account's, a person's pick), not for what
# the mail is about: a corrected category does not move the conversation away from them.
STICKY_RULES = ("thread_owner", "account_owner", "manual")
REROUTE = "reroute"  # the rule name of an assignment made because a category was corrected
# The ordered rules `evaluate` tries, by step (routing tries skill and language routes in one step).
RULE_STEP = {"thread_owner": 0, "account_owner": 1, "skill": 2, "language": 2, "least_busy": 3, "fallback": 4}


@dataclass(frozen=True)
class RuleOutcome:
    """One rule tried: did it pick someone, and why (or why not)."""

    rule: str
    applied: bool
    reason: str
    owner: Rep | None = None
    queue: str | None = None


@dataclass
class Team:
    """The reps and their open load, read once per batch and kept current as the batch assigns."""

    reps: list[Rep]
    load: dict[int, int]
    now: datetime
    routes: Sequence[Route] = ()
    fallback_queue: str = "triage"
    by_email: dict[str, Rep] = field(init=False)

    def __post_init__(self) -> None:
        self.by_email = {rep.email.lower(): rep for rep in self.reps}

    @classmethod
    def load_from(
        cls,
        session: Session,
        *,
        now: datetime | None = None,
        routes: Sequence[Route] = (),
        fallback_queue: str = "triage",
    ) -> Team:
        reps = list(session.exec(select(Rep).order_by(Rep.id)).all())  # type: ignore[arg-type]
        return cls(reps, open_load(session), now or utcnow(), routes, fallback_queue)

    def rep(self, rep_id: int | None) -> Rep | None:
        return next((r for r in self.reps if r.id == rep_id), None) if rep_id is not None else None

    def took_one(self, rep: Rep | None) -> None:
        if rep is not None and rep.id is not None:
            self.load[rep.id] = self.load.get(rep.id, 0) + 1


# --------------------------------------------------------------------------- availability


def unavailable_because(rep: Rep, team: Team, *, check_hours: bool = True) -> str | None:
    """Why `rep` cannot take new work now, or None if they can."""
    if not rep.active:
        return f"{rep.name} is inactive"
    if rep.away_until is not None and rep.away_until > team.now:
        return f"{rep.name} is away until {rep.away_until:%Y-%m-%d %H:%M} UTC"
    if check_hours:
        try:
            working = is_working(rep.working_hours, rep.timezone, team.now)
        except ValueError as exc:  # never read as "always at work": config and import reject it first
            return f"{rep.name} cannot take work: {exc}"
        if not working:
            return f"{rep.name} is outside working hours ({rep.working_hours} {rep.timezone})"
    load = team.load.get(rep.id or -1, 0)
    if check_hours and load >= rep.capacity:
        return f"{rep.name} is at capacity ({load}/{rep.capacity} open)"
    return None


def least_busy(candidates: Sequence[Rep], team: Team) -> tuple[Rep | None, list[str]]:
    """The available candidate with the fewest open conversations, and why the others were skipped."""
    available, skipped = [], []
    for rep in candidates:
        why = unavailable_because(rep, team)
        if why is None:
            available.append(rep)
        else:
            skipped.append(why)
    if not available:
        return None, skipped
    return least_loaded(available, team.load), skipped


# --------------------------------------------------------------------------- rules


def thread_owner_rule(team: Team, owner_id: int | None) -> RuleOutcome:
    rep = team.rep(owner_id)
    if rep is None:
        return RuleOutcome("thread_owner", False, "no earlier owner in this thread")
    why = unavailable_because(rep, team, check_hours=False)
    if why is not None:
        return RuleOutcome("thread_owner", False, f"thread owner skipped: {why}")
    return RuleOutcome("thread_owner", True, f"{rep.name} already owns this thread", owner=rep)


def account_owner_rule(team: Team, contact: Contact | None, company: Company | None) -> RuleOutcome:
    holders = [("contact", contact.name, contact.owner_id)] if contact and contact.owner_id else []
    if company is not None and company.owner_id:
        holders.append(("company", company.name, company.owner_id))
    if not holders:
        return RuleOutcome("account_owner", False, "neither the contact nor the company has an owner")
    skipped = []
    for kind, name, owner_id in holders:
        rep = team.rep(owner_id)
        if rep is None:
            continue
        why = unavailable_because(rep, team, check_hours=False)
        if why is None:
            return RuleOutcome("account_owner", True, f"{rep.name} owns the {kind} {name}", owner=rep)
        skipped.append(why)
    return RuleOutcome("account_owner", False, "account owner skipped: " + "; ".join(skipped))


def _route_targets(team: Team, route: Route) -> list[Rep]:
    if route.rep:
        rep = team.by_email.get(route.rep.lower())
        return [rep] if rep else []
    return [r for r in team.reps if route.team and r.team == route.team]


def _route_matches(route: Route, category: str | None, language: str | None) -> bool:
    if route.category and route.category != category:
        return False
    return not (route.language and route.language != language)


def routing_rules(team: Team, category: str | None, language: str | None) -> list[RuleOutcome]:
    """Configured routes first, then reps' own skills (preferring those who speak the language), then languages."""
    outcomes: list[RuleOutcome] = []
    routable = category if category and category not in NO_ROUTING_CATEGORIES else None
    for route in team.routes:
        if not _route_matches(route, routable, language):
            continue
        rule = "skill" if route.category else "language"
        target = route.rep or f"team {route.team}"
        rep, skipped = least_busy(_route_targets(team, route), team)
        what = " ".join(x for x in (route.category, route.language) if x)
        if rep is not None:
            outcomes.append(
                RuleOutcome(rule, True, f"route {what} → {target}: {_busy(rep, team)}", owner=rep)
            )
            return outcomes
        outcomes.append(
            RuleOutcome(rule, False, f"route {what} → {target}: nobody available ({_why(skipped)})")
        )
    if routable is None:
        outcomes.append(
            RuleOutcome("skill", False, f"category {category or 'unknown'} is not routed by skill")
        )
    else:
        skilled = [r for r in team.reps if routable in (r.skills or [])]
        speaking = [r for r in skilled if language and language in (r.languages or [])]
        for group, note in ((speaking, f" and speaks {language}"), (skilled, "")):
            rep, skipped = least_busy(group, team) if group else (None, [])
            if rep is not None:
                text = f"{rep.name} handles {routable}{note}: {_busy(rep, team)}"
                outcomes.append(RuleOutcome("skill", True, text, owner=rep))
                return outcomes
        reason = f"no rep available with skill {routable} ({_why(skipped)})" if skilled else (
            f"no rep has the skill {routable}")
        outcomes.append(RuleOutcome("skill", False, reason))
    if not language:
        outcomes.append(RuleOutcome("language", False, "language unknown"))
        return outcomes
    speakers = [r for r in team.reps if language in (r.languages or [])]
    rep, skipped = least_busy(speakers, team)
    if rep is not None:
        outcomes.append(
            RuleOutcome("language", True, f"{rep.name} speaks {language}: {_busy(rep, team)}", owner=rep)
        )
    else:
        reason = f"no rep available who speaks {language} ({_why(skipped)})" if speakers else (
            f"no rep speaks {language}")
        outcomes.append(RuleOutcome("language", False, reason))
    return outcomes


def least_busy_rule(team: Team) -> RuleOutcome:
    candidates = [r for r in team.reps if r.role in WORKING_ROLES]
    if not candidates:
        return RuleOutcome("least_busy", False, "no reps with role rep or support")
    rep, skipped = least_busy(candidates, team)
    if rep is None:
        return RuleOutcome("least_busy", False, f"nobody available ({_why(skipped)})")
    others = len(candidates) - len(skipped) - 1
    return RuleOutcome(
        "least_busy", True, f"least busy of {others + 1} available: {_busy(rep, team)}", owner=rep
    )


def fallback_rule(team: Team) -> RuleOutcome:
    return RuleOutcome(
        "fallback",
        True,
        f"no rep could take it; parked in queue {team.fallback_queue}",
        queue=team.fallback_queue,
    )


def _busy(rep: Rep, team: Team) -> str:
    return f"{rep.name} has {team.load.get(rep.id or -1, 0)} open of {rep.capacity}"


def _why(skipped: list[str]) -> str:
    return "; ".join(skipped[:3]) + (f"; and {len(skipped) - 3} more" if len(skipped) > 3 else "")


def evaluate(
    team: Team,
    *,
    previous_owner_id: int | None,
    contact: Contact | None,
    company: Company | None,
    category: str | None,
    language: str | None,
    stop_at_first: bool = True,
) -> list[RuleOutcome]:
    """Try the rules in order (RULE_STEP's); the first outcome with applied=True wins.

    Without `stop_at_first`, every rule's outcome, for `explain` to pick from."""
    outcomes: list[RuleOutcome] = []
    for step in (
        lambda: [thread_owner_rule(team, previous_owner_id)],
        lambda: [account_owner_rule(team, contact, company)],
        lambda: routing_rules(team, category, language),
        lambda: [least_busy_rule(team)],
        lambda: [fallback_rule(team)],
    ):
        for outcome in step():
            outcomes.append(outcome)
            if outcome.applied and stop_at_first:
                return outcomes
    return outcomes


def winner(outcomes: Sequence[RuleOutcome]) -> RuleOutcome:
    return next(o for o in outcomes if o.applied)


def decide(
    team: Team,
    *,
    previous_owner_id: int | None,
    contact: Contact | None,
    company: Company | None,
    category: str | None,
    language: str | None,
) -> RuleOutcome:
    """The winning rule for a conversation; the chosen rep's load goes up by one."""
    outcome = winner(
        evaluate(
            team,
            previous_owner_id=previous_owner_id,
            contact=contact,
            company=company,
            category=category,
            language=language,
        )
    )
    team.took_one(outcome.owner)
    return outcome


@dataclass(frozen=True)
class Explanation:
    """Why a conversation has its owner, agreeing with its latest stored assignment.

    `rules` are the rules that assignment tried, in order; the last is the
    stored rule and reason (rules after it were not reached, so they are not
    listed). With no assignment, `rules` is empty and `unassigned` says why.
    """

    rules: list[RuleOutcome]
    unassigned: str | None = None


def explain(
    session: Session,
    conversation_id: int,
    *,
    routes: Sequence[Route] = (),
    fallback_queue: str = "triage",
) -> Explanation:
    """The rules behind the conversation's latest assignment, ending with its stored rule and reason.

    The rules before the stored one are evaluated again at the assignment's
    time, with the owner the thread had before it; one that would pick someone
    today did not then, and says so. A manual choice or a re-route after a
    correction is its own explanation: no ordered rule was tried.
    """
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        raise LookupError(f"no conversation {conversation_id}")
    history = assignment_history(session, conversation_id)
    if not history:
        return Explanation([], _why_unassigned(session, conversation))
    latest = history[-1]
    owner = session.get(Rep, latest.owner_id) if latest.owner_id is not None else None
    decided = RuleOutcome(latest.rule, True, latest.reason, owner=owner, queue=latest.queue)
    if latest.rule not in RULE_STEP:
        return Explanation([decided])
    team = _team_around(session, conversation, now=latest.assigned_at, routes=routes, fallback_queue=fallback_queue)
    contact = session.get(Contact, conversation.contact_id) if conversation.contact_id else None
    company = session.get(Company, conversation.company_id) if conversation.company_id else None
    outcomes = evaluate(
        team,
        previous_owner_id=history[-2].owner_id if len(history) > 1 else None,
        contact=contact,
        company=company,
        category=conversation.category,
        language=conversation.language,
        stop_at_first=False,
    )
    return Explanation([*_tried_before(outcomes, decided), decided])


def _tried_before(outcomes: Sequence[RuleOutcome], decided: RuleOutcome) -> list[RuleOutcome]:
    """The outcomes of the rules tried before `decided`, the stored winner.

    Earlier steps did not apply then, whatever they say today. Inside the
    winner's own step (routing tries several routes) the outcomes before the
    first one that applies are shown only when that one is the stored pick.
    """
    step = RULE_STEP[decided.rule]
    earlier = [_not_then(o) for o in outcomes if RULE_STEP[o.rule] < step]
    same = [o for o in outcomes if RULE_STEP[o.rule] == step]
    first = next((i for i, o in enumerate(same) if o.applied), None)
    if first is None or not _same_pick(same[first], decided):
        return earlier
    return earlier + same[:first]


def _not_then(outcome: RuleOutcome) -> RuleOutcome:
    if not outcome.applied:
        return outcome
    return RuleOutcome(outcome.rule, False, f"did not apply when assigned; today: {outcome.reason}")


def _same_pick(a: RuleOutcome, b: RuleOutcome) -> bool:
    same_owner = (a.owner.id if a.owner else None) == (b.owner.id if b.owner else None)
    return a.rule == b.rule and same_owner and a.queue == b.queue


def _why_unassigned(session: Session, conversation: Conversation) -> str:
    if not conversation.is_automatic:
        return "never assigned: no assignment is stored for it"
    reason = session.exec(
        select(Message.automatic_reason)
        .where(Message.conversation_id == conversation.id, col(Message.is_automatic))
        .order_by(col(Message.received_at))
    ).first()
    return f"automatic mail, never assigned as work: {reason or 'no reason recorded'}"


def reroute(
    session: Session, conversation: Conversation, *, routes: Sequence[Route] = (), now: datetime | None = None
) -> RuleOutcome:
    """After a correction of the category: the rep the category and language routing picks now
    (applied), or why the conversation stays where it is (not applied).

    Only an owner who came from routing (skill, language, least busy, the fallback
    queue, an earlier re-route) is moved; when no routing rule picks anyone, the
    owner stays rather than being shuffled to whoever is least busy.
    """
    assert conversation.id is not None
    if conversation.status != "open":
        return RuleOutcome(REROUTE, False, f"the conversation is {conversation.status}; its owner stays")
    history = assignment_history(session, conversation.id)
    if not history:
        return RuleOutcome(REROUTE, False, "the conversation was never assigned (automatic mail)")
    last = history[-1]
    if last.rule in STICKY_RULES:
        return RuleOutcome(REROUTE, False, f"the owner stays: assigned by rule {last.rule} ({last.reason})")
    team = _team_around(session, conversation, now=now, routes=routes)
    picked = next((o for o in routing_rules(team, conversation.category, conversation.language) if o.applied), None)
    if picked is None or picked.owner is None:
        return RuleOutcome(REROUTE, False, f"the owner stays: no routing rule picks anyone for "
                                           f"{conversation.category} in {conversation.language or 'an unknown language'}")
    if picked.owner.id == conversation.owner_id:
        return RuleOutcome(REROUTE, False, f"the owner stays: {picked.reason}")
    return RuleOutcome(REROUTE, True, picked.reason, owner=picked.owner)


def _team_around(
    session: Session,
    conversation: Conversation,
    *,
    now: datetime | None,
    routes: Sequence[Route],
    fallback_queue: str = "triage",
) -> Team:
    """The team as it was before the conversation's owner took it: its load does not count against them."""
    team = Team.load_from(session, now=now, routes=routes, fallback_queue=fallback_queue)
    if conversation.owner_id is not None and conversation.status == "open":
        team.load[conversation.owner_id] = max(0, team.load.get(conversation.owner_id, 0) - 1)
    return team
