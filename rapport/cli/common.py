"""What every command shares: the runtime, consoles and a JSON printer."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.logging import RichHandler

from rapport.errors import RapportError
from rapport.settings import parse_moment
from rapport.wiring import Runtime
from store.audit import Actor
from store.types import utcnow

console = Console()
err_console = Console(stderr=True)


@cache
def runtime() -> Runtime:
    """The process's runtime (settings, config, engine), built on first use."""
    return Runtime.load()


AT_HELP = "Act as of this moment, e.g. 2026-12-04T14:00+01:00 (default: RAPPORT_NOW, else the real time)."
AT_OPTION: Any = typer.Option(None, "--at", help=AT_HELP, metavar="MOMENT")


def now(rt: Runtime, at: str | None = None) -> datetime:
    """The one clock of a command: `--at`, else RAPPORT_NOW (the demo's folder sets it), else the real time."""
    if at is None:
        return rt.now()
    try:
        return parse_moment(at)
    except ValueError as exc:
        raise RapportError(f"--at {at!r}: {exc}") from None


def is_fixed(rt: Runtime, at: str | None) -> bool:
    """Whether the command's clock stands still: `--at` or RAPPORT_NOW (the demo's folder sets it)."""
    return at is not None or rt.settings.now is not None


def clock(rt: Runtime, at: str | None = None) -> Callable[[], datetime]:
    """`now` as a clock for a session of several commands: fixed with `--at` or RAPPORT_NOW, else real."""
    if not is_fixed(rt, at):
        return utcnow
    moment = now(rt, at)
    return lambda: moment


DEMO_OPTION: Any = typer.Option(False, "--demo", help="Use the database `rapport demo` made, its config and clock.")
DEMO_DIR_OPTION: Any = typer.Option(
    None, "--demo-dir",
    help="The demo's folder; implies --demo (which by default uses the current folder when it is a demo, "
         "else ./rapport-demo, else the demo made last).",
)


def demo_or_runtime(demo: bool, demo_dir: Path | None) -> Runtime:
    """The demo's runtime with `--demo` or `--demo-dir` (which folder it is goes to stderr), else the process's."""
    if not demo and demo_dir is None:
        return runtime()
    from rapport.demo import find_demo, open_demo

    folder = find_demo(demo_dir)
    err_console.print(f"Using the demo in {folder}", style="dim", highlight=False, markup=False)
    return open_demo(folder)


def cli_actor(by: str | None = None) -> Actor:
    """Who a command acts as in the audit log: `--by` at this terminal, else the OS user."""
    me = Actor.cli()
    return me if by is None else Actor(f"cli:{by}", "cli", me.origin)


def acting_person(by: str | None) -> str:
    """Who a command acts as in the history: `--by`, else the OS user (`user@host`, as in the audit log)."""
    return cli_actor(by).name.removeprefix("cli:")


def minute(moment: datetime) -> str:
    """A time as tables and reports show it: `2026-12-07 10:28` (to the minute, no `T`)."""
    return moment.strftime("%Y-%m-%d %H:%M")


def print_json(data: Any) -> None:
    """Machine-readable output on stdout, nothing else mixed in."""
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(console=err_console, show_path=False, rich_tracebacks=False)],
        force=True,
    )
    # alembic narrates every migration step at INFO; a person wants one line from us
    logging.getLogger("alembic").setLevel(logging.WARNING)
