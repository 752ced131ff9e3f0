"""`rapport digest` and `rapport segment ...` through typer, on the hand-built store (SQLite)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from rapport.cli import common
from rapport.cli.digest import digest, segment_app
from rapport.errors import RapportError
from store.db import make_engine, session_scope, upgrade
from tests.digest import known_store
from tests.digest.test_delivery import parse_mail
from tests.servers.fake_slack import FakeSlack
from tests.servers.ports import free_port
from tests.servers.smtp import SmtpServer

app = typer.Typer()
app.command("digest")(digest)
app.add_typer(segment_app, name="segment")


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    url = f"sqlite:///{tmp_path / 'rapport.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with session_scope(engine) as session:
        known_store.build(session)
    engine.dispose()
    (tmp_path / "rapport.toml").write_text("[segments]\ntop_n = 3\n", encoding="utf-8")
    env = {"RAPPORT_DATABASE_URL": url, "RAPPORT_CONFIG": str(tmp_path / "rapport.toml")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no stray .env
    common.runtime.cache_clear()
    yield env
    common.runtime.cache_clear()


def _run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_digest_json_and_print(cli_env: dict[str, str]) -> None:
    figures = json.loads(_run("digest", "--manager", "MAJA@rapport.example", "--date", "2026-11-22", "--json"))
    assert figures["new_conversations"] == 5
    assert figures["start"] == known_store.S.isoformat()
    assert figures["first_response"] == {"count": 5, "median_seconds": 7200.0, "p90_seconds": 28080.0}

    text = _run("digest", "--manager", "maja@rapport.example", "--period", "day", "--date", "2026-11-22")
    assert text.startswith("Nordics, Sun 22 Nov (Sunday 22 Nov 2026, Europe/Stockholm)")
    assert "Missed reply time: 2 (▲ from 1)" in text


def test_regression_the_printed_digest_quotes_the_managers_own_digest_via(cli_env: dict[str, str]) -> None:
    """`rapport digest` and the demo said `digest_via = ["email"]` to a manager with ["slack", "email"]:
    the footer was given the way it was printed, not the manager's setting."""
    text = " ".join(_run("digest", "--manager", "maja@rapport.example", "--date", "2026-11-22").split())
    assert 'a manager in Rapport with digest_via = ["slack", "email"] in rapport.toml.' in text

    on_request = " ".join(_run("digest", "--manager", "bob@rapport.example", "--date", "2026-11-22").split())
    assert "you have digest_via = [] in rapport.toml, so none comes on its own." in on_request
    assert "You get this" not in on_request


def test_digest_send(cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, fake_slack: FakeSlack,
                     smtp_server: SmtpServer) -> None:
    monkeypatch.setenv("RAPPORT_SMTP_HOST", smtp_server.host)
    monkeypatch.setenv("RAPPORT_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("RAPPORT_SMTP_SECURITY", "none")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_API_URL", fake_slack.base_url)

    output = _run("digest", "--manager", "maja@rapport.example", "--date", "2026-11-22", "--send")

    assert "Slack: digest for maja@rapport.example sent" in output
    assert "email: digest for maja@rapport.example sent" in output
    assert len(fake_slack.posts("DMAJA")) == 1
    assert smtp_server.wait_for(1)[0].rcpt_tos == ["maja@rapport.example"]


def test_digest_send_with_slack_unreachable_still_sends_the_email_without_a_traceback(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, smtp_server: SmtpServer
) -> None:
    monkeypatch.setenv("RAPPORT_SMTP_HOST", smtp_server.host)
    monkeypatch.setenv("RAPPORT_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("RAPPORT_SMTP_SECURITY", "none")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_API_URL", f"http://127.0.0.1:{free_port()}/")  # nothing listens there

    result = CliRunner().invoke(app, ["digest", "--manager", "maja@rapport.example", "--date", "2026-11-22",
                                      "--send"])

    assert "email: digest for maja@rapport.example sent" in result.output
    assert isinstance(result.exception, RapportError)  # main() prints it as one message, no traceback
    assert str(result.exception).startswith("Slack: not sent yet (")
    assert "`rapport serve` tries again later" in str(result.exception)
    assert smtp_server.wait_for(1)[0].rcpt_tos == ["maja@rapport.example"]


