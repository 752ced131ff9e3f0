"""Rapport's NLP: a spaCy pipeline that sets category, language and entities on each mail.

Imports nothing of Rapport's other packages. spaCy is imported with the first name that
needs it: a process that only asks which categories a model gives (`saved_categories`,
the Slack workers) or reads the shipped data's names does without it (55 MB, half a second).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from nlp.data import CATEGORIES, NEEDS_TRIAGE, DataError, read_examples, shipped_examples, split_held_out
from nlp.labels import ModelError, saved_categories

if TYPE_CHECKING:
    from nlp.entities import EntityPattern, EntityPatternError
    from nlp.language import DEFAULT_LANGUAGES, UnknownLanguageError
    from nlp.pipeline import (
        Classification,
        Classifier,
        Entity,
        active_model_path,
        default_cache_dir,
        ensure_default_model,
        evaluate,
        load_classifier,
        retrained_model_path,
    )
    from nlp.retraining import ModelInfo, RetrainResult, model_info, retrain
    from nlp.training import CANDIDATES, EvalResult, TrainResult, TrainSettings, train, train_held_out

# The modules that import spaCy, and so define the rest of `__all__`
_SPACY_MODULES = ("nlp.entities", "nlp.language", "nlp.pipeline", "nlp.retraining", "nlp.training")

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
    "saved_categories",
    "shipped_examples",
    "split_held_out",
    "train",
    "train_held_out",
]


def __getattr__(name: str) -> Any:
    """A name of `__all__` that needs spaCy: its modules are imported on first use."""
    if name in __all__:
        for module in map(importlib.import_module, _SPACY_MODULES):
            if name in vars(module):
                globals()[name] = value = vars(module)[name]
                return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
