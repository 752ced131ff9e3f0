"""A migrated SQLite database that `rapport` commands run by CliRunner use."""

from __future__ import annotations

from pathlib import Path

import pytest

from rapport.cli.common import runtime
from store.db import make_engine, upgrade


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    monkeypatch.setenv("RAPPORT_DATABASE_URL", url)
    config = tmp_path / "rapport.toml"
    config.write_text("", encoding="utf-8")  # the defaults (a file RAPPORT_CONFIG names must exist)
    monkeypatch.setenv("RAPPORT_CONFIG", str(config))
    runtime.cache_clear()
    upgrade(make_engine(url))
    return url
