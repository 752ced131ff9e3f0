"""The evaluation mail is kept out of training: a score on it says how Rapport does on mail it never saw."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from inbox.evaluation import read_labelled_mail
from nlp.data import BITEXT_DIR, OWN_CSVS, read_examples
from store.search import fold

ROOT = Path(__file__).resolve().parents[2]
EVAL = ROOT / "tests" / "fixtures" / "eval"
SAMPLE_INBOX = ROOT / "rapport" / "sample" / "mailbox" / "INBOX"
RUN = 10  # words: a shared run this long is copied text, not a common phrase ("to say thank you for sorting out our")


def normalised_words(text: str) -> list[str]:
    return re.findall(r"\w+", fold(text))


def runs(text: str) -> set[tuple[str, ...]]:
    words = normalised_words(text)
    return {tuple(words[i : i + RUN]) for i in range(len(words) - RUN + 1)}


def training_texts() -> list[str]:
    texts = [text for path in OWN_CSVS for text, _ in read_examples(path, "text", "category")]
    return texts + [text for part in ("train", "dev") for text, _ in
                    read_examples(BITEXT_DIR / f"{part}.csv", "instruction", "intent")]


def test_no_evaluation_mail_shares_a_run_of_words_with_the_training_data() -> None:
    evaluation = read_labelled_mail([EVAL / "realistic-a.csv", EVAL / "realistic-b.csv"], EVAL / "realistic")
    evaluation += read_labelled_mail([EVAL / "sample_gold.csv"], SAMPLE_INBOX)
    training = set().union(*(runs(text) for text in training_texts()))
    whole_training_texts = {" ".join(normalised_words(text)) for text in training_texts()}

    copied = [(mail.name, " ".join(run)) for mail in evaluation for run in runs(mail.parsed.new_text) & training]
    contained = [mail.name for mail in evaluation
                 if " ".join(normalised_words(mail.parsed.new_text)) in whole_training_texts]

    assert len(evaluation) == 220 + 45
    assert contained == []
    assert copied == [], f"{len(copied)} runs of {RUN} words shared with training, e.g. {copied[:5]}"


def test_every_language_and_category_is_in_the_realistic_set() -> None:
    rows = []
    for name in ("realistic-a.csv", "realistic-b.csv"):
        with (EVAL / name).open(newline="", encoding="utf-8") as handle:
            rows += list(csv.DictReader(handle))
    languages = {row["language"] for row in rows}
    categories = {row["category"] for row in rows}

    assert languages == {"en", "de", "fr", "es", "sv", "sk", "cs", "hu", "sl", "pl"}
    assert len(categories) == 11
    assert {row["urgency"] for row in rows} == {"urgent", "high", "normal", "low"}
