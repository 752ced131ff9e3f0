"""`rapport digest` (a manager's digest) and `rapport segment top|lapsed|stalled|partners`."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table
from sqlmodel import Session, select

from bot.digest import digest_handlers, digest_managers, digest_payloads, render_digest_text
from bot.notify import SlackSender
from bot.segments import describe
from rapport.cli.common import (
    AT_OPTION,
    DEMO_DIR_OPTION,
    DEMO_OPTION,
    console,
    demo_or_runtime,
    is_fixed,
    now,
    print_json,
    runtime,
)
from rapport.errors import RapportError
from rapport.wiring import Runtime, digest_links, segment_params, slack_client, smtp_options
from store.db import read_session, session_scope
from store.digest import DigestError, DigestFigures, compute_digest, last_complete_period, period_bounds
from store.hours import UnknownZone, zone
from store.models import OutboxItem, OutboxStatus, Rep
from store.outbox import dispatch, enqueue
from store.reps import rep_by_email
from store.segments import SegmentParams, export_segment

segment_app = typer.Typer(help="List customer segments (definitions: docs/digest.md).", no_args_is_help=True)


class PeriodChoice(StrEnum):
    day = "day"
    week = "week"


def _parse_date(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise RapportError(f"--date {value!r}: expected a date such as 2026-11-22") from None


def digest(
    manager: str | None = typer.Option(None, "--manager", help="The manager's email (a rep in rapport.toml); "
                                       "default: the first manager who gets a digest."),
    period: PeriodChoice = typer.Option(PeriodChoice.day, "--period", help="A day, or a Monday-to-Sunday week."),
    on: str | None = typer.Option(None, "--date", help="A local date in the period (default: the last "
                                  "complete day or week in the manager's time zone; with --at or "
                                  "RAPPORT_NOW (the demo's clock), the one holding it)."),
    print_: bool = typer.Option(False, "--print", help="Render to the terminal (the default)."),
    send: bool = typer.Option(False, "--send", help="Send it now, by the manager's digest_via (Slack, email); "
                              "a way that fails is retried by `rapport serve`."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
    demo: bool = DEMO_OPTION,
    demo_dir: Path | None = DEMO_DIR_OPTION,
    at: str | None = AT_OPTION,
) -> None:
    """Compute a manager's digest: print it, send it, or print its figures as JSON."""
    if sum((print_, send, as_json)) > 1:
        raise RapportError("choose one of --print, --send and --json")
    rt = demo_or_runtime(demo, demo_dir)
    moment = now(rt, at)
    day = _parse_date(on)
    with read_session(rt.engine) as session:  # reads only: never holds SQLite's write lock
        rep = _manager(session, manager)
        try:
            if day is None and is_fixed(rt, at):  # "as of then" (the demo's clock): that period so far
                day = moment.astimezone(zone(rep.timezone)).date()
            start, end = (period_bounds(period.value, day, rep.timezone) if day is not None
                          else last_complete_period(period.value, moment, rep.timezone))
            figures = compute_digest(session, manager=rep, period=period.value, start=start, end=end,
                                     params=segment_params(rt.config), now=moment)
        except (DigestError, UnknownZone) as exc:
            raise RapportError(str(exc)) from None
        if as_json:
            print_json(figures.to_json())
        elif not send:
            console.print(render_digest_text(figures, digest_links(rt.config, rt.settings)),
                          highlight=False, markup=False)
    if send:
        _send(rt, figures, rep, moment)


def _manager(session: Session, email: str | None) -> Rep:
    """`--manager`, else the first manager who gets a digest."""
    if email is None:
        managers = digest_managers(session)
        if not managers:
            raise RapportError("no manager gets a digest (digest_via under [[reps]] in rapport.toml): "
                               "name one with --manager")
        return managers[0]
    rep = rep_by_email(session, email)
    if rep is None:
        raise RapportError(f"no rep with email {email!r}; managers are listed under [[reps]] in rapport.toml")
    return rep


