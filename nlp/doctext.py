"""The text and token attributes of a doc, computed once per doc; extension storage.

``Doc.text`` joins every token's text on each access, which costs more than
detecting the language of a short mail. The pipeline's tokenizer is wrapped to
keep the original string in ``doc.user_data``. Likewise the textcat, the
category and the language components all read the tokens' lower-case ids:
``batch_tokens`` reads them once per batch.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple, cast

import numpy as np
from spacy.attrs import IS_ALPHA, LOWER
from spacy.strings import StringStore
from spacy.tokens import Doc

# spaCy's import adds a stream handler of its own: beside the application's, every spaCy log line
# came out twice. Its records still reach the application's handlers. Here: every module of ours
# that imports spaCy imports this one.
logging.getLogger("spacy").handlers.clear()

TEXT_KEY = "rapport_text"
BATCH_KEY = "rapport_batch"
TOKENS_KEY = "rapport_tokens"
_ATTRS = [LOWER, IS_ALPHA]
_NO_ATTRS = np.zeros((0, len(_ATTRS)), dtype="uint64")
_batch_numbers = itertools.count(1)


def doc_text(doc: Doc) -> str:
    """The doc's text, from the tokenizer's input when it was kept."""
    text = doc.user_data.get(TEXT_KEY)
    return text if isinstance(text, str) else doc.text


ExtensionKey = tuple[str, str, None, None]


def extension_key(name: str) -> ExtensionKey:
    """Where spaCy's ``Underscore`` keeps ``doc._.<name>`` in ``doc.user_data``.

    Components write there directly (``set_extensions``): building ``doc._`` and setting
    through it costs about a microsecond per value, as much as a component's own work on a short mail.
    """
    return ("._.", name, None, None)


def set_extensions(docs: Iterable[Doc], key: ExtensionKey, values: Iterable[Any]) -> None:
    """``doc._.<name> = value`` for each doc and its value, ``key = extension_key(name)``."""
    for doc, value in zip(docs, values, strict=True):
        cast(dict[Any, Any], doc.user_data)[key] = value


class BatchTokens(NamedTuple):
    """A batch's tokens, as arrays over all its docs' tokens in order."""

    lower: np.ndarray  # uint64 lower-case string id of each token
    alpha: np.ndarray  # bool: the token is alphabetic
    word: np.ndarray  # bool: the token has a letter or a digit (not punctuation, a symbol or space)
    lengths: np.ndarray  # int64 tokens per doc
    doc_of: np.ndarray  # int64 index (in the batch) of each token's doc
    # The batch's distinct lower-case ids (sorted), and each token's place among them:
    # a batch of short mails has a few hundred, so lookups (known words, function words,
    # the textcat's word ids) search those and not every token.
    unique: np.ndarray  # uint64
    inverse: np.ndarray  # int64, ``unique[inverse] == lower``
    number: int  # unique in the process: each doc of the batch keeps (number, its position)


def batch_tokens(docs: Sequence[Doc]) -> BatchTokens:
    """The batch's tokens, read once: every component of a pipeline gets the same batches,
    so the first one to ask reads them and the others find them in ``doc.user_data``.

    ``Doc.to_array`` costs about as much per call as the rest of a component's work on a
    short mail. Each doc keeps ``(batch number, its position)``, so a batch is reused only
    when exactly the same docs come in the same order.
    """
    cached = docs[0].user_data.get(TOKENS_KEY) if docs else None
    if cached is not None and _is_batch(cached, docs):
        return cast(BatchTokens, cached)
    arrays = [doc.to_array(_ATTRS) if len(doc) else _NO_ATTRS for doc in docs]
    lengths = np.fromiter((len(array) for array in arrays), dtype="int64", count=len(arrays))
    attrs = np.concatenate(arrays) if arrays else _NO_ATTRS
    lower = np.ascontiguousarray(attrs[:, 0])
    unique, inverse = unique_inverse(lower)
    strings = docs[0].vocab.strings if docs else None
    is_word = np.fromiter((_is_word(key, strings) for key in unique.tolist()), dtype=bool, count=len(unique))
    tokens = BatchTokens(
        lower=lower,
        alpha=attrs[:, 1] == 1,
        word=is_word[inverse],
        lengths=lengths,
        doc_of=np.repeat(np.arange(len(docs)), lengths),
        unique=unique,
        inverse=inverse,
        number=next(_batch_numbers),
    )
    # Plain numbers, so most docs' user_data stays free of objects the garbage collector tracks.
    for i, doc in enumerate(docs):
        doc.user_data[BATCH_KEY] = (tokens.number, i)
    if docs:
        docs[0].user_data[TOKENS_KEY] = tokens
    return tokens


_WORDS: dict[int, bool] = {}  # lower-case string id -> has a letter or digit; a cache, cleared when large


def _is_word(key: int, strings: StringStore | None) -> bool:
    known = _WORDS.get(key)
    if known is None:
        if len(_WORDS) > 500_000:
            _WORDS.clear()
        known = _WORDS[key] = strings is not None and any(c.isalnum() for c in strings[key])
    return known


def unique_inverse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)``; a sort and a mask, several times faster
    than NumPy 2's ``unique`` on a batch's few thousand ids."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    first = np.ones(len(ordered), dtype=bool)
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    inverse = np.empty(len(values), dtype="int64")
    inverse[order] = np.cumsum(first) - 1
    return ordered[first], inverse


def find_sorted(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each value, its place in the sorted ``keys`` and whether it is there (one binary search)."""
    if not len(keys):
        return np.zeros(len(values), dtype="int64"), np.zeros(len(values), dtype=bool)
    place = np.minimum(np.searchsorted(keys, values), len(keys) - 1)
    return place, keys[place] == values


def _is_batch(tokens: BatchTokens, docs: Sequence[Doc]) -> bool:
    if len(tokens.lengths) != len(docs):
        return False
    number = tokens.number
    return all(doc.user_data.get(BATCH_KEY) == (number, i) for i, doc in enumerate(docs))


class TextKeepingTokenizer:
    """Wraps a tokenizer; everything else (serialisation, rules) is the wrapped one's."""

    def __init__(self, tokenizer: Callable[[str], Doc]) -> None:
        self.wrapped = tokenizer

    def __call__(self, text: str) -> Doc:
        doc = self.wrapped(text)
        doc.user_data[TEXT_KEY] = text
        return doc

    def pipe(self, texts: Iterable[str], batch_size: int = 1000) -> Iterator[Doc]:
        for text in texts:
            yield self(text)

    def __getattr__(self, name: str) -> Any:
        if name == "wrapped":  # not set yet, e.g. while unpickling
            raise AttributeError(name)
        return getattr(self.wrapped, name)
