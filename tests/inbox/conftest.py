"""Fixtures for the inbox tests: a migrated database, a classifier and ingest options."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from inbox.options import Classifier, IngestOptions
from store.db import make_engine, upgrade
from tests.inbox.helpers import NOW, CountingClassifier, KeywordClassifier


@pytest.fixture(scope="session")
def nlp_classifier(model_dir: Path) -> Classifier:
    """Rapport's real classifier (nlp.load_classifier), trained once and cached in .pytest_cache."""
    from nlp import load_classifier

    return load_classifier(None, cache_dir=model_dir)


@pytest.fixture
def classifier(nlp_classifier: Classifier) -> CountingClassifier:
    """The real classifier, counting its calls (the pipeline makes one per batch)."""
    return CountingClassifier(nlp_classifier)


@pytest.fixture
def keyword_classifier() -> KeywordClassifier:
    """A predictable classifier for the assignment rules, which depend on the category and language."""
    return KeywordClassifier()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'rapport.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def options() -> IngestOptions:
    return IngestOptions(now=NOW, own_addresses=("support@shop.example",))


