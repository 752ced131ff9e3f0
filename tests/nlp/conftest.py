"""One default model per test session: the one `model_dir` trained, copied into a temp cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import nlp


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Path:
    """A model cache of this session's own holding the trained default model (a copy: training
    takes minutes, and the tests here install retrained models beside it)."""
    cache = tmp_path_factory.mktemp("models")
    default = nlp.ensure_default_model(model_dir)
    shutil.copytree(default, cache / default.name)
    return cache


@pytest.fixture(scope="session")
def classifier(model_cache: Path) -> nlp.Classifier:
    return nlp.load_classifier(None, cache_dir=model_cache)
