"""The classifier: a spaCy pipeline with category, language and entity components."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import spacy
from spacy.language import Language
from spacy.pipeline import TextCategorizer
from spacy.tokens import Doc, Span
from spacy.util import minibatch

from nlp.data import NEEDS_TRIAGE, Example, shipped_data_digest, shipped_examples
from nlp.doctext import (
    TextKeepingTokenizer,
    batch_tokens,
    extension_key,
    find_sorted,
    set_extensions,
)
from nlp.entities import EntityPattern, EntityPatternError, EntityRecognizer
from nlp.labels import ModelError, is_model_dir, missing_model
from nlp.language import DEFAULT_LANGUAGES, LanguageDetectorComponent, UnknownLanguageError
from nlp.training import TEXTCAT_MODEL, EvalResult, TrainSettings, evaluate_pipeline, train

# Bump when a code change alters what the default model learns or outputs.
CODE_VERSION = "7"
DEFAULT_EPOCHS = TrainSettings.epochs
CURRENT_MODEL = "current"  # a retrained model's folder: current-{deployment id}
_DEPLOYMENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MIN_KNOWN_SHARE = 0.2  # names, companies and signatures are unknown words in any real mail
# spaCy refuses texts over 1,000,000 characters; the start of a mail decides its category.
MAX_CHARS = 100_000

CATEGORY_PIPE = "rapport_category"
LANGUAGE_PIPE = "rapport_language"
ENTITY_PIPE = "rapport_entities"
_RAPPORT_PIPES = (CATEGORY_PIPE, LANGUAGE_PIPE, ENTITY_PIPE)

for _name, _default in (("category", None), ("category_confidence", None), ("top_category", None),
                         ("language", None)):
    if not Doc.has_extension(_name):
        Doc.set_extension(_name, default=_default)
if not Span.has_extension("value"):
    Span.set_extension("value", default=None)
_CATEGORY_KEY, _CONFIDENCE_KEY = extension_key("category"), extension_key("category_confidence")
_TOP_KEY = extension_key("top_category")


@dataclass(frozen=True)
class Entity:
    label: str
    text: str
    start: int
    end: int
    value: str  # normalised, e.g. "EUR 120.00", "2026-11-23", "+421905123456"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Classification:
    category: str
    confidence: float  # the top category's, also when `category` is needs_triage
    language: str | None
    entities: list[Entity]
    model_version: str
    top_category: str  # the best-scoring category, which needs_triage hides below the threshold

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class CategoryComponent:
    """spaCy component: ``doc._.category`` from the textcat scores, ``needs_triage`` below the threshold.

    The textcat's scores are already calibrated on held-out mail. A guard stays for text unlike
    any mail: when fewer than ``MIN_KNOWN_SHARE`` of its words occurred in training (gibberish, a
    language the model was not trained on), the confidence is scaled down by that share.
    """

    def __init__(self, nlp: Language, threshold: float) -> None:
        self.threshold = threshold
        # Taken when the component is added, right after loading: the training vocabulary.
        self.known_words = np.unique(
            np.array(
                [nlp.vocab.strings[s] for s in nlp.vocab.strings if s.isalpha() and s.islower()],
                dtype="uint64",
            )
        )

    def __call__(self, doc: Doc) -> Doc:
        return next(self.pipe([doc]))

    def pipe(self, docs: Iterable[Doc], batch_size: int = 256) -> Iterator[Doc]:
        for batch in minibatch(docs, batch_size):
            yield from self._label(batch)

    def _label(self, docs: list[Doc]) -> list[Doc]:
        threshold = self.threshold
        categories, confidences, tops = [], [], []
        for doc, known_share in zip(docs, self.known_shares(docs).tolist(), strict=True):
            cats = doc.cats
            if cats:
                best = max(cats, key=cats.__getitem__)
                confidence = float(cats[best]) * min(1.0, known_share / MIN_KNOWN_SHARE)
                categories.append(best if confidence >= threshold else NEEDS_TRIAGE)
                confidences.append(confidence)
                tops.append(best)
            else:
                categories.append(NEEDS_TRIAGE)
                confidences.append(0.0)
                tops.append(NEEDS_TRIAGE)
        set_extensions(docs, _CATEGORY_KEY, categories)
        set_extensions(docs, _CONFIDENCE_KEY, confidences)
        set_extensions(docs, _TOP_KEY, tops)
        return docs

    def known_shares(self, docs: list[Doc]) -> np.ndarray:
        """Per doc, the share of its alphabetic words that occurred in training (one vectorised pass)."""
        tokens = batch_tokens(docs)
        _, found = find_sorted(self.known_words, tokens.unique)
        known = tokens.alpha & found[tokens.inverse]
        n_alpha = np.bincount(tokens.doc_of[tokens.alpha], minlength=len(docs))
        n_known = np.bincount(tokens.doc_of[known], minlength=len(docs))
        return n_known / np.maximum(n_alpha, 1)


@Language.factory(CATEGORY_PIPE, default_config={"threshold": 0.5})
def make_category(nlp: Language, name: str, threshold: float) -> CategoryComponent:
    return CategoryComponent(nlp, threshold)


@Language.factory(LANGUAGE_PIPE, default_config={"languages": list(DEFAULT_LANGUAGES)})
def make_language(nlp: Language, name: str, languages: list[str]) -> LanguageDetectorComponent:
    return LanguageDetectorComponent(languages)


@Language.factory(ENTITY_PIPE, default_config={"patterns": []})
def make_entities(nlp: Language, name: str, patterns: list[list[str]]) -> EntityRecognizer:
    return EntityRecognizer(nlp, [EntityPattern(label, pattern) for label, pattern in patterns])


class Classifier:
    """Classifies mail texts ("subject\\n\\nnew text") into category, language and entities."""

    def __init__(self, nlp: Language, model_version: str) -> None:
        self.nlp = nlp
        self.model_version = model_version

    @property
    def categories(self) -> list[str]:
        """The categories the model gives (its textcat's labels; a custom model has its own)."""
        return list(cast(TextCategorizer, self.nlp.get_pipe("textcat")).labels)

    def classify(self, texts: Sequence[str], *, batch_size: int = 256) -> list[Classification]:
        """One classification per text; only the first ``MAX_CHARS`` characters of a text are read."""
        clipped = (text[:MAX_CHARS] for text in texts)
        return [self.to_classification(doc) for doc in self.nlp.pipe(clipped, batch_size=batch_size)]

    def to_classification(self, doc: Doc) -> Classification:
        entities = [
            Entity(ent.label_, ent.text, ent.start_char, ent.end_char, ent._.value or ent.text)
            for ent in doc.ents
        ]
        return Classification(
            category=doc._.category,
            confidence=round(float(doc._.category_confidence), 4),
            language=doc._.language,
            entities=entities,
            model_version=self.model_version,
            top_category=doc._.top_category,
        )


def default_cache_dir() -> Path:
    """``$RAPPORT_MODEL_DIR`` or ``~/.cache/rapport/models``."""
    configured = os.environ.get("RAPPORT_MODEL_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "rapport" / "models"


def default_model_version(epochs: int = DEFAULT_EPOCHS) -> str:
    """Hash of the shipped data, the training settings and the code version."""
    settings = json.dumps({"model": TEXTCAT_MODEL, "epochs": epochs, "code": CODE_VERSION}, sort_keys=True)
    digest = hashlib.sha256((shipped_data_digest() + settings).encode()).hexdigest()
    return f"rapport-default-{digest[:12]}"


def ensure_default_model(
    cache_dir: Path, *, epochs: int = DEFAULT_EPOCHS, progress: Callable[[str], None] | None = None
) -> Path:
    """The default model's directory, training it from the shipped data on first use."""
    version = default_model_version(epochs)
    path = cache_dir / version
    if (path / "meta.json").is_file():
        return path
    if progress:
        progress(f"training Rapport's default model {version} (once; cached in {cache_dir})")
    train(
        shipped_examples("train"),
        dev=shipped_examples("dev"),
        out_dir=path,
        settings=TrainSettings(epochs=epochs),
        model_version=version,
        progress=progress,
    )
    return path


def retrained_model_path(cache_dir: Path, deployment: str) -> Path:
    """Where the model retrained from one database's corrections lives, named by that database's id.

    The default model (shipped data only) is shared by every database; a retrained
    one learned from one database's corrections and belongs to it alone.
    """
    if not _DEPLOYMENT_ID.fullmatch(deployment):
        raise ModelError(f"deployment id {deployment!r}: expected letters, digits, - and _ only")
    return cache_dir / f"{CURRENT_MODEL}-{deployment}"


def active_model_path(
    cache_dir: Path, *, deployment: str | None = None, progress: Callable[[str], None] | None = None
) -> Path:
    """The model ``load_classifier(None)`` uses: the deployment's retrained model, else the default one."""
    if deployment is not None:
        retrained = retrained_model_path(cache_dir, deployment)
        if (retrained / "meta.json").is_file() and has_current_architecture(retrained):
            return retrained
    return ensure_default_model(cache_dir, progress=progress)


def has_current_architecture(path: Path) -> bool:
    """Whether the saved model was built with today's architecture (an older one cannot be loaded:
    `rapport nlp retrain` makes it again)."""
    config = path / "config.cfg"
    return config.is_file() and TEXTCAT_MODEL["@architectures"] in config.read_text(encoding="utf-8")


def load_classifier(
    model: str | Path | None = None,
    *,
    cache_dir: Path,
    deployment: str | None = None,
    threshold: float = 0.5,
    entity_patterns: Sequence[EntityPattern] = (),
    languages: Sequence[str] = DEFAULT_LANGUAGES,
    progress: Callable[[str], None] | None = None,
) -> Classifier:
    """Load Rapport's model (``None``: the deployment's retrained one, else the default), a saved
    pipeline (a directory) or an installed spaCy pipeline (a name).

    Every problem a user can fix (missing model, bad entity pattern, unknown language) is a ``ModelError``.
    """
    if model is None:
        nlp = _load_path(active_model_path(cache_dir, deployment=deployment, progress=progress))
    elif is_model_dir(model):
        nlp = _load_path(Path(model).expanduser())
    else:
        nlp = _load_installed(str(model), cache_dir, deployment, progress)
    try:
        _attach_components(nlp, threshold, entity_patterns, languages)
    except (EntityPatternError, UnknownLanguageError) as exc:
        raise ModelError(str(exc)) from None
    return Classifier(nlp, model_version_of(nlp))


def model_version_of(nlp: Language) -> str:
    rapport_meta = nlp.meta.get("rapport") or {}
    return (
        rapport_meta.get("model_version")
        or f"{nlp.meta.get('name', 'pipeline')}-{nlp.meta.get('version', '0')}"
    )


def _load_path(path: Path) -> Language:
    if not (path / "config.cfg").is_file():
        raise ModelError(f"{path}: not a saved spaCy pipeline (no config.cfg)")
    try:
        return spacy.load(path)
    except (OSError, ValueError, KeyError) as exc:
        # KeyError: saved with a different version of the architecture.
        raise ModelError(f"{path}: cannot load the pipeline: {exc}") from None


def _load_installed(
    name: str, cache_dir: Path, deployment: str | None, progress: Callable[[str], None] | None
) -> Language:
    try:
        nlp = spacy.load(name)
    except OSError:
        raise missing_model(name) from None
    if "textcat" not in nlp.pipe_names:
        # Category comes from Rapport's own textcat; the user's pipeline adds tagging, NER etc.
        rapport_nlp = _load_path(active_model_path(cache_dir, deployment=deployment, progress=progress))
        nlp.add_pipe("textcat", source=rapport_nlp)
        nlp.meta["rapport"] = {
            "model_version": f"{name}+{model_version_of(rapport_nlp)}",
            "labels": list(cast(TextCategorizer, rapport_nlp.get_pipe("textcat")).labels),
        }
    return nlp


def _attach_components(
    nlp: Language, threshold: float, entity_patterns: Sequence[EntityPattern], languages: Sequence[str]
) -> None:
    """(Re)add Rapport's components with this load's settings, after the pipeline's own."""
    if not isinstance(nlp.tokenizer, TextKeepingTokenizer):
        nlp.tokenizer = TextKeepingTokenizer(nlp.tokenizer)
    for name in _RAPPORT_PIPES:
        if name in nlp.pipe_names:
            nlp.remove_pipe(name)
    nlp.add_pipe(CATEGORY_PIPE, config={"threshold": threshold})
    nlp.add_pipe(LANGUAGE_PIPE, config={"languages": list(languages)})
    nlp.add_pipe(ENTITY_PIPE, config={"patterns": [[p.label, p.pattern] for p in entity_patterns]})


def evaluate(classifier_or_path: Classifier | Path | str, examples: Sequence[Example]) -> EvalResult:
    """Score a classifier (or a saved model directory) on (text, label) examples.

    Accuracy counts the textcat's top label, whatever the threshold; ``docs_per_s``
    is the whole pipeline's (category, language, entities).
    """
    if isinstance(classifier_or_path, Classifier):
        classifier = classifier_or_path
    else:
        classifier = load_classifier(Path(classifier_or_path), cache_dir=default_cache_dir())
    return evaluate_pipeline(classifier.nlp, examples)
