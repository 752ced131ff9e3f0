"""`rapport privacy export|erase|status|expire` and `rapport audit`."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from rapport.cli.common import console, minute, print_json, runtime
from rapport.errors import RapportError
from rapport.wiring import retention
from store.audit import Actor, audit_entries, record_audit
from store.db import read_session, session_scope
from store.privacy import (
    PrivacyError,
    address_digest,
    erase_person,
    expire_old_data,
    export_files,
    export_person,
    find_person,
    privacy_key,
    privacy_status,
)
from store.reps import rep_by_email

privacy_app = typer.Typer(help="What Rapport holds on a person: export it, erase it, and how long mail is kept.",
                          no_args_is_help=True)


@privacy_app.command("export")
def export(
    email: str = typer.Argument(..., help="The person's email address."),
    out: Path | None = typer.Option(None, "--out", help="Write OUT.json and OUT.txt (default: "
                                    "privacy-export-<contact id> in this folder)."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON on stdout instead of writing files."),
) -> None:
    """Everything held on a person, as JSON plus the same records as text a person reads.

    The contact, company, mail with headers and text, calls, follow-ups, orders,
    consents, surveys, corrections, assignments and the audit log."""
    rt = runtime()
    try:
        with read_session(rt.engine) as session:
            data = export_person(session, email, now=rt.now())
    except PrivacyError as exc:
        raise RapportError(str(exc)) from None
    contact_id = int(data["contact"]["id"])
    with session_scope(rt.engine) as session:
        record_audit(session, Actor.cli(), "privacy.export", target_kind="contact", target_id=contact_id,
                     contact_id=contact_id, detail={"messages": len(data["messages"])}, at=rt.now())
    if as_json:
        print_json(data)
        return
    base = out or Path(f"privacy-export-{contact_id}")
    paths = []
    for suffix, text in export_files(data).items():
        path = base.with_name(f"{base.name}.{suffix}")
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    console.print(f"Written to {' and '.join(escape(str(path)) for path in paths)}.")


@privacy_app.command("erase")
def erase(
    email: str = typer.Argument(..., help="The person's email address."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    as_json: bool = typer.Option(False, "--json", help="Print what was erased as JSON."),
) -> None:
    """Erase a person everywhere, in one transaction. This cannot be undone.

    Counts for past digests stay; a keyed hash of the address and of the mail's
    Message-IDs keeps a re-sync or re-import from bringing them back."""
    rt = runtime()
    with read_session(rt.engine) as session:
        contact = find_person(session, email)
        name = contact.name if contact else None
    if name is None:
        raise RapportError(f"No contact has the address {email}.")
    if not yes and not typer.confirm(f"Erase {name} <{email}> and all their mail for good?"):
        raise typer.Exit(1)
    try:
        with session_scope(rt.engine) as session:
            report = erase_person(session, email, actor=Actor.cli(), configured_key=rt.settings.privacy_secret,
                                  now=rt.now())
    except PrivacyError as exc:
        raise RapportError(str(exc)) from None
    if as_json:
        print_json({"erased": True, "person_hash": report.person_hash, **report.as_dict()})
        return
    console.print(f"Erased: {report.conversations} conversations and {report.messages} messages emptied, "
                  f"{report.activities} activities, {report.followups} follow-ups and {report.orders} orders "
                  "kept without the person.")
    console.print(f"Closed {report.closed} open conversations and cancelled {report.cancelled} open follow-ups: "
                  "no one is asked to answer them.")
    if not report.key_configured:
        console.print("[yellow]RAPPORT_PRIVACY_KEY is not set: the hashes use a key kept in the database.[/]")


@privacy_app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """What is kept and for how long, the oldest item of each kind, and erasures so far."""
    rt = runtime()
    with read_session(rt.engine) as session:
        state = privacy_status(session, retention(rt.config), rt.settings.privacy_secret)
    if as_json:
        print_json({
            "messages": state.messages,
            "kinds": [{"kind": k.kind, "keep_days": k.keep_days, "held": k.held,
                       "oldest": k.oldest.isoformat() if k.oldest else None} for k in state.kinds],
            "erased_addresses": state.erased_addresses, "erased_messages": state.erased_messages,
            "audit_entries": state.audit_entries,
            "oldest_audit": state.oldest_audit.isoformat() if state.oldest_audit else None,
            "key_configured": state.key_configured, "other_key_ids": state.other_key_ids,
        })
        return
    table = Table(title=f"Kept data ({state.messages} messages)")
    for column in ("what", "kept for", "messages holding it", "oldest"):
        table.add_column(column)
    for kind in state.kinds:
        table.add_row(kind.kind.replace("_", " "), f"{kind.keep_days} days" if kind.keep_days else "for ever",
                      str(kind.held), kind.oldest.strftime("%Y-%m-%d") if kind.oldest else "-")
    console.print(table)
    console.print(f"Erased on request: {state.erased_addresses} addresses, {state.erased_messages} mails.")
    oldest = state.oldest_audit.strftime("%Y-%m-%d") if state.oldest_audit else "-"
    console.print(f"Audit log: {state.audit_entries} entries since {oldest}.")
    if not state.key_configured:
        console.print("[yellow]RAPPORT_PRIVACY_KEY is not set: erasure hashes use a key kept in the database.[/]")
    if state.other_key_ids:
        console.print("[red]Some erasures were hashed with another key: set RAPPORT_PRIVACY_KEY back to it, "
                      "or their mail may come back on a re-sync.[/]")


@privacy_app.command("expire")
def expire() -> None:
    """Apply the retention of rapport.toml now (the scheduler does it once a day).

    Empties message bodies and attachment lists older than privacy.retention_days."""
    rt = runtime()
    policy = retention(rt.config)
    done, _ = expire_old_data(rt.engine, policy, now=rt.now())
    if not done:
        console.print("Nothing to do: rapport.toml sets no \\[privacy.retention_days].")
    for kind, count in done.items():
        console.print(f"{kind.replace('_', ' ')}: emptied on {count} messages older than {policy.days(kind)} days.")


def audit(
    contact: str | None = typer.Option(None, "--contact", help="Entries about this person (also once erased)."),
    rep: str | None = typer.Option(None, "--rep", help="Entries by this rep (their email)."),
    since: str | None = typer.Option(None, "--since", help="From this date on, e.g. 2026-11-01."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Who did what, when and from where.

    Card views, exports, erasures, reassignments, claims, recategorisations,
    consent and stage changes, replies sent and refused actions, newest last."""
    rt = runtime()
    start = None
    if since:
        try:
            start = datetime.combine(date.fromisoformat(since), datetime.min.time(), UTC)
        except ValueError:
            raise RapportError(f"--since {since!r}: expected a date such as 2026-11-01") from None
    with read_session(rt.engine) as session:
        ids: list[int] = []
        hashes: list[str] = []
        if contact:
            person = find_person(session, contact)
            ids = [person.id] if person is not None and person.id is not None else []
            key = privacy_key(session, rt.settings.privacy_secret)
            hashes = [address_digest(key, contact)] if key is not None else []
        if rep and rep_by_email(session, rep) is None:
            raise RapportError(f"No rep has the email {rep}.")
        if contact and not ids and not hashes:
            entries = []
        else:
            entries = audit_entries(session, contact_ids=ids, person_hashes=hashes, actor=rep.lower() if rep else None,
                                    since=start)
    rows: list[dict[str, Any]] = [{"at": e.at.isoformat(), "actor": e.actor, "via": e.via, "origin": e.origin, "action": e.action,
             "outcome": e.outcome, "target": f"{e.target_kind} {e.target_id}" if e.target_kind else None,
             "contact_id": e.contact_id, "person_hash": e.person_hash, "detail": e.detail} for e in entries]
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"Audit log ({len(rows)} entries)")
    for column in ("when (UTC)", "who", "what", "target", "outcome"):
        table.add_column(column, overflow="fold")
    for e in entries:
        table.add_row(minute(e.at), e.actor, e.action,
                      f"{e.target_kind} {e.target_id or '(erased)'}" if e.target_kind else "-", e.outcome)
    console.print(table)
