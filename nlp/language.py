"""Language identification as a spaCy component (``doc._.language``).

lingua's high-accuracy models need ~350 MB for ten languages, so lingua runs
in low-accuracy mode (trigrams, ~30 MB) restricted to the configured
languages. Low-accuracy mode is weak on one-line mails, so short texts are
re-scored: lingua's pick plus a small hand-written lexicon of function words and letters
that only one configured language uses, with a small bonus for the first
configured language (the inbox's main one).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

from lingua import IsoCode639_1, Language, LanguageDetector, LanguageDetectorBuilder
from spacy.tokens import Doc

from nlp.doctext import doc_text

DEFAULT_LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "es", "sv", "sk", "cs", "hu", "sl", "pl")

# Texts shorter than this get the lexicon re-scoring (lingua is reliable above it).
SHORT_TEXT_CHARS = 160
_LINGUA_WEIGHT = 0.5
_WORD_WEIGHT = 0.4
_LETTER_WEIGHT = 1.0
# The first configured language is the inbox's main one: it wins near-ties on one-liners.
_PRIMARY_WEIGHT = 0.15

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
_WORD_RE = re.compile(r"\w+")


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
    """spaCy component: ``doc._.language`` (ISO 639-1 code or None when there is no text to judge)."""

    def __init__(self, languages: Sequence[str]) -> None:
        self.languages = [code.lower() for code in languages]
        self._detector: LanguageDetector = (
            LanguageDetectorBuilder.from_languages(*to_lingua(self.languages))
            .with_low_accuracy_mode()
            .with_preloaded_language_models()
            .build()
        )
        self._word_languages: dict[str, list[str]] = {}
        for code in self.languages:
            for word in _FUNCTION_WORDS.get(code, ()):
                self._word_languages.setdefault(word, []).append(code)
        self._letter_language = {
            letter: code for code, letters in _unique_letters(self.languages).items() for letter in letters
        }

    def __call__(self, doc: Doc) -> Doc:
        doc._.language = self.detect([doc_text(doc)])[0]
        return doc

    def pipe(self, docs: Iterable[Doc], batch_size: int = 256) -> Iterator[Doc]:
        batch: list[Doc] = []
        for doc in docs:
            batch.append(doc)
            if len(batch) >= batch_size:
                yield from self._label(batch)
                batch = []
        yield from self._label(batch)

    def _label(self, docs: list[Doc]) -> list[Doc]:
        for doc, language in zip(docs, self.detect([doc_text(doc) for doc in docs]), strict=True):
            doc._.language = language
        return docs

    def detect(self, texts: Sequence[str]) -> list[str | None]:
        """Language codes for texts; the ones lingua can still decide go through it in one parallel batch."""
        codes: list[str | None] = [None] * len(texts)
        short_scores: dict[int, dict[str, float]] = {}
        for i, text in enumerate(texts):
            if len(text) < SHORT_TEXT_CHARS:
                scores = self._lexicon_scores(text)
                best, runner_up = sorted([*scores.values(), 0.0, 0.0], reverse=True)[:2]
                if best - runner_up > _LINGUA_WEIGHT:
                    codes[i] = max(scores, key=scores.__getitem__)  # lingua could not change it
                    continue
                short_scores[i] = scores
        undecided = [i for i, code in enumerate(codes) if code is None]
        found = self._detector.detect_languages_in_parallel_of([texts[i] for i in undecided])
        for i, language in zip(undecided, found, strict=True):
            lingua_code = language.iso_code_639_1.name.lower() if language else None
            lexicon = short_scores.get(i)
            codes[i] = _combine(lexicon, lingua_code) if lexicon and lingua_code else lingua_code
        return codes

    def _lexicon_scores(self, text: str) -> dict[str, float]:
        lowered = text.lower()
        scores = {self.languages[0]: _PRIMARY_WEIGHT}
        for word in set(_WORD_RE.findall(lowered)):
            for code in self._word_languages.get(word, ()):
                scores[code] = scores.get(code, 0.0) + _WORD_WEIGHT
        for letter in self._letter_language.keys() & set(lowered):
            code = self._letter_language[letter]
            scores[code] = scores.get(code, 0.0) + _LETTER_WEIGHT
        return scores


def _combine(scores: dict[str, float], lingua_code: str) -> str:
    """Lexicon scores plus lingua's vote; ties keep lingua's answer."""
    combined = dict(scores)
    combined[lingua_code] = combined.get(lingua_code, 0.0) + _LINGUA_WEIGHT
    best = max(combined.values())
    return lingua_code if combined[lingua_code] == best else max(combined, key=combined.__getitem__)


def _unique_letters(languages: Sequence[str]) -> dict[str, str]:
    """Letters that, among the configured languages, only this one uses."""
    unique = {}
    for code in languages:
        others = "".join(_LETTERS.get(other, "") for other in languages if other != code)
        unique[code] = "".join(letter for letter in _LETTERS.get(code, "") if letter not in others)
    return unique
