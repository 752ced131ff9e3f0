"""`rapport demo`: the bundled sample, end to end, in the terminal."""

from __future__ import annotations

from pathlib import Path

import typer

from rapport.cli.common import console
from rapport.demo import DEMO_FOLDER


def demo(
    folder: Path = typer.Option(DEMO_FOLDER, "--dir", help="Where the demo database and mailbox go."),
    full: int = typer.Option(5, "--full", min=0, help="Notifications shown in full (the rest: one line each)."),
) -> None:
    """Run Rapport on the bundled sample: import, classify, assign, notify, digest.

    No servers needed. The folder then holds the demo's database, rapport.toml
    and clock (.env): commands run there, or with --demo from any folder,
    agree with what the demo showed."""
    from rapport.demo import note_last_demo, run_demo

    run_demo(console, folder.resolve(), full_notifications=full)
    note_last_demo(folder)
