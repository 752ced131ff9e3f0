"""`rapport demo`: the bundled sample, end to end, on embedded defaults.

No Slack, no IMAP account, no database server: a SQLite file in a demo
folder, the sample team, companies, contacts and orders imported with the same
importer users run, the sample mailbox ingested through the same pipeline as
IMAP, the notifications delivered by the same outbox dispatcher to the
terminal instead of Slack, and the manager's digest computed from the store.

The sample is written around Friday 2026-11-20 (the anchor). The demo moves
every date by whole weeks so that the anchor becomes the latest Friday up to
today: the mail looks like this week's, weekdays (and so working hours) stay
as written, and the demo's clock is that Friday afternoon.
"""

from __future__ import annotations

import csv
import re
import shutil
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table
from rich.text import Text
from sqlalchemy import func, update
from sqlmodel import Session, col, select

from bot.digest import digest_managers, render_digest_text
from bot.notify import ConsoleSender, Outgoing, dispatch_outbox
from bot.scheduler import Scheduler
from inbox.local import sync_mailbox_directory
from rapport.config import load_configuration, readable_categories
from rapport.errors import RapportError
from rapport.wiring import Runtime, ingest_options, segment_params
from store.db import read_session, session_scope
from store.digest import DigestFigures, compute_digest, period_bounds
from store.exporting import export_rows, write_csv
from store.importing import ImportReport, import_csv
from store.models import Company, Contact, Conversation, Order, Rep

SAMPLE_MAILBOX = "support@nordlys.example"
SAMPLE_MANAGER = "karin.lindqvist@nordlys.example"
ANCHOR = date(2026, 11, 20)  # a Friday: the sample's "today"
CLOCK_UTC_HOUR = 13  # the demo's clock: 14:00 in Central Europe, inside everyone's working hours
_DATE_HEADER = re.compile(rb"^Date:[ \t]*(?P<value>[^\r\n]*)", re.MULTILINE | re.IGNORECASE)


@dataclass(frozen=True)
class DemoPlan:
    folder: Path
    shift: timedelta
    clock: datetime  # the demo's "now", aware UTC

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.folder / 'rapport.db'}"


def sample_dir() -> Path:
    """The sample shipped inside the package (rapport/sample)."""
    return Path(str(resources.files("rapport") / "sample"))


def plan_demo(folder: Path, today: date | None = None) -> DemoPlan:
    """Where the demo lives and how far the sample's dates move (whole weeks)."""
    today = today or datetime.now(UTC).date()
    friday = today - timedelta(days=(today.weekday() - 4) % 7)
    shift = timedelta(days=(friday - ANCHOR).days)
    clock = datetime.combine(friday, datetime.min.time(), tzinfo=UTC).replace(hour=CLOCK_UTC_HOUR)
    return DemoPlan(folder=folder, shift=shift, clock=clock)


def shift_mail(raw: bytes, shift: timedelta) -> bytes:
    """The same message with its Date header moved by `shift` (nothing else changes)."""
    match = _DATE_HEADER.search(raw)
    if not match:
        return raw
    try:
        sent = parsedate_to_datetime(match["value"].decode("ascii", "replace"))
    except (TypeError, ValueError):
        return raw
    moved = format_datetime(sent + shift).encode("ascii")
    return raw[: match.start("value")] + moved + raw[match.end("value") :]


def shift_orders(source: Path, target: Path, shift: timedelta) -> None:
    with source.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        shutil.copyfile(source, target)
        return
    for row in rows:
        row["ordered_on"] = (date.fromisoformat(row["ordered_on"]) + shift).isoformat()
    with target.open("w", encoding="utf-8", newline="") as handle:
        write_csv(rows, list(rows[0]), handle, bom=False)


def prepare_folder(plan: DemoPlan, *, fresh: bool = True) -> Path:
    """Copy the sample into the demo folder with its dates moved; returns the mailbox root."""
    source = sample_dir()
    if fresh and plan.folder.exists():
        for leftover in ("rapport.db", "rapport.db-wal", "rapport.db-shm", "mailbox", "orders.csv", CLOCK_FILE):
            path = plan.folder / leftover
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    plan.folder.mkdir(parents=True, exist_ok=True)
    for name in ("rapport.toml", "reps.csv", "companies.csv", "contacts.csv"):
        shutil.copyfile(source / name, plan.folder / name)
    shift_orders(source / "orders.csv", plan.folder / "orders.csv", plan.shift)
    mailbox = plan.folder / "mailbox"
    for mail_file in sorted((source / "mailbox").glob("*/*.eml")):
        target = mailbox / mail_file.parent.name / mail_file.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(shift_mail(mail_file.read_bytes(), plan.shift))
    return mailbox


