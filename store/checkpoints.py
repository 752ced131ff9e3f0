"""Mailbox checkpoints: UIDVALIDITY and the last UID read, per (mailbox, folder)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from store.models import MailboxCheckpoint


def get_checkpoint(session: Session, mailbox: str, folder: str) -> MailboxCheckpoint | None:
    return session.exec(
        select(MailboxCheckpoint).where(
            MailboxCheckpoint.mailbox == mailbox, MailboxCheckpoint.folder == folder
        )
    ).first()


def save_checkpoint(
    session: Session, mailbox: str, folder: str, uidvalidity: int, last_uid: int, *, at: datetime
) -> MailboxCheckpoint:
    """Move the checkpoint forward (never back within one UIDVALIDITY); call inside the batch's transaction."""
    checkpoint = get_checkpoint(session, mailbox, folder)
    if checkpoint is None:
        checkpoint = MailboxCheckpoint(mailbox=mailbox, folder=folder, uidvalidity=uidvalidity, last_uid=last_uid)
    elif checkpoint.uidvalidity != uidvalidity:
        checkpoint.uidvalidity = uidvalidity
        checkpoint.last_uid = last_uid
    else:
        checkpoint.last_uid = max(checkpoint.last_uid, last_uid)
    checkpoint.updated_at = at
    session.add(checkpoint)
    session.flush()
    return checkpoint


def list_checkpoints(session: Session) -> list[MailboxCheckpoint]:
    return list(
        session.exec(
            select(MailboxCheckpoint).order_by(MailboxCheckpoint.mailbox, MailboxCheckpoint.folder)
        ).all()
    )
