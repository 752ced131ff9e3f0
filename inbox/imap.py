"""IMAP source: connect (TLS), sync a folder in batches, and watch folders with IDLE.

Never sets \\Seen (folders are opened read-only and bodies fetched with
BODY.PEEK[]), never deletes, never searches UNSEEN: new mail is everything
above the folder's checkpoint UID, however a person has flagged it.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError
from imapclient.imapclient import SENT
from sqlalchemy.engine import Engine

from inbox.options import Classifier, IngestOptions, MailboxSpec
from inbox.pipeline import BatchResult, Checkpoint, FetchedMessage, process_batch
from store.checkpoints import get_checkpoint, save_checkpoint
from store.db import session_scope

log = logging.getLogger("rapport.inbox")

DEFAULT_PORTS = {"ssl": 993, "starttls": 143, "none": 143}
MAX_BACKOFF_SECONDS = 60.0
BATCH_BYTES = 32 * 1024 * 1024  # mail held in memory per batch, at most (plus one over-sized message)
SIZE_FETCH_UIDS = 1000
IDLE_CHECK_SECONDS = 1.0  # how often a watcher looks at its stop flag while idling
# What a dropped connection or a restarting server raises.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (IMAPClientError, OSError, socket.timeout, ssl.SSLError, EOFError)

_CHANGES = (b"EXISTS", b"EXPUNGE", b"RECENT", b"FETCH")  # "* OK Still here" keep-alives are not changes
_TROUBLE = (b"NO", b"BAD")  # the server's view of the folder is in doubt: select it again
Progress = Callable[[str, int, int], None]  # (folder, done, total)


class ImapConnectError(RuntimeError):
    """The server could not be reached or refused the login; the message says which and why."""


class FolderError(ImapConnectError):
    """A configured folder cannot be opened (missing, or no right to read it)."""


RECONNECT_ERRORS: tuple[type[BaseException], ...] = (ImapConnectError, *CONNECTION_ERRORS)


def connect(spec: MailboxSpec) -> IMAPClient:
    """A logged-in client; TLS certificates are checked (spec.ca_file adds a trusted CA)."""
    context = ssl.create_default_context(cafile=str(spec.ca_file) if spec.ca_file else None)
    port = spec.port or DEFAULT_PORTS[spec.security]
    try:
        client = IMAPClient(
            spec.host, port=port, ssl=spec.security == "ssl", ssl_context=context, timeout=spec.timeout_seconds
        )
        if spec.security == "starttls":
            client.starttls(context)
        client.login(spec.user, spec.password)
    except LoginError as exc:
        raise ImapConnectError(f"{spec.user}@{spec.host}:{port}: login refused: {_text(exc)}") from None
    except CONNECTION_ERRORS as exc:
        raise ImapConnectError(f"{spec.host}:{port} ({spec.security}): {type(exc).__name__}: {_text(exc)}") from None
    client.normalise_times = False  # INTERNALDATE as aware datetimes, not naive local time
    return client


def _text(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__


def close(client: IMAPClient | None) -> None:
    """Log out if the connection still allows it; a dead socket is just dropped."""
    if client is None:
        return
    try:
        client.logout()
    except Exception:
        try:
            client.shutdown()
        except Exception:
            pass


def sent_folder(client: IMAPClient, spec: MailboxSpec) -> str | None:
    """The configured Sent folder, else the one marked SPECIAL-USE \\Sent."""
    if spec.sent_folder:
        return spec.sent_folder
    try:
        return client.find_special_folder(SENT)
    except IMAPClientError:
        return None


def folders_to_read(client: IMAPClient, spec: MailboxSpec) -> list[str]:
    """The configured folders plus the Sent folder (staff replies), each once."""
    folders = list(dict.fromkeys(spec.folders))
    sent = sent_folder(client, spec)
    if sent and sent not in folders:
        folders.append(sent)
    return folders


# --------------------------------------------------------------------------- sync


def sync_folder(
    engine: Engine,
    client: IMAPClient,
    spec: MailboxSpec,
    folder: str,
    *,
    options: IngestOptions,
    classifier: Classifier,
    outbound: bool = False,
    progress: Progress | None = None,
) -> BatchResult:
    """Ingest every message above the folder's checkpoint, one transaction per batch.

    Batches hold at most `options.batch_size` messages and BATCH_BYTES of mail,
    so a folder of large attachments does not fill the memory.
    """
    try:
        info = client.select_folder(folder, readonly=True)
    except IMAPClientError as exc:
        raise FolderError(f"{spec.name}: cannot open the folder {folder!r}: {_text(exc)}") from None
    uidvalidity = int(info[b"UIDVALIDITY"])
    last_uid = _start_uid(engine, spec.name, folder, uidvalidity, options.moment())
    total = BatchResult()
    uid_next = info.get(b"UIDNEXT")
    if uid_next is not None and int(uid_next) <= last_uid + 1:
        return total
    meta = _sizes(client, [uid for uid in client.search(["UID", f"{last_uid + 1}:*"]) if uid > last_uid])
    uids = sorted(meta)
    done = 0
    batches = _batches(uids, meta, options)

    def fetch(chunk: list[int]) -> list[FetchedMessage]:
        return fetch_messages(client, spec.name, folder, uidvalidity, chunk, meta, options=options,
                              outbound=outbound)

    # One worker fetches batch n+1 while batch n is parsed, classified and committed (the
    # server works on the other core); only that worker touches the connection meanwhile.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="imap-fetch") as prefetch:
        upcoming = prefetch.submit(fetch, batches[0]) if batches else None
        for index, chunk in enumerate(batches):
            assert upcoming is not None
            fetched = upcoming.result()
            upcoming = prefetch.submit(fetch, batches[index + 1]) if index + 1 < len(batches) else None
            try:
                result = _commit_batch(engine, spec, folder, uidvalidity, chunk, fetched, options, classifier)
            except BaseException:
                if upcoming is not None:
                    upcoming.cancel()
                    concurrent.futures.wait([upcoming])  # the connection is ours again before we leave
                raise
            total.add(result)
            done += len(chunk)
            if progress is not None:
                progress(folder, done, len(uids))
    return total


def _commit_batch(
    engine: Engine,
    spec: MailboxSpec,
    folder: str,
    uidvalidity: int,
    chunk: list[int],
    fetched: list[FetchedMessage],
    options: IngestOptions,
    classifier: Classifier,
) -> BatchResult:
    """One batch and its checkpoint in one transaction."""
    with session_scope(engine) as session:
        return process_batch(
            session,
            fetched,
            checkpoint=Checkpoint(spec.name, folder, uidvalidity, chunk[-1]),
            options=options,
            classifier=classifier,
        )


def _sizes(client: IMAPClient, uids: list[int]) -> dict[int, dict[bytes, object]]:
    """Size and arrival time of each message, in FETCHes of SIZE_FETCH_UIDS (short command lines)."""
    meta: dict[int, dict[bytes, object]] = {}
    for start in range(0, len(uids), SIZE_FETCH_UIDS):
        meta.update(client.fetch(uids[start : start + SIZE_FETCH_UIDS], ["RFC822.SIZE", "INTERNALDATE"]))
    return meta


def _size(data: dict[bytes, object], options: IngestOptions) -> int:
    """Bytes a message adds to a batch: over-large mail contributes only its header."""
    size = int(str(data.get(b"RFC822.SIZE", 0)))
    return size if size <= options.max_message_bytes else 64 * 1024


def _batches(uids: list[int], meta: dict[int, dict[bytes, object]], options: IngestOptions) -> list[list[int]]:
    batches: list[list[int]] = []
    current: list[int] = []
    size = 0
    for uid in uids:
        message_size = _size(meta[uid], options)
        if current and (len(current) >= options.batch_size or size + message_size > BATCH_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append(uid)
        size += message_size
    if current:
        batches.append(current)
    return batches


def _start_uid(engine: Engine, mailbox: str, folder: str, uidvalidity: int, now: datetime) -> int:
    """The last UID read in this UIDVALIDITY; a new UIDVALIDITY starts over (Message-IDs prevent duplicates)."""
    with session_scope(engine) as session:
        checkpoint = get_checkpoint(session, mailbox, folder)
        if checkpoint is None:
            return 0
        if checkpoint.uidvalidity == uidvalidity:
            return checkpoint.last_uid
        log.warning(
            "%s %s: UIDVALIDITY changed (%s -> %s); re-reading the folder, known mail is skipped",
            mailbox, folder, checkpoint.uidvalidity, uidvalidity,
        )
        save_checkpoint(session, mailbox, folder, uidvalidity, 0, at=now)
        return 0


def fetch_messages(
    client: IMAPClient,
    mailbox: str,
    folder: str,
    uidvalidity: int,
    uids: Sequence[int],
    meta: dict[int, dict[bytes, object]],
    *,
    options: IngestOptions,
    outbound: bool,
) -> list[FetchedMessage]:
    """BODY.PEEK[] of `uids` in one FETCH; over-large mail gets its header only and a problem note."""
    small = [uid for uid in uids if int(str(meta[uid].get(b"RFC822.SIZE", 0))) <= options.max_message_bytes]
    small_set = set(small)
    large = [uid for uid in uids if uid not in small_set]
    bodies = client.fetch(small, ["BODY.PEEK[]"]) if small else {}
    headers = client.fetch(large, ["BODY.PEEK[HEADER]"]) if large else {}
    messages = []
    for uid in uids:  # a UID missing from the answers was expunged meanwhile
        internal = _aware(meta[uid].get(b"INTERNALDATE"))
        if uid in bodies and b"BODY[]" in bodies[uid]:
            raw, problem = bytes(bodies[uid][b"BODY[]"]), None
        elif uid in headers and b"BODY[HEADER]" in headers[uid]:
            size = int(str(meta[uid].get(b"RFC822.SIZE", 0)))
            raw = bytes(headers[uid][b"BODY[HEADER]"])
            problem = f"too large ({size} bytes > {options.max_message_bytes}); only the header was read"
        else:
            continue
        messages.append(FetchedMessage(raw, mailbox, folder, uidvalidity, uid, internal, outbound, problem))
    return messages


def _aware(value: object) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def sync_mailbox(
    engine: Engine,
    spec: MailboxSpec,
    *,
    options: IngestOptions,
    classifier: Classifier,
    progress: Progress | None = None,
) -> dict[str, BatchResult]:
    """One pass over the mailbox's folders (customer folders first, then Sent)."""
    client = connect(spec)
    try:
        sent = sent_folder(client, spec)
        results = {}
        for folder in folders_to_read(client, spec):
            results[folder] = sync_folder(
                engine, client, spec, folder, options=options, classifier=classifier,
                outbound=folder == sent, progress=progress,
            )
        return results
    finally:
        close(client)


