"""Retraining with reps' corrections: a worse candidate is refused, both scores shown."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import nlp
from nlp.data import shipped_examples
from nlp.retraining import RETRAIN_TOLERANCE, RetrainResult
from nlp.training import TEXTCAT_MODEL, EvalResult


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

    out_dir = nlp.retrained_model_path(private_cache, "db1")
    result = nlp.retrain(bad, current=current, out_dir=out_dir, settings=nlp.TrainSettings(epochs=3))

    assert not result.replaced
    assert result.candidate.accuracy < result.old.accuracy - 0.05
    summary = result.summary()
    assert f"current {result.old.accuracy:.4f}" in summary
    assert f"candidate {result.candidate.accuracy:.4f}" in summary
    assert "kept the current model" in summary
    after = nlp.load_classifier(None, cache_dir=private_cache, deployment="db1")
    assert after.model_version == before.model_version
    assert not out_dir.exists()


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

    out_dir = nlp.retrained_model_path(private_cache, "db1")
    # the default settings, as `rapport nlp retrain` runs it: fewer epochs would lose to the default model
    result = nlp.retrain(good, current=current, out_dir=out_dir, source={"last_correction_id": 3})

    assert result.replaced, result.summary()
    assert result.candidate.accuracy >= result.old.accuracy - RETRAIN_TOLERANCE
    assert result.model_path == private_cache / "current-db1"
    reloaded = nlp.load_classifier(None, cache_dir=private_cache, deployment="db1")
    assert reloaded.model_version == result.candidate_version
    assert "+retrained-" in reloaded.model_version
    info = nlp.model_info(private_cache, "db1")
    assert (info.kind, info.version, info.source) == ("retrained", result.candidate_version, {"last_correction_id": 3})
    # another database, and a process that names none, keep the default model
    assert nlp.load_classifier(None, cache_dir=private_cache, deployment="db2").model_version != reloaded.model_version
    assert nlp.active_model_path(private_cache) == current


def test_retrain_without_corrections_is_a_clear_error(private_cache: Path) -> None:
    with pytest.raises(nlp.DataError, match="no corrections"):
        nlp.retrain([], current=nlp.active_model_path(private_cache), out_dir=private_cache / "current-db1")


def test_a_deployment_id_cannot_leave_the_cache(tmp_path: Path) -> None:
    with pytest.raises(nlp.ModelError, match="deployment id"):
        nlp.retrained_model_path(tmp_path, "../elsewhere")


def test_regression_a_model_retrained_with_an_older_architecture_is_set_aside(private_cache: Path) -> None:
    """After the architecture changed, a deployment's model retrained before could not be loaded
    and stopped every command: the default model is used until `rapport nlp retrain`."""
    default = nlp.active_model_path(private_cache)
    old = nlp.retrained_model_path(private_cache, "db1")
    shutil.copytree(default, old)
    config = old / "config.cfg"
    config.write_text(config.read_text().replace(TEXTCAT_MODEL["@architectures"], "rapport.NgramBagTextcat.v2"))
    assert nlp.active_model_path(private_cache, deployment="db1") == default
    shutil.copy(default / "config.cfg", config)
    assert nlp.active_model_path(private_cache, deployment="db1") == old


def scores(accuracy: float) -> EvalResult:
    return EvalResult(accuracy, accuracy, {}, 0.0, 400)


@pytest.mark.parametrize(("candidate", "verdict"), [
    (0.9400, "replaced the current model (candidate not worse)"),
    (0.9260, "replaced the current model (candidate within the 0.01 tolerance for training noise)"),
    (0.9100, "kept the current model (candidate more than the 0.01 tolerance below it)"),
])
def test_regression_the_summary_says_the_rule_that_kept_or_replaced_the_model(candidate: float, verdict: str) -> None:
    """A slightly lower candidate replaces the model: the line says why, not just "replaced"."""
    result = RetrainResult(replaced=candidate >= 0.9313 - RETRAIN_TOLERANCE, old=scores(0.9313),
                           candidate=scores(candidate), old_version="a", candidate_version="b",
                           model_path=Path("m"), n_corrections=2, tolerance=RETRAIN_TOLERANCE)

    assert result.summary().endswith(verdict)
