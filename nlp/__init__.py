"""Rapport's NLP: a spaCy pipeline that sets category, language and entities on each mail.

Imports nothing of Rapport's other packages.
"""

import logging

from nlp.data import CATEGORIES, NEEDS_TRIAGE, DataError, read_examples, shipped_examples, split_held_out
from nlp.entities import EntityPattern, EntityPatternError
from nlp.language import DEFAULT_LANGUAGES, UnknownLanguageError
from nlp.pipeline import (
    Classification,
    Classifier,
    Entity,
    ModelError,
    active_model_path,
    default_cache_dir,
    ensure_default_model,
    evaluate,
    load_classifier,
    retrained_model_path,
)
from nlp.retrain import ModelInfo, RetrainResult, model_info, retrain
from nlp.training import CANDIDATES, EvalResult, TrainResult, TrainSettings, train, train_held_out

# spaCy's import adds a stream handler of its own: beside the application's, every spaCy log line
# came out twice. Its records still reach the application's handlers.
logging.getLogger("spacy").handlers.clear()

__all__ = [
    "CANDIDATES",
    "CATEGORIES",
    "DEFAULT_LANGUAGES",
    "NEEDS_TRIAGE",
    "Classification",
    "Classifier",
    "DataError",
    "Entity",
    "EntityPattern",
    "EntityPatternError",
    "EvalResult",
    "ModelError",
    "ModelInfo",
    "RetrainResult",
    "TrainResult",
    "TrainSettings",
    "UnknownLanguageError",
    "active_model_path",
    "default_cache_dir",
    "ensure_default_model",
    "evaluate",
    "load_classifier",
    "model_info",
    "read_examples",
    "retrain",
    "retrained_model_path",
    "shipped_examples",
    "split_held_out",
    "train",
    "train_held_out",
]
