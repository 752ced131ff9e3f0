"""One default model per test session, trained from the shipped data into a temp cache."""

from __future__ import annotations

from pathlib import Path

import pytest

import nlp


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model cache holding the trained default model (training takes seconds)."""
    cache = tmp_path_factory.mktemp("models")
    nlp.ensure_default_model(cache)
    return cache


@pytest.fixture(scope="session")
def classifier(model_cache: Path) -> nlp.Classifier:
    return nlp.load_classifier(None, cache_dir=model_cache)
