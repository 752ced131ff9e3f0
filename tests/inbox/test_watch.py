"""`watch`: IDLE per folder, reconnect after a server restart, catch up, keywords applied from the outbox."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import select

from inbox.imap import watch
from inbox.options import ClassificationLike, IngestOptions, MailboxSpec
from store.db import session_scope
from store.models import Conversation, Message, OutboxItem
from tests.inbox.helpers import CountingClassifier, add_rep, mail, spec_for
from tests.servers.dovecot import DovecotServer, ImapAccount

WAIT_SECONDS = 60  # generous: waiting is for a state, never an assertion about speed


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def stored(engine: Engine) -> int:
    with session_scope(engine) as session:
        return int(session.exec(select(func.count()).select_from(Message)).one())


@contextmanager
def watching(engine: Engine, spec: MailboxSpec, options: IngestOptions, classifier: CountingClassifier) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(
        target=watch, args=(engine, spec, None),
        kwargs={"options": options, "classifier": classifier, "stop": stop}, daemon=True,
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "watch did not stop"


def test_watch_ingests_new_mail_and_survives_a_server_restart(
    sqlite_engine: Engine, make_dovecot: Callable[..., DovecotServer], options: IngestOptions,
    classifier: CountingClassifier,
) -> None:
    server = make_dovecot()
    user = server.users[0]
    account = ImapAccount(server, user, server.password)
    add_rep(sqlite_engine, "alice@shop.example")
    account.append("INBOX", mail(message_id="<before@c>", subject="Before the watcher"))
    spec = spec_for(account, idle_timeout_minutes=0.05)  # re-issue IDLE every 3 s to exercise it

    with watching(sqlite_engine, spec, options, classifier):
        wait_for(lambda: stored(sqlite_engine) == 1, "the catch-up sync")
        account.append("INBOX", mail(message_id="<live@c>", subject="While idling", sender="b@c.example"))
        wait_for(lambda: stored(sqlite_engine) == 2, "IDLE to report the new mail")
        time.sleep(4)  # past one IDLE re-issue
        account.append("INBOX", mail(message_id="<later@c>", subject="After re-IDLE", sender="d@c.example"))
        wait_for(lambda: stored(sqlite_engine) == 3, "mail after IDLE was re-issued")

        server.stop()  # drops every connection
        time.sleep(1.5)
        server.restart()  # same port; the watcher is backing off meanwhile
        for i in range(3):
            account.append("INBOX", mail(message_id=f"<meanwhile{i}@c>", subject=f"Meanwhile {i}",
                                         sender=f"m{i}@c.example"))
        account.append("Sent", mail(sender="alice@shop.example", to="b@c.example", subject="Re: While idling",
                                    message_id="<reply@shop>", in_reply_to="<live@c>"))
        wait_for(lambda: stored(sqlite_engine) == 7, "the catch-up after reconnecting")
        wait_for(lambda: _pending_tags(sqlite_engine) == 0, "keywords to be applied")

    with session_scope(sqlite_engine) as session:
        ids = session.exec(select(Message.message_id)).all()
        assert len(ids) == len(set(ids)) == 7
        answered = session.exec(select(Conversation).where(Conversation.subject == "While idling")).one()
        assert answered.status == "answered"
    with account.client() as client:
        client.select_folder("INBOX", readonly=True)
        tagged = client.get_flags(client.search(["ALL"]))
    assert all(b"rapport/owner/alice" in f for f in tagged.values())
    assert all(b"\\Seen" not in f for f in tagged.values())


def _pending_tags(engine: Engine) -> int:
    with session_scope(engine) as session:
        return len(session.exec(select(OutboxItem).where(OutboxItem.kind == "imap-tag",
                                                         OutboxItem.status == "pending")).all())


def test_watch_polls_when_idle_is_not_used(
    sqlite_engine: Engine, imap_account: ImapAccount, options: IngestOptions, classifier: CountingClassifier
) -> None:
    spec = spec_for(imap_account, use_idle=False, poll_interval_seconds=0.3)
    with watching(sqlite_engine, spec, options, classifier):
        imap_account.append("INBOX", mail(message_id="<polled@c>", subject="Found by polling"))
        wait_for(lambda: stored(sqlite_engine) == 1, "a poll to find the new mail")
        imap_account.append("INBOX", mail(message_id="<polled2@c>", subject="Again", sender="x@c.example"))
        wait_for(lambda: stored(sqlite_engine) == 2, "the next poll")


def test_watched_folder_deleted_and_recreated_gives_no_duplicates(
    sqlite_engine: Engine, imap_account: ImapAccount, options: IngestOptions, classifier: CountingClassifier
) -> None:
    spec = spec_for(imap_account, folders=("Support",))
    first = mail(message_id="<first@c>", subject="First")
    imap_account.append("Support", first)
    with watching(sqlite_engine, spec, options, classifier):
        wait_for(lambda: stored(sqlite_engine) == 1, "the catch-up sync")
        with imap_account.client() as client:
            client.delete_folder("Support")
            time.sleep(1.1)  # Dovecot derives UIDVALIDITY from the clock in seconds
            client.create_folder("Support")
        imap_account.append("Support", first)
        imap_account.append("Support", mail(message_id="<second@c>", subject="Second", sender="s@c.example"))
        wait_for(lambda: stored(sqlite_engine) == 2, "the re-created folder to be read")
        time.sleep(1)  # a duplicate, if any, would be written now
    with session_scope(sqlite_engine) as session:
        ids = sorted(session.exec(select(Message.message_id)).all())
    assert ids == ["<first@c>", "<second@c>"]



class DeliversMailWhileClassifying(CountingClassifier):
    """Runs `deliver` once, inside the first classify call whose texts contain `trigger`: mail that
    arrives while a sync is under way."""

    def __init__(self, inner: CountingClassifier, trigger: str, deliver: Callable[[], None]) -> None:
        super().__init__(inner.inner)
        self.trigger, self.deliver = trigger, deliver
        self.delivered = False

    def classify(self, texts: list[str]) -> Sequence[ClassificationLike]:
        if not self.delivered and any(self.trigger in t for t in texts):
            self.delivered = True
            self.deliver()
        return super().classify(texts)


def test_watcher_reads_to_the_end_after_uidvalidity_changes(
    sqlite_engine: Engine, imap_account: ImapAccount, options: IngestOptions, classifier: CountingClassifier
) -> None:
    """Issue 15 finding 7: a folder deleted and refilled while watched left its last mails unread until
    another one arrived. Mail that lands while a sync reads several batches is announced in the answers
    to its FETCHes, never again to IDLE: the watcher reads to the end before it idles again."""
    spec = spec_for(imap_account, folders=("Support",))
    old = [mail(message_id=f"<old{i}@c>", subject=f"Old {i}", sender=f"o{i}@c.example") for i in range(3)]
    new = [mail(message_id=f"<new{i}@c>", subject=f"New {i}", sender=f"n{i}@c.example", body=f"Refill {i}")
           for i in range(10)]
    for raw in old:
        imap_account.append("Support", raw)

    def deliver_the_tail() -> None:
        for raw in new[6:]:
            imap_account.append("Support", raw)

    watcher = DeliversMailWhileClassifying(classifier, "New 0", deliver_the_tail)
    with watching(sqlite_engine, spec, dataclasses.replace(options, batch_size=2), watcher):
        wait_for(lambda: stored(sqlite_engine) == 3, "the catch-up sync")
        with imap_account.client() as client:
            client.create_folder("Refill")  # filled aside, then put in place of the watched folder
            for raw in [*old, *new[:6]]:
                client.append("Refill", raw)
            client.delete_folder("Support")
            client.rename_folder("Refill", "Support")  # at once: the idling watcher hears only "NO"
        wait_for(lambda: stored(sqlite_engine) == 13, "the refilled folder to be read to its end")
    assert watcher.delivered
    with session_scope(sqlite_engine) as session:
        ids = session.exec(select(Message.message_id)).all()
    assert sorted(ids) == sorted([f"<old{i}@c>" for i in range(3)] + [f"<new{i}@c>" for i in range(10)])
