"""`rapport serve`'s HTTP workers: processes that answer Slack and the pages on one shared socket.

One process answers under one GIL, shared with the mailbox watchers' parsing and
classifying. Measured under load (issue 15, bench/bench_serve_load.py), Slack's
requests then waited on each other and on the ingest, not on the CPUs. So in HTTP
mode `serve` binds the port itself and starts worker processes that each accept on
it (the kernel hands each connection to one of them); each worker is the Slack app
and its HTTP front on the same database, nothing else. The main process keeps the
watchers, the scheduler and the outbox, so a mail is still ingested, and a DM still
sent, exactly once. A worker that dies is started again.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from bot.http import HttpLimits, HttpServer, listening_socket
from rapport.errors import ConfigError
from rapport.settings import Settings

log = logging.getLogger("rapport.serve")
START_SECONDS = 60.0  # a worker imports the app and opens the database; then it says it is ready
STOP_SECONDS = 10.0  # requests in progress finish (HttpServer.stop waits 5 s for them)
ORPHAN_CHECK_SECONDS = 0.5


class HttpWorkers:
    """`count` worker processes serving `rapport serve`'s HTTP routes on `host:port`; the same
    `port`, `start()` and `stop()` as an in-process `HttpServer`."""

    def __init__(self, settings: Settings, *, host: str, port: int, limits: HttpLimits, count: int) -> None:
        self.settings = settings
        self.limits = limits
        self.count = count
        self._listener = listening_socket(host, port, limits)
        self._context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self._processes: list[BaseProcess] = []
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self._processes if process.pid is not None]

    def start(self) -> None:
        """Start every worker and return once each answers (a ConfigError if one cannot start)."""
        starting = [self._spawn() for _ in range(self.count)]  # they import and connect side by side
        try:
            self._processes = [self._await_ready(*pair) for pair in starting]
        except ConfigError:
            for process, _ in starting:
                process.kill()
                process.join()
            self._listener.close()
            raise
        self._supervisor = threading.Thread(target=self._supervise, name="http-workers", daemon=True)
        self._supervisor.start()

    def _spawn(self) -> tuple[BaseProcess, Connection]:
        receive, send = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=run_worker, name="rapport-http",
            args=(self.settings, self._listener, self.limits, logging.getLogger().getEffectiveLevel(), send),
            daemon=True)
        process.start()
        send.close()
        return process, receive

    @staticmethod
    def _await_ready(process: BaseProcess, receive: Connection) -> BaseProcess:
        problem = "it did not answer within a minute"
        if receive.poll(START_SECONDS):
            try:
                problem = receive.recv()
            except EOFError:
                problem = f"it exited with code {process.exitcode}"
        receive.close()
        if problem:
            process.kill()
            process.join()
            raise ConfigError(f"an HTTP worker of `rapport serve` could not start: {problem}")
        return process

    def _supervise(self) -> None:
        while not self._stopping.wait(1.0):
            for index, process in enumerate(self._processes):
                if process.is_alive() or self._stopping.is_set():
                    continue
                log.error("HTTP worker %s exited (code %s); starting another", process.pid, process.exitcode)
                try:
                    self._processes[index] = self._await_ready(*self._spawn())
                except ConfigError as error:
                    log.error("%s", error)

    def stop(self) -> None:
        """Each worker finishes its requests in progress and stops; then the socket closes."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            process.join(STOP_SECONDS)
            if process.is_alive():
                log.warning("HTTP worker %s did not stop; killing it", process.pid)
                process.kill()
                process.join()
        self._listener.close()


def run_worker(settings: Settings, listener: socket.socket, limits: HttpLimits, log_level: int,
               ready: Connection) -> None:
    """A worker process: the Slack app and the pages on `listener` until SIGTERM or SIGINT.
    Sends "" on `ready` once it answers, or why it cannot."""
    from rapport.cli.common import setup_logging
    from rapport.serve import http_front, slack_app, slack_credentials
    from rapport.wiring import Runtime, reply_handler, survey_options
    from store.types import utcnow

    setup_logging(logging.getLevelName(log_level))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        rt = Runtime.load(settings)
        secret, _ = slack_credentials(settings)
        slack = slack_app(rt, secret, reply_handler(rt), utcnow)
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
    threading.Thread(target=_stop_when_orphaned, args=(stop,), name="parent-watch", daemon=True).start()
    stop.wait()
    server.stop()
    slack.close()


def _stop_when_orphaned(stop: threading.Event) -> None:
    """A main process killed with -9 cannot stop its workers: each stops once its parent is gone,
    so none keeps the port (and database connections) from the `serve` started next."""
    parent = os.getppid()
    while not stop.wait(ORPHAN_CHECK_SECONDS):
        if os.getppid() != parent:
            log.warning("the main `rapport serve` process is gone; this HTTP worker stops")
            stop.set()
