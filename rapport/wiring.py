"""Process wiring: settings and config in, ready-to-use engine and classifier out.

Only this module (and the CLI) reads settings; `inbox`, `bot`, `nlp` and
`store` take plain parameters, so tests and entry points call them the same way.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property, partial
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

from rapport.config import (
    AppConfig,
    Known,
    database_reps,
    load_config,
    load_configuration,
    name_problems,
    readable_categories,
    refusal,
)
from rapport.errors import ConfigError, RapportError
from rapport.settings import Settings
from store.db import current_revision, head_revision, make_engine, session_scope, upgrade
from store.privacy import Retention
from store.reps import RepFields, upsert_rep
from store.types import utcnow

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from bot.commands import BotOptions
    from bot.digest import DigestLinks, DigestOptions
    from bot.email import OpenSent, SmtpOptions
    from bot.interactions import CorrectionApplier
    from bot.reply import ReplyOptions
    from bot.surveys import SurveyOptions
    from inbox.options import IngestOptions, MailboxSpec, Route
    from nlp import Classifier
    from store.outbox import Handler
    from store.segments import SegmentParams

log = logging.getLogger("rapport")


@dataclass
class Runtime:
    """Everything a command needs, built lazily from settings and `rapport.toml`."""

    settings: Settings
    config: AppConfig
    _engine: Engine | None = field(default=None, repr=False)

    @classmethod
    def load(cls, settings: Settings | None = None) -> Runtime:
        """Explicit settings: their rapport.toml. None: the environment, `.env` and rapport.toml, checked
        together (every problem in one ConfigError)."""
        if settings is None:
            settings, config = load_configuration()
            return cls(settings=settings, config=config)
        return cls(settings=settings, config=load_config(settings.config_file))

    def now(self) -> datetime:
        """The clock every command reads: RAPPORT_NOW (the demo's `.env` sets it), else the real time."""
        return self.settings.now or utcnow()

    @property
    def engine(self) -> Engine:
        """The database engine, with the schema upgraded and reps from the config synced. A database
        that is not there is refused: a command run in the wrong folder must not make an empty one
        and show nothing. The commands that fill a database call `create_database` first."""
        if self._engine is None:
            self._engine = self._open(create=False)
        return self._engine

    def create_database(self) -> Engine:
        """The engine, the database created first when it is not there (import, inbox, serve, demo)."""
        if self._engine is None:
            self._engine = self._open(create=True)
        return self._engine

    @contextmanager
    def database_or_scratch(self) -> Iterator[Engine]:
        """The database for work that writes nothing (a dry run); when there is none, an empty
        one at the current schema with rapport.toml's reps, in a temporary folder removed
        afterwards: checking first must not leave a database behind."""
        probe = make_engine(self.settings.database_url)
        try:
            exists = self._engine is not None or current_revision(probe) is not None
        finally:
            probe.dispose()
        if exists:
            yield self.engine
            return
        with TemporaryDirectory(prefix="rapport-dry-run-") as folder:
            scratch = self._prepare(make_engine(f"sqlite:///{Path(folder) / 'rapport.db'}"), None)
            try:
                yield scratch
            finally:
                scratch.dispose()

    def _open(self, *, create: bool) -> Engine:
        engine = make_engine(self.settings.database_url)
        current = current_revision(engine)
        if current is None and not create:
            raise RapportError(missing_database(engine))
        return self._prepare(engine, current)

    def _prepare(self, engine: Engine, current: str | None) -> Engine:
        """`engine` with the schema at head (from revision `current`) and rapport.toml's reps."""
        if current != head_revision(engine):
            # a database just made is no news (the demo makes one); migrating one in use is
            log.log(logging.INFO if current else logging.DEBUG, "%s the database schema at %s",
                    "upgrading" if current else "creating", engine.url.render_as_string())
            upgrade(engine)
        if self.config.reps:
            sync_reps(engine, self.config)
        return engine

    @cached_property
    def deployment(self) -> str:
        """This database's id: it names the model retrained from the database's corrections."""
        from store.deployment import deployment_id

        return deployment_id(self.engine)

    @cached_property
    def classifier(self) -> Classifier:
        from nlp import EntityPattern, load_classifier

        nlp_config = self.config.nlp
        classifier = load_classifier(
            nlp_config.model,
            cache_dir=self.settings.model_dir,
            deployment=self.deployment,
            threshold=nlp_config.confidence_threshold,
            entity_patterns=[EntityPattern(p.label, p.pattern) for p in nlp_config.entity_patterns],
            languages=nlp_config.languages,
            progress=lambda line: log.info("%s", line),
        )
        freeze_long_lived()
        return classifier


def missing_database(engine: Engine) -> str:
    """Why a command that reads cannot run here, and how to get a database."""
    url = engine.url
    where = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite" and url.database:
        where = f"{Path(url.database).resolve()} ({where})"  # a relative file is in the current folder
    return (f"no Rapport database at {where}.\n"
            "RAPPORT_DATABASE_URL names it (default: rapport.db in the current folder).\n"
            "To try Rapport: `rapport demo`, then `cd rapport-demo` and run this again.\n"
            "To start your own: `rapport db upgrade`, then `rapport import` or\n"
            "`rapport inbox sync`.")


def freeze_long_lived() -> None:
    """Call once the model is loaded: it is tens of thousands of long-lived objects, and the
    garbage collector need not rescan them on every full collection (measured: about 15%
    more mails/s)."""
    gc.collect()
    gc.freeze()


def sync_reps(engine: Engine, config: AppConfig) -> int:
    """Upsert the reps listed in `rapport.toml` (keyed by email); returns how many changed."""
    changed = 0
    with session_scope(engine) as session:
        for rep in config.reps:
            fields: RepFields = rep.model_dump()  # type: ignore[assignment]
            _, was_changed = upsert_rep(session, fields)
            changed += was_changed
    return changed


def segment_params(config: AppConfig) -> SegmentParams:
    """The [segments] section of rapport.toml as the store's parameters."""
    from store.segments import SegmentParams

    return SegmentParams.from_mapping(config.segments.model_dump())


def digest_options(config: AppConfig, settings: Settings) -> DigestOptions:
    """[digest] and [segments] of rapport.toml as the digest scheduler's options."""
    from bot.digest import DigestOptions

    section = config.digest
    return DigestOptions(
        period=section.period, weekday=section.weekday, channel=section.channel, params=segment_params(config),
        links=digest_links(config, settings),
    )


def digest_links(config: AppConfig, settings: Settings) -> DigestLinks:
    """Where a digest's items lead: [slack] team_id/app_id, and the conversation pages of
    `rapport serve` at RAPPORT_PUBLIC_URL (HTTP mode: signed with a key from SLACK_SIGNING_SECRET)."""
    from bot.digest import DigestLinks
    from bot.pages import page_key

    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    return DigestLinks(
        slack_team=config.slack.team_id, slack_app=config.slack.app_id,
        page_url=settings.public_url if secret else None, page_key=page_key(secret) if secret else None,
    )


def retention(config: AppConfig) -> Retention:
    """rapport.toml [privacy.retention_days] as store.privacy takes it."""
    days = config.privacy.retention_days
    return Retention(message_bodies=days.message_bodies, attachment_metadata=days.attachment_metadata)


def bot_options(config: AppConfig, settings: Settings | None = None) -> BotOptions:
    from bot.commands import BotOptions

    return BotOptions(
        command=config.slack.command,
        privacy_key=settings.privacy_secret if settings is not None else None,
        segment_params=segment_params(config),
        keyword_prefix=config.inbox.keyword_prefix,
        apply_correction=correction_applier(config),
        categories=readable_categories(config.nlp.model),
        reply=reply_options(config, settings),
    )


def reply_options(config: AppConfig, settings: Settings | None) -> ReplyOptions:
    """[reply] and the reps' signatures of rapport.toml; RAPPORT_SMTP_FROM when the mailbox is unknown."""
    from bot.reply import ReplyOptions

    signatures = {rep.email.strip().lower(): rep.signature for rep in config.reps if rep.signature}
    default_from = settings.smtp_from if settings is not None else ReplyOptions.default_from
    return ReplyOptions(from_address=config.reply.from_address, default_from=default_from,
                        reply_to=config.reply.reply_to, signatures=signatures,
                        can_send=settings is None or settings.smtp_host is not None)


def reply_handler(rt: Runtime) -> Handler:
    """The outbox handler that sends replies from Slack: RAPPORT_SMTP_*, and the mailboxes' Sent folders."""
    from bot.reply import reply_handler as handler

    return handler(rt.engine, smtp=smtp_options(rt.settings), open_sent=sent_folders_of(rt))


def sent_folders_of(rt: Runtime) -> OpenSent:
    """The configured mailboxes' Sent folders over IMAP, where mail to customers is kept (and
    looked for before sending again); yields None when no mailbox is configured."""
    from inbox.sent import sent_folders

    return sent_folders(mailbox_specs(rt) if rt.settings.imap_configured or rt.config.inbox.mailboxes else [])


def check_names(rt: Runtime, categories: Sequence[str] | None = None) -> None:
    """Refuse to start on a route to a team or rep that neither rapport.toml nor the database has
    (reps may be imported), or on a route, an SLA or a survey setting for a category the loaded
    model (`categories`) does not give: it would never apply. Call it before creating the
    database: a refused start makes none."""
    people = any(route.team or route.rep for route in rt.config.assignment.routes)
    # no database yet, or no route names a person: rapport.toml's reps alone
    reps = (database_reps(rt.settings.database_url) or []) if people else []
    problems = name_problems(rt.config, Known(reps=reps, categories=categories))
    if problems:
        raise refusal(problems)


def routes(config: AppConfig) -> list[Route]:
    """[[assignment.routes]] of rapport.toml as the inbox's routes."""
    from inbox.options import Route

    return [Route(r.category, r.language, r.team, r.rep) for r in config.assignment.routes]


def correction_applier(config: AppConfig) -> CorrectionApplier:
    """`apply_correction` with this configuration's routes and IMAP keyword prefix, for the Slack app."""
    from inbox.corrections import apply_correction

    return partial(apply_correction, routes=routes(config), keyword_prefix=config.inbox.keyword_prefix)


def smtp_options(settings: Settings) -> SmtpOptions | None:
    """RAPPORT_SMTP_* as SMTP options; None when RAPPORT_SMTP_HOST is unset."""
    from bot.email import SmtpOptions

    if not settings.smtp_host:
        return None
    return SmtpOptions(
        host=settings.smtp_host,
        port=settings.smtp_port,
        security=settings.smtp_security,
        user=settings.smtp_user,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        from_addr=settings.smtp_from,
        ca_file=settings.smtp_ca_file,
    )


def survey_options(rt: Runtime) -> SurveyOptions:
    """[survey] of rapport.toml with SMTP, RAPPORT_PUBLIC_URL and RAPPORT_CSAT_SECRET."""
    from bot.surveys import SurveyOptions
    from store.surveys import SurveyPolicy

    section, settings = rt.config.survey, rt.settings
    smtp = smtp_options(settings)
    domain = settings.smtp_from.rpartition("@")[2].strip("> ") or "rapport.invalid"
    policy = SurveyPolicy(
        enabled=section.enabled, quiet_days=section.quiet_days,
        quiet_days_by_category=dict(section.quiet_days_by_category),
        quiet_days_by_kind={str(kind): days for kind, days in section.quiet_days_by_kind.items()},
        needs_consent=section.needs_consent, link_days=section.link_days, domain=domain,
    )
    reply_to = section.reply_to or (settings.imap_user if settings.imap_user and "@" in settings.imap_user else None)
    secret = settings.csat_secret.get_secret_value() if settings.csat_secret else None
    return SurveyOptions(policy=policy, smtp=smtp, reply_to=reply_to, public_url=settings.public_url, secret=secret,
                         open_sent=sent_folders_of(rt))


def slack_client(settings: Settings) -> WebClient | None:
    """A WebClient with the bot token, talking to SLACK_API_URL when set (tests: the fake); None without a token."""
    from slack_sdk import WebClient

    if settings.slack_bot_token is None:
        return None
    kwargs: dict[str, Any] = {"token": settings.slack_bot_token.get_secret_value()}
    if settings.slack_api_url:
        kwargs["base_url"] = settings.slack_api_url.rstrip("/") + "/"
    return WebClient(**kwargs)


def ingest_options(rt: Runtime) -> IngestOptions:
    """IngestOptions from rapport.toml (and the mailbox addresses from the environment)."""
    from inbox.options import IngestOptions

    inbox, assignment = rt.config.inbox, rt.config.assignment
    own = [rt.settings.imap_user or "", *(m.user for m in inbox.mailboxes)]
    return IngestOptions(
        routes=routes(rt.config),
        sla_hours=assignment.sla_hours,
        sla_hours_by_urgency={str(level): hours for level, hours in assignment.sla_hours_by_urgency.items()},
        sla_hours_by_category=dict(assignment.sla_hours_by_category),
        fallback_queue=assignment.fallback_queue,
        backlog_age=timedelta(days=inbox.backlog_age_days),
        keyword_prefix=inbox.keyword_prefix,
        move_to_owner_folders=inbox.move_to_owner_folders,
        owner_folder_prefix=inbox.owner_folder_prefix,
        sender_rate_limit_per_hour=inbox.sender_rate_limit_per_hour,
        max_message_bytes=inbox.max_message_bytes,
        batch_size=inbox.batch_size,
        thread_window=timedelta(days=inbox.thread_window_days),
        own_addresses=tuple(a.lower() for a in own if "@" in a),
        privacy_key=rt.settings.privacy_secret,
    )


def mailbox_specs(rt: Runtime) -> list[MailboxSpec]:
    from inbox.options import MailboxSpec

    """The mailbox from RAPPORT_IMAP_* plus any [[inbox.mailboxes]] of rapport.toml."""
    settings, inbox = rt.settings, rt.config.inbox
    common: dict[str, Any] = {
        "sent_folder": inbox.sent_folder,
        "idle_timeout_minutes": inbox.idle_timeout_minutes,
        "poll_interval_seconds": inbox.poll_interval_seconds,
        "use_idle": inbox.use_idle,
    }
    specs = []
    if settings.imap_configured:
        assert settings.imap_host and settings.imap_user
        if settings.imap_password is None:
            raise ConfigError(
                "RAPPORT_IMAP_PASSWORD is not set (RAPPORT_IMAP_HOST and RAPPORT_IMAP_USER are)"
            )
        specs.append(
            MailboxSpec(
                name=settings.imap_user.lower(),
                host=settings.imap_host,
                user=settings.imap_user,
                password=settings.imap_password.get_secret_value(),
                port=settings.imap_port,
                security=settings.imap_security,
                ca_file=settings.imap_ca_file,
                folders=tuple(inbox.folders or settings.folders),
                **common,
            )
        )
    for mailbox in inbox.mailboxes:
        password = os.environ.get(mailbox.password_env)
        if not password:
            raise ConfigError(
                f"{rt.config.source}: inbox.mailboxes `{mailbox.name}`: the environment variable "
                f"{mailbox.password_env} (its password) is not set"
            )
        specs.append(
            MailboxSpec(
                name=mailbox.name,
                host=mailbox.host,
                user=mailbox.user,
                password=password,
                port=mailbox.port,
                security=mailbox.security,
                ca_file=mailbox.ca_file,
                folders=tuple(mailbox.folders),
                **{**common, "sent_folder": mailbox.sent_folder or inbox.sent_folder},
            )
        )
    return specs