@pytest.mark.parametrize(("args", "message"), [
    (["--manager", "nobody@rapport.example"], "no rep with email"),
    (["--manager", "maja@rapport.example", "--date", "22/11/2026"], "expected a date"),
    (["--manager", "maja@rapport.example", "--json", "--print"], "choose one of"),
])
def test_digest_bad_input_is_a_clear_error(cli_env: dict[str, str], args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["digest", *args])
    assert isinstance(result.exception, RapportError)  # main() prints it without a traceback
    assert message in str(result.exception)


def test_digest_send_without_smtp_is_a_clear_error(cli_env: dict[str, str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAPPORT_SMTP_HOST", raising=False)
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["digest", "--manager", "ada@rapport.example", "--send"])
    assert isinstance(result.exception, RapportError)
    assert "SMTP is not configured" in str(result.exception)


def test_segment_commands(cli_env: dict[str, str]) -> None:
    rows = json.loads(_run("segment", "top", "--json"))
    assert [row["name"] for row in rows] == ["Ada Big", "Ben Mid", "Cleo Small"]
    table = _run("segment", "partners")
    assert "Rolf AtPartner" in table


def test_segment_tables_read_as_words_and_dates(cli_env: dict[str, str]) -> None:
    """Regression: the tables printed Python's values: True/False, 37177.82, 37.0 and times such as
    2026-06-07T13:00:…; the JSON keeps them, a person reads yes, 37,178, 37 days and a date."""
    top = _run("segment", "top")
    assert "True" not in top and "False" not in top and "yes" in top
    partners = _run("segment", "partners")
    assert re.search(r"\d{4}-\d\d-\d\d", partners) and not re.search(r"\d{4}-\d\d-\d\dT", partners)


def test_segment_top_and_lapsed_name_the_period_of_their_values(cli_env: dict[str, str]) -> None:
    """Regression: both headed a column "value (EUR)", one over 12 months, the other over all time."""
    top, lapsed = _run("segment", "top"), _run("segment", "lapsed")
    assert "last 12 months" in top and "lifetime" in lapsed  # headings may wrap before "(EUR)"
    assert "value" not in top + lapsed
    [first, *_] = json.loads(_run("segment", "top", "--json"))
    assert "recent_value_eur" in first and "value_eur" not in first



def test_regression_top_customers_say_the_configured_period(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, fake_slack: FakeSlack, smtp_server: SmtpServer
) -> None:
    """Regression: the digest said "in 12 months" beside each top customer whatever top_months was
    in rapport.toml. The digest (printed, in Slack, by email) and the segment's table say the window
    the values were summed over."""
    Path(cli_env["RAPPORT_CONFIG"]).write_text("[segments]\ntop_n = 3\ntop_months = 6\n", encoding="utf-8")
    for name, value in {"RAPPORT_SMTP_HOST": smtp_server.host, "RAPPORT_SMTP_PORT": str(smtp_server.port),
                        "RAPPORT_SMTP_SECURITY": "none", "SLACK_BOT_TOKEN": "xoxb-test",
                        "SLACK_API_URL": fake_slack.base_url}.items():
        monkeypatch.setenv(name, value)

    printed = _run("digest", "--manager", "maja@rapport.example", "--date", "2026-11-22")
    _run("digest", "--manager", "maja@rapport.example", "--date", "2026-11-22", "--send")
    [post] = fake_slack.posts("DMAJA")
    mail = parse_mail(smtp_server.wait_for(1)[0].data)
    emailed = [part.get_content() for part in mail.walk() if part.get_content_maintype() == "text"]

    for shown in (printed, json.dumps(post, ensure_ascii=False), *emailed):
        assert "€100 in 6 months" in shown and "12 months" not in shown
    assert "last 6 months" in _run("segment", "top")
