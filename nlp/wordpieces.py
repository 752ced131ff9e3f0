"""Pretrained static vectors for words, by their word pieces.

``data/vectors/minilm.npz`` holds a vector for each of all-MiniLM-L6-v2's 30,522 word
pieces, distilled the Model2Vec way (``scripts/distil-word-vectors``: each piece through the
transformer alone, mean-pooled, PCA to 128 dimensions). A word is cut into pieces as BERT's
uncased tokenizer cuts it (control characters dropped, CJK ideographs and punctuation apart,
lower case, accents stripped, then the longest known piece first, ``##`` marking a piece
inside a word), so every word has a vector, even one no training text had: what bags of
n-grams cannot give (paraphrases, synonyms).
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
    """BERT's basic tokenizer on one word: control characters dropped, whitespace and CJK
    ideographs as separators, then each part lower-cased, accents stripped, punctuation apart."""
    spaced = "".join(
        f" {char} " if _is_cjk(char) else " " if _is_whitespace(char) else char
        for char in word if not _is_dropped(char)
    )
    parts: list[str] = []
    for token in spaced.split():
        text = "".join(c for c in unicodedata.normalize("NFD", token.lower()) if unicodedata.category(c) != "Mn")
        current = ""
        for char in text:
            if _is_punctuation(char):
                parts.extend([current, char] if current else [char])
                current = ""
            else:
                current += char
        if current:
            parts.append(current)
    return parts


def _is_dropped(char: str) -> bool:
    # NUL, the replacement character and control or format characters (a soft hyphen, a
    # zero-width space, a byte-order mark), but not tab and line breaks: those are spaces.
    if char in "\t\n\r":
        return False
    return char in "\x00\ufffd" or unicodedata.category(char).startswith("C")


def _is_whitespace(char: str) -> bool:
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


# The CJK Unified Ideographs blocks, as BERT lists them: each ideograph is a word of its own.
_CJK = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
        (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _CJK)


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
        vectors = data["vectors"].astype("float32")
        vectors.flags.writeable = False  # shared by every model of the process
        return WordPieces([str(piece) for piece in data["pieces"]], vectors)
