"""Where a command's database is: a command that reads refuses one that is not there, naming it and
how to get one; the commands that fill a database create it, quietly."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rapport.cli.common import runtime
from rapport.cli.main import app
from rapport.config import AppConfig
from rapport.settings import load_settings
from rapport.wiring import Runtime
from store.db import current_revision, head_revision, make_engine, upgrade
from tests.cli.test_config import DRIVER, _clean_env, _invocations

# They need no database, or make one; the rest read (or change) the data of one that exists.
NO_DATABASE_NEEDED = {"config check", "db status", "slack manifest", "serve", "inbox sync", "inbox watch",
                      "nlp evaluate"}
IMPORTS = "import "


def test_regression_a_command_run_where_there_is_no_database_creates_none(tmp_path: Path) -> None:
    """`rapport segment top` in a folder without a database made an empty rapport.db and printed
    empty tables. Every command that reads now refuses, with the file and the ways to get one;
    none of the others (run with made-up arguments that fail) leaves a database behind."""
    invocations = [["nlp", "correct", "1", "billing"] if argv[:2] == ["nlp", "correct"] else argv
                   for argv in _invocations()
                   if " ".join(argv[:2]) not in {"demo", "db upgrade", "nlp classify", "nlp train"}]
    env = {**_clean_env(tmp_path), "RAPPORT_DATABASE_URL": "sqlite:///rapport.db"}  # the default, relative
    run = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(invocations)], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    readers = 0
    for result in json.loads(run.stdout):
        where = " ".join(result["argv"])
        assert not (tmp_path / "rapport.db").exists(), where
        if " ".join(result["argv"][:2]) in NO_DATABASE_NEEDED or where.startswith(IMPORTS):
            continue
        readers += 1
        stderr = " ".join(result["stderr"].split())
        assert result["code"] == 2, (where, result)
        assert f"no Rapport database at {tmp_path / 'rapport.db'}" in stderr, (where, stderr)
        assert "`rapport demo`" in stderr and "`rapport db upgrade`" in stderr, (where, stderr)
        assert max(len(line) for line in result["stderr"].splitlines()) <= 80, (where, result["stderr"])
    assert readers > 20  # segment, digest, export, chat, assign, nlp status, privacy, audit, …


def test_db_status_says_there_is_no_database_and_makes_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAPPORT_DATABASE_URL", "sqlite:///rapport.db")
    monkeypatch.delenv("RAPPORT_CONFIG", raising=False)  # ./rapport.toml, which may be missing
    runtime.cache_clear()
    result = CliRunner().invoke(app, ["db", "status"])
    assert result.exit_code == 0, result.output
    assert "no Rapport database there yet" in result.output and "rapport db upgrade" in result.output
    assert not (tmp_path / "rapport.db").exists()
    runtime.cache_clear()


def test_regression_a_dry_run_on_a_fresh_install_checks_the_rows_and_creates_no_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rapport import contacts file.csv --dry-run`, the natural first step, exited 2 with "no
    Rapport database". It checks the rows against an empty store (with rapport.toml's reps, whom
    the contacts may name as owners) and leaves no database behind."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAPPORT_DATABASE_URL", "sqlite:///rapport.db")
    monkeypatch.delenv("RAPPORT_CONFIG", raising=False)
    (tmp_path / "rapport.toml").write_text(
        '[[reps]]\nname = "Anna Berg"\nemail = "anna@nordlys.example"\n', encoding="utf-8")
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("email,name,owner\npeter@stastny.example,Peter,anna@nordlys.example\n"
                        "not an address,Nobody,anna@nordlys.example\n", encoding="utf-8")
    runtime.cache_clear()
    result = CliRunner().invoke(app, ["import", "contacts", str(contacts), "--dry-run", "--json"])
    assert result.exit_code == 2, result.output  # the bad row is rejected; the good one would land
    report = json.loads(result.stdout)
    assert report["imported"] == 1 and len(report["rejected"]) == 1
    assert not report["warnings"]  # the owner is known: rapport.toml's reps are in the scratch store
    assert sorted(p.name for p in tmp_path.iterdir()) == ["contacts.csv", "rapport.toml"]
    runtime.cache_clear()


def test_an_import_creates_the_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAPPORT_DATABASE_URL", "sqlite:///rapport.db")
    monkeypatch.delenv("RAPPORT_CONFIG", raising=False)  # ./rapport.toml, which may be missing
    reps = tmp_path / "reps.csv"
    reps.write_text("name,email\nAnna Berg,anna@nordlys.example\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["import", "reps", str(reps)])
    assert result.exit_code == 0, result.output
    assert "1 imported" in result.output
    runtime.cache_clear()


def _runtime(url: str) -> Runtime:
    return Runtime(settings=load_settings(database_url=url), config=AppConfig())


def test_regression_a_new_database_is_created_without_an_info_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`rapport demo` printed "INFO upgrading the database schema at sqlite:////…" on stderr, wrapped,
    with the wall-clock time beside the demo's clock: a database being made is no news."""
    url = f"sqlite:///{tmp_path / 'new.db'}"
    with caplog.at_level(logging.DEBUG, logger="rapport"):
        engine = _runtime(url).create_database()
    assert current_revision(engine) == head_revision(engine)
    ours = [r for r in caplog.records if r.name == "rapport"]
    assert [r.levelno for r in ours] == [logging.DEBUG] and "creating the database schema" in ours[0].message


def test_upgrading_a_database_in_use_is_logged_at_info(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(make_engine(url), "base+1")  # the first schema: a database made by an older Rapport
    with caplog.at_level(logging.DEBUG, logger="rapport"):
        _runtime(url).engine  # noqa: B018  (opening it upgrades it)
    ours = [r for r in caplog.records if r.name == "rapport"]
    assert [r.levelno for r in ours] == [logging.INFO] and "upgrading the database schema" in ours[0].message
