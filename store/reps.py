"""Reps: upsert by email, look-ups used by assignment and Slack."""

from __future__ import annotations

from typing import Any, TypedDict

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from store.db import current_revision, read_session
from store.models import Rep


class RepFields(TypedDict, total=False):
    name: str
    email: str
    slack_user_id: str | None
    role: str
    team: str | None
    skills: list[str]
    languages: list[str]
    timezone: str
    working_hours: str
    capacity: int
    digest_via: list[str]
    digest_hour: int


def upsert_rep(session: Session, fields: RepFields | dict[str, Any]) -> tuple[Rep, bool]:
    """Create or update the rep with `fields["email"]`; returns (rep, changed)."""
    email = str(fields["email"]).strip().lower()
    rep = session.exec(select(Rep).where(Rep.email == email)).first()
    values = {k: v for k, v in dict(fields).items() if k in Rep.model_fields and k != "id"}
    values["email"] = email
    if rep is None:
        rep = Rep(**values)
        session.add(rep)
        session.flush()
        return rep, True
    changed = False
    for key, value in values.items():
        if getattr(rep, key) != value:
            setattr(rep, key, value)
            changed = True
    if changed:
        session.add(rep)
    return rep, changed


def rep_by_email(session: Session, email: str) -> Rep | None:
    return session.exec(select(Rep).where(Rep.email == email.strip().lower())).first()


def rep_by_slack_id(session: Session, slack_user_id: str) -> Rep | None:
    return session.exec(select(Rep).where(Rep.slack_user_id == slack_user_id)).first()


def reps_and_teams(engine: Engine) -> list[tuple[str, str | None]] | None:
    """Every rep's email and team (imported ones too: what a route may name); None when there is
    no database (asking creates none)."""
    if current_revision(engine) is None:
        return None
    with read_session(engine) as session:
        return [(email, team) for email, team in session.exec(select(Rep.email, Rep.team))]
