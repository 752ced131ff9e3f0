"""Process wiring: settings and config in, ready-to-use engine and classifier out.

Only this module (and the CLI) reads settings; `inbox`, `bot`, `nlp` and
`store` take plain parameters, so tests and entry points call them the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from rapport.config import AppConfig, load_config
from rapport.settings import Settings, load_settings
from store.db import current_revision, head_revision, make_engine, session_scope, upgrade
from store.reps import RepFields, upsert_rep

if TYPE_CHECKING:
    from nlp import Classifier

log = logging.getLogger("rapport")


@dataclass
class Runtime:
    """Everything a command needs, built lazily from settings and `rapport.toml`."""

    settings: Settings
    config: AppConfig
    _engine: Engine | None = field(default=None, repr=False)

    @classmethod
    def load(cls, settings: Settings | None = None) -> Runtime:
        settings = settings or load_settings()
        return cls(settings=settings, config=load_config(settings.config_file))

    @property
    def engine(self) -> Engine:
        """The database engine, with the schema upgraded and reps from the config synced."""
        if self._engine is None:
            engine = make_engine(self.settings.database_url)
            if current_revision(engine) != head_revision(engine):
                log.info("upgrading the database schema at %s", engine.url.render_as_string())
                upgrade(engine)
            if self.config.reps:
                sync_reps(engine, self.config)
            self._engine = engine
        return self._engine

    @cached_property
    def classifier(self) -> Classifier:
        from nlp import EntityPattern, load_classifier

        nlp_config = self.config.nlp
        return load_classifier(
            nlp_config.model,
            cache_dir=self.settings.model_dir,
            threshold=nlp_config.confidence_threshold,
            entity_patterns=[EntityPattern(p.label, p.pattern) for p in nlp_config.entity_patterns],
            languages=nlp_config.languages,
            progress=lambda line: log.info("%s", line),
        )


def sync_reps(engine: Engine, config: AppConfig) -> int:
    """Upsert the reps listed in `rapport.toml` (keyed by email); returns how many changed."""
    changed = 0
    with session_scope(engine) as session:
        for rep in config.reps:
            fields: RepFields = rep.model_dump()  # type: ignore[assignment]
            _, was_changed = upsert_rep(session, fields)
            changed += was_changed
    return changed
