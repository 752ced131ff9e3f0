"""Training and evaluating the category textcat with spaCy (``nlp.update``)."""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import spacy
from spacy.language import Language
from spacy.pipeline import TextCategorizer
from spacy.tokens import Doc
from spacy.training import Example as SpacyExample
from spacy.util import fix_random_seed, minibatch
from thinc.api import Model, Optimizer
from thinc.types import Floats2d, FloatsXd

from nlp.architecture import fit_row_weights  # also registers rapport.NgramBagTextcat.v3
from nlp.data import DataError, Example, labels_of, split_held_out

Progress = Callable[[str], None]

# The architecture's settings; the default model and the benchmarks use these.
TEXTCAT_MODEL: dict[str, Any] = {
    "@architectures": "rapport.NgramBagTextcat.v3",  # v3: words only (v2 read punctuation too)
    "n_buckets": 262144,  # ten languages of character n-grams: fewer collisions than 65,536 (dev 0.884 -> 0.907 on mail)
    "char_min": 2,
    "char_max": 5,
}


# The category component's factory: spaCy's text categoriser with a batched set_annotations.
TEXTCAT_FACTORY = "rapport_textcat"


@dataclass(frozen=True)
class TrainSettings:
    """Optimiser settings, chosen on the dev part of our own mail (not on the evaluation mail).

    Plain SGD on the summed batch gradient, with averaged weights. Adam stopped short of the
    logistic-regression optimum on these sparse, normalised features (dev 0.928 from 9 epochs
    on; more epochs or weight decay did not help), while SGD reaches it (dev 0.944, as
    scikit-learn's solver on the same features: 0.941) in a third of the time; these three
    figures are with punctuation among the features (words only: 0.930-0.931). No gradient
    clipping: the hashed tables get sparse, small gradients. No weight decay: on every row
    each step it only lost accuracy (0.1: -0.01, 1: -0.02)."""

    epochs: int = 6  # dev 0.930 at 6, 0.931 at 12: half the training for the same model
    batch_size: int = 64  # dev 0.931; 128: 0.924; 256: 0.922-0.926
    learn_rate: float = 2.0  # dev 0.939-0.947 from 1 to 3 (with punctuation tokens)
    seed: int = 0
    textcat_model: dict[str, Any] = field(default_factory=lambda: dict(TEXTCAT_MODEL))


# The hidden part's settings, chosen on Banking77 trained on 7/8 of its train.csv and scored
# on the other eighth (the split `train_held_out` makes), never on its dev.csv: held-out
# accuracy 0.900 linear, 0.913 with the hidden part (nlp/README.md has the figures).
HIDDEN_PART: dict[str, Any] = {"hidden_width": 64, "hidden_buckets": 65536, "hidden_dropout": 0.5,
                               "hidden_learn_rate": 0.02}

# Pretrained word-piece vectors beside the n-grams (nlp.wordpieces), in the linear part and in
# the hidden part's input. On the same eighths of Banking77 (A / B / C), with the hidden part:
# 0.921 / 0.907 / 0.919, against 0.913 / 0.906 / 0.906 without. The scale was chosen on A with
# scikit-learn's logistic regression over the baseline's features, the learning rate on A
# with this model; nlp/README.md has every figure.
WORD_VECTORS: dict[str, Any] = {"word_vectors": "minilm", "word_vectors_scale": 2.0, "word_vectors_learn_rate": 0.3}

# What `rapport nlp train` tries on the held-out eighth of a file: the linear model (first, so
# it wins a tie), and the linear model with word vectors averaged with a hidden part. The
# hidden part learns combinations beyond single n-grams (Banking77's 77 close intents) and
# fits templated mail too closely (the default model is linear: on the dev part of our own
# data it scores 0.931, with the hidden part 0.908, before the vectors); the vectors know
# English words that no training text had. The held-out rows decide per data set.
CANDIDATES: tuple[TrainSettings, ...] = (
    TrainSettings(),
    TrainSettings(textcat_model={**TEXTCAT_MODEL, **WORD_VECTORS, **HIDDEN_PART}),
)


@dataclass(frozen=True)
class EvalResult:
    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    docs_per_s: float
    n: int
    calibration_error: float = 0.0  # expected calibration error of the top class's confidence

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, float]:
        return {"accuracy": self.accuracy, "macro_f1": self.macro_f1, "n": self.n,
                "calibration_error": self.calibration_error}


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    labels: list[str]
    epochs: int
    n_train: int
    dev: EvalResult | None
    seconds: float
    model_version: str
    temperature: float = 1.0


