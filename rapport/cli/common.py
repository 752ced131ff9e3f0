"""What every command shares: the runtime, consoles and a JSON printer."""

from __future__ import annotations

import json
import logging
import os
from functools import cache
from typing import Any

from rich.console import Console
from rich.logging import RichHandler

from rapport.wiring import Runtime

console = Console()
err_console = Console(stderr=True)


@cache
def runtime() -> Runtime:
    """The process's runtime (settings, config, engine), built on first use."""
    return Runtime.load()


def acting_person(by: str | None) -> str:
    """Who a command acts as in the history: `--by`, else the OS user."""
    return by or os.environ.get("USER") or "cli"


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
