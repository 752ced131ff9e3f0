"""rapport.toml and the environment: a typo names the key, the file and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from rapport.config import load_config
from rapport.errors import ConfigError
from rapport.settings import load_settings


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rapport.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_missing_file_means_defaults(tmp_path: Path) -> None:
    config = load_config(tmp_path / "absent.toml")
    assert config.assignment.fallback_queue == "triage" and config.reps == []


def test_a_typo_names_the_file_the_key_and_the_nearest_valid_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "[assignment]\nsla_hour = 4\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and "assignment.sla_hour" in message and "did you mean `sla_hours`" in message


def test_a_wrong_type_in_a_rep_names_the_rep_and_the_expectation(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[[reps]]\nname = "A"\nemail = "a@x.example"\n\n[[reps]]\nname = "B"\nemail = "b@x.example"\n'
        'timezone = "Europe/Nowhere"\ncapacity = "lots"\n',
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "reps[1].timezone" in message and "IANA" in message
    assert "reps[1].capacity" in message


def test_bad_toml_and_bad_regex_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(_write(tmp_path, "[inbox\n"))
    with pytest.raises(ConfigError, match=r"nlp.entity_patterns\[0\].pattern.*regular expression"):
        load_config(_write(tmp_path, '[[nlp.entity_patterns]]\nlabel = "X"\npattern = "(["\n'))


def test_environment_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAPPORT_IMAP_SECURITY", "tls")
    with pytest.raises(ConfigError, match="RAPPORT_IMAP_SECURITY"):
        load_settings()


def test_config_check_hides_the_database_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    env = {"RAPPORT_DATABASE_URL": "postgresql://rapport:HUNTER2@127.0.0.1:1/x", "PATH": "/usr/bin:/bin"}
    checked = subprocess.run([sys.executable, "-m", "rapport.cli.main", "config", "check", "--json"],
                             env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    assert "HUNTER2" not in checked.stdout and "rapport:***@127.0.0.1" in checked.stdout
    # and an unreachable database is one clear line, not a traceback
    status = subprocess.run([sys.executable, "-m", "rapport.cli.main", "db", "status"],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert status.returncode == 2
    assert "cannot use the database postgresql://rapport:***@127.0.0.1:1/x" in " ".join(status.stderr.split())
    assert "Traceback" not in status.stderr and "HUNTER2" not in status.stderr
