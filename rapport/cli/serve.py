"""`rapport serve`: run the Slack app, the scheduler and the mailbox watchers."""

from __future__ import annotations

import typer

from rapport.cli.common import runtime


def serve(
    port: int = typer.Option(None, "--port", "-p", help="HTTP port (default: RAPPORT_HTTP_PORT or 3000)."),
    host: str = typer.Option("0.0.0.0", "--host", help="HTTP address to listen on."),
    no_watch: bool = typer.Option(False, "--no-watch", help="Do not watch the mailboxes (Slack and scheduler only)."),
    workers: int = typer.Option(None, "--workers", "-w", min=1, max=64,
                                help="HTTP worker processes (default: RAPPORT_HTTP_WORKERS, else one per "
                                "CPU, at most 4)."),
) -> None:
    """Run the Slack app, the scheduler and the mailbox watchers.

    Socket Mode when SLACK_APP_TOKEN is set, else HTTP: POST /slack/events and
    GET /healthz. Stops cleanly on SIGTERM or Ctrl-C.
    """
    from rapport.serve import Service

    rt = runtime()
    Service(rt, host=host, port=port, watch_mailboxes=not no_watch,
            http_workers=workers or rt.settings.http_worker_count).run_until_signalled()