CLOCK_FILE = ".env"  # in the demo folder: commands run there read the demo's clock from it


def record_clock(plan: DemoPlan) -> None:
    """The demo's clock in its folder's `.env`: every command run there (or with `--demo`) agrees with it."""
    (plan.folder / CLOCK_FILE).write_text(
        "# Written by `rapport demo`. Commands run in this folder use the demo's database\n"
        "# (rapport.db), its rapport.toml and this clock, so they agree with the demo.\n"
        f"RAPPORT_NOW={plan.clock.isoformat()}\n",
        encoding="utf-8",
    )


def demo_overrides(folder: Path) -> dict[str, Any]:
    return {"database_url": f"sqlite:///{folder / 'rapport.db'}", "config_file": folder / "rapport.toml",
            "_env_file": folder / CLOCK_FILE}


def demo_runtime(plan: DemoPlan) -> Runtime:
    settings, config = load_configuration(**demo_overrides(plan.folder))
    return Runtime(settings=settings, config=config)


DEMO_FOLDER = Path("rapport-demo")  # `rapport demo`'s folder unless --dir names another


def last_demo_note() -> Path:
    """Where `rapport demo` notes the folder it made, so that `--demo` finds it from any folder."""
    return Path.home() / ".cache" / "rapport" / "last-demo"


def note_last_demo(folder: Path) -> None:
    note = last_demo_note()
    note.parent.mkdir(parents=True, exist_ok=True)
    note.write_text(f"{folder.resolve()}\n", encoding="utf-8")


def is_demo(folder: Path) -> bool:
    """Whether `folder` holds a demo `rapport demo` made: its database and its clock (`.env`)."""
    return (folder / "rapport.db").is_file() and (folder / CLOCK_FILE).is_file()


def find_demo(folder: Path | None = None) -> Path:
    """The demo `--demo` uses: `folder` (--demo-dir), else the current folder when it is one, else
    ./rapport-demo when it holds one, else the one `rapport demo` made last."""
    if folder is not None:
        return folder.resolve()
    here = next((f for f in (Path.cwd(), DEMO_FOLDER) if is_demo(f)), None)
    if here is not None:
        return here.resolve()
    note = last_demo_note()
    try:
        return Path(note.read_text(encoding="utf-8").strip())
    except FileNotFoundError:
        raise RapportError(f"no demo found: not in this folder, none in ./{DEMO_FOLDER},\n"
                           f"and {note} names none: run `rapport demo` first") from None


def open_demo(folder: Path) -> Runtime:
    """The runtime of the demo `rapport demo` made in `folder`: its database, config and clock."""
    if not (folder / "rapport.db").exists():
        raise RapportError(f"no demo database in {folder}/: run `rapport demo` first")
    settings, config = load_configuration(**demo_overrides(folder))
    return Runtime(settings=settings, config=config)


def import_sample(rt: Runtime, plan: DemoPlan) -> dict[str, ImportReport]:
    """The sample's CSV files through the importer, then the records dated as the sample's history."""
    categories = readable_categories(rt.config.nlp.model)  # the reps' skills: the demo's model's
    reports = {
        entity: import_csv(rt.engine, entity, plan.folder / f"{entity}.csv", now=plan.clock, categories=categories,
                           configured_reps=[rep.email for rep in rt.config.reps])
        for entity in ("reps", "companies", "contacts", "orders")
    }
    with session_scope(rt.engine) as session:
        date_records(session, plan.clock)
    return reports


# Imported rows are stamped with the import's clock; the sample's records entered the CRM
# before it: a company and its people a month before the company's first order, a company
# that never ordered (the prospects) two months before the demo's clock. The stalled-prospect
# segment counts an untouched contact's silence from its creation.
LEAD_TIME = timedelta(weeks=4)
PROSPECT_AGE = timedelta(weeks=8)


def date_records(session: Session, clock: datetime) -> None:
    """Give the imported companies and contacts the creation dates of the sample's history."""
    first_orders = {company_id: day for company_id, day in session.execute(
        select(Order.company_id, func.min(Order.ordered_on)).group_by(col(Order.company_id))
    )}
    session.execute(update(Contact).values(created_at=clock - PROSPECT_AGE, updated_at=clock - PROSPECT_AGE))
    for company_id in session.exec(select(Company.id)).all():
        first = first_orders.get(company_id)
        since = datetime.combine(first, clock.timetz()) - LEAD_TIME if first else clock - PROSPECT_AGE
        session.execute(update(Company).where(col(Company.id) == company_id)
                        .values(created_at=since, updated_at=since))
        session.execute(update(Contact).where(col(Contact.company_id) == company_id)
                        .values(created_at=since, updated_at=since))


