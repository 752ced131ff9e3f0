"""The shared mailbox's Sent folder over IMAP: is a Message-ID there, and APPEND a copy.

Replies sent from Slack (bot/reply.py) are copied here so that support staff see
them in their mail client, and a retry after a crash looks here before sending
again. The watcher reads the copy back as a duplicate of the stored reply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime

from imapclient import IMAPClient
from imapclient.imapclient import SEEN

from inbox.imap import ImapConnectError, close, connect, sent_folder
from inbox.options import MailboxSpec


class ImapSentFolder:
    """One folder on a logged-in client."""

    def __init__(self, client: IMAPClient, folder: str) -> None:
        self.client = client
        self.folder = folder

    def contains(self, message_id: str) -> bool:
        self.client.select_folder(self.folder, readonly=True)
        return bool(self.client.search(["HEADER", "Message-ID", message_id]))

    def append(self, raw: bytes, at: datetime) -> None:
        self.client.append(self.folder, raw, flags=(SEEN,), msg_time=at)


@contextmanager
def open_sent_folder(spec: MailboxSpec) -> Iterator[ImapSentFolder]:
    """A connection to the mailbox's Sent folder (created when missing), closed afterwards."""
    client = connect(spec)
    try:
        folder = sent_folder(client, spec)
        if not folder:
            raise ImapConnectError(f"{spec.name}: no Sent folder found; set sent_folder under [inbox] in rapport.toml")
        if not client.folder_exists(folder):
            client.create_folder(folder)
        yield ImapSentFolder(client, folder)
    finally:
        close(client)


def sent_folders(specs: Sequence[MailboxSpec]) -> Callable[[str | None], AbstractContextManager[ImapSentFolder | None]]:
    """For `bot.reply.reply_handler`: a mailbox's name (None: the first mailbox) -> its Sent folder;
    None when no mailbox is configured."""

    @contextmanager
    def open_for(name: str | None) -> Iterator[ImapSentFolder | None]:
        spec = next((s for s in specs if s.name == name), specs[0] if specs else None)
        if spec is None:
            yield None
            return
        with open_sent_folder(spec) as folder:
            yield folder

    return open_for
