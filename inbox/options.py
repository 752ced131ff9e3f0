"""Plain settings the inbox takes (built by `rapport.cli.inbox` from the environment and rapport.toml)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal, Protocol

from store.types import utcnow


@dataclass(frozen=True)
class Route:
    """Send a category and/or a language to a team or to one rep (by email)."""

    category: str | None = None
    language: str | None = None
    team: str | None = None
    rep: str | None = None


@dataclass(frozen=True)
class IngestOptions:
    routes: Sequence[Route] = ()
    sla_hours: float = 8.0
    # Tighter (or no) SLAs by urgency and by category; 0 for a category means no reply is owed.
    sla_hours_by_urgency: Mapping[str, float] = field(default_factory=lambda: {"urgent": 2.0, "high": 4.0})
    sla_hours_by_category: Mapping[str, float] = field(default_factory=lambda: {"feedback": 0.0})
    fallback_queue: str = "triage"
    backlog_age: timedelta = timedelta(days=2)
    keyword_prefix: str = "rapport"
    move_to_owner_folders: bool = False
    owner_folder_prefix: str = "Rapport"
    sender_rate_limit_per_hour: int = 20
    max_message_bytes: int = 50 * 1024 * 1024
    batch_size: int = 200
    thread_window: timedelta = timedelta(days=30)
    own_addresses: Sequence[str] = ()  # the shared mailboxes' own addresses: mail from them is staff mail
    tag_messages: bool = True  # enqueue imap-tag rows (off for directory sources: nothing to tag)
    privacy_key: str | None = field(default=None, repr=False)  # RAPPORT_PRIVACY_KEY: erased mail is skipped
    now: datetime | None = None  # fixed clock for tests and the demo

    def moment(self) -> datetime:
        """The ingest's time: `now` when fixed, else the real time (what new records are stamped with)."""
        return self.now or utcnow()


@dataclass(frozen=True)
class MailboxSpec:
    """One IMAP account: where it is, how to log in and which folders to read."""

    name: str  # how checkpoints and messages name it, e.g. "support@example.com"
    host: str
    user: str
    password: str = field(repr=False)
    port: int | None = None
    security: Literal["ssl", "starttls", "none"] = "ssl"
    ca_file: Path | None = None
    folders: Sequence[str] = ("INBOX",)
    sent_folder: str | None = None  # None: the folder with SPECIAL-USE \Sent, if any
    use_idle: bool = True  # False: poll even where the server offers IDLE (e.g. firewalls that cut idle links)
    idle_timeout_minutes: float = 25.0
    poll_interval_seconds: float = 30.0
    timeout_seconds: float = 30.0


class EntityLike(Protocol):
    """What inbox reads from nlp's `Entity`."""

    @property
    def label(self) -> str: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def value(self) -> str: ...


class ClassificationLike(Protocol):
    """What inbox reads from nlp's `Classification`."""

    @property
    def category(self) -> str: ...
    @property
    def confidence(self) -> float: ...
    @property
    def language(self) -> str | None: ...
    @property
    def entities(self) -> Sequence[EntityLike]: ...
    @property
    def model_version(self) -> str: ...


class Classifier(Protocol):
    """nlp's classifier as inbox uses it: one call per batch."""

    def classify(self, texts: list[str]) -> Sequence[ClassificationLike]: ...