def _send(rt: Runtime, figures: DigestFigures, rep: Rep, now: datetime) -> None:
    """Through the outbox, one row per way: each is tried now; one that fails stays queued for
    `rapport serve`, and never stops the other."""
    via = rep.digest_via or ["email"]
    client, smtp = slack_client(rt.settings), smtp_options(rt.settings)
    if "email" in via and smtp is None:
        raise RapportError("the digest goes by email but SMTP is not configured (set RAPPORT_SMTP_HOST)")
    if "slack" in via and client is None:
        raise RapportError("the digest goes to Slack but no Slack client is configured (set SLACK_BOT_TOKEN)")
    payloads = digest_payloads(rep, period=figures.period, start=figures.start, end=figures.end,
                               local_date=now.isoformat(timespec="seconds"), via=via, channel=None,
                               params=segment_params(rt.config))
    with session_scope(rt.engine) as session:
        for payload in payloads:
            enqueue(session, payload, now=now)
    handlers = digest_handlers(rt.engine, slack=SlackSender(client) if client else None, smtp=smtp,
                               links=digest_links(rt.config, rt.settings))
    dispatch(rt.engine, handlers, now=now)
    failed = []
    with read_session(rt.engine) as session:
        for payload in payloads:
            row = session.exec(select(OutboxItem).where(OutboxItem.key == payload.key)).one()
            way = "Slack" if payload.kind.endswith("slack") else "email"
            if row.status == OutboxStatus.sent:
                console.print(f"{way}: digest for {rep.email} sent", highlight=False, markup=False)
            else:
                failed.append(f"{way}: not sent yet ({row.last_error}); `rapport serve` tries again later")
    if failed:
        raise RapportError("\n".join(failed))


def _segment_command(name: str) -> None:
    def command(
        as_json: bool = typer.Option(False, "--json", help="Print JSON lines-ready rows."), at: str | None = AT_OPTION
    ) -> None:
        rt = runtime()
        params = segment_params(rt.config)
        with read_session(rt.engine) as session:
            rows = list(export_segment(session, name, now=now(rt, at), params=params))
        if as_json:
            print_json(rows)
            return
        _show_rows(name, rows, params)

    command.__doc__ = {
        "top": ("Top customers: highest order value over the last `top_months` months (set in the segments "
                "section of rapport.toml), top N and top decile."),
        "lapsed": "Lapsed customers to win back: bought repeatedly, then stopped.",
        "stalled": "Stalled prospects: evaluating, with no activity for too long.",
        "partners": "Partners without contact for too long.",
    }[name]
    segment_app.command(name)(command)


COLUMNS = {
    "top": ("rank", "name", "recent_value_eur", "orders", "top_decile", "owner_name"),
    "lapsed": ("name", "lifetime_value_eur", "last_order_on", "days_since", "median_gap_days", "owner_name"),
    "stalled": ("name", "stage", "days_quiet", "last_touch_at", "owner_name"),
    "partners": ("name", "kind", "days_quiet", "last_touch_at", "owner_name"),
}


AMOUNTS = ("recent_value_eur", "lifetime_value_eur")
HEADINGS = {"recent_value_eur": "last {top_period} (EUR)", "lifetime_value_eur": "lifetime (EUR)",
            "top_decile": "top 10 %", "last_order_on": "last order",
            "days_since": "days since", "median_gap_days": "usual gap", "last_touch_at": "last touch",
            "owner_name": "owner"}


def _cell(column: str, value: object) -> str:
    """A segment value as a person reads it (the JSON keeps the raw one)."""
    if value is None or value == "":
        return "no owner" if column == "owner_name" else ""
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, datetime | date):
        return value.strftime("%Y-%m-%d")
    if column.endswith("_at"):  # an ISO time: its date is what a person compares
        return str(value)[:10]
    if column in AMOUNTS:
        return f"{float(str(value)):,.0f}"
    if column == "median_gap_days":
        return f"{float(str(value)):g} days"
    return str(value)


def _show_rows(name: str, rows: list[dict[str, object]], params: SegmentParams) -> None:
    table = Table(title=f"segment {name}: {len(rows)}")
    for column in COLUMNS[name]:
        table.add_column(describe(HEADINGS.get(column, column.replace("_", " ")), params),
                         justify="right" if column in (*AMOUNTS, "orders", "rank") else "left")
    for row in rows:
        table.add_row(*(escape(_cell(c, row.get(c))) for c in COLUMNS[name]))
    console.print(table)


for _name in COLUMNS:
    _segment_command(_name)
