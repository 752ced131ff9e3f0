"""Language identification as a spaCy component (``doc._.language``).

lingua's high-accuracy models need ~350 MB for ten languages, so lingua runs
in low-accuracy mode (trigrams, ~30 MB) restricted to the configured
languages. Low-accuracy mode is weak on one-line mails, so short texts are
re-scored: lingua's pick plus a small hand-written lexicon of function words and letters
that only one configured language uses, with a small bonus for the first
configured language (the inbox's main one).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
from lingua import IsoCode639_1, Language, LanguageDetector, LanguageDetectorBuilder
from spacy.strings import get_string_id as hash_string
from spacy.tokens import Doc
from spacy.util import minibatch

from nlp.doctext import batch_tokens, doc_text, extension_key, find_sorted, set_extensions, unique_inverse

DEFAULT_LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "es", "sv", "sk", "cs", "hu", "sl", "pl")

# Texts shorter than this get the lexicon re-scoring (lingua is reliable above it).
SHORT_TEXT_CHARS = 160
_LINGUA_WEIGHT = 0.5
_WORD_WEIGHT = 0.4
_LETTER_WEIGHT = 1.0
# The first configured language is the inbox's main one: it wins near-ties on one-liners.
_PRIMARY_WEIGHT = 0.15
# A longer text skips lingua only when the lexicon leads by this much (five function words).
_LONG_MARGIN = 2.0
# Fewer undecided texts than this in a batch go through lingua one by one.
_PARALLEL_LINGUA = 32
# Where doc._.language is stored (written directly: spaCy's Underscore costs a microsecond per doc).
LANGUAGE_KEY = extension_key("language")

_FUNCTION_WORDS: dict[str, frozenset[str]] = {
    code: frozenset(words.split())
    for code, words in {
        "en": "the and is my i you your to of for please have has not with this it can what where how thanks "
        "thank hi hello want would from yet was are me we our been still an there here do does did why when "
        "get got set up help will which cant can't isn don be on at any no",
        "de": "der die das und ist ich nicht mit sie bitte meine mein ein eine noch wo wie danke hallo für auf "
        "zu den dem haben habe möchte können guten tag sehr geehrte ihr uns wir ist angekommen",
        "fr": "le la les et est je ne pas pour avec vous votre mon ma mes une un des bonjour merci où que qui "
        "encore sur dans au du nous voudrais",
        "es": "el la los las y es mi mis no para con usted su un una hola gracias dónde que por favor "
        "todavía quiero está del al me ha",
        "sv": "och är jag inte min mitt mina för med det en ett hej tack var har på till vill kan ni er än "
        "att som om vi oss",
        "sk": "som nie moja môj moje pre so ďakujem dobrý deň prosím ešte kde sa by chcem vás váš vaša aj "
        "alebo ako už neprišla",
        "cs": "jsem ne moje můj pro se děkuji dobrý den prosím ještě kde bych chci vás váš vaše také nebo "
        "jak už nedorazila",
        "hu": "a az és nem van hogy meg még köszönöm kérem jó napot hol egy is de már volt szeretném "
        "kaptam ez csak vagy",
        "sl": "in je sem ne moje moj za hvala prosim še kje bi želim vas vaš tudi ali kako že "
        "pozdravljeni lep dan",
        "pl": "jest nie moje mój moja dla się dziękuję dzień dobry proszę jeszcze gdzie bym chcę państwa "
        "także lub jak już czy",
    }.items()
}
_LETTERS: dict[str, str] = {
    "en": "",
    "de": "ßäöü",
    "fr": "çœèêàâîûëï",
    "es": "ñ¿¡",
    "sv": "åäö",
    "sk": "ôľĺŕäď",
    "cs": "řěů",
    "hu": "őűöü",
    "sl": "",
    "pl": "łąęśźżćń",
}


class UnknownLanguageError(ValueError):
    """A configured language code is not an ISO 639-1 code lingua knows."""


def to_lingua(codes: Iterable[str]) -> list[Language]:
    """ISO 639-1 codes -> lingua languages, naming the first unknown code."""
    languages = []
    for code in codes:
        try:
            languages.append(Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())))
        except AttributeError:
            raise UnknownLanguageError(
                f"unknown language code {code!r} (expected ISO 639-1, e.g. 'sv')"
            ) from None
    if len(languages) < 2:
        raise UnknownLanguageError("configure at least two languages to detect")
    return languages


class LanguageDetectorComponent:
    """spaCy component: ``doc._.language`` (ISO 639-1 code or None when there is no text to judge).

    The lexicon is scored for a whole batch at once (the docs' lower-case token ids
    against a sorted table of function-word ids); lingua only sees the texts the
    lexicon leaves undecided.
    """

    def __init__(self, languages: Sequence[str]) -> None:
        self.languages = [code.lower() for code in languages]
        self._detector: LanguageDetector = (
            LanguageDetectorBuilder.from_languages(*to_lingua(self.languages))
            .with_low_accuracy_mode()
            .with_preloaded_language_models()
            .build()
        )
        self._index = {code: i for i, code in enumerate(self.languages)}
        self._word_ids, self._word_scores = _function_word_table(self.languages)
        self._letter_language = {
            letter: self._index[code]
            for code, letters in _unique_letters(self.languages).items()
            for letter in letters
        }
        self._letters = frozenset(self._letter_language)

    def __call__(self, doc: Doc) -> Doc:
        return self._label([doc])[0]

    def pipe(self, docs: Iterable[Doc], batch_size: int = 256) -> Iterator[Doc]:
        for batch in minibatch(docs, batch_size):
            yield from self._label(batch)

    def _label(self, docs: list[Doc]) -> list[Doc]:
        set_extensions(docs, LANGUAGE_KEY, self.detect(docs, [doc_text(doc) for doc in docs]))
        return docs

    def detect(self, docs: Sequence[Doc], texts: Sequence[str]) -> list[str | None]:
        """Language codes for docs (and their texts); the undecided go through lingua in one parallel batch."""
        scores = self._lexicon_scores(docs, texts)
        ranked = np.sort(scores, axis=1)
        margin = ranked[:, -1] - ranked[:, -2]
        short = np.fromiter((len(text) < SHORT_TEXT_CHARS for text in texts), dtype=bool, count=len(texts))
        # A short text is decided when lingua's vote could not change it; a long one
        # (where lingua is trusted over the lexicon) only by a clear lead of function words.
        decided = np.where(short, margin > _LINGUA_WEIGHT, margin >= _LONG_MARGIN)
        best = scores.argmax(axis=1)
        codes: list[str | None] = [
            self.languages[i] if sure else None
            for i, sure in zip(best.tolist(), decided.tolist(), strict=True)
        ]
        undecided = np.flatnonzero(~decided).tolist()
        found = self._lingua([texts[i] for i in undecided])
        for i, language in zip(undecided, found, strict=True):
            lingua_code = language.iso_code_639_1.name.lower() if language else None
            codes[i] = self._combine(scores[i], lingua_code) if short[i] and lingua_code else lingua_code
        return codes

    def _lingua(self, texts: list[str]) -> list[Language | None]:
        # Starting lingua's thread pool costs more than it saves for the few texts of a typical batch.
        if len(texts) < _PARALLEL_LINGUA:
            return [self._detector.detect_language_of(text) for text in texts]
        return self._detector.detect_languages_in_parallel_of(texts)

    def _lexicon_scores(self, docs: Sequence[Doc], texts: Sequence[str]) -> np.ndarray:
        """Per doc and configured language: primary bonus + function words (each once) + unique letters."""
        n_words = len(self._word_ids)
        scores = np.zeros((len(docs), len(self.languages)))
        scores[:, 0] = _PRIMARY_WEIGHT
        tokens = batch_tokens(docs)
        if n_words:
            place, found = find_sorted(self._word_ids, tokens.unique)
            place, hit = place[tokens.inverse], found[tokens.inverse]
            # A function word counts once per text, however often it occurs.
            pairs, _ = unique_inverse(tokens.doc_of[hit] * n_words + place[hit])
            scores += _sum_rows_per_doc(self._word_scores[pairs % n_words], pairs // n_words, len(docs))
        for i, text in enumerate(texts):
            if not text.isascii():  # every distinguishing letter is non-ASCII
                for letter in self._letters.intersection(text.lower()):
                    scores[i, self._letter_language[letter]] += _LETTER_WEIGHT
        return scores

    def _combine(self, scores: np.ndarray, lingua_code: str) -> str:
        """Lexicon scores plus lingua's vote; ties keep lingua's answer."""
        combined = scores.copy()
        lingua_index = self._index[lingua_code]
        combined[lingua_index] += _LINGUA_WEIGHT
        if combined[lingua_index] == combined.max():
            return lingua_code
        return self.languages[int(combined.argmax())]


def _sum_rows_per_doc(rows: np.ndarray, doc_of: np.ndarray, n_docs: int) -> np.ndarray:
    """Sum of the rows of each doc (``np.add.at`` with one bincount, several times faster)."""
    n_columns = rows.shape[1]
    cells = (doc_of[:, None] * n_columns + np.arange(n_columns)).ravel()
    return np.bincount(cells, weights=rows.ravel(), minlength=n_docs * n_columns).reshape(n_docs, n_columns)


def _function_word_table(languages: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted lower-case ids of the configured languages' function words, and each one's
    score row (``_WORD_WEIGHT`` for every language that uses it)."""
    words = sorted({word for code in languages for word in _FUNCTION_WORDS.get(code, ())})
    ids = np.array([hash_string(word) for word in words], dtype="uint64")
    rows = np.array(
        [[_WORD_WEIGHT * (word in _FUNCTION_WORDS.get(code, ())) for code in languages] for word in words]
    ).reshape(len(words), len(languages))
    order = np.argsort(ids)
    return ids[order], rows[order]


def _unique_letters(languages: Sequence[str]) -> dict[str, str]:
    """Letters that, among the configured languages, only this one uses."""
    unique = {}
    for code in languages:
        others = "".join(_LETTERS.get(other, "") for other in languages if other != code)
        unique[code] = "".join(letter for letter in _LETTERS.get(code, "") if letter not in others)
    return unique
