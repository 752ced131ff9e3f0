"""Make Rapport's decisions visible in the mail client: IMAP keywords and per-owner folders.

Rows come from the outbox (`imap-tag`, `imap-move`), written with the batch
that decided them, so a crash delays tags but never loses them; STORE +FLAGS is
idempotent, so a repeat after a crash does no harm. Work is batched: one STORE
per folder and keyword set, one MOVE per folder and target.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import timedelta

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from store.db import session_scope
from store.models import Message, OutboxItem, OutboxStatus
from store.outbox import claim_due, mark_failed, mark_sent

log = logging.getLogger("rapport.inbox")

KINDS = ("imap-tag", "imap-move")
Connect = Callable[[str], IMAPClient | None]  # mailbox name -> a logged-in client, or None if not ours


def dispatch_imap_outbox(engine: Engine, connect: Connect, *, limit: int = 2000) -> int:
    """Apply due keyword and move rows; returns how many were done. `connect` clients are not logged out."""
    with session_scope(engine) as session:
        items = claim_due(session, KINDS, limit=limit, lease=timedelta(minutes=5))
    if not items:
        return 0
    done: list[OutboxItem] = []
    failed: list[tuple[OutboxItem, str]] = []
    released: list[OutboxItem] = []
    by_folder: dict[tuple[str, str], list[OutboxItem]] = defaultdict(list)
    for item in items:
        by_folder[(item.payload["mailbox"], item.payload["folder"])].append(item)
    clients: dict[str, IMAPClient | None] = {}
    for (mailbox, folder), group in by_folder.items():
        if mailbox not in clients:
            clients[mailbox] = connect(mailbox)
        client = clients[mailbox]
        if client is None:
            released.extend(group)  # another process's mailbox
            continue
        _apply_folder(engine, client, folder, group, done, failed, released)
    with session_scope(engine) as session:
        for item in done:
            mark_sent(session, session.merge(item))
        for item, error in failed:
            mark_failed(session, session.merge(item), error)
        for item in released:
            _release(session.merge(item))
    return len(done)


def _release(item: OutboxItem) -> None:
    item.claimed_until = None
    item.attempts = max(0, item.attempts - 1)


def _apply_folder(
    engine: Engine,
    client: IMAPClient,
    folder: str,
    items: list[OutboxItem],
    done: list[OutboxItem],
    failed: list[tuple[OutboxItem, str]],
    released: list[OutboxItem],
) -> None:
    try:
        info = client.select_folder(folder)
    except IMAPClientError as exc:
        failed.extend((item, f"cannot open {folder}: {exc}") for item in items)
        return
    uidvalidity = int(info[b"UIDVALIDITY"])
    current = _current_uids(engine, items, uidvalidity)
    tags = [i for i in items if i.kind == "imap-tag"]
    moves = [i for i in items if i.kind == "imap-move"]
    for item in items:
        if item.id is not None and current.get(item.id) is None:
            failed.append((item, f"message no longer at UIDVALIDITY {uidvalidity} of {folder}"))
    _store_keywords(client, [t for t in tags if current.get(t.id or 0)], current, done, failed)
    ready_moves = _moves_ready(engine, [m for m in moves if current.get(m.id or 0)], tags, released)
    _move(client, ready_moves, current, done, failed)


def _current_uids(engine: Engine, items: Iterable[OutboxItem], uidvalidity: int) -> dict[int, int | None]:
    """Each row's UID in the folder as it is now; after a UIDVALIDITY change the message row knows the new one."""
    result: dict[int, int | None] = {}
    stale = [i for i in items if i.payload.get("uidvalidity") != uidvalidity]
    fresh: dict[int, Message] = {}
    if stale:
        with session_scope(engine) as session:
            ids = [int(i.payload["message_id"]) for i in stale]
            fresh = {m.id: m for m in session.exec(select(Message).where(col(Message.id).in_(ids))).all() if m.id}
    for item in items:
        assert item.id is not None
        if item.payload.get("uidvalidity") == uidvalidity:
            result[item.id] = int(item.payload["uid"])
            continue
        message = fresh.get(int(item.payload["message_id"]))
        matches = message is not None and message.uidvalidity == uidvalidity and message.uid is not None
        result[item.id] = message.uid if matches and message is not None else None
    return result


def _store_keywords(
    client: IMAPClient,
    items: list[OutboxItem],
    current: dict[int, int | None],
    done: list[OutboxItem],
    failed: list[tuple[OutboxItem, str]],
) -> None:
    """One STORE -FLAGS.SILENT and one +FLAGS.SILENT per distinct keyword change."""
    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[OutboxItem]] = defaultdict(list)
    for item in items:
        change = (tuple(sorted(item.payload.get("keywords", []))), tuple(sorted(item.payload.get("remove", []))))
        groups[change].append(item)
    for (add, remove), group in groups.items():
        uids = [current[i.id or 0] for i in group]
        try:
            if remove:
                client.remove_flags(uids, list(remove), silent=True)
            if add:
                client.add_flags(uids, list(add), silent=True)
        except IMAPClientError as exc:
            failed.extend((item, f"STORE {' '.join(add)}: {exc}") for item in group)
            continue
        done.extend(group)


def _moves_ready(
    engine: Engine, moves: list[OutboxItem], tags: list[OutboxItem], released: list[OutboxItem]
) -> list[OutboxItem]:
    """A move waits until its message's keywords are set (moving changes the UID)."""
    if not moves:
        return []
    claimed = {i.payload["message_id"] for i in tags}
    keys = [f"imap-tag:{m.payload['message_id']}" for m in moves if m.payload["message_id"] not in claimed]
    with Session(engine) as session:
        waiting = set(
            session.exec(
                select(OutboxItem.key).where(col(OutboxItem.key).in_(keys), OutboxItem.status == OutboxStatus.pending)
            ).all()
        ) if keys else set()
    ready = []
    for move in moves:
        if f"imap-tag:{move.payload['message_id']}" in waiting:
            released.append(move)
        else:
            ready.append(move)
    return ready


def _move(
    client: IMAPClient,
    items: list[OutboxItem],
    current: dict[int, int | None],
    done: list[OutboxItem],
    failed: list[tuple[OutboxItem, str]],
) -> None:
    """One UID MOVE per target folder (created when missing); never a COPY + delete."""
    if items and b"MOVE" not in client.capabilities():
        failed.extend((item, "the server lacks MOVE; Rapport does not delete mail to emulate it") for item in items)
        return
    groups: dict[str, list[OutboxItem]] = defaultdict(list)
    for item in items:
        groups[item.payload["target"]].append(item)
    for target, group in groups.items():
        try:
            if not client.folder_exists(target):
                client.create_folder(target)
            client.move([current[i.id or 0] for i in group], target)
        except IMAPClientError as exc:
            failed.extend((item, f"MOVE to {target}: {exc}") for item in group)
            continue
        done.extend(group)
