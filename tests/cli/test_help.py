"""Every command answers --help with a description, without touching a database."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from rapport.cli.main import app


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group (typer ships its own click classes)
            found += _commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


ALL = _commands(typer.main.get_command(app))


@pytest.mark.parametrize("path", ALL, ids=lambda p: " ".join(p) or "rapport")
def test_help(path: tuple[str, ...], tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    assert not (tmp_path / "rapport.db").exists()


def test_the_top_level_lists_the_command_groups() -> None:
    names = {p[0] for p in ALL if p}
    assert {"db", "config", "import", "export", "inbox", "assign", "nlp", "chat", "serve", "digest", "segment", "demo"} <= names
