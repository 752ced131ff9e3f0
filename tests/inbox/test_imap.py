"""IMAP ingestion against a real Dovecot on loopback: exactly once, \\Seen untouched, UIDVALIDITY, tags, TLS."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from inbox.imap import FolderError, ImapConnectError, connect, sync_mailbox
from inbox.options import IngestOptions
from inbox.tags import KINDS, dispatch_imap_outbox
from store.assignments import reassign
from store.db import session_scope
from store.models import Assignment, Conversation, MailboxCheckpoint, Message, OutboxItem
from store.types import utcnow
from tests.dying_dispatcher import run_until_acted
from tests.inbox.helpers import NOW, CountingClassifier, add_rep, fixture_eml, mail, spec_for
from tests.servers.dovecot import ImapAccount

ROOT = Path(__file__).resolve().parents[2]


def count(engine: Engine, model: type) -> int:
    with session_scope(engine) as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def flags(account: ImapAccount, folder: str = "INBOX") -> dict[int, set[bytes]]:
    with account.client() as client:
        client.select_folder(folder, readonly=True)
        return {uid: set(f) for uid, f in client.get_flags(client.search(["ALL"])).items()}


def numbered(i: int, **fields: object) -> bytes:
    values: dict[str, object] = {"subject": f"Question {i}", "sender": f"c{i % 37}@customer.example",
                                 "message_id": f"<n{i}@customer.example>", "body": f"Question number {i}."}
    values.update(fields)
    return mail(**values)  # type: ignore[arg-type]


def test_sync_reads_inbox_and_sent_without_touching_seen(
    engine: Engine, imap_account: ImapAccount, options: IngestOptions, classifier: CountingClassifier
) -> None:
    add_rep(engine, "alice@shop.example")
    imap_account.append("INBOX", fixture_eml("question.eml"), flags=[b"\\Seen"])  # a person read it first
    imap_account.append("INBOX", numbered(1))
    imap_account.append("Sent", fixture_eml("staff_reply.eml"), flags=[b"\\Seen"])
    before = flags(imap_account)

    results = sync_mailbox(engine, spec_for(imap_account), options=options, classifier=classifier)

    assert {f: r.new for f, r in results.items()} == {"INBOX": 2, "Sent": 1}
    assert flags(imap_account) == before  # no \Seen added, nothing deleted
    assert count(engine, Message) == 3
    with session_scope(engine) as session:
        question = session.exec(select(Conversation).where(Conversation.subject == "Refund for order 1042")).one()
        assert question.status == "answered" and question.first_response_at is not None
    again = sync_mailbox(engine, spec_for(imap_account), options=options, classifier=classifier)
    assert all(r.fetched == 0 for r in again.values())


def test_sent_folder_found_by_special_use(
    engine: Engine, imap_account: ImapAccount, options: IngestOptions, classifier: CountingClassifier
) -> None:
    imap_account.append("Sent", fixture_eml("staff_reply.eml"))
    results = sync_mailbox(engine, spec_for(imap_account, sent_folder=None), options=options, classifier=classifier)
    assert results["Sent"].outbound == 1


def test_folder_recreated_with_new_uidvalidity_gives_no_duplicates(
    engine: Engine, imap_account: ImapAccount, options: IngestOptions, classifier: CountingClassifier
) -> None:
    spec = spec_for(imap_account, folders=("Support",))
    raws = [numbered(i) for i in range(5)]
    for raw in raws:
        imap_account.append("Support", raw)
    first = sync_mailbox(engine, spec, options=options, classifier=classifier)["Support"]
    with session_scope(engine) as session:
        old_validity = session.exec(select(MailboxCheckpoint.uidvalidity)).one()
    with imap_account.client() as client:
        client.delete_folder("Support")
        client.create_folder("Support")
    time.sleep(1.1)  # Dovecot derives UIDVALIDITY from the clock in seconds
    for raw in [*raws, numbered(99)]:
        imap_account.append("Support", raw)

    second = sync_mailbox(engine, spec, options=options, classifier=classifier)["Support"]

    assert (first.new, second.new, second.duplicates) == (5, 1, 5)
    assert count(engine, Message) == 6
    with session_scope(engine) as session:
        checkpoint = session.exec(select(MailboxCheckpoint).where(MailboxCheckpoint.folder == "Support")).one()
        assert checkpoint.uidvalidity != old_validity and checkpoint.last_uid == 6
        positions = {m.uidvalidity for m in session.exec(select(Message)).all()}
    assert positions == {checkpoint.uidvalidity}


def test_keywords_applied_once_and_reassignment_swaps_the_owner_keyword(
    engine: Engine, imap_account: ImapAccount, options: IngestOptions, classifier: CountingClassifier
) -> None:
    add_rep(engine, "alice@shop.example")
    add_rep(engine, "bob@shop.example", away_until=NOW + timedelta(days=1))
    spec = spec_for(imap_account)
    imap_account.append("INBOX", fixture_eml("question.eml"))
    imap_account.append("INBOX", fixture_eml("out_of_office.eml"))
    sync_mailbox(engine, spec, options=options, classifier=classifier)

    with connect(spec) as client:
        done = dispatch_imap_outbox(engine, lambda name: client if name == spec.name else None)
        again = dispatch_imap_outbox(engine, lambda name: client if name == spec.name else None)
    assert (done, again) == (2, 0)
    with session_scope(engine) as session:
        category = session.exec(select(Message.category).where(Message.uid == 1)).one()
    category_keyword = f"rapport/category/{category}".encode()
    assert flags(imap_account) == {1: {b"rapport/owner/alice", category_keyword}, 2: {b"rapport/automatic"}}
    with session_scope(engine) as session:
        tags = session.exec(select(OutboxItem).where(OutboxItem.kind == "imap-tag")).all()
        assert {t.status for t in tags} == {"sent"}
        conversation_id = session.exec(select(Message.conversation_id).where(Message.uid == 1)).one()
        assert conversation_id is not None
        reassign(session, conversation_id, "bob@shop.example", by="manager@shop.example", now=utcnow())
    with connect(spec) as client:
        assert dispatch_imap_outbox(engine, lambda name: client) == 1
    assert flags(imap_account)[1] == {b"rapport/owner/bob", category_keyword}


def test_keywords_follow_the_mail_into_a_recreated_folder(
    engine: Engine, imap_account: ImapAccount, options: IngestOptions, classifier: CountingClassifier
) -> None:
    add_rep(engine, "alice@shop.example")
    spec = spec_for(imap_account, folders=("Support",))
    imap_account.append("Support", numbered(1))
    sync_mailbox(engine, spec, options=options, classifier=classifier)
    with imap_account.client() as client:  # re-created before the keywords were applied
        client.delete_folder("Support")
        time.sleep(1.1)
        client.create_folder("Support")
    imap_account.append("Support", numbered(0))
    imap_account.append("Support", numbered(1))  # now UID 2 under a new UIDVALIDITY
    sync_mailbox(engine, spec, options=options, classifier=classifier)

    with connect(spec) as client:
        assert dispatch_imap_outbox(engine, lambda name: client) == 2
    tagged = flags(imap_account, "Support")
    assert all(b"rapport/owner/alice" in f for f in tagged.values()) and len(tagged) == 2


def test_move_to_owner_folders_after_tagging(
    engine: Engine, imap_account: ImapAccount, classifier: CountingClassifier
) -> None:
    add_rep(engine, "alice@shop.example")
    options = IngestOptions(now=NOW, move_to_owner_folders=True, owner_folder_prefix="Owners")
    spec = spec_for(imap_account)
    imap_account.append("INBOX", fixture_eml("question.eml"))
    imap_account.append("INBOX", numbered(1))
    sync_mailbox(engine, spec, options=options, classifier=classifier)

    with connect(spec) as client:
        assert dispatch_imap_outbox(engine, lambda name: client) == 4
    assert flags(imap_account) == {}
    moved = flags(imap_account, "Owners/alice")
    assert len(moved) == 2 and all(b"rapport/owner/alice" in f for f in moved.values())


def test_too_large_mail_is_kept_as_a_raw_record_and_not_fetched_again(
    engine: Engine, imap_account: ImapAccount, classifier: CountingClassifier
) -> None:
    options = IngestOptions(now=NOW, max_message_bytes=2000)
    imap_account.append("INBOX", mail(body="x" * 5000, message_id="<big@c>"))
    imap_account.append("INBOX", numbered(1))
    first = sync_mailbox(engine, spec_for(imap_account), options=options, classifier=classifier)["INBOX"]
    again = sync_mailbox(engine, spec_for(imap_account), options=options, classifier=classifier)["INBOX"]

    assert (first.new, first.failed, again.fetched) == (2, 1, 0)
    with session_scope(engine) as session:
        big = session.exec(select(Message).where(Message.message_id == "<big@c>")).one()
    assert big.conversation_id is None and big.raw_excerpt and "too large" in big.parse_problems[-1]


def test_starttls_and_imaps_check_the_certificate(
    engine: Engine, imap_tls_account: ImapAccount, options: IngestOptions, classifier: CountingClassifier
) -> None:
    server = imap_tls_account.server
    imap_tls_account.append("INBOX", numbered(1))
    starttls = spec_for(imap_tls_account, security="starttls", ca_file=server.ca_file, host="localhost")
    imaps = spec_for(imap_tls_account, security="ssl", port=server.tls_port, ca_file=server.ca_file, host="localhost")
    assert sync_mailbox(engine, starttls, options=options, classifier=classifier)["INBOX"].new == 1
    assert sync_mailbox(engine, imaps, options=options, classifier=classifier)["INBOX"].fetched == 0
    untrusted = spec_for(imap_tls_account, security="ssl", port=server.tls_port, host="localhost")
    with pytest.raises(ImapConnectError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        connect(untrusted)


def test_wrong_password_or_missing_folder_is_a_clear_error(
    engine: Engine, imap_account: ImapAccount, options: IngestOptions, classifier: CountingClassifier
) -> None:
    with pytest.raises(ImapConnectError, match="login refused"):
        connect(spec_for(imap_account, password="wrong"))
    with pytest.raises(FolderError, match="cannot open the folder 'Nope'"):
        sync_mailbox(engine, spec_for(imap_account, folders=("Nope",)), options=options, classifier=classifier)


def test_kill_9_at_random_points_then_restart_stores_every_message_exactly_once(
    engine: Engine, db_url: str, imap_account: ImapAccount, nlp_classifier: object, request: pytest.FixtureRequest
) -> None:
    add_rep(engine, "alice@shop.example")
    add_rep(engine, "bob@shop.example")
    total = 300
    with imap_account.client() as client:
        for i in range(total):
            raw = numbered(i, in_reply_to=f"<n{i - 1}@customer.example>" if i % 5 else None)
            client.append("INBOX", raw)
        client.append("Sent", mail(sender="alice@shop.example", to="c1@customer.example",
                                   subject="Re: Question 1", message_id="<s1@shop.example>",
                                   in_reply_to="<n1@customer.example>"))
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    argv = [sys.executable, "-m", "tests.inbox.sync_process", db_url, imap_account.host, str(imap_account.port),
            imap_account.user, imap_account.password, str(request.config.cache.mkdir("rapport-models"))]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    stored_at_kill: list[int] = []
    for attempt in range(24):  # at least 8 kills, and go on (to 24) until one lands mid-way
        if attempt >= 8 and any(0 < n < total for n in stored_at_kill):
            break
        child = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert child.stdout is not None
        child.stdout.readline()  # "syncing": the model is loaded
        # Kill once a random number of mails is stored, plus a moment: a sleep alone could let a
        # whole (fast) sync finish before the first mid-way kill.
        stored = count(engine, Message)
        target, deadline = rng.randrange(min(stored + 1, total), total + 1), time.monotonic() + 60
        while child.poll() is None and count(engine, Message) < target and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.05))
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            child.wait()
            stored_at_kill.append(count(engine, Message))
        child.wait()
    final = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    assert final.returncode == 0, final.stderr[-2000:]
    print(f"seed {seed}: messages stored at each kill: {stored_at_kill}")
    assert any(0 < n < total for n in stored_at_kill), f"seed {seed}: no run was killed mid-way"
    with session_scope(engine) as session:
        ids = session.exec(select(Message.message_id)).all()
        assert len(ids) == total + 1 == len(set(ids)), f"seed {seed}"
        conversations = session.exec(select(Conversation)).all()
        per_conversation = session.exec(
            select(Assignment.conversation_id, func.count()).group_by(Assignment.conversation_id)  # type: ignore[arg-type]
        ).all()
        assert {n for _, n in per_conversation} == {1}, f"seed {seed}: a conversation was assigned twice"
        assert len(per_conversation) == len(conversations)
        dms = session.exec(select(OutboxItem.key).where(OutboxItem.kind == "assign-dm")).all()
        assert len(dms) == len(conversations)
        tags = session.exec(select(OutboxItem).where(OutboxItem.kind == "imap-tag")).all()
        assert len(tags) == total
        checkpoint = session.exec(select(MailboxCheckpoint).where(MailboxCheckpoint.folder == "INBOX")).one()
        assert checkpoint.last_uid == total


@pytest.mark.parametrize("move", [False, True], ids=["imap-tag", "imap-move"])
def test_killed_between_act_and_mark_keywords_and_moves_are_done_once(
    engine: Engine, db_url: str, imap_account: ImapAccount, classifier: CountingClassifier, tmp_path: Path,
    move: bool,
) -> None:
    add_rep(engine, "alice@shop.example")
    options = IngestOptions(now=NOW, move_to_owner_folders=move, owner_folder_prefix="Owners")
    spec = spec_for(imap_account)
    imap_account.append("INBOX", fixture_eml("question.eml"))
    sync_mailbox(engine, spec, options=options, classifier=classifier)
    folder = "Owners/alice" if move else "INBOX"

    run_until_acted(tmp_path / "acted", db_url, NOW, "imap", imap_account.host, imap_account.port,
                    imap_account.user, imap_account.password)
    acted = flags(imap_account, folder)
    assert len(acted) == 1 and b"rapport/owner/alice" in next(iter(acted.values()))
    with session_scope(engine) as session:
        assert {row.status for row in session.exec(select(OutboxItem).where(col(OutboxItem.kind).in_(KINDS))).all()} == {"pending"}

    with connect(spec) as client:  # the restart, after the lease
        assert dispatch_imap_outbox(engine, lambda name: client) == (2 if move else 1)
    assert flags(imap_account, folder) == acted
    assert flags(imap_account) == ({} if move else acted)
    with session_scope(engine) as session:
        assert {row.status for row in session.exec(select(OutboxItem).where(col(OutboxItem.kind).in_(KINDS))).all()} == {"sent"}
