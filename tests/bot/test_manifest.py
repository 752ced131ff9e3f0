"""The Slack app manifest names what the code listens for."""

from __future__ import annotations

from pathlib import Path

from bot.app import SHORTCUT_CALLBACK
from bot.commands import BotOptions

MANIFEST = Path(__file__).resolve().parents[2] / "bot" / "manifest.yaml"


def test_manifest_matches_the_listeners() -> None:
    text = MANIFEST.read_text(encoding="utf-8")
    assert f"- command: {BotOptions().command}\n" in text
    assert f"callback_id: {SHORTCUT_CALLBACK}\n" in text
    assert "- app_home_opened\n" in text
    assert "- message.im " in text  # bot.app listens to "message" for DMs (is_direct_message)
    for scope in ("commands", "chat:write", "im:write", "im:history", "users:read", "users:read.email"):
        assert f"- {scope} " in text or f"- {scope}\n" in text, scope
    assert text.count("https://rapport.example.com/slack/events") == 4  # command, events, interactivity, options
