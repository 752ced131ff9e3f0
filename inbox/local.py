"""Directory source: a folder of .eml files or a Maildir, through the same pipeline as IMAP.

Used by the demo (the bundled sample mailbox) and for importing exported mail.
There are no UIDs, so de-duplication is by Message-ID (a synthetic one from the
content when missing) and content hash: running it twice stores nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import Engine

from inbox.options import Classifier, IngestOptions
from inbox.pipeline import BatchResult, FetchedMessage, process_batch
from store.db import session_scope

SENT_NAMES = ("sent", "sent items", "sent messages", "sent mail", "odoslané", "odeslané", "gesendet", "skickat")
MAILDIR_PARTS = ("cur", "new")
HEAD_BYTES = 64 * 1024


class DirectoryError(RuntimeError):
    """The path is not a readable mail directory."""


def mail_files(path: Path) -> list[Path]:
    """The mail files of a folder: *.eml, or the cur/ and new/ of a Maildir, in a stable order."""
    if not path.is_dir():
        raise DirectoryError(f"{path} is not a directory")
    if any((path / part).is_dir() for part in MAILDIR_PARTS):
        files = [f for part in MAILDIR_PARTS if (path / part).is_dir() for f in (path / part).iterdir()]
    else:
        files = list(path.glob("*.eml"))
    return sorted((f for f in files if f.is_file() and not f.name.startswith(".")), key=lambda f: f.name)


def sync_directory(
    engine: Engine,
    path: Path,
    mailbox: str = "demo",
    folder: str = "INBOX",
    *,
    options: IngestOptions,
    classifier: Classifier,
    outbound: bool | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> BatchResult:
    """Ingest the mail files in `path` (outbound when the folder is a Sent folder, unless told)."""
    files = mail_files(Path(path))
    is_sent = folder.lower() in SENT_NAMES if outbound is None else outbound
    total = BatchResult()
    for start in range(0, len(files), options.batch_size):
        chunk = files[start : start + options.batch_size]
        fetched = [_fetched(f, mailbox, folder, is_sent, options) for f in chunk]
        with session_scope(engine) as session:
            result = process_batch(session, fetched, checkpoint=None, options=options, classifier=classifier)
        total.add(result)
        if progress is not None:
            progress(folder, start + len(chunk), len(files))
    return total


def sync_mailbox_directory(
    engine: Engine,
    root: Path,
    mailbox: str = "demo",
    *,
    options: IngestOptions,
    classifier: Classifier,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, BatchResult]:
    """Every sub-folder of `root` (INBOX first, Sent folders last, so replies find their questions)."""
    folders = sorted(
        (d for d in Path(root).iterdir() if d.is_dir() and not d.name.startswith(".")),
        key=lambda d: (d.name.lower() in SENT_NAMES, d.name.upper() != "INBOX", d.name),
    )
    if not folders:
        raise DirectoryError(f"{root} has no mail folders (expected e.g. INBOX/ and Sent/)")
    return {
        d.name: sync_directory(engine, d, mailbox, d.name, options=options, classifier=classifier, progress=progress)
        for d in folders
    }


def _fetched(path: Path, mailbox: str, folder: str, outbound: bool, options: IngestOptions) -> FetchedMessage:
    size = path.stat().st_size
    if size <= options.max_message_bytes:
        return FetchedMessage(path.read_bytes(), mailbox, folder, internal_date=_mtime(path), outbound=outbound)
    with path.open("rb") as handle:
        head = handle.read(HEAD_BYTES)
    problem = f"too large ({size} bytes > {options.max_message_bytes}); only the start was read"
    return FetchedMessage(head, mailbox, folder, internal_date=_mtime(path), outbound=outbound, problem=problem)


def _mtime(path: Path) -> datetime | None:
    """Maildir keeps the delivery time as the file time; plain .eml files carry their Date header instead."""
    if path.parent.name not in MAILDIR_PARTS:
        return None
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)
