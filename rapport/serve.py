"""`rapport serve`: the Slack app, the scheduler and the mailbox watchers (HTTP workers: rapport.workers).

Socket Mode when SLACK_APP_TOKEN is set, else HTTP on RAPPORT_HTTP_PORT
(POST /slack/events, GET /healthz; waitress behind bot.http's guard; more
pages are routes of the front `http_front` builds). The survey links (GET /csat/...) are
served whenever RAPPORT_PUBLIC_URL and RAPPORT_CSAT_SECRET are set, in Socket
Mode too (then on an HTTP server of their own). In HTTP mode with more than one
HTTP worker (`--workers`, RAPPORT_HTTP_WORKERS; one per CPU by default), worker
processes answer on one shared socket (rapport.workers) and this process keeps
the watchers, the scheduler and the outbox. SIGTERM or SIGINT stops everything in
order: no new requests, the scheduler finishes its tick, watchers close.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot.app import RapportSlack, build_app
from bot.http import HEALTH_PATH, HttpFront, HttpLimits, HttpServer, health, slack_front
from bot.pages import CONVERSATION_PATH, ConversationPage, page_key
from bot.scheduler import TICK_SECONDS, Scheduler
from bot.surveys import CSAT_PREFIX, CsatPage, SurveyOptions
from rapport.errors import ConfigError
from rapport.settings import Settings
from rapport.wiring import (
    Runtime,
    bot_options,
    check_names,
    digest_options,
    ingest_options,
    mailbox_specs,
    reply_handler,
    retention,
    segment_params,
    slack_client,
    smtp_options,
    survey_options,
)
from rapport.workers import HttpWorkers
from store.locks import exclusive
from store.outbox import Handler, dispatch
from store.types import utcnow

log = logging.getLogger("rapport.serve")
# How often a standby asks for a mailbox's lock: a failover takes about this long plus a catch-up
# sync (a killed holder's lock goes with its connection). One cheap query per mailbox and period.
LOCK_RETRY_SECONDS = 1.0


class Service:
    """Everything `rapport serve` runs; start() returns once it is up, stop() tears it down."""

    def __init__(
        self,
        rt: Runtime,
        *,
        host: str = "0.0.0.0",
        port: int | None = None,
        clock: Callable[[], datetime] = utcnow,
        scheduler_interval: float = TICK_SECONDS,
        watch_mailboxes: bool = True,
        http_limits: HttpLimits = HttpLimits(),
        http_workers: int = 1,
    ) -> None:
        self.rt = rt
        self.host = host
        self.port = rt.settings.http_port if port is None else port
        self.clock = clock
        self.scheduler_interval = scheduler_interval
        self.watch_mailboxes = watch_mailboxes
        self.http_limits = http_limits
        self.http_workers = http_workers  # > 1 (HTTP mode): worker processes answer (on the real clock)
        self.stopping = threading.Event()
        self.slack: RapportSlack | None = None
        self.http: HttpServer | HttpWorkers | None = None
        self.scheduler: Scheduler | None = None
        self._socket_mode: Any = None
        self._watchers: list[threading.Thread] = []

    def start(self) -> None:
        settings = self.rt.settings
        mailboxes = self._mailboxes()
        secret, app_token = slack_credentials(settings)
        check_names(self.rt)
        engine = self.rt.create_database()  # after the checks: a start that fails makes no database
        surveys = survey_options(self.rt)
        replies = reply_handler(self.rt)
        self.slack = slack_app(self.rt, replies, self.clock)
        self.scheduler = Scheduler(engine, self.slack.sender, interval=self.scheduler_interval,
                                   digest_options=digest_options(self.rt.config, settings), smtp=smtp_options(settings),
                                   segment_params=segment_params(self.rt.config),
                                   on_change=self.slack.publish_home, handlers=[replies],
                                   retention=retention(self.rt.config), surveys=surveys,
                                   categories=self.slack.options.categories)
        if app_token is not None:
            self._start_socket_mode(app_token)
        http_mode = app_token is None
        if http_mode and self.http_workers > 1:
            self.http = HttpWorkers(settings, self.rt.config, host=self.host, port=self.port,
                                    limits=self.http_limits, count=self.http_workers)
        else:
            front = http_front(self.rt, self.slack, secret=secret if http_mode else None, surveys=surveys,
                               limits=self.http_limits, clock=self.clock)
            if front is not None:
                self.http = HttpServer(front, host=self.host, port=self.port, limits=self.http_limits)
        if self.http is not None:
            self.http.start()
            log.info("HTTP endpoint on http://%s:%d (%s%s)", self.host, self.http.port,
                     "Slack and survey links" if http_mode and surveys.links
                     else "Slack" if http_mode else "survey links",
                     f"; {self.http_workers} worker processes" if isinstance(self.http, HttpWorkers) else "")
        self.scheduler.start()
        self._start_watchers(mailboxes)

    def _start_socket_mode(self, app_token: str) -> None:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        assert self.slack is not None
        self._socket_mode = SocketModeHandler(self.slack.app, app_token)
        self._socket_mode.connect()
        log.info("connected to Slack in Socket Mode")

    def _mailboxes(self) -> list[Any]:
        """The configured mailboxes (a missing password is a ConfigError before anything starts)."""
        if not self.watch_mailboxes:
            return []
        return mailbox_specs(self.rt)

    def _start_watchers(self, specs: list[Any]) -> None:
        """One watcher per mailbox (inbox.imap.watch); the classifier loads in the background,
        so Slack answers meanwhile."""
        if not specs:
            return
        thread = threading.Thread(target=self._watch_all, args=(specs,), name="watchers", daemon=True)
        thread.start()
        self._watchers.append(thread)

    def _watch_all(self, specs: list[Any]) -> None:
        try:
            classifier = self.rt.classifier
        except Exception:
            log.exception("cannot load the classifier; the mailboxes are not watched")
            return
        try:  # a custom model's categories are known only now
            check_names(self.rt, classifier.categories)
        except ConfigError as exc:
            log.error("%s\nThe mailboxes are not watched.", exc)
            return
        options = ingest_options(self.rt)
        threads = [
            threading.Thread(target=self._watch_one, args=(spec, options, classifier), name=f"watch {spec.name}",
                             daemon=True)
            for spec in specs
        ]
        for thread in threads:
            thread.start()
        log.info("watching %s", ", ".join(spec.name for spec in specs))
        for thread in threads:
            thread.join()

    def _watch_one(self, spec: Any, options: Any, classifier: Any) -> None:
        """Watch one mailbox while this process holds its lock; several `serve` processes on one
        PostgreSQL database share the mailboxes, and one takes over when another stops."""
        from inbox.imap import watch

        standing_by = False
        while not self.stopping.is_set():
            with exclusive(self.rt.engine, f"mailbox:{spec.name}") as held:
                if held:
                    log.info("watching %s%s", spec.name, " (taking over)" if standing_by else "")
                    watch(self.rt.engine, spec, None, options=options, classifier=classifier, stop=self.stopping)
                    return
            if not standing_by:
                log.info("another process watches %s; standing by", spec.name)
                standing_by = True
            self.stopping.wait(LOCK_RETRY_SECONDS)

    def stop(self) -> None:
        self.stopping.set()
        if self.http is not None:
            self.http.stop()
        if self._socket_mode is not None:
            self._socket_mode.close()
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.slack is not None:
            self.slack.close()
        for thread in self._watchers:
            thread.join(timeout=30)

    def run_until_signalled(self) -> None:
        """Block until SIGTERM or SIGINT (or stop()), then shut down in order."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stopping.set())
        self.start()
        try:
            self.stopping.wait()
        finally:
            log.info("shutting down")
            self.stop()


