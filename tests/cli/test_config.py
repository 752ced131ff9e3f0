"""rapport.toml and the environment: a typo names the key, the file and what was expected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rapport.config import Known, load_config, name_problems
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
    # the file alone cannot know imported reps: the database's reps decide (config check, start-up)
    path = _write(tmp_path, '[[reps]]\nname = "A"\nemail = "a@x.example"\n\n'
                            '[[assignment.routes]]\ncategory = "billing"\nrep = "A@x.example"\n\n'
                            '[[assignment.routes]]\ncategory = "refund"\nrep = "ghost@x.example"\n')
    [problem] = name_problems(load_config(path), Known(reps=[("b@x.example", "sales")]))
    assert problem.startswith(f"{path}: `assignment.routes[1].rep`: no rep under [[reps]] or in the database")
    assert "ghost@x.example" in problem


# --------------------------------------------------------------------------- every problem, every command

REPO = Path(__file__).parents[2]
DRIVER = '''
import contextlib, io, json, sys, traceback
from rapport.cli.common import runtime
from rapport.cli.main import main
results = []
for argv in json.loads(sys.argv[1]):
    runtime.cache_clear()
    sys.argv = ["rapport", *argv]
    err, out, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc(file=err)
            code = -1
    results.append({"argv": argv, "code": code, "stderr": err.getvalue(), "stdout": out.getvalue()})
print(json.dumps(results))
'''

# (variable or file, value, what the message must name)
BAD_SETTINGS = [
    ("RAPPORT_LOG_LEVEL", "LOUD", "RAPPORT_LOG_LEVEL"),
    ("RAPPORT_DATABASE_URL", "mysql://u:p@db.example/crm", "SQLite and PostgreSQL only"),
    ("RAPPORT_IMAP_PORT", "imaps", "RAPPORT_IMAP_PORT"),
    ("RAPPORT_SMTP_PORT", "99999", "RAPPORT_SMTP_PORT"),
    ("RAPPORT_SMTP_SECURITY", "tls", "RAPPORT_SMTP_SECURITY"),
    ("RAPPORT_IMAP_HOST", "imap.example.com", "RAPPORT_IMAP_USER: not set"),
    ("RAPPORT_SMTP_USER", "robot", "RAPPORT_SMTP_PASSWORD: not set"),
    ("RAPPORT_IMAP_CA_FILE", "/nonexistent/ca.pem", "RAPPORT_IMAP_CA_FILE: no such file"),
    ("RAPPORT_NOW", "tomorrow", "RAPPORT_NOW"),
    ("RAPPORT_IMAP_FOLDER", "INBOX,Sales", "did you mean RAPPORT_IMAP_FOLDERS"),
    ("SLACK_BOT_TOKN", "xoxb-1", "did you mean SLACK_BOT_TOKEN"),
    (".env", "RAPPORT_SMPT_HOST=mail.example.com\n", "did you mean RAPPORT_SMTP_HOST"),
    ("rapport.toml", "[assignment]\nsla_hour = 4\n", "did you mean `sla_hours`"),
]


def _invocations() -> list[list[str]]:
    """Every command of the CLI, with made-up values for its required arguments."""
    import typer

    from rapport.cli.main import app

    def walk(group: Any, prefix: list[str]) -> list[list[str]]:
        found: list[list[str]] = []
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                found += walk(command, [*prefix, name])
                if getattr(command, "invoke_without_command", False):
                    found.append([*prefix, name])
                continue
            argv = [*prefix, name]
            for param in command.params:
                if not param.required:
                    continue
                value = "1"  # an id, a file name: the configuration is refused before either is read
                argv += [param.opts[0], value] if param.param_type_name == "option" else [value]
            found.append(argv)
        return found

    return walk(typer.main.get_command(app), [])


def _clean_env(tmp_path: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(tmp_path), "COLUMNS": "80",
            "RAPPORT_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}"}


@pytest.mark.parametrize("name, value, named", BAD_SETTINGS, ids=[b[0] for b in BAD_SETTINGS])
def test_regression_no_command_prints_a_traceback_for_a_bad_setting(
    name: str, value: str, named: str, tmp_path: Path
) -> None:
    """`RAPPORT_LOG_LEVEL=LOUD` printed a traceback from every command; now each command, run with
    each bad setting, ends with exit code 2 and a message naming the setting."""
    import json
    import subprocess
    import sys

    env = _clean_env(tmp_path)
    if name in (".env", "rapport.toml"):
        (tmp_path / name).write_text(value, encoding="utf-8")
    else:
        env[name] = value
    invocations = _invocations()
    assert len(invocations) > 30 and ["config", "check"] in invocations and ["serve"] in invocations
    run = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(invocations)], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    for result in json.loads(run.stdout):
        where = " ".join(result["argv"])
        assert "Traceback" not in result["stderr"], (where, result["stderr"])
        assert result["code"] == 2, (where, result)
        assert named in " ".join(result["stderr"].split()), (where, result["stderr"])
    assert not (tmp_path / "r.db").exists()  # refused before touching the database


def test_config_check_reports_the_environment_env_file_and_rapport_toml_together(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = _clean_env(tmp_path)
    for name, value, _ in BAD_SETTINGS:
        if name not in (".env", "rapport.toml"):
            env[name] = value
    (tmp_path / ".env").write_text("RAPPORT_SMPT_HOST=mail.example.com\n", encoding="utf-8")
    (tmp_path / "rapport.toml").write_text('[assignment]\nsla_hour = 4\n\n[[reps]]\nname = "A"\n'
                                           'email = "a@x.example"\ncapacity = "lots"\n', encoding="utf-8")
    checked = subprocess.run([sys.executable, "-m", "rapport.cli.main", "config", "check"],
                             env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 2
    report = " ".join(checked.stderr.split())
    for _, _, named in BAD_SETTINGS:
        assert named in report, named
    assert "rapport.toml: unknown key `assignment.sla_hour`" in report
    assert "rapport.toml: `reps[0].capacity`" in report
    assert ".env): not a setting; did you mean RAPPORT_SMTP_HOST" in report
    assert "p@db.example" not in report  # nothing secret echoed
    assert all(len(line) <= 80 for line in checked.stderr.splitlines())


def test_config_check_prints_every_effective_value_masked_within_80_columns(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {**_clean_env(tmp_path), "SLACK_BOT_TOKEN": "xoxb-TOPSECRET", "RAPPORT_SMTP_HOST": "mail.example.com",
           "RAPPORT_SMTP_USER": "robot", "RAPPORT_SMTP_PASSWORD": "HUNTER2",
           "RAPPORT_DATABASE_URL": "postgresql://rapport:PGSECRET@db.example/crm"}
    (tmp_path / "rapport.toml").write_text('[[reps]]\nname = "Anna Berg"\nemail = "anna@x.example"\n'
                                           'working_hours = "Mon-Thu 08:00-16:00; Fri 08:00-12:00"\n')
    checked = subprocess.run([sys.executable, "-m", "rapport.cli.main", "config", "check"],
                             env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    out = checked.stdout
    for secret in ("TOPSECRET", "HUNTER2", "PGSECRET"):
        assert secret not in out
    assert "**********" in out and "rapport:***@db.example" in out
    # defaults included, from both sources
    for shown in ("RAPPORT_SMTP_PORT", "587", "RAPPORT_IMAP_SECURITY", "inbox.batch_size", "200",
                  "reps[0].working_hours", "Mon-Thu 08:00-16:00; Fri", "configuration OK"):
        assert shown in out, shown
    assert max(len(line) for line in out.splitlines()) <= 80


def test_one_clock_at_wins_over_rapport_now_which_wins_over_the_real_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    from rapport.cli.common import clock, now
    from rapport.errors import RapportError
    from rapport.wiring import Runtime
    from store.types import utcnow

    monkeypatch.chdir(tmp_path)
    real = Runtime.load(load_settings(config_file=tmp_path / "absent.toml"))
    assert clock(real) is utcnow
    monkeypatch.setenv("RAPPORT_NOW", "2026-12-04T14:00+01:00")
    fixed = Runtime.load(load_settings(config_file=tmp_path / "absent.toml"))
    assert now(fixed) == datetime(2026, 12, 4, 13, 0, tzinfo=UTC) == clock(fixed)()
    assert now(fixed, "2026-12-05T08:00Z") == datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
    with pytest.raises(RapportError, match="--at '2026-12-05 08:00': give the UTC offset"):
        now(fixed, "2026-12-05 08:00")


def test_misspelt_names_get_the_nearest_setting_and_other_tools_slack_names_pass() -> None:
    from rapport.settings import unknown_names

    problems = unknown_names(["RAPPORT_IMAP_FOLDER", "RAPPORT_LOGLEVEL", "RAPPORT_FOO", "SLACK_BOT_TOKN",
                              "SLACK_API_TOKEN", "SLACK_CLIENT_SECRET", "SLACK_WEBHOOK_URL", "RAPPORT_SUPPORT2_PW",
                              "PATH"], known=["RAPPORT_SUPPORT2_PW"], present=["SLACK_APP_TOKEN"])
    assert problems == [
        "RAPPORT_FOO (the environment): not a setting; `rapport config check` lists the settings",
        "RAPPORT_IMAP_FOLDER (the environment): not a setting; did you mean RAPPORT_IMAP_FOLDERS?",
        "RAPPORT_LOGLEVEL (the environment): not a setting; did you mean RAPPORT_LOG_LEVEL?",
        "SLACK_BOT_TOKN (the environment): not a setting; did you mean SLACK_BOT_TOKEN?",
    ]  # SLACK_API_TOKEN beside a set SLACK_APP_TOKEN is another tool's; a mailbox's password_env is known


def test_a_mailbox_password_variable_is_not_a_typo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rapport.config import check_configuration

    config = _write(tmp_path, '[[inbox.mailboxes]]\nname = "sales"\nhost = "imap.x.example"\nuser = "s@x.example"\n'
                              'password_env = "RAPPORT_SALES_IMAP_PASSWORD"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAPPORT_SALES_IMAP_PASSWORD", "x")
    monkeypatch.setenv("RAPPORT_SALES_IMAP_PASWORD", "x")
    checked = check_configuration(config_file=config)
    assert checked.problems == ["RAPPORT_SALES_IMAP_PASWORD (the environment): not a setting; "
                                "did you mean RAPPORT_SALES_IMAP_PASSWORD?"]
    monkeypatch.delenv("RAPPORT_SALES_IMAP_PASSWORD")
    assert check_configuration(config_file=config).problems[-1] == (
        f"{config}: `inbox.mailboxes[0].password_env`: RAPPORT_SALES_IMAP_PASSWORD is not set in the "
        "environment (the mailbox's password)")


def test_serve_without_slack_names_the_command_that_makes_the_app(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: it pointed at bot/manifest.yaml, a template the README no longer tells anyone to paste."""
    from typer.testing import CliRunner

    from rapport.cli.main import app

    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(app, ["serve", "--no-watch"])
    assert result.exit_code != 0
    assert "rapport slack manifest" in str(result.exception) and "rapport chat" in str(result.exception)


