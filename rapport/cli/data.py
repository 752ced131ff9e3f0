"""`rapport import` and `rapport export`."""

from __future__ import annotations

import typer

import_app = typer.Typer(help="Import contacts, companies, reps or orders from CSV.", no_args_is_help=True)
export_app = typer.Typer(help="Export records as JSON lines or CSV to stdout.", no_args_is_help=True)