def slack_credentials(settings: Settings) -> tuple[str | None, str | None]:
    """(signing secret, app token): one of them is needed, and a bot token."""
    if settings.slack_bot_token is None:
        raise ConfigError("SLACK_BOT_TOKEN is not set: `rapport serve` needs a Slack app "
                          "(create it from `rapport slack manifest`; bot/README.md has the steps). "
                          "Without Slack, use `rapport chat`.")
    app_token = settings.slack_app_token.get_secret_value() if settings.slack_app_token else None
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    if app_token is None and not secret:
        raise ConfigError("set SLACK_SIGNING_SECRET (HTTP mode) or SLACK_APP_TOKEN (Socket Mode)")
    return secret or None, app_token


def slack_app(rt: Runtime, replies: Handler, clock: Callable[[], datetime]) -> RapportSlack:
    """The Slack app of `serve` (and of each HTTP worker): a reply confirmed in Slack is sent at once."""
    client = slack_client(rt.settings)
    assert client is not None  # slack_credentials checked the token
    slack = build_app(rt.engine, client=client, options=bot_options(rt.config, rt.settings),
                      clock=clock)
    slack.after_reply = lambda: dispatch(rt.engine, [replies], now=clock())
    return slack


def http_front(rt: Runtime, slack: RapportSlack, *, secret: str | None, surveys: SurveyOptions,
               limits: HttpLimits, clock: Callable[[], datetime]) -> HttpFront | None:
    """The routes `serve` answers: Slack and the conversation pages in HTTP mode (`secret`), the
    survey links when configured (in Socket Mode too); None when there is nothing to serve."""
    front: HttpFront | None = None
    if secret is not None:
        front = slack_front(slack.app, secret, limits)
        front.add(CONVERSATION_PATH, ConversationPage(rt.engine, page_key(secret)))  # digests link here
    if surveys.links:
        assert surveys.secret is not None
        if front is None:  # Socket Mode: the links need an HTTP server of their own
            front = HttpFront()
            front.add(HEALTH_PATH, health)
        front.add_prefix(CSAT_PREFIX, CsatPage(rt.engine, surveys.secret, clock=clock))
    return front
