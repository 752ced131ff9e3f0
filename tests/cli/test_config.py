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


def test_regression_working_hours_that_cannot_be_are_rejected_with_file_and_key(tmp_path: Path) -> None:
    """`Mon-Fri 25:00-99:00` passed the check, and assignment then read it as "always at work"."""
    import subprocess
    import sys

    path = _write(tmp_path, '[[reps]]\nname = "A"\nemail = "a@x.example"\nworking_hours = "Mon-Fri 25:00-99:00"\n')
    with pytest.raises(ConfigError, match=r"reps\[0\]\.working_hours.*25:00 is not a time of day"):
        load_config(path)
    env = {"RAPPORT_CONFIG": str(path), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[2])}
    checked = subprocess.run([sys.executable, "-m", "rapport.cli.main", "config", "check"],
                             env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert checked.returncode != 0
    assert str(path) in " ".join(checked.stderr.split()) and "reps[0].working_hours" in checked.stderr


def test_working_hours_in_every_documented_form_are_accepted(tmp_path: Path) -> None:
    reps = "".join(f'[[reps]]\nname = "R{i}"\nemail = "r{i}@x.example"\nworking_hours = "{hours}"\n\n'
                   for i, hours in enumerate(["08:00-17:00", "Mon-Thu 08:00-16:00; Fri 08:00-12:00", "Mo-Fr 8-17"]))
    assert len(load_config(_write(tmp_path, reps)).reps) == 3


def test_skills_read_as_the_import_reads_them(tmp_path: Path) -> None:
    # regression: `invoice|payment` was refused; the config and a reps CSV share one reading
    config = load_config(_write(tmp_path, '[[reps]]\nname = "A"\nemail = "a@x.example"\n'
                                          'skills = ["invoice", "payment", "Shipping"]\n'))
    assert config.reps[0].skills == ["billing", "delivery"]
    with pytest.raises(ConfigError, match=r"reps\[0\]\.skills.*unknown skills juggling; known skills: order"):
        load_config(_write(tmp_path, '[[reps]]\nname = "A"\nemail = "a@x.example"\nskills = ["juggling"]\n'))


def test_regression_a_route_to_a_rep_that_does_not_exist_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, '[[reps]]\nname = "A"\nemail = "a@x.example"\n\n'
                            '[[assignment.routes]]\ncategory = "billing"\nrep = "A@x.example"\n\n'
                            '[[assignment.routes]]\ncategory = "refund"\nrep = "ghost@x.example"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and "assignment.routes[1].rep" in message and "ghost@x.example" in message
    assert "routes[0]" not in message
