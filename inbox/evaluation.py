"""Labelled mail for scoring the classifier as the inbox runs it.

A labelled set is a folder of ``.eml`` files and a CSV naming each file's gold
``category`` (and optionally ``urgency`` and ``language``). Each mail is parsed and
turned into the classifier's input exactly as the pipeline does, and automatic mail
(which the pipeline never classifies) is left out.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from inbox.automatic import detect_automatic
from inbox.parse import ParsedMessage, parse_message
from inbox.pipeline import classification_text


@dataclass(frozen=True)
class LabelledMail:
    name: str
    text: str  # what the classifier reads
    category: str
    urgency: str | None
    language: str | None
    parsed: ParsedMessage


def read_labelled_mail(labels: Iterable[Path], mail_dir: Path) -> list[LabelledMail]:
    """The non-automatic mails named by one or more label CSVs (columns ``file``, ``category``,
    optional ``urgency`` and ``language``), in file order."""
    mails = []
    for label_file in labels:
        with label_file.open(newline="", encoding="utf-8-sig") as handle:
            for row in csv.DictReader(handle):
                parsed = parse_message((mail_dir / row["file"]).read_bytes())
                if detect_automatic(parsed).is_automatic:
                    continue
                mails.append(
                    LabelledMail(
                        name=row["file"],
                        text=classification_text(parsed),
                        category=row["category"],
                        urgency=row.get("urgency") or None,
                        language=row.get("language") or None,
                        parsed=parsed,
                    )
                )
    return sorted(mails, key=lambda mail: mail.name)
