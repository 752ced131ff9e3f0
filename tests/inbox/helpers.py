"""Helpers for the inbox tests: a small keyword classifier, a mail builder, reps and mailbox specs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from sqlalchemy.engine import Engine

from inbox.options import ClassificationLike, Classifier, MailboxSpec
from store.db import session_scope
from store.models import Rep
from tests.servers.dovecot import ImapAccount

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "inbox"
# A Monday at 10:00 UTC: inside "Mon-Fri 09:00-17:00" in UTC and in Europe/Berlin.
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


KEYWORDS = {
    "refund": ("refund", "money back", "erstattung", "vrátenie"),
    "delivery": ("delivery", "parcel", "lieferung", "doručenie"),
    "billing": ("invoice", "rechnung", "faktúra"),
    "sales": ("quote", "pricing", "angebot"),
}
LANGUAGE_WORDS = {"de": (" ich ", " und ", " bitte "), "sk": (" som ", " prosím ", " dobrý ")}


@dataclass(frozen=True)
class Result:
    category: str
    confidence: float
    language: str | None
    entities: list[object] = field(default_factory=list)
    model_version: str = "keywords-test"


class KeywordClassifier:
    """A small real classifier: category by keyword, language by a few common words; counts calls."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def classify(self, texts: list[str]) -> list[Result]:
        self.calls.append(len(texts))
        return [self._one(text) for text in texts]

    def _one(self, text: str) -> Result:
        lowered = f" {text.lower()} "
        category = next((c for c, words in KEYWORDS.items() if any(w in lowered for w in words)), "general")
        language = next((lang for lang, words in LANGUAGE_WORDS.items() if any(w in lowered for w in words)), "en")
        return Result(category, 0.9 if category != "general" else 0.6, language)


class CountingClassifier:
    """Wraps a classifier and records the batch size of each call."""

    def __init__(self, inner: Classifier) -> None:
        self.inner = inner
        self.calls: list[int] = []

    def classify(self, texts: list[str]) -> Sequence[ClassificationLike]:
        self.calls.append(len(texts))
        return self.inner.classify(texts)


def add_rep(engine: Engine, email: str, **fields: object) -> int:
    with session_scope(engine) as session:
        rep = Rep(name=email.partition("@")[0].title(), email=email, **fields)  # type: ignore[arg-type]
        session.add(rep)
        session.flush()
        assert rep.id is not None
        return rep.id


def mail(
    *,
    subject: str = "Hello",
    sender: str = "jana@customer.example",
    to: str = "support@shop.example",
    body: str = "Hello, a question.",
    message_id: str | None = "<m1@customer.example>",
    in_reply_to: str | None = None,
    references: str | None = None,
    date: datetime = NOW,
    headers: dict[str, str] | None = None,
) -> bytes:
    """A plain-text message as raw bytes."""
    lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}", f"Date: {format_datetime(date)}"]
    if message_id:
        lines.append(f"Message-ID: {message_id}")
    if in_reply_to:
        lines.append(f"In-Reply-To: {in_reply_to}")
    if references:
        lines.append(f"References: {references}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "", body, ""]
    return "\r\n".join(lines).encode()


def fixture_eml(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def spec_for(account: ImapAccount, **fields: object) -> MailboxSpec:
    values: dict[str, object] = {
        "name": account.user,
        "host": account.host,
        "port": account.port,
        "user": account.user,
        "password": account.password,
        "security": "none",
        "sent_folder": "Sent",
        **fields,
    }
    return MailboxSpec(**values)  # type: ignore[arg-type]


MailFactory = Callable[..., bytes]
