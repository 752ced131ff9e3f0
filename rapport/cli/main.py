"""`rapport`: the root command."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import typer
from rich.markup import escape
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from typer.core import TyperGroup

from rapport import __version__
from rapport.cli import data as data_cli
from rapport.cli import demo as demo_cli
from rapport.cli import digest as digest_cli
from rapport.cli import inbox as inbox_cli
from rapport.cli import nlp as nlp_cli
from rapport.cli import privacy as privacy_cli
from rapport.cli import setup as setup_cli
from rapport.cli.chat import chat
from rapport.cli.common import err_console, runtime, setup_logging
from rapport.cli.serve import serve
from rapport.cli.slack import slack_app
from rapport.errors import RapportError
from store.db import DEFAULT_DATABASE_URL


class RootGroup(TyperGroup):
    """Keeps the subcommand's arguments for the root callback (it checks the configuration unless
    they ask for --help)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        ctx.meta["rapport.arguments"] = list(args)
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=RootGroup,
    name="rapport",
    help="Rapport: the CRM assistant in your shared inbox and in Slack.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)
# In the order a newcomer meets them: try, set up, run, use (`rapport --help` lists the single
# commands first, then the groups, each in this order).
app.command("demo")(demo_cli.demo)
app.add_typer(setup_cli.config_app, name="config")
app.add_typer(setup_cli.db_app, name="db")
app.add_typer(slack_app, name="slack")
app.add_typer(data_cli.import_app, name="import")
app.command("serve")(serve)
app.add_typer(inbox_cli.inbox_app, name="inbox")
app.command("chat")(chat)
app.command("digest")(digest_cli.digest)
app.add_typer(digest_cli.segment_app, name="segment")
app.add_typer(inbox_cli.assign_app, name="assign")
app.add_typer(data_cli.export_app, name="export")
app.add_typer(nlp_cli.app, name="nlp")
app.add_typer(privacy_cli.privacy_app, name="privacy")
app.command("audit")(privacy_cli.audit)


def _version(value: bool) -> None:
    if value:
        print(f"rapport {__version__}")
        raise typer.Exit()


# `config check` reports every problem itself; the others refuse to start on any of them.
CHECKS_ITSELF = {"config"}


@app.callback()
def root(
    ctx: typer.Context,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug details."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Rapport files each email of the shared mailbox against its contact, assigns an
    owner and tells them in Slack; reps log calls and follow-ups from Slack; managers
    get digests. Settings come from the environment (.env) and rapport.toml."""
    setup_logging("DEBUG" if verbose else "INFO")
    asks_help = any(arg in ctx.help_option_names for arg in ctx.meta.get("rapport.arguments", []))
    if ctx.invoked_subcommand in CHECKS_ITSELF or asks_help or ctx.resilient_parsing:
        return
    settings = runtime().settings  # a configuration problem ends here, with every problem named
    if not verbose:
        setup_logging(settings.log_level)


def main() -> None:
    """Console entry point: user errors print one clear message, no traceback."""
    try:
        app()
    except RapportError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(2)
    except OperationalError as exc:  # the database is unreachable or the file cannot be opened
        url = make_url(os.environ.get("RAPPORT_DATABASE_URL") or DEFAULT_DATABASE_URL)
        err_console.print(
            f"[bold red]error:[/] cannot use the database {escape(url.render_as_string(hide_password=True))}: "
            f"{escape(str(exc.orig).strip())}",
            highlight=False,
        )
        sys.exit(2)
    except KeyboardInterrupt:
        logging.getLogger("rapport").warning("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
