"""Failover: kill -9 the `rapport serve` that watches the mailbox; how soon does the standby take over?

    python bench/bench_failover.py [--trials 20] [--postgres URL]

Two `rapport serve` processes share one PostgreSQL database and one Dovecot mailbox;
one watches it (it holds the mailbox's advisory lock), the other stands by. Each trial
APPENDs a mail while the watcher lives (baseline: IDLE to commit), then kills the
watcher with SIGKILL, APPENDs a mail at once and times until the standby has
committed it; then a new standby is started in the killed one's place. At the end
every mail must be stored once and its owner DMed once in the fake Slack (leases of
killed processes expire first, so the end waits up to a few minutes). Target: failover
<= 5 s (it was about 22 s after a SIGTERM).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func
from sqlmodel import col, select

from bench.mailgen import generate
from bench.processes import RapportProcess, dm_keys, postgres_schema, rapport_env, run_rapport, work_directory
from inbox.parse import parse_message
from store.db import make_engine, read_session
from store.models import Message, OutboxItem
from tests.servers.dovecot import DovecotServer, make_server_directory
from tests.servers.fake_slack import FakeSlack
from tests.servers.ports import free_port

INGEST_TIMEOUT_SECONDS = 120
DRAIN_TIMEOUT_SECONDS = 400  # a killed process's outbox lease (2 min) must run out first


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(values: list[float]) -> str:
    return (f"p50 {statistics.median(values):.2f} s, p95 {percentile(values, 0.95):.2f} s, "
            f"max {max(values):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--postgres", help="PostgreSQL URL (default: 127.0.0.1:5432/test or a private cluster)")
    args = parser.parse_args()

    mails = generate(2 * args.trials, seed=11, senders=2 * args.trials)  # one conversation, one DM each
    with (work_directory() as tmp, postgres_schema(args.postgres) as url,
          DovecotServer(make_server_directory()) as dovecot, FakeSlack() as slack):
        user = dovecot.users[0]
        imap = {"RAPPORT_IMAP_HOST": dovecot.host, "RAPPORT_IMAP_PORT": str(dovecot.port),
                "RAPPORT_IMAP_USER": user, "RAPPORT_IMAP_PASSWORD": dovecot.password,
                "RAPPORT_IMAP_SECURITY": "none", "RAPPORT_IMAP_FOLDERS": "INBOX"}
        env = rapport_env(tmp, url, slack.base_url, **imap)
        run_rapport(["db", "upgrade"], env, tmp)
        engine = make_engine(url)

        def serve() -> RapportProcess:
            return RapportProcess(["serve", "--host", "127.0.0.1", "--port", str(free_port())], env, tmp)

        def stored(message_id: str) -> int:
            with read_session(engine) as session:
                query = select(func.count()).select_from(Message).where(Message.message_id == message_id)
                return int(session.exec(query).one())

        def time_to_store(raw: bytes, started: float) -> float:
            message_id = parse_message(raw).message_id
            while not stored(message_id):
                if time.perf_counter() - started > INGEST_TIMEOUT_SECONDS:
                    raise SystemExit(f"{message_id} not stored within {INGEST_TIMEOUT_SECONDS} s")
                time.sleep(0.02)
            return time.perf_counter() - started

        watcher = serve()
        watcher.wait_for(f"watching {user}")
        standby = serve()
        standby.wait_for("standing by")
        alive: list[float] = []
        failover: list[float] = []
        try:
            for trial in range(args.trials):
                started = time.perf_counter()
                dovecot.append("INBOX", mails[2 * trial], user=user)
                alive.append(time_to_store(mails[2 * trial], started))
                watcher.kill()
                started = time.perf_counter()
                dovecot.append("INBOX", mails[2 * trial + 1], user=user)
                failover.append(time_to_store(mails[2 * trial + 1], started))
                watcher, standby = standby, serve()  # the survivor watches now
                standby.wait_for("standing by")
                print(f"trial {trial + 1}: failover {failover[-1]:.2f} s (alive {alive[-1]:.2f} s)", flush=True)
            lost, doubled, messages, dms = check_exactly_once(engine, slack, mails)
        finally:
            watcher.stop()
            standby.stop()
            engine.dispose()

    print(f"{args.trials} kill -9 of the watching `rapport serve` (PostgreSQL, Dovecot, fake Slack)")
    print(f"APPEND → stored, watcher alive (baseline, IDLE): {summary(alive)}")
    print(f"kill -9 + APPEND → stored by the standby:      {summary(failover)} (target <= 5 s; "
          f"ratio p95/target {percentile(failover, 0.95) / 5:.2f})")
    print(f"{messages} mails stored for {len(mails)} appended, {dms} DMs; lost {lost}, doubled {doubled}")


def check_exactly_once(engine: object, slack: FakeSlack, mails: list[bytes]) -> tuple[int, int, int, int]:
    """(lost, doubled, stored mails, DMs) once every assignment DM has been sent."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    while True:
        with read_session(engine) as session:  # type: ignore[arg-type]
            pending = session.exec(select(func.count()).select_from(OutboxItem).where(
                OutboxItem.kind == "assign-dm", OutboxItem.status != "sent")).one()
            keys = list(session.exec(select(OutboxItem.key).where(OutboxItem.kind == "assign-dm")).all())
            ids = list(session.exec(select(Message.message_id).where(col(Message.direction) == "inbound")).all())
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(1)
    posted = dm_keys(slack)
    appended = [parse_message(raw).message_id for raw in mails]
    copies = Counter(ids)
    lost = sum(1 for m in appended if copies[m] == 0) + sum(1 for k in keys if posted[k] == 0)
    doubled = sum(1 for m in appended if copies[m] > 1) + sum(1 for k in keys if posted[k] > 1)
    return lost, doubled, len(ids), sum(posted[k] for k in keys)


if __name__ == "__main__":
    main()