@dataclass(frozen=True)
class HeldOutScores:
    """What a model trained without its held-out rows learned about them: its scores there,
    and the temperature that calibrates its confidence. A model then trained on every row
    keeps both (it has no held-out rows of its own left)."""

    dev: EvalResult
    temperature: float


class RowwiseAveragedSGD(Optimizer):
    """thinc's ``SGD(learn_rate, use_averages=True)``, with the same weights and averages, but
    a step only touches the rows of a table that have a gradient (a batch reaches a few
    thousand of the 262,144 hashed rows): updating every row's moving average each step
    took two thirds of the training time.

    A row's weights stay put between its updates, so its average, an exponential moving
    average with thinc's decay ``d_t = min((1 + t) / (10 + t), 0.9999)``, moves towards them
    by the product of the decays meanwhile: that product is applied when the row next
    changes, or when the averages are read (``averages``)."""

    def __init__(self, learn_rate: float) -> None:
        self._kept: dict[Any, np.ndarray] = {}
        self._weights: dict[Any, np.ndarray] = {}
        self._synced: dict[Any, np.ndarray] = {}  # per row: the step its average is up to date with
        self._log_decay = np.zeros(1)  # cumulated log decay: entry t sums steps 1..t
        super().__init__(learn_rate, L2=0.0, beta1=0.0, beta2=0.0, grad_clip=0.0, use_averages=True)

    @property  # type: ignore[override]
    def averages(self) -> dict[Any, np.ndarray]:
        for key, synced in self._synced.items():
            rows = np.flatnonzero(synced < self.nr_update[key])
            self._catch_up(key, rows, self.nr_update[key])
        return self._kept

    @averages.setter
    def averages(self, value: dict[tuple[int, str], FloatsXd] | None) -> None:
        self._kept = cast(dict[Any, np.ndarray], value) if value is not None else {}

    def _decay_until(self, t: int) -> np.ndarray:
        if len(self._log_decay) <= t:
            steps = np.arange(len(self._log_decay), 2 * t + 2)
            more = np.log(np.minimum((1.0 + steps) / (10.0 + steps), 0.9999))
            self._log_decay = np.concatenate([self._log_decay, self._log_decay[-1] + np.cumsum(more)])
        return self._log_decay

    def _catch_up(self, key: Any, rows: np.ndarray, t: int) -> None:
        """Bring the rows' averages up to step ``t``; their weights have not changed since."""
        synced, weights, kept = self._synced[key], self._weights[key], self._kept[key]
        factor = np.exp(self._decay_until(t)[t] - self._log_decay[synced[rows]])
        factor = factor.reshape(-1, *[1] * (weights.ndim - 1))
        kept[rows] = weights[rows] + (kept[rows] - weights[rows]) * factor
        synced[rows] = t

    def __call__(
        self, key: Any, weights: FloatsXd, gradient: FloatsXd, *, lr_scale: float = 1.0
    ) -> tuple[FloatsXd, FloatsXd]:
        if len(gradient) < 1:
            return weights, gradient
        self.nr_update[key] += 1
        t = self.nr_update[key]
        rate = lr_scale * self.learn_rate
        if key not in self._kept:
            self._kept[key] = np.zeros(weights.shape, dtype="float32")
            self._synced[key] = np.zeros(len(weights), dtype="int64")
        self._weights[key] = weights_array = np.asarray(weights)
        grad = np.asarray(gradient)
        rows = np.flatnonzero(grad.reshape(len(grad), -1).any(axis=1))
        self._catch_up(key, rows, t - 1)
        weights_array[rows] -= rate * grad[rows]
        grad[rows] = 0
        decay = min((1.0 + t) / (10.0 + t), 0.9999)
        kept = self._kept[key]
        kept[rows] -= (1 - decay) * (kept[rows] - weights_array[rows])
        self._synced[key][rows] = t
        return weights, gradient


