"""`rapport digest` (a manager's digest) and `rapport segment top|lapsed|stalled|partners`."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from pathlib import Path

import typer
from rich.table import Table
from sqlmodel import Session

from bot.digest import DigestDeliveryError, digest_managers, render_digest_text, send_digest
from bot.email import EmailError
from bot.notify import SlackSender
from rapport.cli.common import (
    AT_OPTION,
    DEMO_DIR_OPTION,
    DEMO_OPTION,
    console,
    demo_or_runtime,
    now,
    print_json,
    runtime,
)
from rapport.errors import RapportError
from rapport.settings import Settings
from rapport.wiring import segment_params, slack_client, smtp_options
from store.db import read_session
from store.digest import DigestError, DigestFigures, compute_digest, last_complete_period, period_bounds
from store.hours import UnknownZone, zone
from store.models import Rep
from store.reps import rep_by_email
from store.segments import export_segment
from store.types import utcnow

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
                                  "complete day or week in the manager's time zone; with --demo, the demo's)."),
    print_: bool = typer.Option(False, "--print", help="Render to the terminal (the default)."),
    send: bool = typer.Option(False, "--send", help="Send it now, by the manager's digest_via (Slack, email)."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
    demo: bool = DEMO_OPTION,
    demo_dir: Path = DEMO_DIR_OPTION,
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
            if day is None and demo:  # the period the demo showed: the one holding its clock
                day = moment.astimezone(zone(rep.timezone)).date()
            start, end = (period_bounds(period.value, day, rep.timezone) if day is not None
                          else last_complete_period(period.value, moment, rep.timezone))
            figures = compute_digest(session, manager=rep, period=period.value, start=start, end=end,
                                     params=segment_params(rt.config), now=moment)
        except (DigestError, UnknownZone) as exc:
            raise RapportError(str(exc)) from None
        if as_json:
            print_json(figures.to_json())
        elif send:
            _send(session, figures, rep, rt.settings)
        else:
            console.print(render_digest_text(figures), highlight=False, markup=False)


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


def _send(session: Session, figures: DigestFigures, rep: Rep, settings: Settings) -> None:
    via = rep.digest_via or ["email"]
    key = f"digest:{rep.email}:{figures.period}:manual:{utcnow().isoformat(timespec='seconds')}"
    client = slack_client(settings)
    try:
        send_digest(figures, manager=rep, key=key, via=via, slack=SlackSender(client) if client else None,
                    smtp=smtp_options(settings), session=session, since=None)
    except (DigestDeliveryError, EmailError) as exc:
        raise RapportError(str(exc)) from None
    console.print(f"digest for {rep.email} sent via {', '.join(via)}")


def _segment_command(name: str) -> None:
    def command(
        as_json: bool = typer.Option(False, "--json", help="Print JSON lines-ready rows."), at: str | None = AT_OPTION
    ) -> None:
        rt = runtime()
        with read_session(rt.engine) as session:
            rows = list(export_segment(session, name, now=now(rt, at), params=segment_params(rt.config)))
        if as_json:
            print_json(rows)
            return
        _show_rows(name, rows)

    command.__doc__ = {
        "top": "Top customers: highest order value over the last months (top N and top decile).",
        "lapsed": "Lapsed customers to win back: bought repeatedly, then stopped.",
        "stalled": "Stalled prospects: evaluating, with no activity for too long.",
        "partners": "Partners without contact for too long.",
    }[name]
    segment_app.command(name)(command)


COLUMNS = {
    "top": ("rank", "name", "value_eur", "orders", "top_decile", "owner_name"),
    "lapsed": ("name", "value_eur", "last_order_on", "days_since", "median_gap_days", "owner_name"),
    "stalled": ("name", "stage", "days_quiet", "last_touch_at", "owner_name"),
    "partners": ("name", "kind", "days_quiet", "last_touch_at", "owner_name"),
}


def _show_rows(name: str, rows: list[dict[str, object]]) -> None:
    table = Table(title=f"segment {name}: {len(rows)}")
    for column in COLUMNS[name]:
        table.add_column(column.replace("_", " "))
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in COLUMNS[name]))
    console.print(table)


for _name in COLUMNS:
    _segment_command(_name)
