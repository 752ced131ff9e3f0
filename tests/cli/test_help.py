"""Every command answers --help with a description and every argument and option with its help
as written, within 80 columns and without touching a database."""

from __future__ import annotations

import functools
import inspect
import re
from pathlib import Path
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


def _command_at(path: tuple[str, ...]) -> Any:
    command: Any = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return command


def _help_of(path: tuple[str, ...]) -> str:
    return inspect.cleandoc(_command_at(path).help or "")


@functools.cache
def _help_output(path: tuple[str, ...], columns: int) -> str:
    """What `rapport … --help` prints on a terminal this wide."""
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": str(columns), "TERMINAL_WIDTH": str(columns)})
    assert result.exit_code == 0, result.output
    return result.output


def _shown(output: str) -> str:
    """The words of a help screen in order, without the panels' borders and the lines' wrapping."""
    return " ".join(word for line in output.splitlines() for word in line.strip("│╭╮╰╯─ ").split())


@pytest.mark.parametrize("path", ALL, ids=lambda p: " ".join(p) or "rapport")
def test_help_fits_80_columns_and_shows_every_word(path: tuple[str, ...]) -> None:
    """Regression: `privacy expire --help` read "Apply  now": Rich took [privacy.retention_days]
    for markup and dropped it. Every word of a command's description must reach the screen."""
    output = _help_output(path, 80)
    assert max(len(line) for line in output.splitlines()) <= 80, output
    shown = _shown(output)
    for word in _help_of(path).split():
        assert word.strip("`") in shown, f"{word!r} missing from the help of {' '.join(path)}"


PARAMETERS = [(path, param) for path in ALL for param in _command_at(path).params]


def _parameter_id(case: Any) -> str:
    return case.name if hasattr(case, "name") else " ".join(case) or "rapport"


@pytest.mark.parametrize(("path", "param"), PARAMETERS, ids=_parameter_id)
def test_every_argument_and_option_has_help(path: tuple[str, ...], param: Any) -> None:
    assert getattr(param, "help", None), f"{' '.join(('rapport', *path))}: {param.name} has no help text"


@pytest.mark.parametrize(("path", "param"), PARAMETERS, ids=_parameter_id)
def test_argument_and_option_help_shows_as_written(path: tuple[str, ...], param: Any) -> None:
    """Regression: `nlp correct --help` read "( model;": Rich took [nlp] in the category's help
    for a style tag and dropped it (7fbd784). Help is plain text: `--help` prints it word for
    word as the code writes it (on a terminal wide enough that nothing but long help wraps)."""
    written = " ".join((getattr(param, "help", None) or "").split())
    assert written in _shown(_help_output(path, 200)), (
        f"rapport {' '.join(path)} --help changes the help of {param.name} (Rich reads [...] as"
        f" markup: reword it):\n  written: {written}\n{_help_output(path, 200)}"
    )


@pytest.mark.parametrize("path", ALL, ids=lambda p: " ".join(p) or "rapport")
def test_a_usage_line_offers_a_command_only_where_there_are_subcommands(path: tuple[str, ...]) -> None:
    """Regression: `rapport serve --help` read "Usage: rapport serve [OPTIONS] COMMAND [ARGS]...",
    though serve has no subcommands (it was a group of none that ran its own callback)."""
    usage = next(line for line in _help_output(path, 200).splitlines() if "Usage:" in line)
    assert ("COMMAND" in usage) == bool(getattr(_command_at(path), "commands", None)), usage


@pytest.mark.parametrize("path", [p for p in ALL if p], ids=" ".join)
def test_a_command_summary_is_one_line(path: tuple[str, ...]) -> None:
    """Regression: the list of commands showed a description's hard line breaks (`rapport --help`
    cut `demo`, `audit` and `privacy erase` mid-sentence). The first paragraph is the summary the
    parent's list shows: one line, the details after a blank line."""
    summary = _help_of(path).split("\n\n")[0]
    assert "\n" not in summary, summary


@pytest.mark.parametrize("path", ALL, ids=lambda p: " ".join(p) or "rapport")
def test_a_description_is_not_broken_mid_paragraph(path: tuple[str, ...]) -> None:
    """Regression: `nlp correct --help` showed "conversation" alone on a line. Typer prints the
    details (the paragraphs after the summary) line by line as written, after one space: a
    line over 79 characters wraps, and the next one still starts on a line of its own."""
    for paragraph in _help_of(path).split("\n\n")[1:]:
        for line in paragraph.splitlines()[:-1]:  # a paragraph's last line may wrap: nothing follows it
            assert len(line) <= 79, f"{' '.join(path)}: {line!r}"


def test_the_top_level_lists_demo_first() -> None:
    """A newcomer's first command is the first one `rapport --help` lists."""
    assert next(iter(typer.main.get_command(app).commands)) == "demo"  # type: ignore[attr-defined]


README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_commands() -> list[str]:
    """Each `rapport …` (or `privacy …` after a slash) in the first cell of the README's command table."""
    spans = []
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("| `rapport "):
            first_cell = re.split(r"(?<!\\)\|", line)[1]
            spans += [s.removeprefix("rapport ") for s in re.findall(r"`([^`]+)`", first_cell)]
    return spans


@pytest.mark.parametrize("span", _readme_commands())
def test_the_readme_names_real_commands_and_options(span: str) -> None:
    """Regression guard for a README written while the commands moved: every command and option
    its table names exists, spelt the same."""
    root: Any = typer.main.get_command(app)
    leaves = [root]
    for word in span.replace("\\|", "|").split():
        if word.startswith(("-", "[")) or not hasattr(leaves[0], "commands"):
            break
        if word.isupper():  # `export KIND`: any of the group's commands
            leaves = [command for leaf in leaves for command in leaf.commands.values()]
        else:
            leaves = [leaf.commands[name] for leaf in leaves for name in word.split("|")]
    for leaf in leaves:
        options = {opt for param in leaf.params for opt in (*param.opts, *param.secondary_opts)}
        for option in re.findall(r"--[a-z][a-z-]*", span):
            assert option in options, f"{span}: {leaf.name} has no {option}"


def test_segment_top_help_names_the_setting_behind_its_period() -> None:
    """Regression: `segment top --help` read "over the last top_months months", a setting's name
    in a sentence, without saying where it is set."""
    assert "over the last `top_months` months (set in the segments section of rapport.toml)" in _help_output(
        ("segment", "top"), 200
    )
