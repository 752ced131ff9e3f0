"""`rapport db` and `rapport config`: schema and configuration."""

from __future__ import annotations

import typer
from rich.table import Table
from sqlalchemy.engine import make_url

from rapport.cli.common import console, print_json, runtime
from rapport.settings import ENV_NAMES
from store.db import current_revision, head_revision, make_engine, upgrade

db_app = typer.Typer(help="Create, migrate and inspect the database.", no_args_is_help=True)
config_app = typer.Typer(help="Check the configuration.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the schema, or migrate it to the newest version (RAPPORT_DATABASE_URL)."""
    engine = make_engine(runtime().settings.database_url)
    before = current_revision(engine)
    upgrade(engine)
    after = current_revision(engine)
    url = engine.url.render_as_string(hide_password=True)
    if before == after:
        console.print(f"{url}: already at revision {after}")
    else:
        console.print(f"{url}: upgraded {before or 'empty database'} -> {after}")


@db_app.command("status")
def db_status() -> None:
    """Show the database URL and its schema revision."""
    engine = make_engine(runtime().settings.database_url)
    current, head = current_revision(engine), head_revision(engine)
    state = "up to date" if current == head else "needs `rapport db upgrade`"
    console.print(f"{engine.url.render_as_string(hide_password=True)}: revision {current} ({state})")


@config_app.command("check")
def config_check(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Validate the environment and rapport.toml; print the effective configuration, secrets masked."""
    rt = runtime()
    settings = rt.settings.model_dump(mode="json")  # SecretStr fields dump as '**********'
    environment = {ENV_NAMES[k]: v for k, v in settings.items()}
    # the URL is a plain string, but may hold a password
    environment["RAPPORT_DATABASE_URL"] = make_url(rt.settings.database_url).render_as_string(hide_password=True)
    effective = {
        "environment": environment,
        "config_file": str(rt.config.source) if rt.config.source else None,
        "config": rt.config.model_dump(mode="json"),
    }
    if as_json:
        print_json(effective)
        return
    table = Table(title="Environment", show_header=True)
    table.add_column("variable")
    table.add_column("value")
    for key, value in environment.items():
        table.add_row(key, "" if value is None else str(value))
    console.print(table)
    source = str(rt.config.source) if rt.config.source else f"{rt.settings.config_file} (not found: defaults)"
    console.print(f"[bold]Config file:[/] {source}")
    config = rt.config
    console.print(
        f"reps: {len(config.reps)}  routes: {len(config.assignment.routes)}  "
        f"folders: {config.inbox.folders or rt.settings.folders}  slack command: {config.slack.command}"
    )
    console.print("[green]configuration OK[/]")
