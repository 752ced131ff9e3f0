"""`rapport inbox` (sync, watch, status) and `rapport assign` (explain, reassign)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy import func
from sqlmodel import col, select

from inbox.options import IngestOptions, MailboxSpec
from inbox.pipeline import BatchResult
from rapport.cli.common import (
    AT_OPTION,
    acting_person,
    cli_actor,
    console,
    is_fixed,
    minute,
    now,
    print_json,
    runtime,
)
from rapport.errors import ConfigError, RapportError
from rapport.wiring import Runtime, check_names, ingest_options, mailbox_specs
from store.assignments import assignment_history
from store.checkpoints import list_checkpoints
from store.db import session_scope
from store.models import Message, OutboxItem, OutboxStatus, Rep

log = logging.getLogger("rapport.inbox")

inbox_app = typer.Typer(help="Read the shared mailbox: sync, watch, status.", no_args_is_help=True)
assign_app = typer.Typer(help="Explain and change who owns a conversation.", no_args_is_help=True)

PROGRESS_MIN_MESSAGES = 50  # a bar for a backlog, not for the three mails of a normal sync
COUNT_KEYS = ("fetched", "new", "duplicates", "automatic", "failed", "outbound", "assigned", "backlog")


# --------------------------------------------------------------------------- wiring


def _classifier(rt: Runtime) -> Any:
    """The classifier of the database the mail goes into; ingesting is how a database starts, so
    it is created when it is not there. The routes are checked first against the database's
    reps, then routes and SLAs against the model's categories."""
    from nlp import ModelError

    check_names(rt)
    rt.create_database()
    try:
        classifier = rt.classifier
    except ModelError as exc:
        raise RapportError(f"cannot load the classifier: {exc}") from None
    check_names(rt, classifier.categories)
    return classifier


