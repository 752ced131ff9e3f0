"""Training data: CSV reading with clear errors, and the data Rapport ships.

The shipped data is the Bitext customer-support set (CDLA-Sharing-1.0, see
``data/bitext/``) mapped to Rapport's categories, plus our own ``sales`` and
``partnership`` examples (``data/rapport_extra.csv``). The map is documented in
``nlp/README.md``.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"
BITEXT_DIR = DATA_DIR / "bitext"
EXTRA_CSV = DATA_DIR / "rapport_extra.csv"
MULTILINGUAL_CSV = DATA_DIR / "rapport_multilingual.csv"  # our own mails in sv, de, sk, cs, hu, sl, pl, fr, es
MAIL_CSV = DATA_DIR / "rapport_mail.csv"  # our own whole mails (subject, greeting, ask, signature) in ten languages
OWN_CSVS = (EXTRA_CSV, MULTILINGUAL_CSV, MAIL_CSV)

CATEGORIES: tuple[str, ...] = (
    "order",
    "cancellation",
    "delivery",
    "billing",
    "refund",
    "complaint",
    "feedback",
    "account",
    "general",
    "sales",
    "partnership",
)
NEEDS_TRIAGE = "needs_triage"

# Bitext intent -> Rapport category (intents, not Bitext's categories, because
# e.g. ORDER/cancel_order is a cancellation and FEEDBACK/complaint a complaint).
BITEXT_INTENT_MAP: dict[str, str] = {
    "place_order": "order",
    "change_order": "order",
    "cancel_order": "cancellation",
    "check_cancellation_fee": "cancellation",
    "track_order": "delivery",
    "delivery_options": "delivery",
    "delivery_period": "delivery",
    "change_shipping_address": "delivery",
    "set_up_shipping_address": "delivery",
    "check_invoice": "billing",
    "get_invoice": "billing",
    "check_payment_methods": "billing",
    "payment_issue": "billing",
    "check_refund_policy": "refund",
    "get_refund": "refund",
    "track_refund": "refund",
    "complaint": "complaint",
    "review": "feedback",
    "create_account": "account",
    "delete_account": "account",
    "edit_account": "account",
    "recover_password": "account",
    "registration_problems": "account",
    "switch_account": "account",
    "newsletter_subscription": "account",
    "contact_customer_service": "general",
    "contact_human_agent": "general",
}

# Share of our own examples (and of `rapport nlp train` data) held out as the dev part.
HELD_OUT_SHARE = 0.125

Example = tuple[str, str]


class DataError(ValueError):
    """Training or evaluation data cannot be used; the message says why, for a user."""


def read_examples(path: Path, text_column: str, label_column: str) -> list[Example]:
    """(text, label) pairs from a CSV file; rows with an empty text or label are skipped."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            for column in (text_column, label_column):
                if column not in columns:
                    found = ", ".join(columns) if columns else "none (the file is empty)"
                    raise DataError(f"{path}: no column {column!r}; columns: {found}")
            examples = [
                (row[text_column].strip(), row[label_column].strip())
                for row in reader
                if (row.get(text_column) or "").strip() and (row.get(label_column) or "").strip()
            ]
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from None
    if not examples:
        raise DataError(f"{path}: no rows with both {text_column!r} and {label_column!r}")
    return examples


def bitext_examples(part: str) -> list[Example]:
    """Bitext ``train`` or ``dev`` rows as (text, Rapport category)."""
    examples = read_examples(BITEXT_DIR / f"{part}.csv", "instruction", "intent")
    return [(text, BITEXT_INTENT_MAP[intent]) for text, intent in examples]


def extra_examples(part: str) -> list[Example]:
    """Our own examples (sales, partnership, email-style English, and the other languages our
    customers write in), split deterministically into ``train`` and ``dev``."""
    examples = [example for path in OWN_CSVS for example in read_examples(path, "text", "category")]
    train_part, dev_part = split_held_out(examples)
    return dev_part if part == "dev" else train_part


def shipped_examples(part: str) -> list[Example]:
    """The default model's ``train`` or ``dev`` data."""
    return bitext_examples(part) + extra_examples(part)


def split_held_out(examples: Sequence[Example]) -> tuple[list[Example], list[Example]]:
    """(train, held-out) by a stable hash of each text."""
    train_part = [example for example in examples if not is_held_out(example[0])]
    held_out = [example for example in examples if is_held_out(example[0])]
    return train_part, held_out


def is_held_out(text: str) -> bool:
    """Stable hash split: the same text always lands in the same part."""
    digest = hashlib.sha256(text.strip().lower().encode()).digest()
    return int.from_bytes(digest[:4], "big") < HELD_OUT_SHARE * 2**32


def shipped_data_digest() -> str:
    """Hash of the shipped training files (part of the default model's version)."""
    digest = hashlib.sha256()
    for path in (BITEXT_DIR / "train.csv", BITEXT_DIR / "dev.csv", *OWN_CSVS):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def labels_of(examples: Sequence[Example]) -> list[str]:
    """Sorted distinct labels."""
    return sorted({label for _, label in examples})
