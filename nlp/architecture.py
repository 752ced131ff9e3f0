"""Rapport's text-classification architecture for spaCy's ``textcat``.

A linear model over a bag of hashed n-grams, as TF-IDF with logistic regression:
every doc becomes a bag of word unigrams, word bigrams and character n-grams of
each word (with word-boundary markers, so sub-words such as "refund" in
"refunded" are shared), weighted by inverse document frequency; a hashed linear
layer maps the bag to class logits, soft-maxed. It is registered as a spaCy
architecture, so it is trained by spaCy (``nlp.update``) like any textcat model.
Only tokens with a letter or a digit are words: punctuation, symbols and line
breaks are left out, as TF-IDF's token pattern leaves them out.

An earlier version added a "deep" part (hashed embeddings -> ReLU -> logits) to
the linear logits: it fitted our templated training mail better and realistic
mail worse (dev 0.914 vs 0.926, realistic 0.945 vs 0.959), and cost four times
the training. The default model is linear. Optionally (`rapport nlp train`'s
second candidate, chosen when it scores better on held-out rows), a hidden part
is trained beside the linear one, each on its own loss, and their probabilities
averaged (``mean_softmax``). With it (that candidate's setting), each doc's pretrained
vector (``text_vectors``: its words' word-piece vectors, ``nlp.wordpieces``) is read by
both parts too: what a word means, where the n-grams know only how it is spelt.

Each bag is a sparse matrix (docs x table rows) multiplied with the table, so
gathering, weighting and summing rows is one compiled loop. Words get dense ids
from a ``WordTable`` that keeps their character n-grams; at inference each
layer caches every word's summed n-gram rows, so a doc costs a few table rows
per word and no Python work per word.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable
from typing import NamedTuple, cast

import numpy as np
import scipy.sparse as sparse
from spacy.strings import StringStore
from spacy.strings import get_string_id as hash_string
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model, chain, serialize_attr
from thinc.types import Floats2d

from nlp.doctext import batch_tokens, find_sorted, unique_inverse
from nlp.wordpieces import load_word_pieces

# Past this many words the word table (and the layers' caches) start afresh.
_WORD_LIMIT = 200_000
# New words wait in a small sorted run until it is this large, then merge into the main one.
_RECENT_LIMIT = 4096

_BIGRAM_MIX = np.uint64(0x9E3779B97F4A7C15)
_CHAR_SALT = "\x01c"
_DOC_BIAS = np.uint64(hash_string("\x01doc"))
_NO_HASHES = np.zeros(0, dtype="uint64")
_NO_IDS = np.zeros(0, dtype="int64")
_generations = itertools.count(1)


class Grams(NamedTuple):
    """A snapshot of a word table: word ``i``'s n-gram hashes are ``hashes[offsets[i]:offsets[i + 1]]``.

    The arrays are never changed in place, so a batch's snapshot stays valid while the table grows."""

    hashes: np.ndarray  # uint64
    offsets: np.ndarray  # int64, one more than there are words
    generation: int  # changes when the table starts afresh (its ids are then reused)
    # Word ``i``'s word pieces are ``pieces[piece_offsets[i]:piece_offsets[i + 1]]`` (none
    # when the table has no word-piece vocabulary).
    pieces: np.ndarray  # int64
    piece_offsets: np.ndarray  # int64


class Bag(NamedTuple):
    """A batch's features. Word uni/bigrams (and a bias) are single hashes; each word's
    character n-grams form a group, summed once per word."""

    hashes: np.ndarray  # uint64, grouped by doc
    weights: np.ndarray  # float32, one per hash
    lengths: np.ndarray  # hashes per doc (>= 1: the bias)
    word_ids: np.ndarray  # for each word of each doc (grouped by doc), its id in ``grams``
    word_weights: np.ndarray  # float32 weight of each word's n-grams (its doc's char weight)
    word_lengths: np.ndarray  # words per doc
    grams: Grams


