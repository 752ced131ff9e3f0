"""`rapport serve`'s HTTP workers: processes that answer Slack and the pages on one shared socket.

One process answers under one GIL, shared with the mailbox watchers' parsing and
classifying. Measured under load (issue 15, bench/bench_serve_load.py), Slack's
requests then waited on each other and on the ingest, not on the CPUs. So in HTTP
mode `serve` binds the port itself and starts worker processes that each accept on
it (the kernel hands each connection to one of them); each worker is the Slack app
and its HTTP front on the same database, nothing else (a reply confirmed in Slack is
sent by the worker that took it, through the outbox's claim like any sender). The main
process keeps the watchers, the scheduler and the outbox's dispatcher, so a mail is
still ingested, and a DM still sent, exactly once. A worker that dies is started again.
Workers read the real clock, whatever clock the `Service` was given.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from bot.http import HttpLimits, HttpServer, listening_socket
from rapport.config import AppConfig
from rapport.errors import ConfigError
from rapport.settings import Settings

log = logging.getLogger("rapport.serve")
START_SECONDS = 60.0  # a worker imports the app and opens the database; then it says it is ready
# SIGTERM lets a worker finish its requests (HttpServer.stop: 5 s) and the work acked before
# them, a reply being sent over SMTP among it; a kill in the middle would send that reply twice
STOP_SECONDS = 30.0
ORPHAN_CHECK_SECONDS = 0.5
RESTART_DELAYS = (1.0, 2.0, 5.0, 15.0, 60.0)  # after each failed start in a row, then the last


class WorkerFailed(Exception):
    """A worker said why it cannot start (a configuration problem: every new one would fail too)."""


class _Slot:
    """One worker's place: its process, and how often in a row a start has failed there."""

    def __init__(self, process: BaseProcess) -> None:
        self.process = process
        self.failures = 0
        self.retry_at = 0.0


class HttpWorkers:
    """`count` worker processes serving `rapport serve`'s HTTP routes on `host:port`; the same
    `port`, `start()` and `stop()` as an in-process `HttpServer`."""

    def __init__(self, settings: Settings, config: AppConfig, *, host: str, port: int, limits: HttpLimits,
                 count: int) -> None:
        self.settings = settings
        self.config = config  # the one `serve` started with: a worker started later does not read the file again
        self.limits = limits
        self.count = count
        self._listener = listening_socket(host, port)
        self._context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self._slots: list[_Slot] = []
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    @property
    def pids(self) -> list[int]:
        return [slot.process.pid for slot in self._slots if slot.process.pid is not None]

    def start(self) -> None:
        """Start every worker and return once each answers; a ConfigError if one cannot start. The
        port refuses connections until the first worker listens on it."""
        starting = [self._spawn() for _ in range(self.count)]  # they import and connect side by side
        try:
            self._slots = [_Slot(self._started(*pair)) for pair in starting]
        except (WorkerFailed, TimeoutError) as error:
            for process, _ in starting:
                process.kill()
                process.join()
            self._listener.close()
            raise ConfigError(f"an HTTP worker of `rapport serve` could not start: {error}") from None
        self._supervisor = threading.Thread(target=self._supervise, name="http-workers", daemon=True)
        self._supervisor.start()

    def _spawn(self) -> tuple[BaseProcess, Connection]:
        receive, send = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=run_worker, name="rapport-http",
            args=(self.settings, self.config, self._listener, self.limits, logging.getLogger().getEffectiveLevel(),
                  send),
            daemon=True)
        process.start()
        send.close()
        return process, receive

    def _started(self, process: BaseProcess, receive: Connection) -> BaseProcess:
        """`process` once it answers; WorkerFailed with the reason it gives, TimeoutError if it says
        nothing, and a new worker in its place if it is killed before it can say anything."""
        for _ in range(3):
            with receive:
                if not receive.poll(START_SECONDS):
                    process.kill()
                    process.join()
                    raise TimeoutError("it did not answer within a minute")
                try:
                    problem: str | None = receive.recv()
                except EOFError:  # gone without a word: killed (the OOM killer, a stray signal), not its error
                    problem = None
            if problem == "":
                return process
            process.join()
            if problem:
                raise WorkerFailed(problem)
            log.warning("HTTP worker %s exited (code %s) while starting; starting another", process.pid,
                        process.exitcode)
            process, receive = self._spawn()
        raise WorkerFailed("workers were killed while starting, three times in a row")

    def _supervise(self) -> None:
        """Starts a worker again in the place of one that exited, waiting longer after each failure."""
        while not self._stopping.wait(1.0):
            for slot in self._slots:
                if slot.process.is_alive() or self._stopping.is_set() or time.monotonic() < slot.retry_at:
                    continue
                if slot.failures == 0:
                    log.error("HTTP worker %s exited (code %s); starting another", slot.process.pid,
                              slot.process.exitcode)
                try:
                    slot.process = self._started(*self._spawn())
                    slot.failures = 0
                except Exception as error:  # a bad config, no memory for a process: try again later
                    delay = RESTART_DELAYS[min(slot.failures, len(RESTART_DELAYS) - 1)]
                    slot.failures += 1
                    slot.retry_at = time.monotonic() + delay
                    log.error("an HTTP worker could not start (%s); trying again in %.0f s", error, delay)

    def stop(self) -> None:
        """Each worker finishes its requests in progress and stops; then the socket closes."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
        for slot in self._slots:
            slot.process.terminate()
        for slot in self._slots:
            slot.process.join(STOP_SECONDS)
            if slot.process.is_alive():
                log.warning("HTTP worker %s did not stop; killing it", slot.process.pid)
                slot.process.kill()
                slot.process.join()
        self._listener.close()


def run_worker(settings: Settings, config: AppConfig, listener: socket.socket, limits: HttpLimits,
               log_level: int, ready: Connection) -> None:
    """A worker process: the Slack app and the pages on `listener` until SIGTERM or SIGINT.
    Sends "" on `ready` once it answers, or why it cannot."""
    from rapport.cli.common import setup_logging
    from rapport.serve import http_front, slack_app, slack_credentials
    from rapport.wiring import Runtime, reply_handler, survey_options
    from store.db import make_engine
    from store.types import utcnow

    setup_logging(logging.getLevelName(log_level))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        # the main process upgraded the schema and synced the reps of `config`: the engine only
        rt = Runtime(settings=settings, config=config, _engine=make_engine(settings.database_url))
        secret, _ = slack_credentials(settings)
        slack = slack_app(rt, reply_handler(rt), utcnow)
        front = http_front(rt, slack, secret=secret, surveys=survey_options(rt), limits=limits, clock=utcnow)
        assert front is not None  # HTTP mode: the Slack routes at least
        server = HttpServer(front, limits=limits, listener=listener)
        server.start()
    except Exception as error:
        log.exception("HTTP worker could not start")
        ready.send(f"{type(error).__name__}: {error}")
        return
    ready.send("")
    ready.close()
    # A main process killed with -9 cannot stop its workers: each stops once its parent is gone,
    # so none keeps the port (and database connections) from the `serve` started next.
    parent = os.getppid()
    while not stop.wait(ORPHAN_CHECK_SECONDS):
        if os.getppid() != parent:
            log.warning("the main `rapport serve` process is gone; this HTTP worker stops")
            break
    server.stop()
    slack.close()
