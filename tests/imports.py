"""CSV imports into a store whose model is Rapport's own, as most tests' stores are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from store.importing import ImportReport, import_csv
from store.validation import CATEGORIES


def import_builtin(engine: Engine, entity: str, path: Path, **options: Any) -> ImportReport:
    """`import_csv` with the built-in model's categories as the reps' skills (import_csv has no
    default: a team's own model has its own)."""
    return import_csv(engine, entity, path, categories=CATEGORIES, configured_reps=(), **options)
