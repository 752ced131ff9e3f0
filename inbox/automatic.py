"""Recognise mail written by machines: bounces, auto-replies, out-of-office notes, lists, bulk.

Such mail is stored and marked but never assigned as work. Explicit standards win
(RFC 3464 reports, RFC 3834 `Auto-Submitted`, `Precedence`, list headers); an explicit
`Auto-Submitted: no` makes the sender a human and silences the weaker heuristics
(X-headers of autoresponders, bounce and out-of-office wording).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from inbox.parse import ParsedMessage

_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
_ADDRESS_TYPE = re.compile(r"^\s*[\w-]+\s*;\s*")  # "rfc822; user@example.com"
_FIELD = re.compile(r"^([A-Za-z-]+)\s*:\s*(.*)$")
_BOUNCE_SENDERS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"})
_BOUNCE_SUBJECT = re.compile(
    r"^\s*(?:undelivered mail returned to sender|delivery status notification \((?:failure|delay)\)|"
    r"mail delivery failed|mail delivery failure|delivery failure|failure notice|returned mail|"
    r"undeliverable|undelivered mail|delivery has failed|message not delivered|"
    r"unzustellbar|nicht zustellbar|nedoručiteľné|nedoručitelné|olevererbart|ej levererbart|"
    r"kézbesíthetetlen|nedostavljivo|non remis|non distribuable|no se puede entregar|no entregado|"
    r"niedostarczalne|niedostarczona)\b",
    re.I,
)
# Addresses the non-standard bounces name as failed: "<a@b>: host said 550", "delivered to a@b", a bare line.
_BOUNCED_LINE = re.compile(
    r"^\s*<?([\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+)>?\s*(?::|$|\()"
    r"|(?:delivered to|delivery to|failed permanently:?|recipient address rejected:?|"
    r"zugestellt werden an|doručiť na)\s*<?([\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+)>?",
    re.I | re.M,
)
_SUPPRESS_VALUES = frozenset({"all", "oof", "autoreply"})
_BULK_PRECEDENCE = frozenset({"bulk", "list", "junk", "auto_reply"})

# Out-of-office wording by language: subject prefixes (anchored at the start) and body phrases.
_OOO_SUBJECTS: dict[str, tuple[str, ...]] = {
    "English": (
        "out of office",
        "out of the office",
        "automatic reply",
        "auto-reply",
        "autoreply",
        "auto reply",
        "away from the office",
        "vacation reply",
        "absence notification",
    ),
    "German": (
        "abwesenheitsnotiz",
        "automatische antwort",
        "abwesend",
        "außer haus",
        "nicht im büro",
        "abwesenheitsmeldung",
        "automatische abwesenheitsnotiz",
    ),
    "Swedish": (
        "frånvaro",
        "frånvarande",
        "autosvar",
        "automatiskt svar",
        "ej på kontoret",
        "inte på kontoret",
    ),
    "Slovak": ("automatická odpoveď", "mimo kancelárie", "neprítomný", "neprítomná"),
    "Czech": ("automatická odpověď", "mimo kancelář", "nepřítomen", "nepřítomna"),
    "Hungarian": ("házon kívül", "automatikus válasz", "irodán kívül", "távollét"),
    "Slovenian": ("odsotnost", "samodejni odgovor", "odsoten", "odsotna", "samodejni odziv"),
    "French": (
        "absence du bureau",
        "réponse automatique",
        "absent du bureau",
        "absente du bureau",
        "message d'absence",
    ),
    "Spanish": ("fuera de la oficina", "fuera de oficina", "respuesta automática", "respuesta automatica"),
    "Polish": ("poza biurem", "odpowiedź automatyczna", "automatyczna odpowiedź", "autoodpowiedź"),
}
_OOO_TEXTS: dict[str, tuple[str, ...]] = {
    "English": (
        "i am out of the office",
        "i am currently out of the office",
        "i'm out of the office",
        "i am currently out of office",
        "i am away from the office",
        "i am on vacation",
        "i'm currently out of the office",
        "i will be out of the office until",
        "i am on annual leave",
        "with limited access to email",
    ),
    "German": (
        "ich bin derzeit nicht im büro",
        "ich bin zurzeit nicht im büro",
        "ich befinde mich im urlaub",
        "ich bin nicht im büro",
        "außer haus und ab",
    ),
    "Swedish": (
        "jag är ledig",
        "jag är tjänstledig",
        "jag är frånvarande",
        "jag är på semester",
        "jag är inte på kontoret",
    ),
    "Slovak": (
        "som mimo kancelárie",
        "som na dovolenke",
        "momentálne som mimo",
        "som neprítomný",
        "som neprítomná",
    ),
    "Czech": (
        "jsem mimo kancelář",
        "jsem na dovolené",
        "momentálně jsem mimo",
        "jsem nepřítomen",
        "jsem nepřítomna",
    ),
    "Hungarian": ("házon kívül vagyok", "szabadságon vagyok", "irodán kívül vagyok", "nem vagyok elérhető"),
    "Slovenian": ("sem odsoten", "sem odsotna", "sem na dopustu", "nisem v pisarni"),
    "French": ("je suis absent", "je suis actuellement absent", "je suis en congé", "je serai absent"),
    "Spanish": (
        "estoy fuera de la oficina",
        "estaré fuera de la oficina",
        "estoy de vacaciones",
        "me encuentro fuera de la oficina",
    ),
    "Polish": (
        "jestem poza biurem",
        "jestem na urlopie",
        "jestem nieobecny",
        "jestem nieobecna",
        "obecnie przebywam na urlopie",
    ),
}
_OOO_TEXT_WINDOW = 200  # an autoresponder says it first; a human mentioning a holiday says more
_OOO_TEXT_MAX = 1500


@dataclass
class AutomaticVerdict:
    is_automatic: bool
    reason: str | None
    bounced_recipients: list[str] = field(default_factory=list)


_HUMAN = AutomaticVerdict(False, None, [])


def detect_automatic(parsed: ParsedMessage) -> AutomaticVerdict:
    """Whether a machine sent this mail, why (one short line), and which recipients bounced."""
    headers = parsed.headers
    verdict = (
        _delivery_report(parsed)
        or _failed_recipients_header(headers)
        or _auto_submitted(headers)
        or _mailing_list(headers)
        or _bulk_precedence(headers)
    )
    if verdict is not None:
        return verdict
    if _token(headers.get("auto-submitted", "")) == "no":
        return _HUMAN
    return (
        _informal_bounce(parsed)
        or _out_of_office(parsed)
        or _autoresponder_headers(headers)
        or _null_return_path(headers)
        or _HUMAN
    )


def _token(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def _delivery_report(parsed: ParsedMessage) -> AutomaticVerdict | None:
    content_type = parsed.headers.get("content-type", "").lower()
    is_report = content_type.startswith("multipart/report") and "delivery-status" in content_type
    if not (is_report or parsed.delivery_status):
        return None
    failed, delayed = _report_recipients(parsed.delivery_status)
    if failed:
        return AutomaticVerdict(True, f"RFC 3464 delivery failure report ({', '.join(failed[:3])})", failed)
    if delayed:
        return AutomaticVerdict(True, "RFC 3464 delivery delay report", [])
    return AutomaticVerdict(True, "RFC 3464 delivery status report", [])


def _report_recipients(report: str) -> tuple[list[str], bool]:
    """Failed recipients of a delivery-status body (blocks of fields separated by blank lines)."""
    failed: list[str] = []
    delayed = False
    for block in re.split(r"\n\s*\n", report.replace("\r\n", "\n")):
        fields = _fields(block)
        action = fields.get("action", "").lower()
        status = fields.get("status", "")
        if action == "delayed":
            delayed = True
        if action != "failed" and not (not action and status.startswith("5")):
            continue
        for name in ("original-recipient", "final-recipient"):
            address = _ADDRESS_TYPE.sub("", fields.get(name, "")).strip().strip("<>").lower()
            if "@" in address and address not in failed:
                failed.append(address)
    return failed, delayed


def _fields(block: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in block.split("\n"):
        match = _FIELD.match(line)
        if match:
            fields.setdefault(match.group(1).lower(), match.group(2).strip())
    return fields


def _failed_recipients_header(headers: dict[str, str]) -> AutomaticVerdict | None:
    value = headers.get("x-failed-recipients")
    if not value:
        return None
    failed = list(dict.fromkeys(address.lower() for address in _ADDRESS.findall(value)))
    return AutomaticVerdict(True, "bounce (X-Failed-Recipients)", failed)


def _auto_submitted(headers: dict[str, str]) -> AutomaticVerdict | None:
    value = _token(headers.get("auto-submitted", ""))
    if not value or value == "no":
        return None
    return AutomaticVerdict(True, f"RFC 3834 Auto-Submitted: {value[:40]}", [])


def _bulk_precedence(headers: dict[str, str]) -> AutomaticVerdict | None:
    value = _token(headers.get("precedence", "") or headers.get("x-precedence", ""))
    if value in _BULK_PRECEDENCE:
        return AutomaticVerdict(True, f"Precedence: {value}", [])
    return None


def _mailing_list(headers: dict[str, str]) -> AutomaticVerdict | None:
    if headers.get("list-id"):
        return AutomaticVerdict(True, f"mailing list (List-Id: {headers['list-id'][:80]})", [])
    if headers.get("list-unsubscribe"):
        return AutomaticVerdict(True, "mailing list or newsletter (List-Unsubscribe)", [])
    return None


def _informal_bounce(parsed: ParsedMessage) -> AutomaticVerdict | None:
    """Bounces without an RFC 3464 report: from MAILER-DAEMON/postmaster or with a bounce subject."""
    local_part = (parsed.from_email or "").partition("@")[0]
    from_daemon = local_part in _BOUNCE_SENDERS or (parsed.from_name or "").lower() in (
        "mail delivery system",
        "mail delivery subsystem",
    )
    if not (from_daemon or _BOUNCE_SUBJECT.match(parsed.subject)):
        return None
    ours = {parsed.from_email, *parsed.to, *parsed.cc}
    failed: list[str] = []
    for match in _BOUNCED_LINE.finditer(parsed.text[:20_000]):
        address = (match.group(1) or match.group(2)).lower()
        if address not in ours and address not in failed:
            failed.append(address)
    return AutomaticVerdict(True, f"bounce from {parsed.from_email or 'mail system'}", failed)


def _autoresponder_headers(headers: dict[str, str]) -> AutomaticVerdict | None:
    for name in ("x-autoreply", "x-autorespond", "x-autoresponder", "x-autogenerated"):
        value = headers.get(name, "").strip().lower()
        if value and value not in ("no", "false", "0"):
            return AutomaticVerdict(True, f"autoresponder header {name}", [])
    suppress = {token.strip().lower() for token in headers.get("x-auto-response-suppress", "").split(",")}
    if suppress & _SUPPRESS_VALUES:
        return AutomaticVerdict(
            True, f"X-Auto-Response-Suppress: {headers['x-auto-response-suppress'][:40]}", []
        )
    return None


def _null_return_path(headers: dict[str, str]) -> AutomaticVerdict | None:
    # RFC 5321: notifications are sent with an empty envelope sender so nobody answers them.
    if headers.get("return-path", "").replace(" ", "") == "<>":
        return AutomaticVerdict(True, "null Return-Path (<>), a machine notification", [])
    return None


def _out_of_office(parsed: ParsedMessage) -> AutomaticVerdict | None:
    subject = parsed.subject.casefold().lstrip("[( ")
    for language, phrases in _OOO_SUBJECTS.items():
        if any(_starts_with_phrase(subject, phrase) for phrase in phrases):
            return AutomaticVerdict(True, f"out-of-office reply ({language})", [])
    text = parsed.new_text
    if len(text) > _OOO_TEXT_MAX:
        return None
    opening = " ".join(text[:_OOO_TEXT_WINDOW].casefold().split())
    for language, phrases in _OOO_TEXTS.items():
        if any(phrase in opening for phrase in phrases):
            return AutomaticVerdict(True, f"out-of-office text ({language})", [])
    return None


def _starts_with_phrase(subject: str, phrase: str) -> bool:
    if not subject.startswith(phrase):
        return False
    rest = subject[len(phrase) :]
    return not rest or not rest[0].isalnum()
