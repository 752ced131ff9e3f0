"""Rapport's judgement on mail that looks like our users' mail, as the inbox stores it.

The gold labels (tests/fixtures/eval/) were written by hand and are never used for
training; every miss is printed so a failure says which mails went wrong.
"""

from __future__ import annotations

import csv
import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import select

from inbox.local import sync_mailbox_directory
from inbox.options import Classifier
from inbox.parse import parse_message
from inbox.pipeline import classification_text
from nlp import load_classifier
from rapport.config import load_config
from rapport.settings import load_settings
from rapport.wiring import Runtime, ingest_options, sync_reps
from store.db import read_session
from store.models import Message

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "rapport" / "sample"
GOLD = ROOT / "tests" / "fixtures" / "eval" / "sample_gold.csv"
CLOCK = datetime(2026, 11, 20, 13, 0, tzinfo=UTC)  # the sample's Friday afternoon


def test_sample_mailbox_categories_and_urgency_match_the_gold_labels(
    sqlite_engine: Engine, nlp_classifier: Classifier, model_dir: Path
) -> None:
    config = load_config(SAMPLE / "rapport.toml")
    sync_reps(sqlite_engine, config)
    options = dataclasses.replace(ingest_options(Runtime(settings=load_settings(), config=config)), now=CLOCK)
    sync_mailbox_directory(sqlite_engine, SAMPLE / "mailbox", "support@nordlys.example", options=options,
                           classifier=nlp_classifier)
    with GOLD.open(newline="", encoding="utf-8") as handle:
        gold = {row["file"]: row for row in csv.DictReader(handle)}
    names = {parse_message((SAMPLE / "mailbox" / "INBOX" / name).read_bytes()).message_id: name for name in gold}
    with read_session(sqlite_engine) as session:
        stored = session.exec(select(Message).where(Message.is_automatic == False)).all()  # noqa: E712
    human = sorted((m for m in stored if m.message_id in names), key=lambda m: names[m.message_id])
    # The category the model picks, whatever the threshold (below it the inbox says needs_triage).
    inbox = SAMPLE / "mailbox" / "INBOX"
    top = load_classifier(None, cache_dir=model_dir, threshold=0.0).classify(
        [classification_text(parse_message((inbox / names[m.message_id]).read_bytes())) for m in human]
    )
    category_misses = [f"{names[m.message_id]}: {t.category} (gold {gold[names[m.message_id]]['category']})"
                       for m, t in zip(human, top, strict=True) if t.category != gold[names[m.message_id]]["category"]]
    urgency_misses = [f"{names[m.message_id]}: {m.urgency} (gold {gold[names[m.message_id]]['urgency']})"
                      for m in human if m.urgency != gold[names[m.message_id]]["urgency"]]
    triaged = [names[m.message_id] for m in human if m.category == "needs_triage"]

    category_accuracy = 1 - len(category_misses) / len(human)
    urgency_accuracy = 1 - len(urgency_misses) / len(human)
    report = (f"category {category_accuracy:.3f}, misses:\n" + "\n".join(category_misses)
              + f"\nurgency {urgency_accuracy:.3f}, misses:\n" + "\n".join(urgency_misses)
              + f"\nleft to triage: {triaged}")
    print(report)

    assert len(human) == 45  # 48 mails, 3 of them automatic (an out-of-office, a bounce, a newsletter)
    # Issue #10 asks 0.90; the default model scores 0.889-0.911 (training noise). A floor below
    # which a change has made the triage worse, not the target.
    assert category_accuracy >= 0.85, report
    assert urgency_accuracy >= 0.85, report
    assert len(triaged) / len(human) <= 0.10, report
