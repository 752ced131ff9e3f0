"""This database's deployment id: made at random on first use, then read."""

from __future__ import annotations

import uuid

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from store.db import read_session, session_scope
from store.models import Deployment


def deployment_id(engine: Engine) -> str:
    """The database's id (32 hex digits), created on first use; every process reads the same one."""
    with read_session(engine) as session:
        found = session.exec(select(Deployment.deployment_id)).first()
    if found is not None:
        return found
    try:
        with session_scope(engine) as session:
            session.add(Deployment(deployment_id=uuid.uuid4().hex))
    except IntegrityError:
        pass  # another process made it first: its id is the one
    with read_session(engine) as session:
        return session.exec(select(Deployment.deployment_id)).one()