class WordTable:
    """Dense ids for the words met so far, with their character n-grams (and word pieces).

    A batch's words are looked up with two vectorised binary searches (a large sorted
    run and a small one of recent words), so only a word never seen before costs
    Python work. Thread-safe: lookups may come from several threads. Not saved with the model.
    """

    def __init__(self, char_min: int, char_max: int, limit: int = _WORD_LIMIT, word_vectors: str = "") -> None:
        self.char_min, self.char_max, self.limit = char_min, char_max, limit
        self.word_vectors = word_vectors
        self._lock = threading.Lock()
        self._start_afresh()

    def __reduce__(self) -> tuple[type, tuple[int, int, int, str]]:
        # Copied or pickled as an empty table: it is a cache.
        return (WordTable, (self.char_min, self.char_max, self.limit, self.word_vectors))

    def _start_afresh(self) -> None:
        # Unique in the process, so a cache never takes another table's words for this one's.
        self._generation = next(_generations)
        self._runs = [(_NO_HASHES, _NO_IDS), (_NO_HASHES, _NO_IDS)]  # (sorted keys, their ids)
        start = np.zeros(1, dtype="int64")
        self._grams = Grams(_NO_HASHES, start, self._generation, _NO_IDS, start)

    def __len__(self) -> int:
        return len(self._grams.offsets) - 1

    def lookup(self, words: np.ndarray, strings: StringStore) -> tuple[np.ndarray, Grams]:
        """Each word key's id (adding the new ones), and the snapshot the ids refer to.

        ``words`` are distinct and sorted (a batch's ``BatchTokens.unique``)."""
        with self._lock:
            ids = self._find(words)
            missing = ids < 0
            if missing.any():
                new = words[missing]
                if len(self) + len(new) > self.limit:
                    self._start_afresh()
                    new = words
                self._add(new, strings)
                ids = self._find(words)
            return ids, self._grams

    def _find(self, words: np.ndarray) -> np.ndarray:
        ids = np.full(len(words), -1, dtype="int64")
        for keys, key_ids in self._runs:
            place, hit = find_sorted(keys, words)
            ids[hit] = key_ids[place[hit]]
        return ids

    def _add(self, new: np.ndarray, strings: StringStore) -> None:
        first = len(self)
        parts = [_word_char_ngrams(strings[key], self.char_min, self.char_max) for key in new.tolist()]
        counts = np.fromiter((len(part) for part in parts), dtype="int64", count=len(parts))
        pieces = [_NO_IDS] * len(new)
        if self.word_vectors:
            vocabulary = load_word_pieces(self.word_vectors)
            pieces = [np.array(vocabulary.split(strings[key]), dtype="int64") for key in new.tolist()]
        piece_counts = np.fromiter((len(part) for part in pieces), dtype="int64", count=len(pieces))
        grams = self._grams
        self._grams = Grams(
            np.concatenate([grams.hashes, *parts]),
            np.concatenate([grams.offsets, grams.offsets[-1] + np.cumsum(counts)]),
            grams.generation,
            np.concatenate([grams.pieces, *pieces]),
            np.concatenate([grams.piece_offsets, grams.piece_offsets[-1] + np.cumsum(piece_counts)]),
        )
        (main, main_ids), (recent, recent_ids) = self._runs
        recent, recent_ids = _merge(recent, recent_ids, new, np.arange(first, first + len(new)))
        if len(recent) > max(_RECENT_LIMIT, len(main) // 8):
            main, main_ids = _merge(main, main_ids, recent, recent_ids)
            recent, recent_ids = _NO_HASHES, _NO_IDS
        self._runs = [(main, main_ids), (recent, recent_ids)]


def _merge(
    keys: np.ndarray, ids: np.ndarray, more_keys: np.ndarray, more_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    all_keys = np.concatenate([keys, more_keys])
    order = np.argsort(all_keys, kind="stable")
    return all_keys[order], np.concatenate([ids, more_ids])[order]


@registry.architectures("rapport.NgramBagTextcat.v3")
def build_ngram_bag_textcat(
    n_buckets: int = 262144,
    char_min: int = 2,
    char_max: int = 5,
    hidden_width: int = 0,
    hidden_buckets: int = 65536,
    hidden_dropout: float = 0.5,
    hidden_learn_rate: float = 0.02,
    word_vectors: str = "",
    word_vectors_scale: float = 2.0,
    word_vectors_learn_rate: float = 0.3,
    nO: int | None = None,
) -> Model[list[Doc], Floats2d]:
    """Hashed linear text classifier: n-gram bag -> class logits -> softmax.

    With ``hidden_width``, a hidden part (the same bag -> its own hashed table of that width
    -> ReLU -> dropout -> class logits) is trained beside the linear one, on its own
    cross-entropy, and their probabilities averaged (``mean_softmax``); ``hidden_learn_rate``
    scales its gradient (the optimiser's rate suits the linear part). The default (0) is the
    linear model alone, so saved v3 models load unchanged.

    With ``word_vectors`` (a file of ``nlp/data/vectors``), the linear part also reads each
    doc's pretrained vector (``text_vectors``), as logistic regression over TF-IDF features
    and a dense text vector side by side, and so does the hidden part's input."""
    linear = hashed_bag(nO, n_buckets, seed=2)
    vectors = text_vectors(word_vectors, word_vectors_scale) if word_vectors else None
    if vectors is not None:
        linear = summed_logits([linear, vector_logits(vectors, nO, word_vectors_learn_rate)])
    output = softmax_output(linear)
    if hidden_width:
        hidden = hidden_logits(nO, hidden_width, hidden_buckets, hidden_dropout, hidden_learn_rate, vectors)
        output = mean_softmax([linear, hidden])
    model: Model[list[Doc], Floats2d] = chain(ngram_bag(char_min, char_max, word_vectors), output)
    model.attrs["multi_label"] = False
    return model


def ngram_bag(char_min: int, char_max: int, word_vectors: str = "") -> Model[list[Doc], Bag]:
    """Docs -> bag of hashed word uni/bigrams and per-word character n-grams (and each word's
    word pieces, with ``word_vectors``)."""
    words = WordTable(char_min, char_max, word_vectors=word_vectors)
    return Model("ngram_bag", _ngram_bag_forward, attrs={"char_min": char_min, "char_max": char_max, "words": words})


def _ngram_bag_forward(model: Model, docs: list[Doc], is_train: bool) -> tuple[Bag, Callable]:
    n_docs = len(docs)
    tokens = batch_tokens(docs)
    # Words only: punctuation and line breaks told our own training mail's templates apart
    # (dev 0.944 with them, 0.931 without) and realistic mail's categories not (0.955 -> 0.986).
    is_word = tokens.word
    words, word_doc = tokens.lower[is_word], tokens.doc_of[is_word]
    n_words = np.bincount(word_doc, minlength=n_docs)
    # Bigrams over the whole batch, minus the pairs that straddle two docs.
    same_doc = word_doc[:-1] == word_doc[1:]
    bigrams = ((words[:-1] * _BIGRAM_MIX) ^ words[1:])[same_doc]
    bigram_doc = word_doc[:-1][same_doc]
    strings = docs[0].vocab.strings if docs else StringStore()
    unique_ids, grams = cast(WordTable, model.attrs["words"]).lookup(tokens.unique, strings)
    word_ids = unique_ids[tokens.inverse[is_word]]
    n_grams = np.diff(grams.offsets)[word_ids]
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
        word_ids=word_ids,
        word_weights=char_weight[word_doc].astype("float32"),
        word_lengths=n_words,
        grams=grams,
    )
    return bag, lambda d_bag: []


def _word_char_ngrams(word: str, char_min: int, char_max: int) -> np.ndarray:
    marked = f"<{word}>"
    grams = {marked[i : i + n] for n in range(char_min, char_max + 1) for i in range(len(marked) - n + 1)}
    return np.array([hash_string(_CHAR_SALT + g) for g in grams], dtype="uint64")


class WordSums:
    """A layer's summed rows per word id, for inference (a table's n-gram rows, or the
    weighted vectors of a word's pieces): valid for one table (or piece weights) and one
    word-table generation. Not saved; copied or pickled as an empty cache.

    The optimiser changes tables in place, the averaged ones that ``use_params`` hands back
    included, so training clears the cache (``forget``) whenever it computes a gradient;
    other swapped tables (and refitted piece weights, never trained) are told apart by identity.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._table: np.ndarray | None = None
        self._generation = 0
        self._sums: np.ndarray | None = None  # rows past ``_filled`` are room to grow
        self._filled = 0

    def __reduce__(self) -> tuple[type, tuple[()]]:
        return (WordSums, ())

    def forget(self) -> None:
        with self._lock:
            self._table = None

    def get(
        self, table: np.ndarray, grams: Grams, sum_rows: Callable[[np.ndarray], np.ndarray]
    ) -> np.ndarray:
        """Sums for every word of ``grams`` (and maybe more); ``sum_rows(ids)`` computes missing ones.
        ``table`` is what the sums are of (a table, or the weights of fixed vectors)."""
        with self._lock:
            if self._table is not table or self._generation != grams.generation:
                self._table, self._generation = table, grams.generation
                self._sums, self._filled = None, 0
            n_words = len(grams.offsets) - 1
            if self._filled < n_words:
                more = sum_rows(np.arange(self._filled, n_words)).astype(table.dtype, copy=False)
                if self._sums is None or len(self._sums) < n_words:
                    # Room for twice the words: a batch's new words are then written in place,
                    # where copying the whole cache for each batch cost more than the batch.
                    grown = np.empty((max(n_words, min(2 * n_words, _WORD_LIMIT)), more.shape[1]), dtype=more.dtype)
                    if self._sums is not None:
                        grown[: self._filled] = self._sums[: self._filled]
                    self._sums = grown
                self._sums[self._filled : n_words] = more  # rows no returned view reaches
                self._filled = n_words
            assert self._sums is not None
            return self._sums[: self._filled]


@serialize_attr.register(WordTable)
@serialize_attr.register(WordSums)
def _serialize_cache(_: object, value: object, name: str, model: Model) -> bytes:
    # thinc leaves out attributes whose serialiser raises TypeError: caches are rebuilt on use.
    raise TypeError(f"{name} is a cache and is not saved")


def hashed_bag(nO: int | None, n_buckets: int, *, seed: int, init_scale: float = 0.0) -> Model[Bag, Floats2d]:
    """Weighted sum of hashed table rows per doc (an embedding bag / sparse linear layer).

    Each row also has a fixed weight ``W``, its inverse document frequency in the training
    data (``fit_row_weights``): n-grams in every mail ("regards", "order") count for little,
    rare and telling ones for more, as in TF-IDF. The table starts at zero (a linear
    layer), or random with standard deviation ``init_scale`` (an embedding bag under a
    hidden layer, whose units must differ to learn)."""
    return Model(
        "hashed_bag",
        _hashed_bag_forward,
        init=_init_hashed_bag,
        dims={"nO": nO, "nV": n_buckets},
        params={"E": None, "W": None},
        attrs={"seed": seed, "init_scale": init_scale, "word_sums": WordSums()},
    )


def fit_row_weights(model: Model, docs: list[Doc], batch_size: int = 512) -> None:
    """Set every hashed bag's row weights to the rows' smoothed inverse document frequency over
    ``docs`` (the training texts), scaled so that the average n-gram occurrence weighs 1, and
    the ``text_vectors`` layer's piece weights (``_piece_idf``). A model without hashed
    bags is left as it is."""
    bag_layers = [node for node in model.walk() if node.name == "ngram_bag"]
    tables = [node for node in model.walk() if node.name == "hashed_bag"]
    vectors = [node for node in model.walk() if node.name == "text_vectors"]
    if not bag_layers:
        return
    counts = [np.zeros(node.get_dim("nV"), dtype="float64") for node in tables]
    piece_counts = [np.zeros(len(load_word_pieces(node.attrs["word_vectors"])), dtype="float64") for node in vectors]
    for start in range(0, len(docs), batch_size):
        bag = bag_layers[0].predict(docs[start : start + batch_size])
        for node, df in zip(tables, counts, strict=True):
            df += np.bincount(_features(bag, node, node.get_dim("nV")).indices, minlength=len(df))
        for df in piece_counts:
            df += _piece_document_frequencies(bag, len(df))
    for node, df in zip(vectors, piece_counts, strict=True):
        unknown = load_word_pieces(node.attrs["word_vectors"]).unknown
        node.set_param("W", cast(Floats2d, _piece_idf(df, len(docs), unknown)))
    for node, df in zip(tables, counts, strict=True):
        idf = _smoothed_idf(df, len(docs))
        idf /= (idf * df).sum() / max(df.sum(), 1.0)
        # A row no training text reaches holds only its random start: an n-gram that lands
        # there at inference is noise, so it counts for nothing (as TF-IDF ignores words
        # outside its vocabulary).
        idf[df == 0] = 0.0
        node.set_param("W", cast(Floats2d, idf.astype("float32")))
        cast(WordSums, node.attrs["word_sums"]).forget()


def _smoothed_idf(document_frequencies: np.ndarray, n_docs: int) -> np.ndarray:
    """Inverse document frequency, smoothed as scikit-learn's TfidfVectorizer smooths it."""
    return np.log((1.0 + n_docs) / (1.0 + document_frequencies)) + 1.0


def _init_hashed_bag(model: Model, X: Bag | None = None, Y: Floats2d | None = None) -> None:
    if Y is not None and not model.has_dim("nO"):
        model.set_dim("nO", Y.shape[1])
    shape = (model.get_dim("nV"), model.get_dim("nO"))
    scale = model.attrs["init_scale"]
    table = np.random.normal(0.0, scale, shape) if scale else np.zeros(shape)  # seeded by fix_random_seed
    model.set_param("E", cast(Floats2d, table.astype("float32")))
    model.set_param("W", cast(Floats2d, np.ones(shape[0], dtype="float32")))


def _hashed_bag_forward(model: Model, bag: Bag, is_train: bool) -> tuple[Floats2d, Callable]:
    table: np.ndarray = np.asarray(model.get_param("E"))
    row_weights: np.ndarray = np.asarray(model.get_param("W"))
    if not is_train:
        rows = _rows(bag.hashes, model.attrs["seed"], table.shape[0])
        hashed = _csr(bag.weights * row_weights[rows], rows, bag.lengths, table.shape[0])
        sums = cast(WordSums, model.attrs["word_sums"]).get(
            table, bag.grams,
            lambda ids: _gram_matrix(bag.grams, ids, model, table.shape[0], row_weights) @ table,
        )
        per_word = _csr(bag.word_weights, bag.word_ids, bag.word_lengths, len(sums))
        out = hashed @ table + per_word @ sums
        return cast(Floats2d, out), _no_backprop
    features = _features(bag, model, table.shape[0], row_weights)

    def backprop(d_out: Floats2d) -> Bag:
        cast(WordSums, model.attrs["word_sums"]).forget()  # the table is about to change
        model.inc_grad("E", cast(Floats2d, np.asarray(features.T @ np.asarray(d_out), dtype="float32")))
        return bag

    return cast(Floats2d, np.asarray(features @ table, dtype="float32")), backprop


def _features(bag: Bag, model: Model, n_buckets: int, row_weights: np.ndarray | None = None) -> sparse.csr_array:
    """Docs x table rows: the bag's hashes and its words' n-grams in one sparse matrix."""
    rows = _rows(bag.hashes, model.attrs["seed"], n_buckets)
    values = bag.weights if row_weights is None else bag.weights * row_weights[rows]
    hashed = _csr(values, rows, bag.lengths, n_buckets)
    unique_ids, inverse = unique_inverse(bag.word_ids)
    per_word = _csr(bag.word_weights, inverse, bag.word_lengths, len(unique_ids))
    grams = _gram_matrix(bag.grams, unique_ids, model, n_buckets, row_weights)
    features = (hashed + per_word @ grams).tocsr()
    features.sum_duplicates()
    return features


def _no_backprop(d_out: Floats2d) -> Bag:
    raise AssertionError("backprop after an inference forward pass")


def _csr(values: np.ndarray, columns: np.ndarray, lengths: np.ndarray, n_columns: int) -> sparse.csr_array:
    """Rows of consecutive (column, value) entries, ``lengths[i]`` for row ``i``."""
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    return sparse.csr_array((values, columns, indptr), shape=(len(lengths), n_columns))


def _gram_matrix(
    grams: Grams, word_ids: np.ndarray, model: Model, n_buckets: int, row_weights: np.ndarray | None = None
) -> sparse.csr_array:
    """Words x table rows: each of each word's n-grams, weighted by its row's weight (else 1)."""
    positions, counts = _runs(grams.offsets, word_ids)
    rows = _rows(grams.hashes[positions], model.attrs["seed"], n_buckets)
    values = np.ones(len(rows), dtype="float32") if row_weights is None else row_weights[rows]
    return _csr(values, rows, counts, n_buckets)


def _runs(offsets: np.ndarray, word_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The positions of every word's items (n-grams or pieces), in order, and their counts:
    a run of ``counts[i]`` from ``offsets[word_ids[i]]``."""
    starts = offsets[word_ids]
    counts = offsets[word_ids + 1] - starts
    runs = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return runs + np.arange(counts.sum()), counts


@functools.cache
def _seed_mix(seed: int) -> np.uint64:
    return np.uint64(hash_string(f"\x01seed{seed}"))


def _rows(hashes: np.ndarray, seed: int, n_buckets: int) -> np.ndarray:
    mixed = hashes ^ _seed_mix(seed)
    if n_buckets & (n_buckets - 1) == 0:  # a power of two: the same rows, without a division
        mixed &= np.uint64(n_buckets - 1)
    else:
        mixed %= np.uint64(n_buckets)
    return mixed.astype("int64")


def softmax_output(layer: Model[Bag, Floats2d]) -> Model[Bag, Floats2d]:
    """Softmax over the layer's logits. spaCy's textcat passes ``d = p - truth``, the
    cross-entropy gradient with respect to the logits, which goes to the layer as it is."""
    return Model("softmax_output", _softmax_forward, init=_init_softmax, layers=[layer], dims={"nO": None})


def _init_softmax(model: Model, X: Bag | None = None, Y: Floats2d | None = None) -> None:
    if Y is not None and not model.has_dim("nO"):
        model.set_dim("nO", Y.shape[1])
    layer = model.layers[0]
    if model.has_dim("nO") and not layer.has_dim("nO"):
        layer.set_dim("nO", model.get_dim("nO"))
    layer.initialize(X=X, Y=Y)


def _softmax_forward(model: Model, bag: Bag, is_train: bool) -> tuple[Floats2d, Callable]:
    logits, backprop = model.layers[0](bag, is_train)  # d_scores is already the logits' gradient
    return model.ops.softmax(logits, inplace=False), backprop


def mean_softmax(layers: list[Model[Bag, Floats2d]]) -> Model[Bag, Floats2d]:
    """The mean of the layers' soft-maxed logits, each layer trained on its own cross-entropy.

    Summed logits (spaCy's TextCatEnsemble) leave nothing to learn to the second part: the
    linear part alone fits the training rows within two epochs. Each part's gradient is its
    own ``p_i - truth``, recovered from spaCy's ``d = p - truth`` of the mean ``p``."""
    return Model("mean_softmax", _mean_softmax_forward, init=_init_parts, layers=layers, dims={"nO": None})


def _init_parts(model: Model, X: Bag | None = None, Y: Floats2d | None = None) -> None:
    if Y is not None and not model.has_dim("nO"):
        model.set_dim("nO", Y.shape[1])
    for layer in model.layers:
        if model.has_dim("nO") and not layer.has_dim("nO"):
            layer.set_dim("nO", model.get_dim("nO"))
        layer.initialize(X=X, Y=Y)


def _mean_softmax_forward(model: Model, bag: Bag, is_train: bool) -> tuple[Floats2d, Callable]:
    parts = [layer(bag, is_train) for layer in model.layers]
    probabilities = [model.ops.softmax(logits, inplace=False) for logits, _ in parts]
    mean = cast(Floats2d, sum(probabilities[1:], probabilities[0]) / len(parts))

    def backprop(d_out: Floats2d) -> Bag:
        truth = mean - d_out
        for (_, part_backprop), part in zip(parts, probabilities, strict=True):
            part_backprop(cast(Floats2d, part - truth))
        return bag

    return mean, backprop


def hidden_logits(
    nO: int | None,
    width: int,
    n_buckets: int,
    dropout: float,
    learn_rate: float,
    vectors: Model[Bag, Floats2d] | None = None,
) -> Model[Bag, Floats2d]:
    """Bag -> hashed embedding bag (``width``) + bias -> ReLU -> dropout -> class logits.

    ``learn_rate`` scales the gradient that reaches it: the optimiser's rate is tuned for
    the linear part's sparse rows, far too large for a dense hidden layer. With ``vectors``
    (``text_vectors``), each doc's pretrained vector goes into the hidden units too (through
    a dense layer from zero), so they combine its meaning with the n-grams."""
    bag = hashed_bag(width, n_buckets, seed=3, init_scale=1.0 / np.sqrt(width))
    if vectors is not None:
        bag = summed_logits([bag, vector_logits(vectors, width, 1.0)])
    return Model(
        "hidden_logits",
        _hidden_forward,
        init=_init_hidden,
        layers=[bag],
        dims={"nO": nO, "nI": width},
        params={"b": None, "O": None},
        attrs={"dropout": dropout, "learn_rate": learn_rate},
    )


def _init_hidden(model: Model, X: Bag | None = None, Y: Floats2d | None = None) -> None:
    if Y is not None and not model.has_dim("nO"):
        model.set_dim("nO", Y.shape[1])
    width, n_out = model.get_dim("nI"), model.get_dim("nO")
    model.layers[0].initialize(X=X)
    model.set_param("b", cast(Floats2d, np.zeros(width, dtype="float32")))
    model.set_param("O", cast(Floats2d, np.random.normal(0.0, 1.0 / np.sqrt(width), (width, n_out)).astype("float32")))


def _hidden_forward(model: Model, bag: Bag, is_train: bool) -> tuple[Floats2d, Callable]:
    summed, bag_backprop = model.layers[0](bag, is_train)
    out_weights: np.ndarray = np.asarray(model.get_param("O"))
    pre = np.asarray(summed) + np.asarray(model.get_param("b"))
    active = pre > 0
    hidden = np.where(active, pre, 0.0).astype("float32")
    dropout: float = model.attrs["dropout"]
    if is_train and dropout:
        keep = (np.random.random(hidden.shape) >= dropout).astype("float32") / (1.0 - dropout)
        hidden *= keep
        active = active * keep  # the gradient passes where a unit was active and kept, scaled alike
    logits = hidden @ out_weights

    def backprop(d_out: Floats2d) -> Bag:
        d_logits = np.asarray(d_out, dtype="float32") * model.attrs["learn_rate"]
        model.inc_grad("O", cast(Floats2d, hidden.T @ d_logits))
        d_pre = (d_logits @ out_weights.T) * active
        model.inc_grad("b", cast(Floats2d, d_pre.sum(axis=0)))
        return cast(Bag, bag_backprop(cast(Floats2d, d_pre.astype("float32"))))

    return cast(Floats2d, logits.astype("float32")), backprop


def summed_logits(layers: list[Model[Bag, Floats2d]]) -> Model[Bag, Floats2d]:
    """The sum of the layers' outputs (class logits, or a hidden layer's input): one linear
    layer over their features side by side, each layer getting the whole gradient."""
    return Model("summed_logits", _summed_forward, init=_init_parts, layers=layers, dims={"nO": None})


def _summed_forward(model: Model, bag: Bag, is_train: bool) -> tuple[Floats2d, Callable]:
    parts = [layer(bag, is_train) for layer in model.layers]
    logits = cast(Floats2d, sum((logits for logits, _ in parts[1:]), parts[0][0]))

    def backprop(d_out: Floats2d) -> Bag:
        for _, part_backprop in parts:
            part_backprop(d_out)
        return bag

    return logits, backprop


def text_vectors(word_vectors: str, scale: float) -> Model[Bag, Floats2d]:
    """Bag -> each doc's pretrained vector, fixed (nothing here is trained).

    The sum of its words' piece vectors (``nlp.wordpieces``), each weighted by the piece's
    inverse document frequency in the training texts (``fit_row_weights``), L2-normalised
    and times ``scale`` (chosen on Banking77's held-out eighths with scikit-learn's logistic
    regression over TF-IDF features, whose n-gram groups have norm 1; nlp/README.md). One
    instance serves the linear and the hidden part."""
    vocabulary = load_word_pieces(word_vectors)  # a missing file fails when the model is built
    return Model(
        "text_vectors",
        _text_vectors_forward,
        init=_init_text_vectors,
        dims={"nO": vocabulary.vectors.shape[1]},
        params={"W": None},
        attrs={"word_vectors": word_vectors, "scale": scale, "word_sums": WordSums()},
    )


def _init_text_vectors(model: Model, X: Bag | None = None, Y: Floats2d | None = None) -> None:
    model.set_param("W", cast(Floats2d, np.ones(len(load_word_pieces(model.attrs["word_vectors"])), dtype="float32")))


def _text_vectors_forward(model: Model, bag: Bag, is_train: bool) -> tuple[Floats2d, Callable]:
    vectors = load_word_pieces(model.attrs["word_vectors"]).vectors
    weights: np.ndarray = np.asarray(model.get_param("W"))
    if is_train:
        summed = np.asarray(_doc_pieces(bag, len(vectors), weights) @ vectors, dtype="float32")
    else:  # each word's weighted piece vectors, summed once per word and kept
        sums = cast(WordSums, model.attrs["word_sums"]).get(
            weights, bag.grams, lambda ids: _word_pieces(bag.grams, ids, len(vectors), weights) @ vectors
        )
        per_word = _csr(np.ones(len(bag.word_ids), dtype="float32"), bag.word_ids, bag.word_lengths, len(sums))
        summed = np.asarray(per_word @ sums, dtype="float32")
    norms = np.linalg.norm(summed, axis=1, keepdims=True)
    return cast(Floats2d, summed * (model.attrs["scale"] / np.maximum(norms, 1e-6))), lambda d_out: bag


def vector_logits(vectors: Model[Bag, Floats2d], nO: int | None, learn_rate: float) -> Model[Bag, Floats2d]:
    """Bag -> ``vectors`` (``text_vectors``) -> a dense layer from zero, of width ``nO``.

    ``learn_rate`` scales its gradient: every doc reaches every weight of this layer, where
    an n-gram row gets the gradient of the few docs that have it."""
    return Model(
        "vector_logits",
        _vector_logits_forward,
        init=_init_vector_logits,
        layers=[vectors],
        dims={"nO": nO},
        params={"O": None},
        attrs={"learn_rate": learn_rate},
    )


def _init_vector_logits(model: Model, X: Bag | None = None, Y: Floats2d | None = None) -> None:
    if Y is not None and not model.has_dim("nO"):
        model.set_dim("nO", Y.shape[1])
    vectors = model.layers[0]
    if not vectors.has_param("W"):  # shared by both parts: initialised once
        vectors.initialize(X=X)
    shape = (vectors.get_dim("nO"), model.get_dim("nO"))
    model.set_param("O", cast(Floats2d, np.zeros(shape, dtype="float32")))


def _vector_logits_forward(model: Model, bag: Bag, is_train: bool) -> tuple[Floats2d, Callable]:
    doc_vectors = np.asarray(model.layers[0](bag, is_train)[0])
    out_weights: np.ndarray = np.asarray(model.get_param("O"))

    def backprop(d_out: Floats2d) -> Bag:
        d_logits = np.asarray(d_out, dtype="float32") * model.attrs["learn_rate"]
        model.inc_grad("O", cast(Floats2d, doc_vectors.T @ d_logits))
        return bag

    return cast(Floats2d, doc_vectors @ out_weights), backprop


def _doc_pieces(bag: Bag, n_pieces: int, piece_weights: np.ndarray | None = None) -> sparse.csr_array:
    """Docs x word pieces: how often each piece occurs in each doc, times its weight (else 1)."""
    unique_ids, inverse = unique_inverse(bag.word_ids)
    per_word = _csr(np.ones(len(inverse), dtype="float32"), inverse, bag.word_lengths, len(unique_ids))
    in_docs = (per_word @ _word_pieces(bag.grams, unique_ids, n_pieces, piece_weights)).tocsr()
    in_docs.sum_duplicates()
    return in_docs


def _word_pieces(
    grams: Grams, word_ids: np.ndarray, n_pieces: int, piece_weights: np.ndarray | None = None
) -> sparse.csr_array:
    """Words x word pieces: each word's pieces, times their weights (else 1)."""
    positions, counts = _runs(grams.piece_offsets, word_ids)
    pieces = grams.pieces[positions]
    values = np.ones(len(pieces), dtype="float32") if piece_weights is None else piece_weights[pieces]
    return _csr(values, pieces, counts, n_pieces)


def _piece_document_frequencies(bag: Bag, n_pieces: int) -> np.ndarray:
    """In how many of the bag's docs each word piece occurs."""
    return np.bincount(_doc_pieces(bag, n_pieces).indices, minlength=n_pieces)


def _piece_idf(document_frequencies: np.ndarray, n_docs: int, unknown: int) -> np.ndarray:
    """A ``text_vectors`` layer's piece weights: smoothed inverse document frequency over the
    training texts. A piece no training text has keeps the highest weight, not 0 as an
    n-gram row: its pretrained vector is what carries a word the training never saw."""
    idf = _smoothed_idf(document_frequencies, n_docs)
    idf[unknown] = 0.0  # one vector for every word BERT could not cut: noise
    return idf.astype("float32")
