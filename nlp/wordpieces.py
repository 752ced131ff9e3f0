"""Pretrained static vectors for words, by their word pieces.

``data/vectors/minilm.npz`` holds a vector for each of all-MiniLM-L6-v2's 30,522 word
pieces, distilled the Model2Vec way (``scripts/distil-word-vectors``: each piece through the
transformer alone, mean-pooled, PCA to 128 dimensions). A word is cut into pieces as BERT's
uncased tokenizer cuts it (lower case, accents stripped, punctuation apart, then the longest
known piece first, ``##`` marking a piece inside a word), so every word has a vector, even
one no training text had: what bags of n-grams cannot give (paraphrases, synonyms).
Only NumPy is needed at run time.
"""

from __future__ import annotations

import functools
import unicodedata
from pathlib import Path

import numpy as np

VECTORS_DIR = Path(__file__).parent / "data" / "vectors"
_MAX_WORD = 100  # BERT's limit: a longer word is one unknown piece


class WordPieces:
    """A word-piece vocabulary and its vectors (pieces x dimensions, float32)."""

    def __init__(self, pieces: list[str], vectors: np.ndarray) -> None:
        self.ids = {piece: number for number, piece in enumerate(pieces)}
        self.vectors = vectors
        self.unknown = self.ids["[UNK]"]

    def __len__(self) -> int:
        return len(self.ids)

    def split(self, word: str) -> list[int]:
        """The piece ids of a word, as BERT's uncased word-piece tokenizer gives them."""
        out: list[int] = []
        for part in _basic_parts(word):
            out.extend(self._pieces(part))
        return out

    def _pieces(self, part: str) -> list[int]:
        if len(part) > _MAX_WORD:
            return [self.unknown]
        found: list[int] = []
        start = 0
        while start < len(part):
            end = len(part)
            while end > start:
                piece = part[start:end] if start == 0 else "##" + part[start:end]
                if piece in self.ids:
                    found.append(self.ids[piece])
                    break
                end -= 1
            else:
                return [self.unknown]
            start = end
        return found


def _basic_parts(word: str) -> list[str]:
    """BERT's basic tokenizer on one word: lower case, accents stripped, punctuation apart."""
    text = "".join(c for c in unicodedata.normalize("NFD", word.lower()) if unicodedata.category(c) != "Mn")
    parts: list[str] = []
    current = ""
    for char in text:
        if _is_punctuation(char):
            if current:
                parts.append(current)
            parts.append(char)
            current = ""
        elif not char.isspace():
            current += char
    if current:
        parts.append(current)
    return parts


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    # BERT counts every non-alphanumeric ASCII character as punctuation, as well as Unicode's P*.
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


@functools.cache
def load_word_pieces(name: str) -> WordPieces:
    """The shipped vectors ``data/vectors/<name>.npz``, loaded once per process."""
    with np.load(VECTORS_DIR / f"{name}.npz") as data:
        return WordPieces([str(piece) for piece in data["pieces"]], data["vectors"].astype("float32"))
