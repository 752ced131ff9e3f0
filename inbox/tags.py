"""Make Rapport's decisions visible in the mail client: IMAP keywords and per-owner folders.

Rows come from the outbox (`imap-tag`, `imap-move`), written with the batch
that decided them, so a crash delays tags but never loses them; STORE +FLAGS is
idempotent, so a repeat after a crash does no harm. Work is batched: one STORE
per folder and keyword set, one MOVE per folder and target.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from store.db import read_session
from store.models import Message, OutboxItem, OutboxStatus
from store.outbox import Done, Failed, Handler, ImapMove, ImapTag, Job, Outcome, Released, dispatch

log = logging.getLogger("rapport.inbox")

KINDS = (ImapTag.kind, ImapMove.kind)
Connect = Callable[[str], IMAPClient | None]  # mailbox name -> a logged-in client, or None if not ours
Outcomes = dict[int, Outcome]


def dispatch_imap_outbox(engine: Engine, connect: Connect, *, limit: int = 2000) -> int:
    """Apply due keyword and move rows; returns how many were done. `connect` clients are not logged out."""
    return dispatch(engine, [imap_handler(engine, connect)], limit=limit)


def imap_handler(engine: Engine, connect: Connect) -> Handler:
    """Keywords and moves, all claimed rows at once: one connection per mailbox, one SELECT per folder."""

    def act(jobs: list[Job]) -> Outcomes:
        outcomes: Outcomes = {}
        by_folder: dict[tuple[str, str], list[Job]] = defaultdict(list)
        for job in jobs:
            by_folder[(_position(job).mailbox, _position(job).folder)].append(job)
        clients: dict[str, IMAPClient | None] = {}
        for (mailbox, folder), group in by_folder.items():
            if mailbox not in clients:
                clients[mailbox] = connect(mailbox)
            client = clients[mailbox]
            if client is None:
                outcomes.update((job.id, Released()) for job in group)  # another process's mailbox
                continue
            _apply_folder(engine, client, folder, group, outcomes)
        return outcomes

    return Handler(KINDS, act, batch=True, lease=timedelta(minutes=5))


def _position(job: Job) -> ImapTag | ImapMove:
    assert isinstance(job.payload, ImapTag | ImapMove)
    return job.payload


def _apply_folder(engine: Engine, client: IMAPClient, folder: str, jobs: list[Job], outcomes: Outcomes) -> None:
    try:
        info = client.select_folder(folder)
    except IMAPClientError as exc:
        outcomes.update((job.id, Failed(f"cannot open {folder}: {exc}")) for job in jobs)
        return
    uidvalidity = int(info[b"UIDVALIDITY"])
    current = _current_uids(engine, jobs, uidvalidity)
    for job in jobs:
        if current.get(job.id) is None:
            outcomes[job.id] = Failed(f"message no longer at UIDVALIDITY {uidvalidity} of {folder}")
    here = [job for job in jobs if current.get(job.id)]
    tags = [job for job in here if isinstance(job.payload, ImapTag)]
    _store_keywords(client, tags, current, outcomes)
    moves = [job for job in here if isinstance(job.payload, ImapMove)]
    _move(client, _moves_ready(engine, moves, [job for job in jobs if isinstance(job.payload, ImapTag)], outcomes),
          current, outcomes)


def _current_uids(engine: Engine, jobs: list[Job], uidvalidity: int) -> dict[int, int | None]:
    """Each row's UID in the folder as it is now; after a UIDVALIDITY change the message row knows the new one."""
    stale = [_position(job).message_id for job in jobs if _position(job).uidvalidity != uidvalidity]
    fresh: dict[int, Message] = {}
    if stale:
        with read_session(engine) as session:
            fresh = {m.id: m for m in session.exec(select(Message).where(col(Message.id).in_(stale))).all() if m.id}
    result: dict[int, int | None] = {}
    for job in jobs:
        position = _position(job)
        if position.uidvalidity == uidvalidity:
            result[job.id] = position.uid
            continue
        message = fresh.get(position.message_id)
        matches = message is not None and message.uidvalidity == uidvalidity and message.uid is not None
        result[job.id] = message.uid if matches and message is not None else None
    return result


def _store_keywords(client: IMAPClient, jobs: list[Job], current: dict[int, int | None], outcomes: Outcomes) -> None:
    """One STORE -FLAGS.SILENT and one +FLAGS.SILENT per distinct keyword change."""
    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[Job]] = defaultdict(list)
    for job in jobs:
        assert isinstance(job.payload, ImapTag)
        groups[(tuple(sorted(job.payload.keywords)), tuple(sorted(job.payload.remove)))].append(job)
    for (add, remove), group in groups.items():
        uids = [current[job.id] for job in group]
        try:
            if remove:
                client.remove_flags(uids, list(remove), silent=True)
            if add:
                client.add_flags(uids, list(add), silent=True)
        except IMAPClientError as exc:
            outcomes.update((job.id, Failed(f"STORE {' '.join(add)}: {exc}")) for job in group)
            continue
        outcomes.update((job.id, Done()) for job in group)


def _moves_ready(engine: Engine, moves: list[Job], tags: list[Job], outcomes: Outcomes) -> list[Job]:
    """A move waits until its message's keywords are set (moving changes the UID)."""
    if not moves:
        return []
    claimed = {_position(job).message_id for job in tags}
    keys = [f"imap-tag:{_position(m).message_id}" for m in moves if _position(m).message_id not in claimed]
    with read_session(engine) as session:
        waiting = set(session.exec(
            select(OutboxItem.key).where(col(OutboxItem.key).in_(keys), OutboxItem.status == OutboxStatus.pending)
        ).all()) if keys else set()
    ready = []
    for move in moves:
        if f"imap-tag:{_position(move).message_id}" in waiting:
            outcomes[move.id] = Released()
        else:
            ready.append(move)
    return ready


def _move(client: IMAPClient, jobs: list[Job], current: dict[int, int | None], outcomes: Outcomes) -> None:
    """One UID MOVE per target folder (created when missing); never a COPY + delete."""
    if jobs and b"MOVE" not in client.capabilities():
        outcomes.update((job.id, Failed("the server lacks MOVE; Rapport does not delete mail to emulate it"))
                        for job in jobs)
        return
    groups: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        assert isinstance(job.payload, ImapMove)
        groups[job.payload.target].append(job)
    for target, group in groups.items():
        try:
            if not client.folder_exists(target):
                client.create_folder(target)
            client.move([current[job.id] for job in group], target)
        except IMAPClientError as exc:
            outcomes.update((job.id, Failed(f"MOVE to {target}: {exc}")) for job in group)
            continue
        outcomes.update((job.id, Done()) for job in group)
