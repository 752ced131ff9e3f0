"""The Slack app manifest names what the code listens for."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.app import SHORTCUT_CALLBACK
from bot.commands import BotOptions
from bot.manifest import PLACEHOLDER_URL, render_manifest
from rapport.cli.common import runtime
from rapport.cli.main import app
from rapport.settings import ENV_NAMES

MANIFEST = Path(__file__).resolve().parents[2] / "bot" / "manifest.yaml"


def test_manifest_matches_the_listeners() -> None:
    text = MANIFEST.read_text(encoding="utf-8")
    assert f"- command: {BotOptions.command}\n" in text
    assert f"callback_id: {SHORTCUT_CALLBACK}\n" in text
    assert "- app_home_opened\n" in text
    assert "- message.im " in text  # bot.app listens to "message" for DMs (is_direct_message)
    for scope in ("commands", "chat:write", "im:write", "im:history", "users:read", "users:read.email"):
        assert f"- {scope} " in text or f"- {scope}\n" in text, scope
    assert text.count("https://rapport.example.com/slack/events") == 4  # command, events, interactivity, options


# --------------------------------------------------------------------------- rapport slack manifest

README = MANIFEST.parent / "README.md"


def _yaml(text: str) -> str:
    """The manifest without its comment lines."""
    return "\n".join(line for line in text.splitlines() if not line.startswith("#"))


def _list(text: str, section: str) -> set[str]:
    """The items of `section:` in the YAML's block list (names before any comment)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"{section}:")
    indent = len(lines[start]) - len(lines[start].lstrip())
    items = set()
    for line in lines[start + 1:]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        if line.strip().startswith("- "):
            items.add(line.strip()[2:].split("#")[0].strip())
    return items


@pytest.fixture
def sales_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    config = tmp_path / "rapport.toml"
    config.write_text('[slack]\ncommand = "/sales"\n', encoding="utf-8")
    monkeypatch.setenv("RAPPORT_CONFIG", str(config))
    monkeypatch.setenv("RAPPORT_DATABASE_URL", f"sqlite:///{tmp_path / 'r.db'}")
    monkeypatch.chdir(tmp_path)
    runtime.cache_clear()
    return "/sales"


def test_slack_manifest_in_socket_mode_is_ready_to_paste(sales_command: str) -> None:
    result = CliRunner().invoke(app, ["slack", "manifest", "--socket"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert f"- command: {sales_command}\n" in text and "/crm" not in text
    assert "socket_mode_enabled: true\n" in text
    assert "url:" not in text and "example.com" not in text  # no address to fill in
    assert "\nsettings:\n  event_subscriptions:\n    bot_events:\n" in text
    assert f"callback_id: {SHORTCUT_CALLBACK}\n" in text
    assert _list(text, "bot_events") == {"app_home_opened", "message.im"}
    assert {"commands", "chat:write", "im:write", "im:history", "users:read", "users:read.email"} <= _list(
        text, "bot")
    assert "is_enabled: true" in text  # interactivity: buttons and forms


def test_slack_manifest_in_http_mode_points_every_url_at_the_address(sales_command: str) -> None:
    result = CliRunner().invoke(app, ["slack", "manifest", "--http-url", "https://crm.nordlys.example"])
    assert result.exit_code == 0, result.output
    assert _yaml(result.output).count("https://crm.nordlys.example/slack/events") == 4
    assert PLACEHOLDER_URL not in result.output and "socket_mode_enabled: false\n" in result.output
    refused = CliRunner().invoke(app, ["slack", "manifest", "--http-url", "http://crm.nordlys.example"])
    assert refused.exit_code != 0 and "https://" in str(refused.exception)


def test_every_step_of_the_bot_readme_matches_the_manifest() -> None:
    """bot/README.md walks through creating the app; what it says the app asks for is what the
    manifest asks for, and every variable it names is a setting."""
    readme = README.read_text(encoding="utf-8")
    setup = readme[readme.index("## Create the Slack app"):readme.index("In HTTP mode `rapport serve` runs")]
    steps = re.findall(r"^\d+\. ", setup, re.MULTILINE)
    assert len(steps) >= 4
    socket, http = render_manifest(), render_manifest(http_url="https://crm.example.com")
    # step 1: the commands it shows are the CLI's
    assert "`rapport slack manifest --socket`" in setup and "`rapport slack manifest --http-url " in setup
    scopes_line = re.search(r"scopes: (.*?)\n   - events", setup, re.DOTALL)
    events_line = re.search(r"events: (.*?)\n", setup)
    assert scopes_line and events_line
    assert set(re.findall(r"`([^`]+)`", scopes_line[1])) == _list(socket, "bot")
    assert set(re.findall(r"`([^`]+)`", events_line[1])) == _list(socket, "bot_events")
    assert f"(`{SHORTCUT_CALLBACK}`)" in setup and "**Log to CRM**" in setup and "name: Log to CRM" in socket
    assert "/slack/events" in setup and _yaml(http).count("https://crm.example.com/slack/events") == 4
    # step 4: the variables are settings, and Socket Mode's token needs connections:write
    named = set(re.findall(r"\b((?:SLACK|RAPPORT)_[A-Z_]+)\b", setup))
    assert {"SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"} <= named
    assert named <= set(ENV_NAMES.values())
    assert "`connections:write`" in setup
    # the command README mentions exists in the CLI
    assert "rapport config check" in setup and "rapport serve" in setup
