"""The textcat architecture: its inference shortcuts (cached word rows, batch token reads)
must give exactly what a plain computation from the current weights gives."""

from __future__ import annotations

import pickle
from typing import cast

import numpy as np
import pytest
import spacy
from spacy.language import Language
from spacy.training import Example as SpacyExample
from spacy.util import fix_random_seed
from thinc.api import SGD, Optimizer

from nlp.architecture import WordTable, fit_row_weights
from nlp.doctext import batch_tokens
from nlp.training import (
    TEXTCAT_MODEL,
    WORD_VECTORS,
    RowwiseAveragedSGD,
    TrainSettings,
    blank_textcat_pipeline,
    calibrate,
    expected_calibration_error,
    fit_temperature,
)
from nlp.wordpieces import load_word_pieces

TRAIN = [
    ("Where is my order ORD-12345? It has not arrived.", "order_status"),
    ("My parcel is late, can you track it?", "order_status"),
    ("I want a refund for the broken chair.", "refund"),
    ("Please refund my money, the item is damaged.", "refund"),
    ("Can I get a quote for 200 office chairs?", "sales"),
    ("We would like pricing for a bulk purchase.", "sales"),
]
TEXTS = [
    "where is my parcel",
    "refund please, the table arrived broken",
    "pricing for 50 desks?",
    "",
    "Unbekannte Wörter überall, zzzqx",
]


def small_pipeline(**model: object) -> tuple[Language, list[SpacyExample]]:
    nlp = blank_textcat_pipeline({**TEXTCAT_MODEL, "n_buckets": 4096, **model})
    labels = sorted({label for _, label in TRAIN})
    examples = [
        SpacyExample.from_dict(nlp.make_doc(text), {"cats": {name: float(name == label) for name in labels}})
        for text, label in TRAIN
    ]
    nlp.initialize(lambda: examples)
    fit_row_weights(nlp.get_pipe("textcat").model, [example.reference for example in examples])  # as training does
    return nlp, examples


def train_step(nlp: Language, examples: list[SpacyExample], optimizer: Optimizer) -> None:
    nlp.update(examples, sgd=optimizer, drop=0.0)


# The linear model, the linear model averaged with a hidden part (without dropout, so
# that a training pass computes what inference does), and both with word vectors.
SHAPES = [
    {},
    {"hidden_width": 8, "hidden_buckets": 512, "hidden_dropout": 0.0},
    {"hidden_width": 8, "hidden_buckets": 512, "hidden_dropout": 0.0, **WORD_VECTORS},
]
SHAPE_IDS = ["linear", "hidden", "vectors"]


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_inference_shortcut_equals_the_training_computation(shape: dict[str, object]) -> None:
    nlp, examples = small_pipeline(**shape)
    train_step(nlp, examples, SGD(TrainSettings().learn_rate))
    model = nlp.get_pipe("textcat").model
    docs = [nlp.make_doc(t) for t in TEXTS]
    inferred = np.asarray(model.predict(docs))
    # The training pass sums every word's n-gram rows afresh (no cache).
    computed = np.asarray(model(docs, is_train=True)[0])
    assert np.allclose(inferred, computed, atol=1e-5)


def test_regression_cached_word_rows_follow_weight_updates() -> None:
    """The optimiser updates its averaged weights in place, and evaluating with them
    (``use_params``, as training does after each epoch) hands the same arrays back:
    cached word rows must not outlive a training step."""
    nlp, examples = small_pipeline()
    optimizer = SGD(TrainSettings().learn_rate, use_averages=True)
    model = nlp.get_pipe("textcat").model
    docs = [nlp.make_doc(t) for t in TEXTS]
    train_step(nlp, examples, optimizer)
    with nlp.use_params(optimizer.averages):
        before = np.asarray(model.predict(docs))  # fills the caches
    train_step(nlp, examples, optimizer)
    with nlp.use_params(optimizer.averages):
        after = np.asarray(model.predict(docs))
        computed = np.asarray(model(docs, is_train=True)[0])
    assert not np.allclose(before, after)
    assert np.allclose(after, computed, atol=1e-5)


