"""Rapport's store: SQLModel tables, engine and sessions, migrations and queries.

Imports nothing from Rapport's other packages.
"""

from store.db import make_engine, read_session, session_scope, upgrade
from store.models import *  # noqa: F403
from store.models import __all__ as _models
from store.types import UTCDateTime, utcnow

__all__ = ["UTCDateTime", "make_engine", "read_session", "session_scope", "upgrade", "utcnow", *_models]