def _required_specs(rt: Runtime) -> list[MailboxSpec]:
    specs = mailbox_specs(rt)
    if not specs:
        raise ConfigError("no mailbox configured: set RAPPORT_IMAP_HOST, RAPPORT_IMAP_USER and RAPPORT_IMAP_PASSWORD "
                          "(or add [[inbox.mailboxes]] to rapport.toml), or use `rapport inbox sync --dir PATH`")
    return specs


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A progress bar per folder, shown only for a backlog-sized sync on a terminal."""
    if not enabled:
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        tasks: dict[str, Any] = {}

        def update(folder: str, done: int, total: int) -> None:
            if total < PROGRESS_MIN_MESSAGES:
                return
            if folder not in tasks:
                tasks[folder] = bar.add_task(folder, total=total)
            bar.update(tasks[folder], completed=done)

        yield update


# --------------------------------------------------------------------------- inbox


@inbox_app.command("sync")
def sync(
    once: bool = typer.Option(False, "--once", help="One pass over every folder, then exit."),
    as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
    directory: Path = typer.Option(None, "--dir", help="Read .eml files / Maildir folders from PATH instead of IMAP.",
                                   exists=True, file_okay=False),
    mailbox_name: str = typer.Option("local", "--mailbox", help="With --dir: the mailbox name to record."),
    tags: bool = typer.Option(True, "--tags/--no-tags", help="Apply IMAP keywords right after the sync."),
    at: str | None = AT_OPTION,
) -> None:
    """Ingest new mail. Without --once, keep polling every poll_interval_seconds (see also `watch`)."""
    rt = runtime()
    options = ingest_options(rt)
    if is_fixed(rt, at):  # received "now", SLA due from then
        options = replace(options, now=now(rt, at))
    show_bar = not as_json and sys.stdout.isatty()
    while True:
        with _progress(show_bar) as progress:
            if directory is not None:
                results = _sync_directory(rt, directory, mailbox_name, options, progress)
            else:
                results = _sync_imap(rt, options, progress, tags=tags)
        _report(results, as_json)
        if once or directory is not None:
            return
        if _stop_requested(rt.config.inbox.poll_interval_seconds):
            return


def _sync_imap(
    rt: Runtime, options: IngestOptions, progress: Callable[[str, int, int], None] | None, *, tags: bool
) -> dict[str, dict[str, BatchResult]]:
    from inbox.imap import CONNECTION_ERRORS, ImapConnectError, client_for, close, connect, sync_mailbox
    from inbox.pipeline import DB_CONTENTION
    from inbox.tags import dispatch_imap_outbox

    specs = _required_specs(rt)
    classifier = _classifier(rt)
    results = {}
    for spec in specs:
        try:
            results[spec.name] = sync_mailbox(rt.engine, spec, options=options, classifier=classifier,
                                              progress=progress)
            if tags:
                client = connect(spec)
                try:
                    dispatch_imap_outbox(rt.engine, client_for(spec.name, client))
                finally:
                    close(client)
        except ImapConnectError as exc:
            raise RapportError(f"mailbox {spec.name}: {exc}") from None
        except CONNECTION_ERRORS as exc:
            raise RapportError(f"mailbox {spec.name}: the connection failed during the sync ({exc}); "
                               "what was read is saved, run the sync again") from None
        except DB_CONTENTION as exc:
            raise RapportError(f"mailbox {spec.name}: the database refused a batch ({type(exc).__name__}); is "
                               "another process syncing the same mailbox? Nothing was lost; run the sync again"
                               ) from None
    return results


def _sync_directory(
    rt: Runtime, directory: Path, mailbox: str, options: IngestOptions,
    progress: Callable[[str, int, int], None] | None,
) -> dict[str, dict[str, BatchResult]]:
    from inbox.local import DirectoryError, mail_files, sync_directory, sync_mailbox_directory

    classifier = _classifier(rt)
    try:
        if mail_files(directory):
            result = sync_directory(rt.engine, directory, mailbox, directory.name, options=options,
                                    classifier=classifier, progress=progress)
            return {mailbox: {directory.name: result}}
        return {mailbox: sync_mailbox_directory(rt.engine, directory, mailbox, options=options,
                                                classifier=classifier, progress=progress)}
    except (DirectoryError, OSError) as exc:
        raise RapportError(str(exc)) from None


def _report(results: dict[str, dict[str, BatchResult]], as_json: bool) -> None:
    total = BatchResult()
    for folders in results.values():
        for result in folders.values():
            total.add(result)
    if as_json:
        print_json({
            **total.counts(),
            "mailboxes": {m: {f: r.counts() for f, r in folders.items()} for m, folders in results.items()},
        })
        return
    # A line per folder, not a table: ten count columns do not fit 80 columns
    for mailbox, folders in results.items():
        for folder, result in folders.items():
            console.print(f"{mailbox} {folder}\n  {count_summary(result)}", highlight=False, markup=False)


def count_summary(result: BatchResult) -> str:
    """`fetched 4, new 3, duplicates 1`: the counts that are not zero, labelled."""
    counts = result.counts()
    return ", ".join(f"{key} {counts[key]}" for key in COUNT_KEYS if counts[key]) or "nothing new"


def _stop_requested(seconds: float) -> bool:
    stop = threading.Event()
    with _signals_set(stop):
        return stop.wait(seconds)


@contextmanager
def _signals_set(stop: threading.Event) -> Iterator[None]:
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for signum in previous:
        signal.signal(signum, lambda *_: stop.set())
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@inbox_app.command("watch")
def watch_command() -> None:
    """Follow every folder with IDLE (polling where unsupported) until Ctrl-C or SIGTERM."""
    from inbox.imap import watch

    rt = runtime()
    specs = _required_specs(rt)
    options = ingest_options(rt)
    classifier = _classifier(rt)
    engine = rt.engine
    stop = threading.Event()

    def report(folder: str, result: BatchResult) -> None:
        if result.fetched:
            log.info("%s: %s", folder, count_summary(result))

    threads = [
        threading.Thread(target=watch, args=(engine, spec, None), name=f"watch {spec.name}", daemon=True,
                         kwargs={"options": options, "classifier": classifier, "stop": stop, "on_batch": report})
        for spec in specs
    ]
    with _signals_set(stop):
        for thread in threads:
            thread.start()
        log.info("watching %s; Ctrl-C to stop", ", ".join(s.name for s in specs))
        while not stop.wait(1.0):
            if not any(t.is_alive() for t in threads):
                break
    for thread in threads:
        thread.join(timeout=15)


@inbox_app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Checkpoints per folder, stored mail, and IMAP side effects still to do."""
    rt = runtime()
    with session_scope(rt.engine) as session:
        stored = list_checkpoints(session)
        checkpoints = [
            {"mailbox": c.mailbox, "folder": c.folder, "uidvalidity": c.uidvalidity, "last_uid": c.last_uid,
             "updated_at": c.updated_at.isoformat()}
            for c in stored
        ]
        # a line per folder: a table's five columns cut the time at 80 columns
        lines = [f"{c.mailbox} {c.folder}\n  last UID {c.last_uid} of UIDVALIDITY {c.uidvalidity}, "
                 f"read {minute(c.updated_at)} UTC" for c in stored]
        messages = int(session.exec(select(func.count()).select_from(Message)).one())
        automatic = int(session.exec(select(func.count()).select_from(Message).where(col(Message.is_automatic))).one())
        unreadable = int(session.exec(
            select(func.count()).select_from(Message).where(col(Message.raw_excerpt).is_not(None))
        ).one())
        pending = dict(session.exec(
            select(OutboxItem.kind, func.count())
            .where(OutboxItem.status == OutboxStatus.pending)
            .group_by(col(OutboxItem.kind))
        ).all())
    data = {"checkpoints": checkpoints, "messages": messages, "automatic": automatic, "unreadable": unreadable,
            "pending_outbox": pending}
    if as_json:
        print_json(data)
        return
    console.print("\n".join(["Checkpoints:" if lines else "Checkpoints: none yet", *lines]), highlight=False,
                  markup=False)
    console.print(f"messages: {messages}  automatic: {automatic}  unreadable (kept raw): {unreadable}")
    console.print("pending outbox: " + (", ".join(f"{k} {v}" for k, v in sorted(pending.items())) or "none"))


