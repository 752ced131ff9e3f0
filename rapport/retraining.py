"""A database's model: retrain it from the database's corrections, and say which model it uses.

The default model (shipped data only) is shared through the model cache; a
retrained model learned from one database's corrections and is kept in the cache
under that database's deployment id (`store.deployment`), so retraining one
database never changes what another one uses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nlp
from nlp.retraining import RETRAIN_TOLERANCE
from rapport.errors import RapportError
from rapport.wiring import Runtime
from store.corrections import corrections_by_language_and_category, last_correction_id, training_corrections
from store.db import read_session


def retrain_database(
    rt: Runtime,
    *,
    settings: nlp.TrainSettings | None = None,
    tolerance: float = RETRAIN_TOLERANCE,
    progress: Callable[[str], None] | None = None,
) -> nlp.RetrainResult:
    """Train on the shipped data plus this database's corrections; keep the result unless worse by more than the tolerance."""
    with read_session(rt.engine) as session:
        last = last_correction_id(session)
        corrections = training_corrections(session, through=last)
    if not corrections:
        raise RapportError("no corrections yet: fix categories with `rapport nlp correct` or in Slack first")
    cache_dir = rt.settings.model_dir
    current = nlp.active_model_path(cache_dir, deployment=rt.deployment, progress=progress)
    return nlp.retrain(
        corrections,
        current=current,
        out_dir=nlp.retrained_model_path(cache_dir, rt.deployment),
        settings=settings,
        source={"deployment": rt.deployment, "last_correction_id": last},
        tolerance=tolerance,
        progress=progress,
    )


@dataclass(frozen=True)
class ModelStatus:
    """What `rapport nlp status` shows."""

    deployment: str
    model: nlp.ModelInfo
    corrections: int  # all of this database's
    pending: list[tuple[str | None, str, int]]  # (language, category, count) not in the model yet

    @property
    def n_pending(self) -> int:
        return sum(n for _, _, n in self.pending)

    def to_json(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "model": self.model.to_json(),
            "corrections": {
                "total": self.corrections,
                "not_in_model": self.n_pending,
                "by_language_and_category": [
                    {"language": language, "category": category, "count": n} for language, category, n in self.pending
                ],
            },
        }


def model_status(rt: Runtime) -> ModelStatus:
    """The database's model (without training or loading it) and the corrections it has not learned."""
    info = nlp.model_info(rt.settings.model_dir, rt.deployment)
    learned = info.source.get("last_correction_id") if info.kind == "retrained" else None
    with read_session(rt.engine) as session:
        total = sum(n for _, _, n in corrections_by_language_and_category(session))
        pending = corrections_by_language_and_category(session, after=learned)
    return ModelStatus(rt.deployment, info, total, pending)
