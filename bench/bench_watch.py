"""Latency from APPEND to a committed assignment while watching a Dovecot on loopback, and the watcher's RSS.

    python bench/bench_watch.py [--trials 50]

Each trial APPENDs one new customer mail and waits until `watch` has committed
the batch that contains it (its on_batch callback runs after the commit).
Prints p50, p95 and max (target p95 <= 1.0 s; Dovecot itself wakes IDLE about
0.5 s after an APPEND, and peers poll every 30 s to 10 min), and the peak RSS
of the process running the watcher (it includes the classifier model).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_ingest import seed_reps
from bench.mailgen import generate
from inbox.imap import watch
from inbox.options import IngestOptions, MailboxSpec
from inbox.pipeline import BatchResult
from store.db import make_engine, session_scope, upgrade
from store.models import Assignment, Message
from tests.servers.dovecot import DovecotServer, make_server_directory

TRIAL_TIMEOUT_SECONDS = 30


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--model-dir", type=Path, default=Path.home() / ".cache" / "rapport" / "models")
    args = parser.parse_args()

    from nlp import load_classifier

    classifier = load_classifier(None, cache_dir=args.model_dir)
    classifier.classify(["warm-up: load the language models"])
    messages = generate(args.trials + 1, seed=7)
    committed: dict[int, float] = {}  # message row id -> when its batch was committed
    arrived = threading.Condition()

    def on_batch(folder: str, result: BatchResult) -> None:
        now = time.perf_counter()
        with arrived:
            for message_id in result.message_ids:
                committed[message_id] = now
            arrived.notify_all()

    with tempfile.TemporaryDirectory() as tmp, DovecotServer(make_server_directory()) as server:
        engine = make_engine(f"sqlite:///{tmp}/watch.db")
        upgrade(engine)
        seed_reps(engine)
        user = server.users[0]
        spec = MailboxSpec(name=user, host=server.host, port=server.port, user=user, password=server.password,
                           security="none", folders=("INBOX",), sent_folder="Sent")
        stop = threading.Event()
        watcher = threading.Thread(
            target=watch, args=(engine, spec, ["INBOX"]),
            kwargs={"options": IngestOptions(own_addresses=(user,)), "classifier": classifier, "stop": stop,
                    "on_batch": on_batch},
            daemon=True,
        )
        baseline_rss = rss_mb()
        watcher.start()
        latencies = []
        with server.client() as client:
            for index, raw in enumerate(messages):
                started = time.perf_counter()
                client.append("INBOX", raw)
                seen = len(committed)

                def more(seen: int = seen) -> bool:
                    return len(committed) > seen

                with arrived:
                    if not arrived.wait_for(more, timeout=TRIAL_TIMEOUT_SECONDS):
                        raise SystemExit(f"trial {index}: nothing committed within {TRIAL_TIMEOUT_SECONDS} s")
                    done = max(committed.values())
                if index > 0:  # the first append also waits for the watcher's start-up
                    latencies.append(done - started)
                time.sleep(0.05)
        stop.set()
        watcher.join(timeout=30)
        with session_scope(engine) as session:
            stored = len(session.exec(Message.__table__.select()).all())  # type: ignore[attr-defined]
            assigned = len(session.exec(Assignment.__table__.select()).all())  # type: ignore[attr-defined]
        engine.dispose()
    print(f"{len(latencies)} trials, {stored} messages stored, {assigned} assignments")
    print(f"APPEND → committed assignment: p50 {statistics.median(latencies) * 1000:.0f} ms, "
          f"p95 {percentile(latencies, 0.95) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms "
          f"(target p95 <= 1000 ms; ratio p95/target {percentile(latencies, 0.95) / 1.0:.2f})")
    print(f"peak RSS of the watcher process: {rss_mb():.0f} MB (before watching, with the model loaded: "
          f"{baseline_rss:.0f} MB)")


if __name__ == "__main__":
    main()