def test_regression_refitted_piece_weights_reach_the_cached_word_vectors() -> None:
    """Each word's weighted piece vectors are cached at inference, keyed on the piece weights:
    weights fitted anew (other training texts) must not meet the old sums."""
    nlp, examples = small_pipeline(**SHAPES[2])
    train_step(nlp, examples, SGD(TrainSettings().learn_rate))
    model = nlp.get_pipe("textcat").model
    docs = [nlp.make_doc(t) for t in TEXTS]
    before = np.asarray(model.predict(docs))  # fills the caches
    fit_row_weights(model, [nlp.make_doc(t) for t in TEXTS])
    after = np.asarray(model.predict(docs))
    assert not np.allclose(before, after)
    assert np.allclose(after, np.asarray(model(docs, is_train=True)[0]), atol=1e-5)


def test_rowwise_averaged_sgd_gives_thincs_weights_and_averages() -> None:
    """It skips the rows without a gradient and catches their averages up later: the result
    must be thinc's SGD with averages, for tables, the hidden layer and biases alike."""
    results = []
    for optimizer in (SGD(2.0, grad_clip=0.0, use_averages=True), RowwiseAveragedSGD(2.0)):
        fix_random_seed(0)
        nlp, examples = small_pipeline(**SHAPES[1])
        for step in range(12):  # batches of two: most rows go untouched for several steps
            train_step(nlp, examples[step % 3 * 2 : step % 3 * 2 + 2], optimizer)
        model = nlp.get_pipe("textcat").model
        weights = [np.array(node.get_param(name)) for node in model.walk() for name in node.param_names
                   if node.has_grad(name)]
        averages = cast(dict, optimizer.averages)
        results.append((weights, [np.array(averages[key]) for key in sorted(averages)]))
    (thinc_weights, thinc_averages), (weights, averages) = results
    assert len(averages) == len(thinc_averages) == len(weights) == 4  # two tables, a bias, a layer
    for ours, theirs in zip(weights + averages, thinc_weights + thinc_averages, strict=True):
        assert np.allclose(ours, theirs, atol=1e-6)
    assert any(np.abs(average).max() > 0.01 for average in averages)


def test_punctuation_and_line_breaks_are_not_features() -> None:
    """Regression: our templated training mail told categories apart by punctuation and
    blank lines, which realistic mail does not share; only words and numbers count."""
    nlp, examples = small_pipeline()
    train_step(nlp, examples, SGD(TrainSettings().learn_rate))
    model = nlp.get_pipe("textcat").model
    plain, dressed = (nlp.make_doc(t) for t in ("my invoice 4411 is wrong", "> My invoice (4411) is $ wrong!!\n\n--"))
    scores = np.asarray(model.predict([plain, dressed]))
    assert np.allclose(scores[0], scores[1], atol=1e-6)
    assert not np.allclose(scores[0], np.asarray(model.predict([nlp.make_doc("my refund 4411 is late")]))[0])


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_saved_model_holds_weights_not_caches(shape: dict[str, object]) -> None:
    nlp, _ = small_pipeline(**shape)
    model = nlp.get_pipe("textcat").model
    size_before = len(model.to_bytes())
    model.predict([nlp.make_doc(t) for t in TEXTS * 20])  # fills word table and row caches
    assert len(model.to_bytes()) == size_before
    # A loaded copy classifies the same, with caches rebuilt on use.
    clone = pickle.loads(pickle.dumps(model))
    docs = [nlp.make_doc(t) for t in TEXTS]
    assert np.allclose(np.asarray(clone.predict(docs)), np.asarray(model.predict(docs)), atol=1e-6)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_word_table_starting_afresh_changes_no_score(shape: dict[str, object]) -> None:
    nlp, examples = small_pipeline(**shape)
    train_step(nlp, examples, SGD(TrainSettings().learn_rate))
    model = nlp.get_pipe("textcat").model
    docs = [nlp.make_doc(t) for t in TEXTS]
    expected = np.asarray(model.predict(docs))
    for node in model.walk():
        if isinstance(old := node.attrs.get("words"), WordTable):
            # Fewer than one batch's words; a new table, so its generations are new too.
            node.attrs["words"] = WordTable(2, 5, limit=8, word_vectors=old.word_vectors)
    for _ in range(3):
        assert np.allclose(np.asarray(model.predict(docs)), expected, atol=1e-6)


