"""Rapport's text-classification architecture for spaCy's ``textcat``.

A "wide and deep" bag of hashed n-grams: every doc becomes a bag of word
unigrams, word bigrams and character n-grams of each word (with word-boundary
markers, so sub-words such as "refund" in "refunded" are shared). The bag feeds

* a wide part: a hashed linear layer straight to the class logits, and
* a deep part: a hashed embedding bag -> ReLU hidden layer -> class logits,

whose logits are summed and soft-maxed (several such heads can form an
ensemble). It is registered as a spaCy architecture, so it is trained by spaCy
(``nlp.update``) like any textcat model. At inference each word's summed
character n-gram rows are cached, so a doc costs a few table rows per word.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, cast

import numpy as np
from spacy.strings import get_string_id as hash_string
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Linear, Model, Relu, add, chain
from thinc.types import Floats2d

from nlp.doctext import LOWER_COLUMN, token_attrs


class Bag(NamedTuple):
    """A batch's features. Word uni/bigrams (and a bias) are single hashes; each word's
    character n-grams form a group, so inference can cache a word's summed rows."""

    hashes: np.ndarray  # uint64, grouped by doc
    weights: np.ndarray  # float32, one per hash
    lengths: np.ndarray  # hashes per doc (>= 1: the bias)
    unique_words: np.ndarray  # uint64 word keys of the batch, each once
    word_index: np.ndarray  # for each word of each doc (grouped by doc), its place in unique_words
    word_weights: np.ndarray  # float32 weight of each word's n-grams (its doc's char weight)
    word_lengths: np.ndarray  # words per doc
    grams: dict[int, np.ndarray]  # word key -> hashes of its character n-grams


# Inference caches of summed n-gram rows per word stay below this many words.
_WORD_CACHE_LIMIT = 200_000

_BIGRAM_MIX = np.uint64(0x9E3779B97F4A7C15)
_CHAR_SALT = "\x01c"
_DOC_BIAS = np.uint64(hash_string("\x01doc"))
_NO_HASHES = np.zeros(0, dtype="uint64")


@registry.architectures("rapport.NgramBagTextcat.v1")
def build_ngram_bag_textcat(
    width: int = 64,
    hidden: int = 256,
    n_buckets: int = 262144,
    char_min: int = 2,
    char_max: int = 5,
    dropout: float = 0.2,
    n_heads: int = 1,
    nO: int | None = None,
) -> Model[list[Doc], Floats2d]:
    """Wide (hashed linear) + deep (hashed embedding bag, ReLU) text classifier.

    With ``n_heads`` > 1 it is an ensemble: heads with their own hash seeds (so
    their collisions differ), each trained on its own cross-entropy, whose
    probabilities are averaged.
    """
    heads: list[Model[Bag, Floats2d]] = []
    refs: dict[str, Model | None] = {}
    for head in range(n_heads):
        output = Linear(nO)
        deep: Model[Bag, Floats2d] = chain(
            hashed_bag(width, n_buckets, seed=2 * head + 1, init_scale=0.1),
            Relu(hidden, dropout=dropout),
            output,
        )
        wide = hashed_bag(nO, n_buckets, seed=2 * head + 2, init_scale=0.0)
        heads.append(add(deep, wide))
        refs[f"output{head}"], refs[f"wide{head}"] = output, wide
    inner: Model[list[Doc], Floats2d] = chain(ngram_bag(char_min, char_max), averaged_softmax(heads))
    model: Model[list[Doc], Floats2d] = Model(
        "rapport_ngram_bag_textcat",
        _outer_forward,
        init=_init_outer,
        layers=[inner],
        dims={"nO": nO},
        refs=refs,
        attrs={"multi_label": False},
    )
    return model


def _outer_forward(model: Model, docs: list[Doc], is_train: bool) -> tuple[Floats2d, Callable]:
    return model.layers[0](docs, is_train)


def _init_outer(model: Model, X: list[Doc] | None = None, Y: Floats2d | None = None) -> None:
    # chain() hands Y only to its last layer; the class count must reach every head's output.
    if Y is not None and not model.has_dim("nO"):
        model.set_dim("nO", Y.shape[1])
    n_classes = model.get_dim("nO")
    for name in model.ref_names:
        layer = model.get_ref(name)
        if not layer.has_dim("nO"):
            layer.set_dim("nO", n_classes)
    model.layers[0].initialize(X=X)


def ngram_bag(char_min: int, char_max: int) -> Model[list[Doc], Bag]:
    """Docs -> bag of hashed word uni/bigrams and per-word character n-grams."""
    return Model(
        "ngram_bag",
        _ngram_bag_forward,
        attrs={"char_min": char_min, "char_max": char_max, "char_cache": {}},
    )


