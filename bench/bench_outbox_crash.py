"""Crash during delivery: kill -9 `rapport serve` at random moments while its outbox sends DMs.

    python bench/bench_outbox_crash.py [--kills 20] [--mails 2500] [--delay 0.02] [--database URL]

`rapport inbox sync --dir` ingests generated mail (one assignment DM per new
conversation, as outbox rows). Then, --kills times: `rapport serve --no-watch`
starts, its scheduler starts sending to the fake Slack (which answers each call
--delay seconds after recording it), and at a random moment within the next few
seconds the process is killed with SIGKILL, in the middle of a call or between
two. A last `rapport serve` runs until every row is sent (rows a killed process
had leased wait for their lease to run out). Target: 0 DMs doubled, 0 lost.
Beside it, the DMs/s the killed processes reached while sending.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func
from sqlmodel import col, select

from bench.mailgen import generate
from bench.processes import RapportProcess, dm_keys, rapport_env, run_rapport, work_directory
from store.db import make_engine, read_session
from store.models import OutboxItem
from tests.servers.fake_slack import FakeSlack
from tests.servers.ports import free_port

KILL_WINDOW_SECONDS = 4.0  # a kill falls within this long after the process's first DM
FIRST_SEND_TIMEOUT_SECONDS = 120  # start-up plus the scheduler's first tick
DRAIN_TIMEOUT_SECONDS = 600  # leases of killed processes (2 min) run out first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--mails", type=int, default=2500, help="more than 100 (one claim) per kill")
    parser.add_argument("--delay", type=float, default=0.02, help="seconds the fake Slack takes per call")
    parser.add_argument("--database", help="database URL (default: a SQLite file in a temporary directory)")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    with work_directory() as tmp, FakeSlack(delay_seconds=args.delay) as slack:
        url = args.database or f"sqlite:///{tmp / 'crash.db'}"
        env = rapport_env(tmp, url, slack.base_url)
        inbox = tmp / "mail" / "INBOX"
        inbox.mkdir(parents=True)
        for index, raw in enumerate(generate(args.mails, seed=args.seed, senders=args.mails)):
            (inbox / f"{index:06d}.eml").write_bytes(raw)
        run_rapport(["inbox", "sync", "--once", "--dir", str(tmp / "mail"), "--json", "--no-tags"], env, tmp)
        engine = make_engine(url)
        rows = count_rows(engine)
        print(f"{rows} assignment DMs to send; {args.kills} kill -9 while sending, "
              f"fake Slack answering {args.delay * 1000:.0f} ms after each call", flush=True)

        def serve() -> RapportProcess:
            return RapportProcess(["serve", "--no-watch", "--host", "127.0.0.1", "--port", str(free_port())],
                                  env, tmp)

        sending_seconds, sent_before_kills = 0.0, 0
        for kill in range(args.kills):
            before = len(slack.calls("chat.postMessage"))
            process = serve()
            deadline = time.monotonic() + FIRST_SEND_TIMEOUT_SECONDS
            while len(slack.calls("chat.postMessage")) == before:
                if time.monotonic() > deadline:
                    process.kill()
                    raise SystemExit(f"kill {kill + 1}: no DM within {FIRST_SEND_TIMEOUT_SECONDS} s "
                                     f"(fewer than 100 unleased rows left? use more --mails)")
                time.sleep(0.01)
            first_dm = time.perf_counter()
            time.sleep(rng.uniform(0, KILL_WINDOW_SECONDS))
            process.kill()
            sending_seconds += time.perf_counter() - first_dm
            sent = len(slack.calls("chat.postMessage")) - before
            sent_before_kills += sent
            print(f"kill {kill + 1}: after {sent} DMs from this process", flush=True)

        last = serve()
        started = time.perf_counter()
        try:
            deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
            while count_rows(engine, unsent=True) and time.monotonic() < deadline:
                time.sleep(1)
            drained = time.perf_counter() - started
        finally:
            last.stop()
        with read_session(engine) as session:
            keys = list(session.exec(select(OutboxItem.key).where(OutboxItem.kind == "assign-dm")).all())
            retried = session.exec(select(func.count()).select_from(OutboxItem).where(
                OutboxItem.kind == "assign-dm", col(OutboxItem.attempts) > 1)).one()
        unsent = count_rows(engine, unsent=True)
        posted = dm_keys(slack)
        engine.dispose()

    doubled = sum(1 for key in keys if posted[key] > 1)
    lost = sum(1 for key in keys if posted[key] == 0)
    print(f"{len(keys)} DMs due, {sum(posted[k] for k in keys)} received by Slack; {retried} rows were "
          f"retried after a kill; {unsent} rows unsent")
    print(f"doubled {doubled}, lost {lost} (target 0/0)")
    print(f"sending rate before the kills: {sent_before_kills / sending_seconds:.1f} DMs/s; the last process "
          f"sent the rest in {drained:.0f} s (after the killed processes' leases ran out)")


def count_rows(engine: object, *, unsent: bool = False) -> int:
    with read_session(engine) as session:  # type: ignore[arg-type]
        query = select(func.count()).select_from(OutboxItem).where(OutboxItem.kind == "assign-dm")
        if unsent:
            query = query.where(OutboxItem.status != "sent")
        return int(session.exec(query).one())


if __name__ == "__main__":
    main()