def test_word_table_gives_each_word_one_id() -> None:
    table = WordTable(2, 5)
    strings = spacy.blank("en").vocab.strings
    keys = np.array(sorted(strings.add(w) for w in ("alpha", "beta", "gamma")), dtype="uint64")
    ids, grams = table.lookup(keys, strings)
    again, _ = table.lookup(keys[1:], strings)
    assert sorted(ids.tolist()) == [0, 1, 2]
    assert again.tolist() == ids[1:].tolist()
    # "<beta>": 5 bigrams, 4 trigrams, 3 four-grams and 2 five-grams, all distinct.
    beta = ids[keys.tolist().index(strings["beta"])]
    assert grams.offsets[beta + 1] - grams.offsets[beta] == 14


@pytest.mark.parametrize("order", [[0, 1, 2], [2, 1, 0], [1, 2], [0]])
def test_batch_tokens_are_reused_only_for_the_same_batch(order: list[int]) -> None:
    nlp = spacy.blank("en")
    docs = [nlp.make_doc(t) for t in ("Hello world", "Order ORD-1 is late", "ok")]
    batch_tokens(docs)  # the pipeline's first batch
    batch = [docs[i] for i in order]
    tokens = batch_tokens(batch)
    expected = [nlp.vocab.strings[t.lower_] for doc in batch for t in doc]
    assert tokens.lower.tolist() == expected
    assert tokens.lengths.tolist() == [len(doc) for doc in batch]
    assert (tokens.unique[tokens.inverse] == tokens.lower).all()
    assert tokens.doc_of.tolist() == [i for i, doc in enumerate(batch) for _ in doc]


def test_fit_temperature_recovers_the_temperature_that_made_overconfident_scores() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (4000, 5))
    true = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    gold = np.array([rng.choice(5, p=row) for row in true])
    overconfident = calibrate(true, 0.5)  # as sharp as a model twice too sure of itself

    assert fit_temperature(overconfident, gold) == pytest.approx(2.0, rel=0.15)
    assert fit_temperature(true, gold) == pytest.approx(1.0, rel=0.15)


def test_expected_calibration_error_is_zero_when_confidence_matches_accuracy() -> None:
    confidences = [0.8] * 10 + [0.3] * 10
    correct = [True] * 8 + [False] * 2 + [True] * 3 + [False] * 7

    assert expected_calibration_error(confidences, correct) == pytest.approx(0.0)
    assert expected_calibration_error([0.9] * 10, [True] * 5 + [False] * 5) == pytest.approx(0.4)


def test_a_texts_vector_is_its_pieces_vectors_weighted_by_inverse_document_frequency() -> None:
    nlp, _ = small_pipeline(**SHAPES[2])
    model = nlp.get_pipe("textcat").model
    vectors = next(node for node in model.walk() if node.name == "text_vectors")
    bag = next(node for node in model.walk() if node.name == "ngram_bag").predict([nlp.make_doc(TEXTS[1])])
    vocabulary = load_word_pieces(WORD_VECTORS["word_vectors"])
    weights = np.asarray(vectors.get_param("W"))
    pieces = [piece for word in ("refund", "please", "the", "table", "arrived", "broken")
              for piece in vocabulary.split(word)]
    expected = sum(weights[piece] * vocabulary.vectors[piece] for piece in pieces)
    expected *= WORD_VECTORS["word_vectors_scale"] / np.linalg.norm(expected)
    assert np.allclose(np.asarray(vectors.predict(bag))[0], expected, atol=1e-5)
    # "is" is in three of the six training texts, "refund" in two, "table" in none: rarer weighs more.
    common, rarer, unseen = (vocabulary.split(word)[0] for word in ("is", "refund", "table"))
    assert weights[common] < weights[rarer] < weights[unseen] == weights.max()
    assert weights[vocabulary.unknown] == 0.0