def _ngram_bag_forward(model: Model, docs: list[Doc], is_train: bool) -> tuple[Bag, Callable]:
    n_docs = len(docs)
    attrs, n_words = token_attrs(docs)
    words = np.ascontiguousarray(attrs[:, LOWER_COLUMN])
    word_doc = np.repeat(np.arange(n_docs), n_words)
    # Bigrams over the whole batch, minus the pairs that straddle two docs.
    same_doc = word_doc[:-1] == word_doc[1:]
    bigrams = ((words[:-1] * _BIGRAM_MIX) ^ words[1:])[same_doc]
    bigram_doc = word_doc[:-1][same_doc]
    unique_words, word_index = np.unique(words, return_inverse=True)
    grams = _char_ngrams(model, docs, unique_words)
    unique_counts = np.array([len(grams[key]) for key in unique_words.tolist()], dtype="int64")
    n_grams = unique_counts[word_index]
    # Each group is scaled like an L2-normalised count vector, so long mails
    # and short ones give features of the same magnitude.
    n_word_features = np.bincount(word_doc, minlength=n_docs) + np.bincount(bigram_doc, minlength=n_docs)
    word_weight = 1.0 / np.sqrt(np.maximum(n_word_features, 1))
    char_weight = 1.0 / np.sqrt(np.maximum(np.bincount(word_doc, weights=n_grams, minlength=n_docs), 1))
    hashes = np.concatenate([np.full(n_docs, _DOC_BIAS, dtype="uint64"), words, bigrams])
    doc_of = np.concatenate([np.arange(n_docs), word_doc, bigram_doc])
    weights = np.concatenate([np.ones(n_docs), word_weight[word_doc], word_weight[bigram_doc]])
    order = np.argsort(doc_of, kind="stable")
    bag = Bag(
        hashes=hashes[order],
        weights=weights[order].astype("float32"),
        lengths=np.bincount(doc_of, minlength=n_docs),
        unique_words=unique_words,
        word_index=word_index.reshape(-1),
        word_weights=char_weight[word_doc].astype("float32"),
        word_lengths=n_words,
        grams=grams,
    )
    return bag, lambda d_bag: []


def _char_ngrams(model: Model, docs: list[Doc], unique_words: np.ndarray) -> dict[int, np.ndarray]:
    """Character n-grams of each word, cached per word (the vocabulary of mail is small)."""
    cache: dict[int, np.ndarray] = model.attrs["char_cache"]
    if len(cache) > _WORD_CACHE_LIMIT:
        cache.clear()
    for key in set(unique_words.tolist()) - cache.keys():
        word = docs[0].vocab.strings[key]
        cache[key] = _word_char_ngrams(word, model.attrs["char_min"], model.attrs["char_max"])
    return cache


def _word_char_ngrams(word: str, char_min: int, char_max: int) -> np.ndarray:
    marked = f"<{word}>"
    grams = {marked[i : i + n] for n in range(char_min, char_max + 1) for i in range(len(marked) - n + 1)}
    return np.array([hash_string(_CHAR_SALT + g) for g in grams], dtype="uint64")


def hashed_bag(nO: int | None, n_buckets: int, *, seed: int, init_scale: float) -> Model[Bag, Floats2d]:
    """Weighted sum of hashed table rows per doc (an embedding bag / sparse linear layer)."""
    return Model(
        "hashed_bag",
        _hashed_bag_forward,
        init=_init_hashed_bag,
        dims={"nO": nO, "nV": n_buckets},
        params={"E": None},
        attrs={"seed": seed, "init_scale": init_scale, "word_rows": {"table": None, "index": {}}},
    )


def _init_hashed_bag(model: Model, X: Bag | None = None, Y: Floats2d | None = None) -> None:
    if Y is not None and not model.has_dim("nO"):
        model.set_dim("nO", Y.shape[1])
    shape = (model.get_dim("nV"), model.get_dim("nO"))
    scale = model.attrs["init_scale"]
    rng = np.random.default_rng(model.attrs["seed"])
    table = rng.normal(0.0, scale, shape) if scale else np.zeros(shape)
    model.set_param("E", cast(Floats2d, table.astype("float32")))


def _hashed_bag_forward(model: Model, bag: Bag, is_train: bool) -> tuple[Floats2d, Callable]:
    table: np.ndarray = np.asarray(model.get_param("E"))
    seed = model.attrs["seed"]
    rows = _rows(bag.hashes, seed, table.shape[0])
    # Every doc has at least its bias feature, so reduceat's segments are never empty.
    out = np.add.reduceat(_weighted_rows(table, rows, bag.weights), _starts(bag.lengths), axis=0)
    if is_train:
        gram_rows, gram_counts = _gram_rows(bag, bag.unique_words.tolist(), seed, table.shape[0])
        unique_sums = _sum_grams(table, gram_rows, gram_counts)
    else:
        unique_sums = _cached_word_sums(model, table, bag)
    out += _sum_per_doc(_weighted_rows(unique_sums, bag.word_index, bag.word_weights), bag.word_lengths)

    def backprop(d_logits: Floats2d) -> Bag:
        assert is_train, "backprop after an inference forward pass"
        model.attrs["word_rows"]["table"] = None  # the table is about to change
        d_out = np.asarray(d_logits)
        d_words = np.repeat(d_out, bag.word_lengths, axis=0) * bag.word_weights[:, None]
        d_unique = np.zeros((len(bag.unique_words), d_out.shape[1]), dtype=d_out.dtype)
        np.add.at(d_unique, bag.word_index, d_words)
        all_rows = np.concatenate([rows, gram_rows])
        d_rows = np.concatenate(
            [
                np.repeat(d_out, bag.lengths, axis=0) * bag.weights[:, None],
                np.repeat(d_unique, gram_counts, axis=0),
            ]
        )
        order = np.argsort(all_rows, kind="stable")
        sorted_rows = all_rows[order]
        firsts = np.flatnonzero(np.r_[True, sorted_rows[1:] != sorted_rows[:-1]])
        d_table = np.zeros_like(table)
        d_table[sorted_rows[firsts]] = np.add.reduceat(d_rows[order], firsts, axis=0)
        model.inc_grad("E", cast(Floats2d, d_table))
        return bag

    return cast(Floats2d, out.astype("float32", copy=False)), backprop


