"""The text of a doc without rebuilding it from its tokens.

``Doc.text`` joins every token's text on each access, which costs more than
detecting the language of a short mail. The pipeline's tokenizer is wrapped to
keep the original string in ``doc.user_data``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from spacy.tokens import Doc

TEXT_KEY = "rapport_text"


def doc_text(doc: Doc) -> str:
    """The doc's text, from the tokenizer's input when it was kept."""
    text = doc.user_data.get(TEXT_KEY)
    return text if isinstance(text, str) else doc.text


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
