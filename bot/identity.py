"""Who is who: Slack users to reps and back, and what a rep may see."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import String, bindparam, cast, func
from sqlalchemy.engine import Engine
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from store.db import is_read_only, read_session, session_scope
from store.models import Rep, Role
from store.owners import is_visible, owner_id_of
from store.reps import rep_by_email, rep_by_slack_id

log = logging.getLogger(__name__)
MANAGER_ROLES = frozenset({Role.manager, Role.admin})


def unknown_user_text(command: str = "/crm") -> str:
    return (
        "I don't know you yet: your Slack account is not linked to a Rapport rep. "
        "Ask an admin to add your work email to the `reps` in rapport.toml "
        f"(or set your `slack_user_id` there), then try `{command}` again."
    )


def rep_id_for_slack_user(engine: Engine, user_id: str, email_of: Callable[[str], str | None] | None = None
                          ) -> int | None:
    """The active rep behind a Slack user: by stored Slack id, else by the email Slack has for
    them (`email_of`: `SlackSender.user_email`, users.info through the one sender), remembered.
    Slack is asked outside any transaction; a rate limit (notify.RateLimited) reaches the caller."""
    with read_session(engine) as session:
        rep = rep_by_slack_id(session, user_id)
    if rep is not None or email_of is None:
        return rep.id if rep is not None and rep.active else None
    email = email_of(user_id)
    if not email:
        return None
    with session_scope(engine) as session:
        rep = rep_by_email(session, email)
        if rep is None or not rep.active or rep.id is None:
            return None
        remember_slack_id(session, rep.id, user_id)
        return rep.id


class RepIds:
    """`rep_id_for_slack_user` for every request from a person, remembered for `ttl` seconds: a
    burst of clicks asks the database once. A rep deactivated (or re-linked) elsewhere is
    refused within `ttl`; an unknown user is never remembered (they may be added any moment)."""

    def __init__(self, engine: Engine, email_of: Callable[[str], str | None] | None, *, ttl: float = 30.0) -> None:
        self.engine, self.email_of, self.ttl = engine, email_of, ttl
        self._known: dict[str, tuple[int, float]] = {}  # Slack user -> (rep id, when looked up); GIL-atomic ops

    def __call__(self, user_id: str) -> int | None:
        now = time.monotonic()
        known = self._known.get(user_id)
        if known is not None and now - known[1] < self.ttl:
            return known[0]
        rep_id = rep_id_for_slack_user(self.engine, user_id, self.email_of)
        if rep_id is None:
            self._known.pop(user_id, None)
        else:
            self._known[user_id] = (rep_id, now)
        return rep_id


def note_slack_id(session: Session, rep: Rep, user_id: str) -> None:
    """A Slack id Slack gave for a rep that has none (users.lookupByEmail). In a read-only session
    (the outbox dispatcher sends outside the write lock) it is only set on `rep`; the caller saves
    it later with `remember_slack_id`."""
    if rep.slack_user_id:
        return
    if is_read_only(session):
        set_committed_value(rep, "slack_user_id", user_id)  # not a pending change: nothing to flush
    elif rep.id is not None:
        remember_slack_id(session, rep.id, user_id)


def remember_slack_id(session: Session, rep_id: int, user_id: str) -> None:
    """Store a Slack id found for a rep that has none, unless another rep already has it."""
    rep = session.get(Rep, rep_id)
    if rep is None or rep.slack_user_id is not None or rep_by_slack_id(session, user_id) is not None:
        return
    rep.slack_user_id = user_id
    session.add(rep)
    session.flush()


def is_manager(rep: Rep) -> bool:
    return rep.role in MANAGER_ROLES


def visible_owner_ids(session: Session, rep: Rep) -> set[int] | None:
    """Owners whose records `rep` sees: None (everyone) for managers, else the rep and their team."""
    if is_manager(rep):
        return None
    return team_member_ids(session, rep)


def team_member_ids(session: Session, rep: Rep) -> set[int]:
    """The rep and the reps of their team. A team's members are read once per session: one
    request asks several times (the middleware's check, the search, the card's)."""
    ids = {rep.id} if rep.id is not None else set()
    if rep.team:
        teams = _teams_read(session)
        if rep.team not in teams:
            teams[rep.team] = frozenset(
                i for i in session.exec(_TEAM_MEMBERS, params={"team": rep.team}) if i is not None)
        ids |= teams[rep.team]
    return ids


_TEAM_MEMBERS = select(Rep.id).where(col(Rep.team) == bindparam("team"))  # built once (issue 15)


def rep_with_team(session: Session, rep_id: int) -> Rep | None:
    """The rep, their team's members read in the same statement: a request from a rep asks for
    both, and a statement is most of a request's CPU (issue 15)."""
    row = session.execute(_REP_WITH_TEAM, {"rep_id": rep_id}).first()
    if row is None:
        return None
    rep, members = row
    if rep.team:
        _teams_read(session).setdefault(rep.team, frozenset(int(i) for i in (members or "").split(",") if i))
    return rep


_MEMBER = aliased(Rep)
_REP_WITH_TEAM = select(  # built once; the members as "1,4,7" (string_agg, or SQLite's group_concat)
    Rep,
    select(func.aggregate_strings(cast(col(_MEMBER.id), String), ","))
    .where(col(_MEMBER.team) == col(Rep.team))
    .scalar_subquery(),
).where(col(Rep.id) == bindparam("rep_id"))


def _teams_read(session: Session) -> dict[str, frozenset[int]]:
    teams: dict[str, frozenset[int]] = session.info.setdefault("rapport_teams", {})
    return teams


def teams_read(session: Session) -> dict[str, frozenset[int]]:
    """The teams `session` has read, for a later session of the same request (`reuse_teams`)."""
    return dict(_teams_read(session))


def reuse_teams(session: Session, teams: dict[str, frozenset[int]]) -> None:
    """Teams an earlier session of this request read: `team_member_ids` does not ask again."""
    _teams_read(session).update(teams)


def can_see(session: Session, rep: Rep, owner_id: int | None) -> bool:
    return is_visible(owner_id, visible_owner_ids(session, rep))


def can_see_contact(session: Session, rep: Rep, contact_id: int) -> bool:
    """May `rep` see this contact? Decided on its effective owner (store/owners.py)."""
    return can_see(session, rep, owner_id_of(session, contact_id))


def actable_owner_ids(session: Session, rep: Rep) -> set[int] | None:
    """Owners whose records `rep` may change: None (everyone) for admins and managers without a
    team, else the rep and their team. Managers read everyone's records but act on their team's."""
    if rep.role == Role.admin or (is_manager(rep) and not rep.team):
        return None
    return team_member_ids(session, rep)


def may_act_on(session: Session, rep: Rep, owner_id: int | None) -> bool:
    """Whether `rep` may change a record with this owner (None: unowned, in a queue: anyone may)."""
    actable = actable_owner_ids(session, rep)
    return actable is None or owner_id is None or owner_id in actable


def managers_of(session: Session, rep: Rep | None) -> list[Rep]:
    """The rep's team managers, else every manager (someone must hear about an escalation)."""
    query = select(Rep).where(col(Rep.role).in_(list(MANAGER_ROLES)), Rep.active == True)  # noqa: E712
    managers = list(session.exec(query.order_by(col(Rep.id))).all())
    if rep is not None and rep.team:
        team = [m for m in managers if m.team == rep.team]
        if team:
            return team
    return managers


def active_reps(session: Session) -> list[Rep]:
    return list(session.exec(select(Rep).where(Rep.active == True).order_by(col(Rep.name))).all())  # noqa: E712
