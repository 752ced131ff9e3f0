"""`bot/manifest.yaml` made ready to paste: the configured slash command, and Socket Mode or the
public HTTPS address of `rapport serve`. The file stays the one source; this only fills it in."""

from __future__ import annotations

import re
from importlib import resources
from urllib.parse import urlsplit

PLACEHOLDER_URL = "https://rapport.example.com/slack/events"
EVENTS_PATH = "/slack/events"
DEFAULT_COMMAND = "/crm"
_DEFAULT_COMMAND = re.compile(r"(?<![\w/])" + re.escape(DEFAULT_COMMAND) + r"(?![\w.-])")


class ManifestError(ValueError):
    """The address cannot be used by Slack."""


def manifest_source() -> str:
    return (resources.files("bot") / "manifest.yaml").read_text(encoding="utf-8")


def events_url(address: str) -> str:
    """`https://crm.example.com` → `https://crm.example.com/slack/events` (a full URL is kept)."""
    parts = urlsplit(address.strip())
    if parts.scheme != "https" or not parts.netloc:
        raise ManifestError(f"{address!r}: Slack needs a public https:// address, e.g. https://crm.example.com")
    path = parts.path.rstrip("/") or EVENTS_PATH
    return f"https://{parts.netloc}{path}"


def render_manifest(*, command: str = DEFAULT_COMMAND, http_url: str | None = None) -> str:
    """The manifest for `command`: HTTP mode at `http_url`, else Socket Mode (no public address)."""
    lines = []
    url = events_url(http_url) if http_url is not None else None
    for line in manifest_source().splitlines():
        if line.startswith("#"):
            continue  # the file's note to maintainers; the header below replaces it
        line = _DEFAULT_COMMAND.sub(command, line)  # the command, and comments that name it
        if PLACEHOLDER_URL in line:
            if url is None:
                continue  # Socket Mode: Slack sends everything over the socket
            line = line.replace(PLACEHOLDER_URL, url)
        if url is None and line.strip() == "socket_mode_enabled: false":
            line = line.replace("false", "true")
        lines.append(line)
    mode = f"HTTP mode: Slack calls {url}" if url else "Socket Mode: no public address needed"
    header = [
        f"# Rapport's Slack app with the slash command {command}.",
        f"# {mode}.",
        "# Paste at https://api.slack.com/apps: Create New App > From an app manifest.",
    ]
    return "\n".join(header + lines) + "\n"