def train(
    examples: Sequence[Example],
    *,
    dev: Sequence[Example] | None,
    out_dir: Path,
    epochs: int | None = None,
    settings: TrainSettings | None = None,
    model_version: str | None = None,
    progress: Progress | None = None,
    held_out: HeldOutScores | None = None,
) -> TrainResult:
    """Train a category pipeline (blank English + textcat) and save it to ``out_dir``.

    With ``dev``, the model is scored on it and calibrated on it; with ``held_out`` instead,
    it keeps the scores and the calibration of an earlier model that held those rows out.

    ``out_dir`` is written atomically: a crash leaves either the old directory or the new one.
    """
    settings = settings or (TrainSettings(epochs=epochs) if epochs else TrainSettings())
    labels = labels_of(examples)
    if len(labels) < 2:
        raise DataError(f"training needs at least two labels, found {labels or 'none'}")
    started = time.perf_counter()
    fix_random_seed(settings.seed)
    nlp = blank_textcat_pipeline(settings.textcat_model)
    train_examples = _to_spacy_examples(nlp, examples, labels)
    nlp.initialize(lambda: train_examples)
    textcat_model = cast(TextCategorizer, nlp.get_pipe("textcat")).model
    fit_row_weights(textcat_model, [eg.reference for eg in train_examples])
    optimizer = RowwiseAveragedSGD(settings.learn_rate)
    rng = random.Random(settings.seed)
    dev_result = held_out.dev if held_out else None
    for epoch in range(1, settings.epochs + 1):
        rng.shuffle(train_examples)
        losses: dict[str, float] = {}
        for batch in minibatch(train_examples, settings.batch_size):
            nlp.update(batch, sgd=optimizer, losses=losses)
        line = f"epoch {epoch}/{settings.epochs}  loss {losses.get('textcat', 0.0):.3f}"
        if dev:
            with nlp.use_params(optimizer.averages):
                dev_result = evaluate_pipeline(nlp, dev)
            line += f"  dev accuracy {dev_result.accuracy:.4f}  macro-F1 {dev_result.macro_f1:.4f}"
        if progress:
            progress(line)
    version = model_version or f"trained-{int(time.time())}"
    with nlp.use_params(optimizer.averages):
        textcat = cast(RapportTextCategorizer, nlp.get_pipe("textcat"))
        if dev:
            textcat.cfg["temperature"] = fit_temperature(*_dev_scores(nlp, dev))
            dev_result = evaluate_pipeline(nlp, dev)
        elif held_out:
            textcat.cfg["temperature"] = held_out.temperature
        nlp.meta["rapport"] = {"model_version": version, "labels": labels, **training_record(dev_result)}
        if held_out:  # the dev scores are not this model's own
            nlp.meta["rapport"]["dev_of"] = "the same settings trained without the held-out rows"
        save_atomically(nlp, out_dir)
    return TrainResult(
        out_dir=out_dir,
        labels=labels,
        epochs=settings.epochs,
        n_train=len(examples),
        dev=dev_result,
        seconds=time.perf_counter() - started,
        model_version=version,
        temperature=float(textcat.cfg.get("temperature", 1.0)),
    )


def training_record(dev: EvalResult | None) -> dict[str, Any]:
    """What a model's meta keeps about its training: when, and its dev scores (`rapport nlp status`)."""
    scores = dev.summary() if dev is not None else None
    return {"trained_at": datetime.now(UTC).isoformat(timespec="seconds"), "dev": scores}