# --------------------------------------------------------------------------- watch


def watch(
    engine: Engine,
    mailbox: MailboxSpec,
    folders: Sequence[str] | None,
    *,
    options: IngestOptions,
    classifier: Classifier,
    stop: threading.Event,
    on_batch: Callable[[str, BatchResult], None] | None = None,
) -> None:
    """Follow `folders` (default: the configured ones plus Sent) until `stop` is set.

    One IDLE connection per folder and one connection applying IMAP keywords
    from the outbox. Returns when every thread has stopped.
    """
    from inbox.tags import dispatch_imap_outbox

    folders, sent = _resolve_folders(mailbox, folders, stop)
    wake = threading.Event()

    def notify(folder: str, result: BatchResult) -> None:
        if result.new:
            wake.set()
        if on_batch is not None:
            on_batch(folder, result)

    threads = [
        threading.Thread(
            target=_follow_folder,
            args=(engine, mailbox, folder),
            kwargs={"options": options, "classifier": classifier, "stop": stop, "outbound": folder == sent,
                    "on_batch": notify},
            name=f"watch {mailbox.name} {folder}",
            daemon=True,
        )
        for folder in folders
    ]
    threads.append(
        threading.Thread(
            target=_dispatch_loop,
            args=(engine, mailbox, stop, wake, dispatch_imap_outbox),
            name=f"imap-tags {mailbox.name}",
            daemon=True,
        )
    )
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _resolve_folders(
    spec: MailboxSpec, folders: Sequence[str] | None, stop: threading.Event
) -> tuple[list[str], str | None]:
    backoff = 1.0
    while not stop.is_set():
        try:
            client = connect(spec)
        except ImapConnectError as exc:
            log.warning("%s: cannot connect yet (%s); retrying in %.0f s", spec.name, exc, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            continue
        try:
            sent = sent_folder(client, spec)
            chosen = list(folders) if folders else folders_to_read(client, spec)
            return chosen, sent
        finally:
            close(client)
    return [], None


def _follow_folder(
    engine: Engine,
    spec: MailboxSpec,
    folder: str,
    *,
    options: IngestOptions,
    classifier: Classifier,
    stop: threading.Event,
    outbound: bool,
    on_batch: Callable[[str, BatchResult], None],
) -> None:
    """Connect, catch up, then IDLE (or poll); after any drop reconnect with backoff and catch up again."""
    backoff = 1.0
    while not stop.is_set():
        client = None
        try:
            client = connect(spec)
            sync = functools.partial(
                _sync_and_report, engine, client, spec, folder,
                options=options, classifier=classifier, outbound=outbound, on_batch=on_batch,
            )
            sync()
            backoff = 1.0
            if spec.use_idle and b"IDLE" in client.capabilities():
                _idle_loop(client, spec, stop, sync)
            else:
                log.info("%s %s: polling every %.0f s (no IDLE)", spec.name, folder, spec.poll_interval_seconds)
                while not stop.wait(spec.poll_interval_seconds):
                    sync()
        except RECONNECT_ERRORS as exc:
            if stop.is_set():
                break
            log.warning("%s %s: connection lost (%s); reconnecting in %.0f s", spec.name, folder, _text(exc), backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        except Exception:
            # e.g. the database is down: keep the watcher alive and try again, more slowly each time
            log.exception("%s %s: sync failed; retrying in %.0f s", spec.name, folder, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        finally:
            close(client)


def _sync_and_report(
    engine: Engine,
    client: IMAPClient,
    spec: MailboxSpec,
    folder: str,
    *,
    options: IngestOptions,
    classifier: Classifier,
    outbound: bool,
    on_batch: Callable[[str, BatchResult], None],
) -> None:
    """Sync until a pass finds nothing new: mail that arrives while a pass reads its batches is
    announced in the answers to its FETCHes (which IMAPClient drops), never again to IDLE."""
    while True:
        result = sync_folder(engine, client, spec, folder, options=options, classifier=classifier,
                             outbound=outbound)
        on_batch(folder, result)
        if not result.fetched:
            return


def _idle_loop(client: IMAPClient, spec: MailboxSpec, stop: threading.Event, sync: Callable[[], None]) -> None:
    """IDLE until the server reports a change, then sync; IDLE is re-issued before the server's 29-minute limit.

    An untagged NO or BAD while idling (Dovecot's answer when the folder is replaced under
    the session, e.g. deleted and another renamed to its name) counts as a change: the sync
    selects the folder again, sees the new UIDVALIDITY and reads it to the end.
    """
    limit = spec.idle_timeout_minutes * 60
    while not stop.is_set():
        client.idle()
        started = time.monotonic()
        changed = False
        try:
            while not stop.is_set() and not changed and time.monotonic() - started < limit:
                responses = client.idle_check(timeout=IDLE_CHECK_SECONDS)
                if any(b"BYE" in r[:2] for r in responses):
                    raise ConnectionError("server said BYE")
                changed = any(r[0] in _TROUBLE or (len(r) > 1 and r[1] in _CHANGES) for r in responses if r)
        finally:
            client.idle_done()
        if not stop.is_set():
            sync()


def _dispatch_loop(
    engine: Engine,
    spec: MailboxSpec,
    stop: threading.Event,
    wake: threading.Event,
    dispatch: Callable[..., int],
) -> None:
    """Apply pending IMAP keywords/moves soon after each committed batch (and every few seconds)."""
    client: IMAPClient | None = None
    backoff = 1.0
    while not stop.is_set():
        wake.wait(5.0)
        wake.clear()
        if stop.is_set():
            break
        try:
            if client is None:
                client = connect(spec)
            dispatch(engine, client_for(spec.name, client))
            backoff = 1.0
        except Exception as exc:  # a dropped connection, or the database: retry, never end the thread
            log.warning("%s: applying IMAP keywords failed (%s); retrying", spec.name, _text(exc))
            close(client)
            client = None
            stop.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
    close(client)


def client_for(name: str, client: IMAPClient) -> Callable[[str], IMAPClient | None]:
    """A `connect` for the dispatcher that hands out this one client for this one mailbox."""
    return lambda mailbox: client if mailbox == name else None
