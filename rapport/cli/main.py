"""`rapport`: the root command."""

from __future__ import annotations

import logging
import os
import sys

import typer
from rich.markup import escape
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from rapport import __version__
from rapport.cli import data as data_cli
from rapport.cli import demo as demo_cli
from rapport.cli import digest as digest_cli
from rapport.cli import inbox as inbox_cli
from rapport.cli import nlp as nlp_cli
from rapport.cli import privacy as privacy_cli
from rapport.cli import setup as setup_cli
from rapport.cli.chat import chat_app
from rapport.cli.common import err_console, setup_logging
from rapport.cli.serve import serve_app
from rapport.errors import RapportError
from store.db import DEFAULT_DATABASE_URL

app = typer.Typer(
    name="rapport",
    help="Rapport: the CRM assistant in your shared inbox and in Slack.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)
app.add_typer(setup_cli.db_app, name="db")
app.add_typer(setup_cli.config_app, name="config")
app.add_typer(data_cli.import_app, name="import")
app.add_typer(data_cli.export_app, name="export")
app.add_typer(nlp_cli.app, name="nlp")
app.command("digest")(digest_cli.digest)
app.command("demo")(demo_cli.demo)
app.add_typer(inbox_cli.inbox_app, name="inbox")
app.add_typer(inbox_cli.assign_app, name="assign")
app.add_typer(chat_app, name="chat")
app.add_typer(serve_app, name="serve")
app.add_typer(digest_cli.segment_app, name="segment")
app.add_typer(privacy_cli.privacy_app, name="privacy")
app.command("audit")(privacy_cli.audit)


def _version(value: bool) -> None:
    if value:
        print(f"rapport {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug details."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Rapport files each email of the shared mailbox against its contact, assigns an
    owner and tells them in Slack; reps log calls and follow-ups from Slack; managers
    get digests. Settings come from the environment (.env) and rapport.toml."""
    setup_logging("DEBUG" if verbose else os.environ.get("RAPPORT_LOG_LEVEL", "INFO"))


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
