"""Training and evaluating the category textcat with spaCy (``nlp.update``)."""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import spacy
from spacy.language import Language
from spacy.pipeline import TextCategorizer
from spacy.tokens import Doc
from spacy.training import Example as SpacyExample
from spacy.util import fix_random_seed, minibatch
from thinc.api import Adam, Model
from thinc.types import Floats2d

from nlp import architecture  # noqa: F401  (registers rapport.NgramBagTextcat.v1)
from nlp.data import DataError, Example, labels_of

Progress = Callable[[str], None]

# The architecture's settings; the default model and the benchmarks use these.
TEXTCAT_MODEL: dict[str, Any] = {
    "@architectures": "rapport.NgramBagTextcat.v1",
    "width": 64,
    "hidden": 256,
    "n_buckets": 65536,
    "char_min": 2,
    "char_max": 5,
    "dropout": 0.2,
}


# The category component's factory: spaCy's text categoriser with a batched set_annotations.
TEXTCAT_FACTORY = "rapport_textcat"


@dataclass(frozen=True)
class TrainSettings:
    """Optimiser settings. No gradient clipping: the hashed tables get sparse, small gradients."""

    epochs: int = 6
    batch_size: int = 64
    learn_rate: float = 0.002
    l2: float = 0.01
    dropout: float = 0.2
    seed: int = 0
    textcat_model: dict[str, Any] = field(default_factory=lambda: dict(TEXTCAT_MODEL))


@dataclass(frozen=True)
class EvalResult:
    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    docs_per_s: float
    n: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    labels: list[str]
    epochs: int
    n_train: int
    dev: EvalResult | None
    seconds: float
    model_version: str


def train(
    examples: Sequence[Example],
    *,
    dev: Sequence[Example] | None,
    out_dir: Path,
    epochs: int = 6,
    settings: TrainSettings | None = None,
    model_version: str | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train a category pipeline (blank English + textcat) and save it to ``out_dir``.

    ``out_dir`` is written atomically: a crash leaves either the old directory or the new one.
    """
    settings = settings or TrainSettings(epochs=epochs)
    labels = labels_of(examples)
    if len(labels) < 2:
        raise DataError(f"training needs at least two labels, found {labels or 'none'}")
    started = time.perf_counter()
    fix_random_seed(settings.seed)
    nlp = blank_textcat_pipeline(settings.textcat_model)
    train_examples = _to_spacy_examples(nlp, examples, labels)
    nlp.initialize(lambda: train_examples)
    optimizer = Adam(settings.learn_rate, L2=settings.l2, grad_clip=0.0, use_averages=True)
    rng = random.Random(settings.seed)
    dev_result = None
    for epoch in range(1, settings.epochs + 1):
        rng.shuffle(train_examples)
        losses: dict[str, float] = {}
        for batch in minibatch(train_examples, settings.batch_size):
            nlp.update(batch, sgd=optimizer, losses=losses, drop=settings.dropout)
        line = f"epoch {epoch}/{settings.epochs}  loss {losses.get('textcat', 0.0):.3f}"
        if dev:
            with nlp.use_params(optimizer.averages):
                dev_result = evaluate_pipeline(nlp, dev)
            line += f"  dev accuracy {dev_result.accuracy:.4f}  macro-F1 {dev_result.macro_f1:.4f}"
        if progress:
            progress(line)
    version = model_version or f"trained-{int(time.time())}"
    nlp.meta["rapport"] = {"model_version": version, "labels": labels, **training_record(dev_result)}
    with nlp.use_params(optimizer.averages):
        save_atomically(nlp, out_dir)
    return TrainResult(
        out_dir=out_dir,
        labels=labels,
        epochs=settings.epochs,
        n_train=len(examples),
        dev=dev_result,
        seconds=time.perf_counter() - started,
        model_version=version,
    )


def training_record(dev: EvalResult | None) -> dict[str, Any]:
    """What a model's meta keeps about its training: when, and its dev scores (`rapport nlp status`)."""
    scores = {"accuracy": dev.accuracy, "macro_f1": dev.macro_f1, "n": dev.n} if dev is not None else None
    return {"trained_at": datetime.now(UTC).isoformat(timespec="seconds"), "dev": scores}


class RapportTextCategorizer(TextCategorizer):
    """spaCy's ``TextCategorizer`` (same model, training and scoring) whose ``set_annotations``
    fills ``doc.cats`` from one conversion of the batch's scores instead of a NumPy
    scalar per label and doc (which cost as much as the model's forward pass on short mails)."""

    def set_annotations(self, docs: Iterable[Doc], scores: Floats2d) -> None:
        labels = self.labels
        for doc, row in zip(docs, self.model.ops.to_numpy(scores).tolist(), strict=True):
            doc.cats.update(zip(labels, row, strict=True))


@Language.factory(
    TEXTCAT_FACTORY,
    assigns=["doc.cats"],
    default_config={
        "threshold": 0.0,
        "model": TEXTCAT_MODEL,
        "scorer": {"@scorers": "spacy.textcat_scorer.v2"},
    },
    default_score_weights={"cats_score": 1.0},
)
def make_rapport_textcat(
    nlp: Language, name: str, model: Model[list[Doc], Floats2d], threshold: float, scorer: Callable | None
) -> RapportTextCategorizer:
    return RapportTextCategorizer(nlp.vocab, model, name, threshold=threshold, scorer=scorer)


def blank_textcat_pipeline(model: dict[str, Any]) -> Language:
    nlp = spacy.blank("en")
    nlp.add_pipe(TEXTCAT_FACTORY, name="textcat", config={"model": model})
    return nlp


def _to_spacy_examples(nlp: Language, examples: Sequence[Example], labels: list[str]) -> list[SpacyExample]:
    return [
        SpacyExample.from_dict(nlp.make_doc(text), {"cats": {name: float(name == label) for name in labels}})
        for text, label in examples
    ]


def save_atomically(nlp: Language, out_dir: Path) -> None:
    """Write into a sibling temp directory, then swap it in."""
    out_dir = out_dir.resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    nlp.to_disk(tmp)
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}-old-{time.time_ns()}")
        out_dir.rename(old)
    tmp.rename(out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def evaluate_pipeline(nlp: Language, examples: Sequence[Example], *, batch_size: int = 256) -> EvalResult:
    """Accuracy, macro-F1 and per-class scores of the textcat's top label (no threshold)."""
    if not examples:
        raise DataError("no examples to evaluate")
    texts = [text for text, _ in examples]
    started = time.perf_counter()
    docs = list(nlp.pipe(texts, batch_size=batch_size))
    seconds = time.perf_counter() - started
    predicted = [max(doc.cats, key=doc.cats.__getitem__) if doc.cats else "" for doc in docs]
    return score(predicted, [label for _, label in examples], docs_per_s=len(docs) / max(seconds, 1e-9))


def score(predicted: Sequence[str], gold: Sequence[str], *, docs_per_s: float) -> EvalResult:
    """Accuracy and per-class precision/recall/F1 (macro-F1 over the gold classes)."""
    per_class = {}
    for label in sorted(set(gold)):
        tp = sum(p == g == label for p, g in zip(predicted, gold, strict=True))
        n_pred = sum(p == label for p in predicted)
        n_gold = sum(g == label for g in gold)
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_gold
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": n_gold}
    accuracy = sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold)
    macro_f1 = sum(c["f1"] for c in per_class.values()) / len(per_class)
    return EvalResult(accuracy, macro_f1, per_class, round(docs_per_s, 1), len(gold))