def show_imports(console: Console, reports: dict[str, ImportReport]) -> None:
    table = Table(title="Sample data imported", title_justify="left")
    for column in ("records", "rows read", "rejected"):
        table.add_column(column)
    for entity, report in reports.items():
        rows = report.imported + report.updated + report.unchanged + len(report.rejected)
        table.add_row(entity, str(rows), str(len(report.rejected)))
    console.print(table)


def show_assignments(console: Console, rt: Runtime) -> None:
    """Each customer conversation with its owner and the reason Rapport gave: two lines each, any width."""
    table = Table(title="Assignments", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, expand=True)
    table.add_column("#", justify="right", width=3, no_wrap=True)
    table.add_column("from / subject", ratio=1, no_wrap=True, overflow="ellipsis")
    table.add_column("category", width=17, no_wrap=True, overflow="ellipsis")  # "cancellation 100%"
    table.add_column("owner / why", ratio=1, no_wrap=True, overflow="ellipsis")
    with read_session(rt.engine) as session:
        names = {rep.email: rep.name for rep in session.exec(select(Rep))}
        for row in export_rows(session, "conversations"):
            if row["is_automatic"]:
                continue
            owner = names.get(row["owner"], row["owner"]) if row["owner"] else f"queue {row['queue']}"
            confidence = row["category_confidence"]
            category = f"{row['category']} {confidence:.0%}" if confidence is not None else row["category"]
            why = str(row["reason"] or "").removeprefix(f"{owner} ")  # "Anna Berg owns …" under "Anna Berg"
            table.add_row(
                str(row["id"]),
                _two_lines(row["contact_name"] or row["contact_email"], row["subject"]),
                _two_lines(category, row["urgency"]),
                _two_lines(owner, why),
            )
    console.print(table)


def _two_lines(first: object, second: object) -> Text:
    """A cell of two lines (the second dim); line breaks from mail become spaces."""
    text = Text(" ".join(str(first or "").split()))
    text.append("\n" + " ".join(str(second or "").split()), style="dim")
    return text


CATCH_UP_KINDS = {  # an outbox key's prefix → what a sales rep calls it
    "sla": "SLA missed (unanswered mail escalated)",
    "reminder": "follow-up reminders",
    "nudge": "nudges about overdue follow-ups",
    "assign-dm": "new email assigned",
}


class CollectingSender:
    """Keeps what the scheduler would send in Slack, to summarise it (the demo's catch-up)."""

    def __init__(self) -> None:
        self.sent: list[Outgoing] = []

    def send(self, session: Session, message: Outgoing, *, since: datetime | None) -> dict[str, Any]:
        self.sent.append(message)
        return {"console": True}


def show_catch_up(console: Console, rt: Runtime, plan: DemoPlan) -> None:
    """One scheduler tick at the demo's clock (SLA escalations, reminders, post-purchase follow-ups),
    summarised one line per kind, so the next command starts with nothing left to catch up."""
    sender = CollectingSender()
    scheduler = Scheduler(rt.engine, sender, segment_params=segment_params(rt.config),
                          categories=readable_categories(rt.config.nlp.model))
    followups = 0
    for _ in range(3):  # a tick can make work for the next (a new follow-up already due: its reminder)
        result = scheduler.tick(plan.clock)
        followups += result.followups
        if not (result.followups or result.reminders or result.nudges or result.escalations or result.delivered):
            break
    kinds: dict[str, list[Outgoing]] = {}
    for message in sender.sent:
        kinds.setdefault(message.key.split(":")[0], []).append(message)
    lines = []
    for kind, messages in kinds.items():
        people = len({m.rep.email for m in messages})
        label = CATCH_UP_KINDS.get(kind, kind)
        lines.append(f"{label}: {len(messages)} Slack message{'s' * (len(messages) != 1)} "
                     f"to {people} {'person' if people == 1 else 'people'}")
    if followups:
        lines.append(f"post-purchase follow-ups created: {followups}")
    console.print("Catch-up (what `rapport serve` sends on its next tick):", style="bold", markup=False)
    for line in lines or ["nothing was due"]:
        console.print(f"  {line}", markup=False, highlight=False)


