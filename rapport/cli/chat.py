"""`rapport chat`: the Slack commands in the terminal, against the local database."""

from __future__ import annotations

from pathlib import Path

import typer

from rapport.cli.common import AT_OPTION, DEMO_DIR_OPTION, DEMO_OPTION, console, demo_or_runtime
from rapport.cli.common import clock as clock_of
from rapport.errors import RapportError

PROMPT = "rapport> "


def chat(
    text: list[str] = typer.Argument(None, help='One command to run, e.g. "find acme"; none: interactive.'),
    as_email: str = typer.Option(None, "--as", help="Act as this rep (email); default: the first manager."),
    demo: bool = DEMO_OPTION,
    demo_dir: Path | None = DEMO_DIR_OPTION,
    at: str | None = AT_OPTION,
) -> None:
    """Use Rapport's Slack commands in the terminal (no Slack workspace needed).

    Run `find`, `log call`, `remind`, `followups`, `my`, ... as in Slack; `help`
    lists them. One command given: exit code 1 when its answer is a refusal
    (unknown command, nothing found, not allowed)."""
    from bot.console import ConsoleError, print_reply, run_text
    from bot.terminal import slack_names
    from rapport.wiring import bot_options
    from store.db import read_session

    rt = demo_or_runtime(demo, demo_dir)
    clock = clock_of(rt, at)
    engine = rt.engine
    options = bot_options(rt.config, rt.settings)

    def run_one(line: str) -> bool:
        """Run and print one command; False when its answer says nothing was done."""
        command = line.removeprefix(options.command).strip()
        _, reply = run_text(engine, command, as_email=as_email, options=options, clock=clock)
        with read_session(engine) as session:
            names = slack_names(session)
        print_reply(console, reply, names)
        return reply.ok

    try:
        if text:
            if not run_one(" ".join(text)):
                raise typer.Exit(1)
            return
        console.print("Rapport chat: type `help`, or `quit` to leave.", style="dim")
        while True:
            try:
                line = console.input(PROMPT).strip()
            except EOFError:
                break
            if line.lower() in ("quit", "exit", "q"):
                break
            if line:
                run_one(line)
    except ConsoleError as exc:
        raise RapportError(str(exc)) from None

