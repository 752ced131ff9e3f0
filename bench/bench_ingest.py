"""Backlog ingest: generated mail from a Dovecot on loopback through the whole pipeline.

    python bench/bench_ingest.py [--messages 10000] [--batch-size 200] [--database URL] [--no-nlp]

Prints end-to-end messages/s (fetch, parse, thread, match, classify, assign,
commit) and its ratio to the standard library's `message_from_bytes(policy=default)`
plus body extraction on the same messages, measured in the same run.
Target: ratio >= 1.0; aim 2. `--no-nlp` replaces the classifier by one that
answers "general" at once, to show what the rest of the pipeline costs.
"""

from __future__ import annotations

import argparse
import email
import sys
import tempfile
import time
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import parsedate_to_datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.mailgen import generate
from inbox.imap import sync_mailbox
from inbox.options import IngestOptions, MailboxSpec
from nlp import Classification
from rapport.wiring import freeze_long_lived
from store.db import make_engine, session_scope, upgrade
from store.models import Rep
from tests.servers.dovecot import DovecotServer, make_server_directory

REPS = [("anna", ["refund", "billing"], ["en", "sv"]), ("martin", ["delivery"], ["sk", "cs"]),
        ("zsofia", ["order"], ["hu"]), ("jurgen", ["sales"], ["de"]), ("luka", [], ["sl", "en"])]


def stdlib_baseline(messages: list[bytes]) -> float:
    """Messages/s of the naive approach: parse with policy.default, then pull the body and attachment names."""
    started = time.perf_counter()
    for raw in messages:
        message = email.message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        _ = message["subject"], message["from"], message["message-id"]
        body = message.get_body(preferencelist=("plain", "html"))
        _ = body.get_content() if body is not None else ""
        _ = [part.get_filename() for part in message.iter_attachments()]
    return len(messages) / (time.perf_counter() - started)


class NoClassifier:
    """Answers without looking: isolates the pipeline's own cost from the model's."""

    def classify(self, texts: list[str]) -> list[Classification]:
        return [Classification("general", 1.0, "en", [], "none", "general") for _ in texts]


def append_all(server: DovecotServer, messages: list[bytes]) -> None:
    """APPEND with each message's Date as its INTERNALDATE, as a mailbox migration keeps it."""
    with server.client() as client:
        for start in range(0, len(messages), 500):
            chunk = messages[start : start + 500]
            client.multiappend("INBOX", [{"msg": raw, "date": _date(raw)} for raw in chunk])


def _date(raw: bytes) -> datetime:
    header = BytesHeaderParser(policy=policy.default).parsebytes(raw)["date"]
    return parsedate_to_datetime(str(header))


def seed_reps(engine: object) -> None:
    with session_scope(engine) as session:  # type: ignore[arg-type]
        for name, skills, languages in REPS:
            session.add(Rep(name=name.title(), email=f"{name}@example.test", skills=skills, languages=languages,
                            working_hours="Mon-Sun 00:00-24:00", capacity=100_000))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--database", help="database URL (default: a SQLite file in a temporary directory)")
    parser.add_argument("--model-dir", type=Path, default=Path.home() / ".cache" / "rapport" / "models")
    parser.add_argument("--no-nlp", action="store_true", help="leave the classifier out of the measurement")
    args = parser.parse_args()

    from nlp import load_classifier

    messages = generate(args.messages)
    sizes = sorted(len(m) for m in messages)
    print(f"{len(messages)} messages, {sizes[0]}–{sizes[-1]} bytes (median {sizes[len(sizes) // 2]})")
    classifier = NoClassifier() if args.no_nlp else load_classifier(None, cache_dir=args.model_dir)
    classifier.classify(["warm-up: load the language models"])
    freeze_long_lived()  # as Rapport's runtime does after loading the model

    baseline = stdlib_baseline(messages)
    print(f"stdlib message_from_bytes(policy=default) + body: {baseline:8.0f} msg/s")

    with tempfile.TemporaryDirectory() as tmp, DovecotServer(make_server_directory()) as server:
        append_all(server, messages)
        engine = make_engine(args.database or f"sqlite:///{tmp}/bench.db")
        upgrade(engine)
        seed_reps(engine)
        user = server.users[0]
        spec = MailboxSpec(name=user, host=server.host, port=server.port, user=user, password=server.password,
                           security="none", folders=("INBOX",), sent_folder="Sent")
        options = IngestOptions(batch_size=args.batch_size, own_addresses=(user,))
        started = time.perf_counter()
        results = sync_mailbox(engine, spec, options=options, classifier=classifier)
        elapsed = time.perf_counter() - started
        engine.dispose()
    inbox = results["INBOX"]
    assert inbox.new == len(messages), f"stored {inbox.new} of {len(messages)} ({inbox.counts()})"
    rate = len(messages) / elapsed
    label = "without the classifier" if args.no_nlp else "with the classifier"
    print(f"rapport end to end (IMAP fetch → commit), {label}: {rate:8.0f} msg/s  ({elapsed:.1f} s; {inbox.counts()})")
    print(f"ratio pipeline / stdlib parse: {rate / baseline:.2f}  (target >= 1.0, aim 2)")


if __name__ == "__main__":
    main()