def train_held_out(
    examples: Sequence[Example],
    *,
    out_dir: Path,
    candidates: Sequence[TrainSettings] | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """What ``rapport nlp train`` does with a labelled file: an eighth of the rows (by a stable
    hash) is held out; each candidate setting (``CANDIDATES`` by default) trains on the rest
    and is scored there; the best one (the first on a tie) keeps its scores and calibration,
    and the model that is saved trains with it on every row: the held-out eighth is data it
    should learn from too. One training per candidate, plus the final one."""
    candidates = list(candidates or CANDIDATES)
    train_part, dev_part = split_held_out(examples)
    if not dev_part:
        return train(train_part, dev=None, out_dir=out_dir, settings=candidates[0], progress=progress)
    best: tuple[TrainSettings, TrainResult] | None = None
    seconds = 0.0
    for number, settings in enumerate(candidates, start=1):
        if progress:
            progress(f"candidate {number}/{len(candidates)}: {describe(settings)}")
            progress(f"training on {len(train_part)} rows, scoring on the {len(dev_part)} held out")
        with tempfile.TemporaryDirectory(prefix="rapport-scoring-") as scoring_dir:  # out_dir keeps its model meanwhile
            scored = train(train_part, dev=dev_part, out_dir=Path(scoring_dir), settings=settings, progress=progress)
        assert scored.dev is not None  # scored on dev_part
        seconds += scored.seconds
        if best is None or scored.dev.accuracy > cast(EvalResult, best[1].dev).accuracy:
            best = (settings, scored)
    assert best is not None
    settings, first = best
    if progress:
        progress(f"chosen: {describe(settings)} (held-out accuracy {cast(EvalResult, first.dev).accuracy:.4f})")
        progress(f"final model: training on all {len(examples)} rows (keeps the scores and calibration above)")
    final = train(
        examples, dev=None, out_dir=out_dir, settings=settings, progress=progress,
        model_version=first.model_version, held_out=HeldOutScores(cast(EvalResult, first.dev), first.temperature),
    )
    return replace(final, seconds=seconds + final.seconds)


def describe(settings: TrainSettings) -> str:
    """A candidate's shape in a few words, for progress lines."""
    width = settings.textcat_model.get("hidden_width", 0)
    shape = "linear + word vectors" if settings.textcat_model.get("word_vectors") else "linear"
    if width:
        shape += f" + hidden part ({width})"
    return f"{shape}, {settings.epochs} epochs"


class RapportTextCategorizer(TextCategorizer):
    """spaCy's ``TextCategorizer`` (same model, training and scoring) whose ``set_annotations``
    fills ``doc.cats`` from one conversion of the batch's scores instead of a NumPy
    scalar per label and doc (which cost as much as the model's forward pass on short mails).

    The scores are calibrated with the temperature fitted on held-out data at training time
    (``cfg["temperature"]``, saved with the model): a confidence of 0.8 is right about 8 times
    in 10. The ranking of the classes does not change."""

    def set_annotations(self, docs: Iterable[Doc], scores: Floats2d) -> None:
        labels = self.labels
        calibrated = calibrate(self.model.ops.to_numpy(scores), self.cfg.get("temperature", 1.0))
        for doc, row in zip(docs, calibrated.tolist(), strict=True):
            doc.cats.update(zip(labels, row, strict=True))


def calibrate(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature scaling of probabilities: softmax(log p / T)."""
    if temperature == 1.0:
        return probabilities
    logits = np.log(np.clip(probabilities, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return cast(np.ndarray, exp / exp.sum(axis=1, keepdims=True))


def fit_temperature(probabilities: np.ndarray, gold: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of the gold classes."""
    if len(gold) == 0:  # no held-out row has a label the model knows: nothing to calibrate on
        return 1.0
    candidates = np.geomspace(0.1, 10.0, 97)
    losses = [
        -np.log(np.clip(calibrate(probabilities, t)[np.arange(len(gold)), gold], 1e-12, 1.0)).mean()
        for t in candidates
    ]
    return float(candidates[int(np.argmin(losses))])


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float:
    """Mean gap between confidence and accuracy over equal-width confidence bins, weighted by size."""
    conf, hit = np.asarray(confidences, dtype=float), np.asarray(correct, dtype=float)
    which = np.minimum((conf * bins).astype(int), bins - 1)
    gap = sum(abs(conf[which == b].mean() - hit[which == b].mean()) * (which == b).sum()
              for b in range(bins) if (which == b).any())
    return float(gap / max(len(conf), 1))


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


def _dev_scores(nlp: Language, dev: Sequence[Example]) -> tuple[np.ndarray, np.ndarray]:
    """The textcat's uncalibrated probabilities on the dev texts, and each text's gold class index."""
    textcat = cast(RapportTextCategorizer, nlp.get_pipe("textcat"))
    index = {label: i for i, label in enumerate(textcat.labels)}
    known = [(text, label) for text, label in dev if label in index]
    docs = [nlp.make_doc(text) for text, _ in known]
    scores = textcat.model.ops.to_numpy(textcat.model.predict(docs))
    return scores, np.array([index[label] for _, label in known])


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
    gold = [label for _, label in examples]
    result = score(predicted, gold, docs_per_s=len(docs) / max(seconds, 1e-9))
    confidences = [max(doc.cats.values()) if doc.cats else 0.0 for doc in docs]
    correct = [p == g for p, g in zip(predicted, gold, strict=True)]
    return replace(result, calibration_error=expected_calibration_error(confidences, correct))


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
