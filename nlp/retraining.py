"""Retraining from reps' corrections, replacing the database's model unless the candidate is worse by more
than the tolerance for training noise."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import spacy

from nlp.data import DataError, Example, shipped_examples
from nlp.pipeline import default_model_version, model_version_of, retrained_model_path
from nlp.training import EvalResult, TrainSettings, evaluate_pipeline, save_atomically, train, training_record

# A correction is one rep's judgement on a real mail: it counts more than one synthetic example.
CORRECTION_WEIGHT = 3
# Two retrains on the same data differ by about one held-out example in 400.
RETRAIN_TOLERANCE = 0.01  # training noise: the same data in another order moves dev accuracy by ~0.007


@dataclass(frozen=True)
class RetrainResult:
    replaced: bool
    old: EvalResult
    candidate: EvalResult
    old_version: str
    candidate_version: str
    model_path: Path  # the model in use after the retrain
    n_corrections: int
    tolerance: float  # how far below the current accuracy a candidate may be and still replace it

    def summary(self) -> str:
        """Both scores and the verdict, with the rule that gave it (the tolerance, when it mattered)."""
        if not self.replaced:
            verdict = f"kept the current model (candidate more than the {self.tolerance} tolerance below it)"
        elif self.candidate.accuracy < self.old.accuracy:
            verdict = f"replaced the current model (candidate within the {self.tolerance} tolerance for training noise)"
        else:
            verdict = "replaced the current model (candidate not worse)"
        return (
            f"held-out accuracy: current {self.old.accuracy:.4f} ({self.old_version}), "
            f"candidate {self.candidate.accuracy:.4f} ({self.candidate_version}) on {self.old.n} examples; "
            f"{verdict}"
        )


def retrain(
    corrections: Sequence[Example],
    *,
    current: Path,
    out_dir: Path,
    settings: TrainSettings | None = None,
    tolerance: float = RETRAIN_TOLERANCE,
    source: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> RetrainResult:
    """Train on the shipped data plus corrections; install the candidate as ``out_dir`` if not worse.

    Old and candidate are scored on the shipped dev part, curated data that neither
    trained on. Corrections are not held out for the verdict: a wrong correction in
    the held-out part would reward the candidate that learned it. "Not worse" allows
    ``tolerance`` (accuracy) for training noise. The installed model's meta keeps its
    dev scores, when it was trained and ``source`` (e.g. the last correction it saw).
    """
    if not corrections:
        raise DataError("no corrections to retrain on")
    train_part = shipped_examples("train") + list(corrections) * CORRECTION_WEIGHT
    held_out = shipped_examples("dev")
    candidate_version = _candidate_version(model_version_of(spacy.load(current)), corrections)
    candidate_dir = out_dir.parent / "candidates" / candidate_version
    train(
        train_part,
        dev=held_out,  # calibrates the candidate's confidence, as the default model's
        out_dir=candidate_dir,
        settings=settings,
        model_version=candidate_version,
        progress=progress,
    )
    old_nlp, candidate_nlp = spacy.load(current), spacy.load(candidate_dir)
    old_score = evaluate_pipeline(old_nlp, held_out)
    candidate_score = evaluate_pipeline(candidate_nlp, held_out)
    replaced = candidate_score.accuracy >= old_score.accuracy - tolerance
    model_path = current
    if replaced:
        model_path = out_dir
        candidate_nlp.meta["rapport"].update(training_record(candidate_score), source=dict(source or {}))
        save_atomically(candidate_nlp, model_path)
    shutil.rmtree(candidate_dir, ignore_errors=True)
    return RetrainResult(
        replaced=replaced,
        old=old_score,
        candidate=candidate_score,
        old_version=model_version_of(old_nlp),
        candidate_version=candidate_version,
        model_path=model_path,
        n_corrections=len(corrections),
        tolerance=tolerance,
    )


def _candidate_version(base: str, corrections: Sequence[Example]) -> str:
    digest = hashlib.sha256("\n".join(f"{t}\t{c}" for t, c in sorted(corrections)).encode()).hexdigest()
    return f"{base.split('+retrained-')[0]}+retrained-{digest[:8]}"


@dataclass(frozen=True)
class ModelInfo:
    """The model a database uses, read from its meta.json without loading it."""

    kind: str  # "retrained" (this database's) or "default" (shared, from the shipped data)
    path: Path
    trained: bool  # False: the default model is trained on first use
    version: str | None
    trained_at: str | None  # ISO time; None for models saved before it was recorded
    dev: dict[str, float] | None  # accuracy, macro_f1, n on the shipped dev part, at training time
    source: dict[str, Any]  # what a retrained model learned from, e.g. last_correction_id

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": str(self.path), "trained": self.trained, "version": self.version,
                "trained_at": self.trained_at, "dev": self.dev, "source": self.source}


def model_info(cache_dir: Path, deployment: str) -> ModelInfo:
    """What `active_model_path` would choose for the deployment, without training anything."""
    retrained = retrained_model_path(cache_dir, deployment)
    if (retrained / "meta.json").is_file():
        kind, path = "retrained", retrained
    else:
        kind, path = "default", cache_dir / default_model_version()
    meta_file = path / "meta.json"
    if not meta_file.is_file():
        return ModelInfo(kind, path, False, None, None, None, {})
    meta = json.loads(meta_file.read_text(encoding="utf-8")).get("rapport") or {}
    return ModelInfo(kind, path, True, meta.get("model_version"), meta.get("trained_at"), meta.get("dev"),
                     meta.get("source") or {})
