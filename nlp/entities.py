"""Entities in customer mail: order and invoice numbers, amounts, phones, e-mails, URLs, dates.

E-mail addresses and URLs come from spaCy's ``Matcher`` on the tokenizer's
``LIKE_EMAIL``/``LIKE_URL`` flags; the rest from regular expressions over the
doc text (they span several tokens and depend on punctuation the tokenizer
splits). Each entity carries a normalised value in ``span._.value``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal

from spacy.language import Language
from spacy.matcher import Matcher
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from nlp.doctext import doc_text

ORDER_NUMBER = "ORDER_NUMBER"
INVOICE_NUMBER = "INVOICE_NUMBER"
AMOUNT = "AMOUNT"
PHONE = "PHONE"
EMAIL = "EMAIL"
URL = "URL"
DATE = "DATE"


@dataclass
class EntityPattern:
    """A configurable regex entity, e.g. ``EntityPattern("ORDER_NUMBER", r"ORD-\\d{5,}")``.

    The entity (span and value) is the named group ``value`` if the pattern has one, else the whole match.
    """

    label: str
    pattern: str


class EntityPatternError(ValueError):
    """An entity pattern from the configuration is not a valid regular expression."""


_ID = r"(?P<value>(?=[A-Z0-9/-]*\d)[A-Z0-9][A-Z0-9/-]{2,}[A-Z0-9])"
_NUMBER_WORDS = r"(?:number|no\.?|nr\.?|num\.?|nummer|#|č\.|čís\.|číslo|n[°ºo]\.?|núm\.?|número|numéro|numer|szám(?:a)?|št\.|številka|:)"
_ORDER_WORDS = (
    r"order|purchase|bestellung|bestellnummer|auftrag|auftragsnummer|commande|pedido|"
    r"beställning|beställningsnummer|ordernummer|objednávk[ayuoe]|objednávky|rendelés(?:szám)?|"
    r"naročil[oau]|zamówieni[ea]|zamówienia"
)
_INVOICE_WORDS = (
    r"invoice|bill|rechnung|rechnungsnummer|facture|factura|fakturanummer|faktur[aueyoę]|faktúr[aueyo]|"
    r"számla(?:szám)?|računa?"
)



def _initials(words: str) -> str:
    """A lookahead for the first letters of `a|b|c`: words that cannot start a keyword are skipped
    before the long alternation is tried (twice as fast over mail text)."""
    return "(?=[" + "".join(sorted({word[0] for word in words.split("|")})) + "])"


# Python's `re` skips ahead quickly only to a pattern's first character when the pattern
# starts with a literal or a character set; a leading \b or look-behind makes it try every
# position (3-5 times slower on mail text). So a word boundary before a digit is written as
# a look-behind after it: \b\d == \d(?<!\w\d), and likewise before a literal.
DEFAULT_PATTERNS: tuple[EntityPattern, ...] = (
    EntityPattern(ORDER_NUMBER, r"(?P<value>ORD(?<!\wORD)-?\d{4,})\b"),
    EntityPattern(ORDER_NUMBER, rf"(?i)\b{_initials(_ORDER_WORDS)}(?:{_ORDER_WORDS})\s*(?:{_NUMBER_WORDS}\s*)*{_ID}\b"),
    EntityPattern(ORDER_NUMBER, r"(?i)(?P<value>\d(?<!\w\d)\d{3,})\s*(?:sz\.|számú)\s*rendelés"),
    EntityPattern(INVOICE_NUMBER, r"(?P<value>INV(?<!\wINV)-?\d{4,})\b"),
    EntityPattern(INVOICE_NUMBER, rf"(?i)\b{_initials(_INVOICE_WORDS)}(?:{_INVOICE_WORDS})\s*(?:{_NUMBER_WORDS}\s*)*{_ID}\b"),
)

_CURRENCY_SYMBOLS = {
    "€": "EUR",
    "$": "USD",
    "£": "GBP",
    "kč": "CZK",
    "zł": "PLN",
    "ft": "HUF",
    "kr": "SEK",
    "eur": "EUR",
    "euro": "EUR",
    "euros": "EUR",
    "usd": "USD",
    "gbp": "GBP",
    "czk": "CZK",
    "sek": "SEK",
    "huf": "HUF",
    "pln": "PLN",
    "chf": "CHF",
    "nok": "NOK",
    "dkk": "DKK",
}
_CURRENCY = r"€|\$|£|Kč|zł|Ft|kr|EUR|euros?|USD|GBP|CZK|SEK|HUF|PLN|CHF|NOK|DKK"
_AMOUNT_NUMBER = r"\d{1,3}(?:[ \u00a0.,'’]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?"
_LEADING_POINT = re.compile(r"^([+-]?)(?=[.,]\d{1,2}$)")  # the sign; a 0 goes after it
_AMOUNT_RE = re.compile(
    rf"(?<![\w.,])(?:(?P<cur1>{_CURRENCY})\s?(?P<num1>{_AMOUNT_NUMBER})(?:,-)?"
    rf"|(?P<num2>{_AMOUNT_NUMBER})(?:,-)?\s?(?P<cur2>{_CURRENCY}))(?![\w])",
    re.IGNORECASE,
)

_PHONE_RE = re.compile(
    r"(?<![\w+])(?:(?:\+|00)\d{1,3}[ .\-/]?(?:\(0?\d{1,4}\)[ .\-/]?)?\d{1,4}(?:[ .\-/]?\d{2,4}){1,4}"
    r"|(?<=[:.]\s)(?:\(?0\d{1,4}\)?[ .\-/]?)\d{2,4}(?:[ .\-/]?\d{2,4}){1,3}"
    r"|\(\d{3}\)\s?\d{3}-\d{4})(?![\w])",
)
# Every phone match has a "+", a "00" or a "(", or follows ": 0" / ". 0" (national numbers
# after a label): a mail with none of them is spared the scan.
_NATIONAL_PHONE_START = re.compile(r"[:.]\s\(?0")
_PHONE_CONTEXT = re.compile(
    r"(?i)(?:tel|phone|mobile?|mobil|telefon|telefón|telefonu|cell|call me at|fax)\W*$"
)

_MONTHS: dict[str, int] = {}
for _number, _names in enumerate(
    (
        "january jan januar jänner janvier enero januari ledna leden január januára januarja stycznia styczeń",
        "february feb februar février febrero februari února únor február februára februarja lutego luty",
        "march mar märz mars marzo března březen március marca marec marca",
        "april apr avril abril dubna duben április apríla aprila kwietnia kwiecień",
        "may mai mayo maj května květen május mája maja maj",
        "june jun juni juin junio června červen június júna junija czerwca czerwiec",
        "july jul juli juillet julio července červenec július júla julija lipca lipiec",
        "august aug août agosto augusti srpna srpen augusztus augusta avgusta sierpnia sierpień",
        "september sep sept septembre septiembre setiembre září szeptember septembra września wrzesień",
        "october oct oktober octobre octubre října říjen október októbra oktobra października październik",
        "november nov novembre noviembre listopadu listopad novembra listopada",
        "december dec dezember décembre diciembre prosince prosinec decembra decembra grudnia grudzień",
    ),
    start=1,
):
    for _name in _names.split():
        _MONTHS[_name] = _number
_MONTH = "|".join(sorted((re.escape(m) for m in _MONTHS), key=len, reverse=True))
# Digit-led (see DEFAULT_PATTERNS): (?<!\w\d) after a first digit is \b before it.
_DATE_RES: tuple[re.Pattern[str], ...] = (
    re.compile(r"(?P<y>\d(?<!\w\d)\d{3})-(?P<m>\d{1,2})-(?P<d>\d{1,2})\b"),
    re.compile(r"(?P<d>\d(?<![\d.]\d)\d?)\.\s?(?P<m>\d{1,2})\.\s?(?P<y>\d{4})\b"),
    re.compile(r"(?P<a>\d(?<![\d/]\d)\d?)/(?P<b>\d{1,2})/(?P<y>\d{4})\b"),
    re.compile(
        rf"(?i)(?P<d>\d(?<!\w\d)\d?)(?:\.|st|nd|rd|th|er)?\s(?:de\s)?(?P<mn>{_MONTH})\.?(?:,?\s(?:de\s)?(?P<y>\d{{4}}))?\b"
    ),
    re.compile(rf"(?i)(?P<y>\d(?<!\w\d)\d{{3}})\.\s?(?P<mn>{_MONTH})\s(?P<d>\d{{1,2}})\.?"),
)
# Month first ("November 12, 2026"): tried only where a word ending a month's way comes
# right before a digit (_MONTH_BEFORE_DAY), anchored at that word's start.
_MONTH_FIRST_DATE = re.compile(
    rf"(?i)\b(?P<mn>{_MONTH})\.?\s(?P<d>\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s(?P<y>\d{{4}}))?\b"
)
_DAY_AFTER_SPACE = re.compile(r"\d(?<=\s\d)")
_LONGEST_MONTH = max(map(len, _MONTHS))
_MONTH_BEFORE_DAY = re.compile(r"(?<!\w)(?P<word>\w+)\.?\s\Z")

_DIGIT = re.compile(r"\d")
_MAYBE_LINK = re.compile(r"@|\.(?<=\w\.)[A-Za-z]{2}")  # "@" or "x.yz", found from the "@" or "."
# A cheap superset of "has a digit or matches _MAYBE_LINK" (three simple scans beat one alternation).
_DOT_LETTERS = re.compile(r"\.[A-Za-z]{2}")

# Found entity before it becomes a span: (start, end, label, value).
Found = tuple[int, int, str, str]


def _may_have_entity(text: str) -> bool:
    return "@" in text or _DIGIT.search(text) is not None or _DOT_LETTERS.search(text) is not None


def compile_patterns(patterns: Iterable[EntityPattern]) -> list[tuple[str, re.Pattern[str]]]:
    """Compile configured patterns, naming the bad one in the error."""
    compiled = []
    for item in patterns:
        try:
            compiled.append((item.label, re.compile(item.pattern)))
        except re.error as exc:
            raise EntityPatternError(f"entity pattern {item.label} '{item.pattern}': {exc}") from None
    return compiled


class EntityRecognizer:
    """spaCy component: sets ``doc.ents`` (keeping entities from earlier components that do not overlap)."""

    def __init__(self, nlp: Language, patterns: Sequence[EntityPattern]) -> None:
        self.patterns = list(patterns)
        self._configured = compile_patterns(self.patterns)
        self._defaults = compile_patterns(DEFAULT_PATTERNS)
        self._matcher = Matcher(nlp.vocab)
        self._matcher.add(EMAIL, [[{"LIKE_EMAIL": True}]])
        self._matcher.add(URL, [[{"LIKE_URL": True}]])

    def pipe(self, docs: Iterable[Doc], batch_size: int = 256) -> Iterator[Doc]:
        """Like ``__call__`` per doc; without configured patterns, a mail with neither a digit
        nor an e-mail/URL hint (most one-liners) is passed on after one regex search."""
        for doc in docs:
            if self._configured or _may_have_entity(doc_text(doc)):
                self(doc)
            yield doc

    def __call__(self, doc: Doc) -> Doc:
        text = doc_text(doc)
        found = _find_patterns(self._configured, text)
        if _MAYBE_LINK.search(text):
            found.extend(self._find_tokens(doc))
        # Every built-in entity has a digit: most one-line mails skip the regexes.
        if _DIGIT.search(text):
            for finder in (find_amounts, find_phones, find_dates):
                found.extend(finder(text))
            found.extend(_find_patterns(self._defaults, text))
        if found:
            self._set_ents(doc, found)
        return doc

    def _set_ents(self, doc: Doc, found: list[Found]) -> None:
        spans = []
        for start, end, label, value in found:
            span = doc.char_span(start, end, label=label, alignment_mode="expand")
            if span is not None:
                span._.value = value
                spans.append(span)
        ours = filter_spans(spans)
        kept = [ent for ent in doc.ents if not any(_overlap(ent, span) for span in ours)]
        doc.ents = sorted([*kept, *ours], key=lambda span: span.start)

    def _find_tokens(self, doc: Doc) -> list[Found]:
        found = []
        for match_id, start, end in self._matcher(doc):
            label = doc.vocab.strings[match_id]
            span = doc[start:end]
            text = span.text.rstrip(".,;:)")
            if label == URL and ("@" in text or not _looks_like_url(text)):
                continue
            value = text.lower() if label == EMAIL else text
            found.append((span.start_char, span.start_char + len(text), label, value))
        return found


def _find_patterns(patterns: list[tuple[str, re.Pattern[str]]], text: str) -> list[Found]:
    found = []
    for label, regex in patterns:
        # The span is the identifier itself, not the "order no." words around it.
        group = "value" if "value" in regex.groupindex else 0
        for match in regex.finditer(text):
            if match.group(group):
                found.append((match.start(group), match.end(group), label, match.group(group)))
    return found


def _overlap(a: Span, b: Span) -> bool:
    return a.start < b.end and b.start < a.end


def _looks_like_url(text: str) -> bool:
    # LIKE_URL also accepts "e.g." style abbreviations; a URL has a scheme, www. or a path/TLD-ish dot.
    lowered = text.lower()
    return lowered.startswith(("http://", "https://", "www.")) or bool(
        re.fullmatch(r"[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}(?:/\S*)?", lowered)
    )


def find_amounts(text: str) -> list[Found]:
    """Amounts with a currency before or after the number, value like ``EUR 120.00``."""
    found = []
    for match in _AMOUNT_RE.finditer(text):
        currency = _CURRENCY_SYMBOLS[(match.group("cur1") or match.group("cur2")).lower()]
        amount = parse_amount(match.group("num1") or match.group("num2"))
        if amount is not None:
            found.append((match.start(), match.end(), AMOUNT, f"{currency} {amount:.2f}"))
    return found


def parse_amount(number: str) -> Decimal | None:
    """Read ``1 200,50``, ``1.200,50``, ``1,200.50``, ``120`` or ``.50`` (0.50) as a decimal."""
    digits = re.sub(r"[ \u00a0'’]", "", number)
    # With no whole part, a separator before one or two digits is the decimal point (`.50`, `,5`),
    # as in store.validation; `.500` stays as it is, and is no number below.
    digits = _LEADING_POINT.sub(r"\g<1>0", digits)
    separators = re.findall(r"[.,]", digits)
    if separators and digits.lstrip("+-")[:1].isdigit():
        last = max(digits.rfind("."), digits.rfind(","))
        decimals = len(digits) - last - 1
        # A single separator followed by three digits groups thousands ("1.200", "1,200").
        if (decimals == 3 and len(separators) == 1) or decimals not in (1, 2):
            digits = digits.replace(".", "").replace(",", "")
        else:
            digits = digits[:last].replace(".", "").replace(",", "") + "." + digits[last + 1 :]
    # Digits only, as the importer reads them: Decimal would also read `1e9`.
    return Decimal(digits) if re.fullmatch(r"[+-]?\d+(?:\.\d+)?", digits) else None


def may_have_phone(text: str) -> bool:
    """False only when ``_PHONE_RE`` cannot match (a few substring checks instead of a scan)."""
    return "+" in text or "00" in text or "(" in text or _NATIONAL_PHONE_START.search(text) is not None


def find_phones(text: str) -> list[Found]:
    """International numbers (+ or 00) anywhere; national ones only after a "Tel:"-like label."""
    found: list[Found] = []
    if not may_have_phone(text):
        return found
    for match in _PHONE_RE.finditer(text):
        raw = match.group(0)
        digits = re.sub(r"\D", "", raw)
        if len(digits) < 7 or len(digits) > 15:
            continue
        international = raw.startswith(("+", "00"))
        if not international and not _PHONE_CONTEXT.search(text[max(0, match.start() - 20) : match.start()]):
            continue
        value = "+" + digits.removeprefix("00") if international else digits
        found.append((match.start(), match.end(), PHONE, value))
    return found


def find_dates(text: str) -> list[Found]:
    """Numeric and month-name dates in the supported languages, value ISO ``YYYY-MM-DD`` (``--MM-DD`` without year)."""
    found = []
    for match in itertools.chain(*(regex.finditer(text) for regex in _DATE_RES), month_first_dates(text)):
        value = _date_value(match)
        if value is not None:
            found.append((match.start(), match.end(), DATE, value))
    return found


def month_first_dates(text: str) -> Iterator[re.Match[str]]:
    """``_MONTH_FIRST_DATE.finditer(text)``, trying only the words that are a month name
    followed by a day (a month-first date always is): five times faster than a scan."""
    end = 0
    for day in _DAY_AFTER_SPACE.finditer(text):
        before = _MONTH_BEFORE_DAY.search(text, max(end, day.start() - _LONGEST_MONTH - 2), day.start())
        if before is None or before.group("word").lower() not in _MONTHS:
            continue
        match = _MONTH_FIRST_DATE.match(text, before.start())
        if match is not None:
            end = match.end()
            yield match


def _date_value(match: re.Match[str]) -> str | None:
    parts = match.groupdict()
    if parts.get("a") is not None:
        first, second = int(parts["a"]), int(parts["b"])
        # d/m/Y unless that is impossible and m/d/Y is not (US style "11/23/2026").
        day, month = (second, first) if second > 12 >= first else (first, second)
    else:
        day = int(parts["d"])
        month = _MONTHS[parts["mn"].lower()] if parts.get("mn") else int(parts["m"])
    year = int(parts["y"]) if parts.get("y") else 2000  # a leap year, so 29 February is valid
    try:
        date = dt.date(year, month, day)
    except ValueError:
        return None
    return date.isoformat() if parts.get("y") else f"--{month:02d}-{day:02d}"