def weekly_digest(rt: Runtime, plan: DemoPlan) -> tuple[Rep, DigestFigures] | None:
    """The weekly digest of the first manager who gets one, for the week up to the demo's Friday."""
    with read_session(rt.engine) as session:
        managers = digest_managers(session)
        if not managers:
            return None
        manager = managers[0]
        local_day = plan.clock.astimezone(ZoneInfo(manager.timezone)).date()
        start, end = period_bounds("week", local_day, manager.timezone)
        figures = compute_digest(
            session, manager=manager, period="week", start=start, end=end,
            params=segment_params(rt.config), now=plan.clock,
        )
    return manager, figures


def show_digest(console: Console, rt: Runtime, plan: DemoPlan) -> None:
    found = weekly_digest(rt, plan)
    if found is None:
        console.print("no manager with digest_via in rapport.toml: no digest to show")
        return
    manager, figures = found
    console.rule(f"Weekly digest for {manager.name} ({manager.email})", style="green")
    console.print(render_digest_text(figures), markup=False, highlight=False)


def run_demo(console: Console, folder: Path, *, full_notifications: int = 5, today: date | None = None) -> None:
    """Everything `rapport demo` shows, in order."""
    plan = plan_demo(folder, today)
    mailbox = prepare_folder(plan)
    record_clock(plan)
    rt = demo_runtime(plan)
    rt.create_database()
    local = plan.clock.astimezone(ZoneInfo("Europe/Stockholm"))
    console.rule("Rapport demo: Nordlys Supplies (fictional)", style="bold")
    console.print(
        f"Database {plan.database_url}; the demo's clock is {local:%A %d %B %Y, %H:%M} (Central Europe).\n"
        "No Slack workspace or IMAP account: Slack messages are printed here.",
        highlight=False,
    )
    show_imports(console, import_sample(rt, plan))

    with console.status("Loading the classifier (the first run trains it: a few minutes)"):
        classifier = rt.classifier
    console.print(f"classifier: {classifier.model_version}")

    options = replace(ingest_options(rt), own_addresses=(SAMPLE_MAILBOX,), now=plan.clock, tag_messages=False)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console,
                  transient=True) as progress:
        tasks: dict[str, TaskID] = {}

        def advance(folder_name: str, done: int, total: int) -> None:
            if folder_name not in tasks:
                tasks[folder_name] = progress.add_task(f"ingesting {folder_name}", total=total)
            progress.update(tasks[folder_name], completed=done)

        results = sync_mailbox_directory(rt.engine, mailbox, SAMPLE_MAILBOX, options=options,
                                         classifier=classifier, progress=advance)
    counts = Table(title="Sample mailbox ingested", title_justify="left")
    keys = ("fetched", "new", "automatic", "outbound", "assigned")
    counts.add_column("folder")
    for key in keys:
        counts.add_column(key)
    for folder_name, result in results.items():
        row = result.counts()
        counts.add_row(folder_name, *(str(row.get(k, 0)) for k in keys))
    console.print(counts)

    console.rule("Notifications (what each owner gets in Slack)", style="cyan")
    sender = ConsoleSender(console, full=full_notifications)
    dispatch_outbox(rt.engine, sender, now=plan.clock, limit=1000, categories=readable_categories(rt.config.nlp.model))
    console.print(f"{len(sender.sent)} notifications delivered from the outbox.")
    show_catch_up(console, rt, plan)

    show_assignments(console, rt)
    show_digest(console, rt, plan)
    show_next_steps(console, rt, plan)


def next_steps(rt: Runtime, plan: DemoPlan) -> list[str]:
    """Commands to try after the demo; run in its folder, they read its database, config and clock."""
    where = str(DEMO_FOLDER) if plan.folder == DEMO_FOLDER.resolve() else str(plan.folder)
    with read_session(rt.engine) as session:
        conversation = session.exec(
            select(Conversation.id).where(col(Conversation.owner_id).is_not(None)).order_by(col(Conversation.id))
        ).first()
    return [
        f"cd {where}",
        "rapport chat                    then: help, find stastny, my, followups",
        'rapport chat "remind peter friday 10am ask about the audit"',
        "rapport digest --period week",
        f"rapport assign explain {conversation}",
        "rapport segment top",
        "rapport export segment top --format csv",
    ]


def show_next_steps(console: Console, rt: Runtime, plan: DemoPlan) -> None:
    console.rule("Try next", style="bold")
    console.print("In the demo's folder, commands use its data, rapport.toml and clock (.env):",
                  highlight=False, markup=False)
    for line in next_steps(rt, plan):
        console.print(f"  {line}", highlight=False, markup=False)
    console.print(f"From any folder, --demo uses the demo made last (or ./{DEMO_FOLDER} there):",
                  highlight=False, markup=False)
    for line in ("rapport chat --demo", "rapport digest --demo --period week"):
        console.print(f"  {line}", highlight=False, markup=False)