def test_surveys_or_email_digests_without_smtp_are_a_warning_not_an_error(tmp_path: Path) -> None:
    """Surveys switched on, or a manager's digest by email, with no SMTP server: valid settings that
    silently sent nothing. `config check` now warns, names the keys, and still exits 0."""
    import subprocess
    import sys

    (tmp_path / "rapport.toml").write_text('[survey]\nenabled = true\n\n[[reps]]\nname = "Mia"\n'
                                           'email = "mia@x.example"\nrole = "manager"\n'
                                           'digest_via = ["slack", "email"]\n', encoding="utf-8")
    checked = subprocess.run([sys.executable, "-m", "rapport.cli.main", "config", "check"],
                             env=_clean_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    warned = " ".join(checked.stderr.split())
    assert "warning: rapport.toml: `survey.enabled` is true, but RAPPORT_SMTP_HOST is not set" in warned
    assert '`digest_via` has "email" for mia@x.example' in warned
    assert all(len(line) <= 80 for line in checked.stderr.splitlines())
    with_smtp = subprocess.run([sys.executable, "-m", "rapport.cli.main", "config", "check"],
                               env={**_clean_env(tmp_path), "RAPPORT_SMTP_HOST": "mail.example.com"},
                               cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert with_smtp.returncode == 0 and "warning" not in with_smtp.stderr


# --------------------------------------------------------------------------- routes name what exists

REPS = '[[reps]]\nname = "A"\nemail = "a@x.example"\nteam = "sales"\n\n'


def _problems(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


def test_regression_a_route_with_a_misspelt_category_language_or_team_is_rejected(tmp_path: Path) -> None:
    """`partnerships`, `slovenian` and `salse` passed, and the route never applied ("route
    partnership → team salse: nobody available"); each is named, with the value meant."""
    path = _write(tmp_path, REPS + '[[assignment.routes]]\ncategory = "partnerships"\nlanguage = "slovenian"\n'
                                   'team = "salse"\n')
    message = _problems(path)
    assert f"{path}: `assignment.routes[0].category`: not a category; did you mean `partnership`?" in message
    assert "`assignment.routes[0].language`: not one of [nlp] languages; did you mean `sl`?" in message
    assert "`assignment.routes[0].team`: no rep under [[reps]] has this team; did you mean `sales`?" in message


@pytest.mark.parametrize("route, named", [
    ('category = "partners"', "did you mean `partnership`?"),  # a skill's synonym means its category
    ('category = "needs_triage"', "not a category"),  # the classifier's "unsure" is never routed
    ('language = "SL"', "did you mean `sl`?"),
    ('language = "fr"', "not one of [nlp] languages; expected one of en, sl"),
    ('language = "swedish"', "expected one of en, sl"),
    ('category = "sales"\nteam = "Sales"', "no rep under [[reps]] has this team; did you mean `sales`?"),
])
def test_a_route_names_a_category_a_configured_language_and_a_team_that_exist(
    route: str, named: str, tmp_path: Path
) -> None:
    target = "" if "team" in route else '\nrep = "a@x.example"'
    path = _write(tmp_path, REPS + f'[nlp]\nlanguages = ["en", "sl"]\n\n[[assignment.routes]]\n{route}{target}\n')
    assert named in _problems(path)


def test_routes_to_what_exists_are_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path, REPS + '[[assignment.routes]]\ncategory = "partnership"\nlanguage = "fr"\nteam = "sales"\n\n'
                                   '[[assignment.routes]]\nlanguage = "sl"\nrep = "<A@x.example>"\n')
    routes = load_config(path).assignment.routes
    assert [(r.category, r.language, r.team, r.rep) for r in routes] == [
        ("partnership", "fr", "sales", None), (None, "sl", None, "a@x.example")]


def test_the_sample_configuration_passes() -> None:
    assert len(load_config(REPO / "rapport" / "sample" / "rapport.toml").assignment.routes) == 3


def test_regression_a_route_problem_is_reported_beside_every_other_problem(tmp_path: Path) -> None:
    """A route to an unknown rep was reported only when the file had no other problem: with a
    skills typo as well, the skills error came alone."""
    path = _write(tmp_path, REPS + '[[reps]]\nname = "B"\nemail = "B@x.example"\nskills = ["juggling"]\n\n'
                                   '[[reps]]\nname = "B again"\nemail = "b@x.example"\n\n'
                                   '[[assignment.routes]]\ncategory = "billing"\nrep = "a@x.exmaple"\n\n'
                                   '[[assignment.routes]]\ncategory = "refund"\nrep = "b@x.example"\n')
    problems = _problems(path).splitlines()
    assert len(problems) == 3, problems
    assert "`assignment.routes[0].rep`: no rep under [[reps]] has this email" in problems[0]
    assert "did you mean `a@x.example`?" in problems[0]
    assert "`reps[1].skills`: unknown skills juggling" in problems[1]
    assert problems[2] == f"{path}: `reps`: the same email appears twice: b@x.example"


# --------------------------------------------------------------------------- names the file cannot know
# Reps (and their teams) may be imported from CSV, and a custom [nlp] model has its own categories:
# the file alone refuses only a near miss of what it knows; the database and the loaded model decide
# the rest, at `config check` and at the start of `serve` and `inbox`.

ROUTE = '[[assignment.routes]]\ncategory = "billing"\nteam = "{team}"\n'


def _import_reps(tmp_path: Path) -> None:
    """Anna of team finance, imported into the database `_clean_env` names (not under [[reps]])."""
    from store.db import make_engine, upgrade
    from tests.imports import import_builtin

    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    upgrade(engine)
    (tmp_path / "reps.csv").write_text("name,email,team\nAnna Berg,anna@x.example,finance\n", encoding="utf-8")
    assert import_builtin(engine, "reps", tmp_path / "reps.csv").imported == 1


def _rapport(tmp_path: Path, *command: str) -> tuple[int, str]:
    import subprocess
    import sys

    env = {**_clean_env(tmp_path), "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "secret"}
    run = subprocess.run([sys.executable, "-m", "rapport.cli.main", *command], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    return run.returncode, " ".join(run.stderr.split())


def test_regression_a_route_to_a_team_of_imported_reps_is_accepted(tmp_path: Path) -> None:
    """A rapport.toml with only a route to team finance, whose reps were imported from CSV: `config
    check` said "no rep under [[reps]] has this team; there is none" and every command refused."""
    from rapport.wiring import Runtime, check_names

    path = _write(tmp_path, ROUTE.format(team="finance") + '\n[[assignment.routes]]\ncategory = "refund"\n'
                                                           'rep = "Anna@x.example"\n')
    assert len(load_config(path).assignment.routes) == 2  # no database yet: every command starts
    _import_reps(tmp_path)
    assert _rapport(tmp_path, "config", "check") == (0, "")
    check_names(Runtime.load(load_settings(database_url=f"sqlite:///{tmp_path / 'r.db'}", config_file=path)))


def test_a_misspelt_team_or_rep_of_imported_reps_is_refused_with_the_name_meant(tmp_path: Path) -> None:
    _write(tmp_path, ROUTE.format(team="finanse") + '\n[[assignment.routes]]\ncategory = "refund"\n'
                                                    'rep = "anna@x.exmaple"\n')
    _import_reps(tmp_path)
    code, stderr = _rapport(tmp_path, "config", "check")
    assert code == 2
    assert ("rapport.toml: `assignment.routes[0].team`: no rep under [[reps]] or in the database has this team; "
            "did you mean `finance`? (got 'finanse')") in stderr
    assert "`assignment.routes[1].rep`: no rep under [[reps]] or in the database has this email; " \
           "did you mean `anna@x.example`?" in stderr


def test_regression_a_route_to_a_team_no_rep_has_is_refused_at_start_up(tmp_path: Path) -> None:
    """Neither [[reps]] nor the database has team legal: the route would never apply. Other
    commands still start (`rapport import reps` is how the team comes); `config check` and
    `serve` refuse, with the file and the key, and a refused start makes no database."""
    path = _write(tmp_path, REPS + ROUTE.format(team="legal"))
    assert load_config(path).assignment.routes[0].team == "legal"
    code, stderr = _rapport(tmp_path, "serve")
    assert code == 2 and not (tmp_path / "r.db").exists()
    assert ("rapport.toml: `assignment.routes[0].team`: no rep under [[reps]] or in the database has this team; "
            "expected one of sales (got 'legal')") in stderr
    _import_reps(tmp_path)
    for command in (["config", "check"], ["serve"]):
        code, stderr = _rapport(tmp_path, *command)
        assert code == 2 and "rapport.toml: `assignment.routes[0].team`" in stderr, (command, stderr)
        assert "expected one of finance, sales (got 'legal')" in stderr, (command, stderr)


def test_a_custom_model_routes_its_own_categories_and_a_typo_of_one_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, REPS + '[nlp]\nmodel = "our-model"\n\n'
                                   '[[assignment.routes]]\ncategory = "returns_de"\nteam = "sales"\n\n'
                                   '[[assignment.routes]]\ncategory = "warranty"\nteam = "sales"\n')
    config = load_config(path)  # the file cannot know the model's categories
    labels = ["returns_de", "warrantee", "billing"]
    assert name_problems(config, Known(reps=[], categories=labels)) == [
        f"{path}: `assignment.routes[1].category`: not a category; did you mean `warrantee`? (got 'warranty')"]
    assert "did you mean `partnership`?" in _problems(_write(tmp_path, REPS + ROUTE.replace("billing", "partnerships")
                                                                        .format(team="sales")))


@pytest.mark.parametrize("section, key", [("assignment", "sla_hours_by_category"),
                                          ("survey", "quiet_days_by_category")])
def test_a_custom_model_s_categories_take_an_sla_or_survey_days_and_a_typo_of_one_is_refused(
    section: str, key: str, tmp_path: Path
) -> None:
    model = '[nlp]\nmodel = "our-model"\n'
    path = _write(tmp_path, model + f'\n[{section}]\n{key} = {{ returns_de = 24, warranty = 48 }}\n')
    config = load_config(path)  # the file cannot know the model's categories
    assert getattr(getattr(config, section), key) == {"returns_de": 24, "warranty": 48}
    labels = ["returns_de", "warrantee", "billing"]
    assert name_problems(config, Known(reps=[], categories=labels)) == [
        f"{path}: `{section}.{key}.warranty`: not a category; did you mean `warrantee`? (got 'warranty')"]
    # the default (`feedback` owes no reply) is not the file's mistake when the model has no feedback
    assert name_problems(load_config(_write(tmp_path, model)), Known(reps=[], categories=labels)) == []


def test_a_saved_custom_model_s_categories_are_known_to_the_file_and_skills_take_them(
    tmp_path: Path, our_model: Path
) -> None:
    model = f'[nlp]\nmodel = "{our_model}"\n\n'
    path = _write(tmp_path, model + REPS.replace('team = "sales"', 'skills = ["Warranty", "returns_de"]'))
    assert load_config(path).reps[0].skills == ["warranty", "returns_de"]
    # read from the model's saved labels: a category it does not give is refused at once, with the ones it does
    problems = _problems(_write(tmp_path, model + REPS.replace('team = "sales"', 'skills = ["billing"]')))
    assert "`reps[0].skills`: unknown skills billing; known skills: returns_de, warranty" in problems


def test_a_model_not_readable_here_takes_any_skill_checked_once_the_model_is_loaded(tmp_path: Path) -> None:
    model = '[nlp]\nmodel = "our-model"\n\n'  # e.g. a pipeline installed on the server only
    path = _write(tmp_path, model + REPS.replace('team = "sales"', 'skills = ["returns_de", "warrantee"]'))
    config = load_config(path)
    assert config.reps[0].skills == ["returns_de", "warrantee"]
    assert name_problems(config, Known(reps=[], categories=["returns_de", "warranty"])) == [
        f"{path}: `reps[0].skills`: unknown skills warrantee; known skills: returns_de, warranty "
        "(got ['returns_de', 'warrantee'])"]


def test_the_slack_workers_learn_a_custom_model_s_categories_without_loading_spacy(
    tmp_path: Path, our_model: Path
) -> None:
    """Every HTTP worker of `serve` builds the bot's options: importing spaCy there costs 55 MB each."""
    path = _write(tmp_path, f'[nlp]\nmodel = "{our_model}"\n')
    code = ("import sys; from pathlib import Path; from rapport.config import load_config; "
            "from rapport.wiring import bot_options; "
            f"print(list(bot_options(load_config(Path({str(path)!r}))).categories), 'spacy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "['returns_de', 'warranty'] False"


def test_config_check_names_a_misspelt_sla_category_beside_a_misspelt_route(tmp_path: Path) -> None:
    _write(tmp_path, REPS + '[assignment]\nsla_hours_by_category = { complain = 1, feedback = 0 }\n\n'
                            + ROUTE.replace("billing", "partnerships").format(team="sales"))
    code, stderr = _rapport(tmp_path, "config", "check")
    assert code == 2 and "2 configuration problems" in stderr
    assert ("rapport.toml: `assignment.sla_hours_by_category.complain`: not a category; did you mean `complaint`? "
            "(got 'complain')") in stderr
    assert "`assignment.routes[0].category`: not a category; did you mean `partnership`?" in stderr


# --------------------------------------------------------------------------- which file, which values


def test_regression_a_named_config_file_that_is_missing_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`RAPPORT_CONFIG=nonexist.toml` ran on the defaults with exit 0; only the implicit
    rapport.toml may be missing."""
    from rapport.config import check_configuration

    monkeypatch.chdir(tmp_path)
    assert check_configuration().problems == []  # no ./rapport.toml: the defaults
    assert check_configuration(config_file=tmp_path / "absent.toml").problems == [
        f"RAPPORT_CONFIG: no such file (got '{tmp_path / 'absent.toml'}')"]
    (tmp_path / ".env").write_text("RAPPORT_CONFIG=from-env-file.toml\nRAPPORT_LOG_LEVEL=LOUD\n")
    assert "RAPPORT_CONFIG: no such file (got 'from-env-file.toml')" in check_configuration().problems


@pytest.mark.parametrize("env, toml, named", [
    ({"RAPPORT_CONFIG": "nonexist.toml"}, "", "RAPPORT_CONFIG: no such file (got 'nonexist.toml')"),
    ({}, REPS + '[[assignment.routes]]\ncategory = "partnership"\nteam = "salse"\n', "did you mean `sales`?"),
])
def test_serve_refuses_to_start_on_a_missing_named_file_or_a_route_typo(
    env: dict[str, str], toml: str, named: str, tmp_path: Path
) -> None:
    import subprocess
    import sys

    if toml:
        (tmp_path / "rapport.toml").write_text(toml, encoding="utf-8")
    for command in (["config", "check"], ["serve"]):
        run = subprocess.run([sys.executable, "-m", "rapport.cli.main", *command], env={**_clean_env(tmp_path), **env},
                             cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert run.returncode == 2 and named in " ".join(run.stderr.split()), (command, run.stderr)
    assert not (tmp_path / "r.db").exists()


def test_regression_config_check_shows_the_number_of_http_workers_in_effect(tmp_path: Path) -> None:
    """It showed `RAPPORT_HTTP_WORKERS 0`, the default's code, not the workers `serve` starts."""
    import json
    import os
    import subprocess
    import sys

    expected = max(1, min(4, len(os.sched_getaffinity(0))))
    check = [sys.executable, "-m", "rapport.cli.main", "config", "check"]
    table = subprocess.run(check, env=_clean_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=60)
    row = next(line.split() for line in table.stdout.splitlines() if "RAPPORT_HTTP_WORKERS" in line)
    assert row == ["RAPPORT_HTTP_WORKERS", str(expected), "(one", "per", "CPU,", "at", "most", "4)"]
    given = subprocess.run([*check, "--json"], env={**_clean_env(tmp_path), "RAPPORT_HTTP_WORKERS": "3"},
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert json.loads(given.stdout)["environment"]["RAPPORT_HTTP_WORKERS"] == 3
