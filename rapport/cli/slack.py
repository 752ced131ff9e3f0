"""`rapport slack manifest`: the Slack app's manifest, ready to paste."""

from __future__ import annotations

import typer

from rapport.cli.common import runtime
from rapport.errors import RapportError

slack_app = typer.Typer(help="Set up the Slack app.", no_args_is_help=True)


@slack_app.command("manifest")
def manifest(
    socket: bool = typer.Option(False, "--socket", help="Socket Mode: no public address needed (the default)."),
    http_url: str | None = typer.Option(None, "--http-url", metavar="URL",
                                        help="HTTP mode: the public https:// address of `rapport serve`."),
) -> None:
    """Print the Slack app's manifest, ready to paste.

    Made for this configuration's slash command (`command` in the slack section
    of rapport.toml): paste it at https://api.slack.com/apps -> Create New App ->
    From an app manifest. Then see bot/README.md for the tokens."""
    from bot.manifest import ManifestError, render_manifest

    if socket and http_url is not None:
        raise RapportError("choose one of --socket and --http-url")
    try:
        text = render_manifest(command=runtime().config.slack.command, http_url=http_url)
    except ManifestError as exc:
        raise RapportError(f"--http-url {exc}") from None
    print(text, end="")
