"""`rapport chat`: the Slack commands in the terminal, against the local database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import typer

from rapport.cli.common import console, err_console, runtime
from rapport.errors import RapportError
from rapport.wiring import Runtime
from store.types import utcnow

chat_app = typer.Typer(
    help="Use Rapport's Slack commands in the terminal (no Slack workspace needed).",
    context_settings={"allow_interspersed_args": True},
)
PROMPT = "rapport> "
DEMO_DIR = Path("rapport-demo")


@chat_app.callback(invoke_without_command=True)
def chat(
    text: list[str] = typer.Argument(None, help='One command to run, e.g. "find acme"; none: interactive.'),
    as_email: str = typer.Option(None, "--as", help="Act as this rep (email); default: the first manager."),
    demo: bool = typer.Option(False, "--demo", help="Use the database `rapport demo` made (and its clock)."),
    demo_dir: Path = typer.Option(DEMO_DIR, "--demo-dir", help="Where `rapport demo` put it."),
) -> None:
    """Run `find`, `log call`, `remind`, `followups`, `my`, ... as in Slack; `help` lists them."""
    from bot.console import ConsoleError, print_reply, run_text
    from rapport.wiring import bot_options

    rt, clock = _demo_runtime(demo_dir) if demo else (runtime(), utcnow)
    engine = rt.engine
    options = bot_options(rt.config, rt.settings)

    def run_one(line: str) -> None:
        command = line.removeprefix(options.command).strip()
        _, reply = run_text(engine, command, as_email=as_email, options=options, clock=clock)
        print_reply(console, reply)
        _deliver_notifications(rt, clock)

    try:
        if text:
            run_one(" ".join(text))
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


def _demo_runtime(folder: Path) -> tuple[Runtime, Callable[[], datetime]]:
    from rapport.demo import demo_runtime, plan_demo

    plan = plan_demo(folder)
    if not (folder / "rapport.db").exists():
        raise RapportError(f"no demo database in {folder}/: run `rapport demo` first")
    return demo_runtime(plan), lambda: plan.clock


def _deliver_notifications(rt: Runtime, clock: Callable[[], datetime]) -> None:
    """Without a Slack workspace, due reminders and DMs are shown here instead."""
    if rt.settings.slack_bot_token is not None:
        return  # `rapport serve` delivers them to Slack
    from bot.scheduler import Scheduler
    from rapport.serve import console_sender

    try:
        Scheduler(rt.engine, console_sender()).tick(clock())
    except Exception as exc:  # showing notifications is a courtesy; the command itself succeeded
        err_console.print(f"[yellow]could not show notifications:[/] {exc}", highlight=False)
