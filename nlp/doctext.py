"""The text and token attributes of a doc, computed once per doc; extension storage.

``Doc.text`` joins every token's text on each access, which costs more than
detecting the language of a short mail. The pipeline's tokenizer is wrapped to
keep the original string in ``doc.user_data``. Likewise the textcat, the
category and the language components all read the tokens' lower-case ids:
``token_attrs`` reads them once per doc and keeps them in ``doc.user_data``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, cast

import numpy as np
from spacy.attrs import IS_ALPHA, LOWER
from spacy.tokens import Doc

TEXT_KEY = "rapport_text"
ATTRS_KEY = "rapport_attrs"
# Columns of token_attrs' array.
LOWER_COLUMN, ALPHA_COLUMN = 0, 1
_ATTRS = [LOWER, IS_ALPHA]
_NO_ATTRS = np.zeros((0, len(_ATTRS)), dtype="uint64")


def doc_text(doc: Doc) -> str:
    """The doc's text, from the tokenizer's input when it was kept."""
    text = doc.user_data.get(TEXT_KEY)
    return text if isinstance(text, str) else doc.text


ExtensionKey = tuple[str, str, None, None]


def extension_key(name: str) -> ExtensionKey:
    """Where spaCy's ``Underscore`` keeps ``doc._.<name>`` in ``doc.user_data``.

    Components write there directly (``set_extension``): building ``doc._`` and setting
    through it costs about a microsecond per value, as much as a component's own work on a short mail.
    """
    return ("._.", name, None, None)


def set_extension(doc: Doc, key: ExtensionKey, value: Any) -> None:
    """``doc._.<name> = value`` for ``key = extension_key(name)``."""
    cast(dict[Any, Any], doc.user_data)[key] = value


def token_attrs(docs: Sequence[Doc]) -> tuple[np.ndarray, np.ndarray]:
    """A batch's tokens as one ``(n_tokens, 2)`` uint64 array (``LOWER``, ``IS_ALPHA``), and tokens per doc.

    Each doc's rows are read once (``Doc.to_array`` costs about as much per call as
    the rest of a component's work on a short mail) and kept for the next component.
    """
    arrays = []
    for doc in docs:
        array = doc.user_data.get(ATTRS_KEY)
        if array is None:
            array = doc.to_array(_ATTRS) if len(doc) else _NO_ATTRS
            doc.user_data[ATTRS_KEY] = array
        arrays.append(array)
    lengths = np.fromiter((len(array) for array in arrays), dtype="int64", count=len(arrays))
    return (np.concatenate(arrays) if arrays else _NO_ATTRS), lengths


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
