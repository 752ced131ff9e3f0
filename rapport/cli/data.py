"""`rapport import` and `rapport export`."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from rapport.cli.common import AT_OPTION, console, err_console, now, print_json, runtime
from rapport.config import readable_categories
from rapport.errors import RapportError
from store.db import read_session
from store.exporting import FIELDS, KINDS, export_rows, write_csv
from store.importing import ENTITIES, ImportFileError, ImportReport, count_rows, import_csv

import_app = typer.Typer(
    help="Import or update contacts, companies, reps or orders from CSV.\n\n"
    "HubSpot, Salesforce, Pipedrive and Zoho exports, and our own, are taken as they are. Exit status 0 "
    "when every row landed, 2 when some rows were rejected (the good rows still land; each rejected line "
    "is listed with its reason), a column looks misspelt (did you mean ...?) or the file could not be read.",
    no_args_is_help=True,
)
export_app = typer.Typer(help="Export records as JSON lines or CSV to stdout.", no_args_is_help=True)

IMPORT_SUMMARY = {
    "contacts": "Import or update contacts (keyed by email).",
    "companies": "Import or update companies (keyed by domain, else name).",
    "reps": "Import or update reps (keyed by email).",
    "orders": "Import or update orders (keyed by order id).",
}
IMPORT_HELP = {
    "contacts": "Contacts keyed by email (HubSpot/Salesforce columns such as First Name, Last Name, Email, "
    "Company Name, Lifecycle Stage, Lead Status, Contact owner, Phone Number, Email Opt Out are understood; "
    "docs/imports.md). A column the file leaves out changes nothing; the same email twice merges.",
    "companies": "Companies keyed by mail domain, else by name (name, domain or website, type, owner, "
    "industry, country; Salesforce and HubSpot types are understood).",
    "reps": "Reps keyed by email (name, email, slack_user_id, role, team, skills, languages, timezone, "
    "working_hours, capacity; lists separated by |).",
    "orders": "Orders keyed by order id (order_id, email, company_domain or company, amount, currency, "
    "ordered_on, product_category, status).",
}


PARTIAL_IMPORT = 2  # exit status: some rows rejected (the good ones landed), or a column looks misspelt


def run_import(entity: str, path: Path, *, dry_run: bool, as_json: bool) -> ImportReport:
    """Import with a progress bar on the terminal (none with --json, which keeps stdout clean)."""
    try:
        total = count_rows(path)  # first: a file that cannot be read creates no database
        # a rep's skills are the model's categories (only reps have skills: no other import reads the model);
        # None: a model not readable here, whose categories are unknown
        categories = readable_categories(runtime().config.nlp.model) if entity == "reps" else ()
        # a dry run writes nothing, so it creates no database either: without one, it checks
        # the rows against an empty store
        database = runtime().database_or_scratch() if dry_run else nullcontext(runtime().create_database())
        with database as engine, Progress(
            TextColumn(f"importing {entity}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
            disable=as_json or total < 1000,
        ) as progress:
            task = progress.add_task(entity, total=total)
            return import_csv(
                engine, entity, path, dry_run=dry_run, progress=lambda n: progress.advance(task, n),
                privacy_key=runtime().settings.privacy_secret, now=runtime().now(), categories=categories,
                configured_reps=[rep.email for rep in runtime().config.reps],
            )
    except ImportFileError as exc:
        raise RapportError(str(exc)) from None


def show_report(report: ImportReport, *, entity: str, dry_run: bool, as_json: bool) -> None:
    if as_json:
        print_json(report.as_dict())
        return
    prefix = "[yellow]dry run, nothing saved:[/] " if dry_run else ""
    console.print(
        f"{prefix}{entity}: [green]{report.imported} imported[/], {report.updated} updated, "
        f"{report.unchanged} unchanged, [red]{len(report.rejected)} rejected[/]"
    )
    if report.erased:
        noun = "row" if report.erased == 1 else "rows"
        console.print(f"{report.erased} {noun} of erased people skipped (erased on request: never imported again)")
    if report.ignored:
        console.print(f"Ignored columns (no field takes them): {escape(', '.join(report.ignored))}")
    for label, meant in report.misspelt.items():
        console.print(f"[red]Misspelt? {escape(repr(label))}: did you mean {escape(repr(meant))}?[/]")
    if report.misspelt:
        console.print("Rename the column and import again (a re-import updates the rows).")
    for title, rows in (("Rejected rows", report.rejected), ("Warnings", report.warnings)):
        if rows:
            table = Table(title=title)
            table.add_column("line", justify="right")
            table.add_column("reason")
            for row in rows:
                table.add_row(str(row.line), escape(row.reason))
            console.print(table)


def _import_command(entity: str) -> Callable[..., None]:
    def command(
        file: Path = typer.Argument(..., help="CSV file (UTF-8, with or without BOM; , or ; separated)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Check every row, save nothing."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        report = run_import(entity, file, dry_run=dry_run, as_json=as_json)
        show_report(report, entity=entity, dry_run=dry_run, as_json=as_json)
        if not report.clean:
            raise typer.Exit(PARTIAL_IMPORT)

    command.__doc__ = IMPORT_SUMMARY[entity] + "\n\n" + IMPORT_HELP[entity] + (
        " Exit status 0 when every row landed, 2 when some were rejected (the good rows still land)"
        " or a column looks misspelt (its values went nowhere)."
    )
    return command


for _entity in ENTITIES:
    import_app.command(_entity)(_import_command(_entity))


class Format(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


BOM_OPTION = typer.Option(
    True, "--bom/--no-bom", help="CSV: start with a UTF-8 byte order mark (Excel needs it to read accents)."
)
FORMAT_OPTION = typer.Option(
    Format.jsonl, "--format", "-f", help="jsonl or csv (spreadsheet-safe: formulas are written as text)."
)


def write_rows(rows: Iterable[dict[str, Any]], fields: list[str], fmt: Format, *, bom: bool = True) -> int:
    """Rows to stdout as JSON lines or CSV; returns how many."""
    count = 0
    if fmt is Format.csv:
        count = write_csv(rows, fields, sys.stdout, bom=bom)
    else:
        for row in rows:
            sys.stdout.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            count += 1
    sys.stdout.flush()
    return count


def _export_command(kind: str) -> Callable[..., None]:
    def command(fmt: Format = FORMAT_OPTION, bom: bool = BOM_OPTION) -> None:
        with read_session(runtime().engine) as session:
            count = write_rows(export_rows(session, kind), FIELDS[kind], fmt, bom=bom)
        err_console.print(f"exported {count} {kind}", style="dim")

    command.__doc__ = f"Export {kind}.\n\nFields: {', '.join(FIELDS[kind])}."
    return command


for _kind in KINDS:
    export_app.command(_kind)(_export_command(_kind))


@export_app.command("segment")
def export_segment_command(
    name: str = typer.Argument(..., help="top, lapsed, stalled or partners."),
    fmt: Format = FORMAT_OPTION,
    bom: bool = BOM_OPTION,
    at: str | None = AT_OPTION,
) -> None:
    """Export a customer segment (see docs/digest.md for the definitions)."""
    from rapport.wiring import segment_params
    from store.segments import UnknownSegment, export_segment

    rt = runtime()
    with read_session(rt.engine) as session:
        try:
            rows = list(export_segment(session, name, now=now(rt, at), params=segment_params(rt.config)))
        except UnknownSegment as exc:
            raise RapportError(str(exc)) from None
    fields = list(rows[0]) if rows else []
    count = write_rows(rows, fields, fmt, bom=bom)
    err_console.print(f"exported {count} rows of segment {name}", style="dim")