# --------------------------------------------------------------------------- assign


@assign_app.command("explain")
def explain_command(
    conversation: int = typer.Argument(..., help="Conversation id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Why a conversation has its owner: the rules its latest assignment tried, and the history."""
    from inbox.assign import explain

    rt = runtime()
    options = ingest_options(rt)
    with session_scope(rt.engine) as session:
        try:
            explained = explain(session, conversation, routes=options.routes, fallback_queue=options.fallback_queue)
        except LookupError as exc:
            raise RapportError(str(exc)) from None
        history = []
        for a in assignment_history(session, conversation):
            owner = session.get(Rep, a.owner_id) if a.owner_id else None
            history.append({"at": a.assigned_at.isoformat(), "rule": a.rule, "owner": owner.email if owner else None,
                            "queue": a.queue, "reason": a.reason, "by": a.assigned_by})
    rules = [{"rule": o.rule, "applied": o.applied, "reason": o.reason,
              "owner": o.owner.email if o.owner else None, "queue": o.queue} for o in explained.rules]
    if as_json:
        print_json({"conversation": conversation, "unassigned": explained.unassigned, "rules": rules,
                    "history": history})
        return
    if explained.unassigned is not None:
        console.print(f"Conversation {conversation}: {explained.unassigned}.", highlight=False, markup=False)
        return
    table = Table("rule", "applies", "why", title=f"Conversation {conversation}: the rules its latest assignment tried")
    for r in rules:
        table.add_row(str(r["rule"]), "[green]yes ← wins[/]" if r["applied"] else "no", str(r["reason"]))
    console.print(table)
    # an entry per block, not a table: five columns in 80 cut the owners' emails short
    lines = ["Assignment history (times in UTC):"]
    for h in history:
        when = minute(datetime.fromisoformat(str(h["at"])))
        shown = h["owner"] or f"queue {h['queue']}"
        lines += [f"  {when}  {h['rule']} → {shown}", f"    {h['reason']} (by {h['by']})"]
    console.print("\n".join(lines), highlight=False, markup=False)


@assign_app.command("reassign")
def reassign_command(
    conversation: int = typer.Argument(..., help="Conversation id."),
    rep_email: str = typer.Argument(..., help="The new owner's email."),
    by: str = typer.Option(None, "--by", help="Who reassigns (an email); default: the current OS user."),
    reason: str = typer.Option(None, "--reason", help="One line saying why."),
) -> None:
    """Give a conversation to another rep; recorded as rule `manual` and the rep is notified."""
    from store.assignments import ReassignError, reassign
    from store.audit import record_audit

    rt = runtime()
    moment = now(rt)
    with session_scope(rt.engine) as session:
        try:
            assignment = reassign(session, conversation, rep_email, by=acting_person(by), reason=reason,
                                  keyword_prefix=rt.config.inbox.keyword_prefix, now=moment)
        except ReassignError as exc:
            raise RapportError(str(exc)) from None
        record_audit(session, cli_actor(by), "conversation.reassign", target_kind="conversation",
                     target_id=conversation, detail={"new_owner_id": assignment.owner_id}, at=moment)
        console.print(f"conversation {conversation} → {rep_email.lower()} ({assignment.reason})")
