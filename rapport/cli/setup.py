"""`rapport db` and `rapport config`: schema and configuration."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer
from rich import box
from rich.padding import Padding
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import make_url

from rapport.cli.common import console, err_console, print_json, runtime
from rapport.config import check_configuration
from rapport.settings import ENV_NAMES, HTTP_WORKERS_AUTO, Settings
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
    url = engine.url.render_as_string(hide_password=True)
    if current is None:
        console.print(f"{url}: no Rapport database there yet (`rapport db upgrade` creates it)")
        return
    state = "up to date" if current == head else "needs `rapport db upgrade`"
    console.print(f"{url}: revision {current} ({state})")


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """A config value as (dotted key, text) rows: nested sections by key, lists of sections by index."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and any(isinstance(item, dict) for item in value):
        for index, item in enumerate(value):
            yield from _flatten(item, f"{prefix}[{index}]")
    elif isinstance(value, list):
        yield prefix, ", ".join(str(item) for item in value) or "(none)"
    else:
        yield prefix, "(not set)" if value is None else str(value)


def effective_environment(settings: Settings) -> dict[str, Any]:
    """Every setting by its variable name, as in effect (defaults included, the number of HTTP workers
    worked out); secrets and the database password masked."""
    values = settings.model_dump(mode="json")  # SecretStr fields dump as '**********'
    environment = {ENV_NAMES[k]: v for k, v in values.items()}
    environment[ENV_NAMES["http_workers"]] = settings.http_worker_count
    # the URL is a plain string, but may hold a password
    environment["RAPPORT_DATABASE_URL"] = make_url(settings.database_url).render_as_string(hide_password=True)
    return environment


@config_app.command("check")
def config_check(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Check the environment, .env and rapport.toml together.

    Names every problem in one run (exit code 2), else prints every effective
    value, defaults included, secrets masked. Warnings (a feature switched on
    that cannot work, e.g. surveys without SMTP) do not change the exit code.

    With a database, a route's team and rep are also checked against its reps
    (imported ones too), which rapport.toml alone cannot know."""
    checked = check_configuration(with_database=True)
    if not as_json:
        for warning in checked.warnings:
            err_console.print(Text(f"warning: {warning}", style="yellow"), highlight=False)
    if checked.problems:
        if as_json:
            print_json({"problems": checked.problems, "warnings": checked.warnings})
        else:
            err_console.print(f"[bold red]{len(checked.problems)} configuration "
                              f"problem{'s' if len(checked.problems) > 1 else ''}:[/]")
            for problem in checked.problems:
                err_console.print(Padding(Text(problem), (0, 0, 0, 2)), highlight=False)
        raise typer.Exit(2)
    settings, config = checked.settings, checked.config
    assert settings is not None and config is not None
    environment = effective_environment(settings)
    set_names = {ENV_NAMES[k] for k in settings.model_fields_set}
    config_values = config.model_dump(mode="json")
    if as_json:
        print_json({"environment": environment, "config_file": str(config.source) if config.source else None,
                    "config": config_values, "warnings": checked.warnings})
        return
    table = Table("variable", "value", title="Environment (.env)", title_justify="left", box=box.SIMPLE)
    table.columns[0].no_wrap = True
    table.columns[1].overflow = "fold"
    for key, value in environment.items():
        shown = "(not set)" if value is None else str(value)
        if key == ENV_NAMES["http_workers"] and not settings.http_workers:
            shown += f" ({HTTP_WORKERS_AUTO})"
        table.add_row(key, Text(shown, style="" if key in set_names else "dim"))
    console.print(table)
    source = str(config.source) if config.source else f"{settings.config_file} (not found: defaults)"
    values = Table("key", "value", title=f"Config file: {source}", title_justify="left", box=box.SIMPLE)
    values.columns[0].no_wrap = True
    values.columns[1].overflow = "fold"
    for key, text in _flatten(config_values):
        values.add_row(key, text)
    console.print(values)
    console.print("Dim values are defaults. [green]configuration OK[/]")
