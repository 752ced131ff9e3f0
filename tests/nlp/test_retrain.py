"""Retraining with reps' corrections: a worse candidate is refused, both scores shown."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import nlp
from nlp.data import shipped_examples


@pytest.fixture()
def private_cache(model_cache: Path, tmp_path: Path) -> Path:
    """A copy of the session cache, so a replaced model does not leak into other tests."""
    cache = tmp_path / "models"
    shutil.copytree(model_cache, cache)
    return cache


def test_corrections_that_make_the_model_worse_are_refused(private_cache: Path) -> None:
    current = nlp.active_model_path(private_cache)
    before = nlp.load_classifier(None, cache_dir=private_cache)
    # A careless rep "corrects" every refund and delivery mail of the training data to sales.
    bad = [
        (text, "sales") for text, category in shipped_examples("train") if category in {"refund", "delivery"}
    ]

    result = nlp.retrain(bad, current=current, cache_dir=private_cache, settings=nlp.TrainSettings(epochs=3))

    assert not result.replaced
    assert result.candidate.accuracy < result.old.accuracy - 0.05
    summary = result.summary()
    assert f"current {result.old.accuracy:.4f}" in summary
    assert f"candidate {result.candidate.accuracy:.4f}" in summary
    assert "kept the current model" in summary
    after = nlp.load_classifier(None, cache_dir=private_cache)
    assert after.model_version == before.model_version
    assert not (private_cache / "current").exists()


def test_sound_corrections_replace_the_model(private_cache: Path) -> None:
    current = nlp.active_model_path(private_cache)
    good = [
        ("Subject: quote\n\nWhat would 25 licences of the team plan cost per year?", "sales"),
        (
            "Subject: partner\n\nWe build e-shops and want to integrate and resell your service.",
            "partnership",
        ),
        ("Subject: where is it\n\nThe courier says delivered but there is no parcel at my door.", "delivery"),
    ]

    result = nlp.retrain(good, current=current, cache_dir=private_cache, settings=nlp.TrainSettings(epochs=5))

    assert result.replaced, result.summary()
    assert result.candidate.accuracy >= result.old.accuracy - 0.005
    assert result.model_path == private_cache / "current"
    reloaded = nlp.load_classifier(None, cache_dir=private_cache)
    assert reloaded.model_version == result.candidate_version
    assert "+retrained-" in reloaded.model_version


def test_retrain_without_corrections_is_a_clear_error(private_cache: Path) -> None:
    with pytest.raises(nlp.DataError, match="no corrections"):
        nlp.retrain([], current=nlp.active_model_path(private_cache), cache_dir=private_cache)