def _weighted_rows(table: np.ndarray, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``table[rows] * weights[:, None]``, scaled in place: a second batch-sized temporary
    costs more (fresh pages) than the arithmetic."""
    gathered = np.take(table, rows, axis=0)
    gathered *= weights[:, None]
    return gathered


def _gram_rows(bag: Bag, keys: list[int], seed: int, n_buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """Table rows of the words' n-grams, and how many each word has."""
    parts = [bag.grams[key] for key in keys]
    counts = np.array([len(part) for part in parts], dtype="int64")
    hashes = np.concatenate(parts) if parts else _NO_HASHES
    return _rows(hashes, seed, n_buckets), counts


def _sum_grams(table: np.ndarray, gram_rows: np.ndarray, gram_counts: np.ndarray) -> np.ndarray:
    if not len(gram_counts):
        return np.zeros((0, table.shape[1]), dtype=table.dtype)
    # Every word has at least two n-grams ("<a", "a>"), so reduceat's segments are never empty.
    return np.add.reduceat(table[gram_rows], _starts(gram_counts), axis=0)


def _cached_word_sums(model: Model, table: np.ndarray, bag: Bag) -> np.ndarray:
    """Each unique word's summed n-gram rows, cached until the table changes (inference only)."""
    cache = model.attrs["word_rows"]
    if cache["table"] is not table or len(cache["index"]) > _WORD_CACHE_LIMIT:
        cache.update(table=table, index={}, sums=np.zeros((0, table.shape[1]), dtype="float32"))
    index: dict[int, int] = cache["index"]
    keys = bag.unique_words.tolist()
    missing = [key for key in keys if key not in index]
    if missing:
        gram_rows, gram_counts = _gram_rows(bag, missing, model.attrs["seed"], table.shape[0])
        first = len(index)
        index.update(zip(missing, range(first, first + len(missing)), strict=True))
        cache["sums"] = np.concatenate([cache["sums"], _sum_grams(table, gram_rows, gram_counts)])
    return cache["sums"][[index[key] for key in keys]]


def _starts(lengths: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype("int64")


def _sum_per_doc(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Sum consecutive rows per doc; docs may have no rows (their sum is zero)."""
    sums = np.zeros((len(lengths), values.shape[1]), dtype=values.dtype)
    # reduceat needs non-empty, in-bounds segments: reduce over the docs that have rows.
    has_rows = lengths > 0
    if has_rows.any():
        sums[has_rows] = np.add.reduceat(values, _starts(lengths)[has_rows], axis=0)
    return sums


def _rows(hashes: np.ndarray, seed: int, n_buckets: int) -> np.ndarray:
    mixed = hashes ^ np.uint64(hash_string(f"\x01seed{seed}"))
    return (mixed % np.uint64(n_buckets)).astype("int64")


def averaged_softmax(heads: list[Model[Bag, Floats2d]]) -> Model[Bag, Floats2d]:
    """Mean of the heads' softmax probabilities; each head gets its own cross-entropy gradient.

    spaCy's textcat passes ``d = mean_p - truth`` (the cross-entropy gradient w.r.t.
    a softmax's logits), so ``truth = mean_p - d`` and head k's logit gradient is
    ``p_k - truth``. With one head this is a plain softmax output layer.
    """
    return Model("averaged_softmax", _averaged_softmax_forward, init=_init_heads, layers=heads)


def _init_heads(model: Model, X: Bag | None = None, Y: Floats2d | None = None) -> None:
    for head in model.layers:
        head.initialize(X=X, Y=Y)


def _averaged_softmax_forward(model: Model, bag: Bag, is_train: bool) -> tuple[Floats2d, Callable]:
    probs, backprops = [], []
    for head in model.layers:
        logits, head_backprop = head(bag, is_train)
        probs.append(model.ops.softmax(logits, inplace=False))
        backprops.append(head_backprop)
    mean = sum(probs[1:], probs[0]) / len(probs)

    def backprop(d_scores: Floats2d) -> Bag:
        truth = mean - d_scores
        for head_probs, head_backprop in zip(probs, backprops, strict=True):
            head_backprop(head_probs - truth)
        return bag

    return cast(Floats2d, mean), backprop
