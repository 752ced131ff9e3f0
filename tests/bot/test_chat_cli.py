"""`rapport chat`: the same handlers in the terminal, rendered as text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select
from typer.testing import CliRunner

from rapport.cli.common import runtime
from rapport.cli.main import app
from store.models import Activity, AuditEntry, Contact, Conversation, FollowUp, OutboxItem
from tests.bot.conftest import START, add_assigned_email, engine_for, seed_contacts

CONFIG = """
[[reps]]
name = "Alice Berg"
email = "alice@nordlys.example"
team = "sales"
timezone = "Europe/Stockholm"

[[reps]]
name = "Dave Support"
email = "dave@nordlys.example"
team = "support"

[[reps]]
name = "Mia Manager"
email = "mia@nordlys.example"
role = "manager"
team = "sales"
"""


@pytest.fixture
def chat_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'chat.db'}"
    config = tmp_path / "rapport.toml"
    config.write_text(CONFIG)
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAPPORT_DATABASE_URL", url)
    monkeypatch.setenv("RAPPORT_CONFIG", str(config))
    monkeypatch.chdir(tmp_path)
    runtime.cache_clear()
    runtime().create_database()  # the schema and the reps
    seed_contacts(engine_for(url))
    yield url
    runtime.cache_clear()


def test_one_shot_find_renders_the_card_as_text(chat_env: str) -> None:
    result = CliRunner().invoke(app, ["chat", "find", "stastny", "--as", "alice@nordlys.example"])
    assert result.exit_code == 0, result.output
    assert "Jan Šťastný" in result.output
    assert "Acme Corporation" in result.output
    assert "[Log a call]" in result.output


def test_one_shot_remind_then_reminder_shown_in_console(chat_env: str) -> None:
    result = CliRunner().invoke(app, ["chat", "--as", "alice@nordlys.example", "remind me in 3 days call Jan"])
    assert result.exit_code == 0, result.output
    assert "I'll remind you" in result.output and "CET" in result.output


def test_chat_remind_refuses_31_february(chat_env: str) -> None:
    # regression: the reported "I'll remind you Tue 04 Feb 2031 00:00 CET"
    result = CliRunner().invoke(app, ["chat", "--as", "alice@nordlys.example", "remind me 31.02. call"])
    assert result.exit_code == 1, result.output  # refused: nothing was set
    assert "31 February is not a date." in result.output and "I'll remind you" not in result.output


@pytest.mark.parametrize(("line", "answer"), [
    ("remind me 0000-01-01 call", "0000-01-01 is not a date: there is no year 0."),
    ("away 1.1.0000", "1.1.0000 is not a date: there is no year 0."),
    ("remind me 1.10 call", "1.10: 1 October or 01:10? Write 1.10. for the date, 01:10 for the time."),
])
def test_chat_refuses_a_date_it_cannot_take_with_a_message_not_a_traceback(
        chat_env: str, line: str, answer: str) -> None:
    # regression: year 0 reached date() as a ValueError, which only the Invalid handlers would answer
    result = CliRunner().invoke(app, ["chat", "--as", "alice@nordlys.example", line])
    assert result.exit_code == 1, result.output
    assert answer in " ".join(result.output.split()) and "Traceback" not in result.output


def test_chat_stage_purchase_is_not_undone_by_the_ticks_after_it(chat_env: str) -> None:
    # regression: "information search → purchase", then the card said "Stage: post purchase" by Rapport,
    # "14 days after the order of" an order from before the move (chat ticked the scheduler after a command)
    at = ["--at", "2026-12-07T10:00+00:00", "--as", "alice@nordlys.example"]
    moved = CliRunner().invoke(app, ["chat", *at, "stage jan purchase renewal signed today"])
    assert moved.exit_code == 0, moved.output
    assert "evaluation → purchase" in moved.output
    card = CliRunner().invoke(app, ["chat", *at, "find stastny"])
    assert card.exit_code == 0, card.output
    assert "Stage: purchase" in card.output and "post purchase" not in card.output, card.output


def test_interactive_session(chat_env: str) -> None:
    result = CliRunner().invoke(app, ["chat", "--as", "alice@nordlys.example"], input="help\nfind acme\nquit\n")
    assert result.exit_code == 0, result.output
    assert "Rapport commands" in result.output
    assert "Jan Šťastný" in result.output


def test_unknown_rep_is_a_clear_error(chat_env: str) -> None:
    result = CliRunner().invoke(app, ["chat", "--as", "nobody@example.com", "help"])
    assert result.exit_code != 0
    assert "no rep with email nobody@example.com" in str(result.exception)


def test_thread_prints_the_conversation_and_reply_says_sending_is_not_set_up(chat_env: str) -> None:
    from tests.bot.conftest import add_assigned_email

    conversation_id, _ = add_assigned_email(engine_for(chat_env), owner_email="alice@nordlys.example",
                                            contact_id=1, subject="Toner", text="Black toner, not cyan.")
    result = CliRunner().invoke(app, ["chat", "--as", "alice@nordlys.example", f"thread #{conversation_id}"])
    assert result.exit_code == 0, result.output
    assert "Received from Jan Šťastný" in result.output and "Black toner, not cyan." in result.output  # bold, not *…*
    result = CliRunner().invoke(app, ["chat", "--as", "alice@nordlys.example", f"reply #{conversation_id} On its way"])
    assert result.exit_code == 1, result.output  # nothing can be sent
    assert "Replies by email are not set up here" in result.output  # no RAPPORT_SMTP_HOST


def test_a_mistyped_command_suggests_the_nearest(chat_env: str) -> None:
    result = CliRunner().invoke(app, ["chat", "--as", "alice@nordlys.example", "fnd stastny"])
    assert result.exit_code == 1, result.output
    assert "I don't know fnd. Did you mean find?" in " ".join(result.output.split())


def test_a_form_the_terminal_cannot_fill_says_what_to_do_instead(chat_env: str) -> None:
    """Regression: `privacy export jan` in the terminal said "Opening the confirmation…" and then
    suggested `log call jan …`."""
    result = CliRunner().invoke(app, ["chat", "--as", "mia@nordlys.example", "privacy export stastny"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "rapport privacy export EMAIL" in text and "log call" not in text


def test_a_conversation_number_that_does_not_exist_is_called_so(chat_env: str) -> None:
    """Regression: `thread #999` said "That conversation no longer exists" of one that never did."""
    result = CliRunner().invoke(app, ["chat", "--as", "alice@nordlys.example", "thread #999"])
    assert result.exit_code == 1, result.output
    assert "There is no conversation #999." in result.output


@pytest.mark.parametrize("command", ["fnd stastny", "thread #999", "find nobody-like-this", "remind",
                                     "stage stastny nowhere", "privacy export stastny"])
def test_regression_a_one_shot_refusal_exits_1(chat_env: str, command: str) -> None:
    """`rapport chat "fnd"` printed "I don't know fnd" and exited 0: a script could not tell.
    (Alice is no manager: `privacy export` is refused.)"""
    result = CliRunner().invoke(app, ["chat", "--as", "alice@nordlys.example", command])
    assert result.exit_code == 1, result.output


def test_interactive_chat_goes_on_after_a_refusal(chat_env: str) -> None:
    result = CliRunner().invoke(app, ["chat", "--as", "alice@nordlys.example"],
                                input="fnd stastny\nfind stastny\nquit\n")
    assert result.exit_code == 0, result.output
    assert "I don't know" in result.output and "Jan Šťastný" in result.output


def test_regression_chat_help_shows_no_subcommands() -> None:
    """`rapport chat --help` read `[text]... COMMAND [ARGS]...`: chat was a group without commands."""
    result = CliRunner().invoke(app, ["chat", "--help"])
    assert result.exit_code == 0, result.output
    assert "COMMAND" not in result.output and "[text]..." in result.output


def test_regression_chat_at_a_future_moment_runs_no_scheduler(chat_env: str) -> None:
    """`rapport chat --at 2027-02-01T10:00Z "help back"` printed ~30 "DM to …: SLA missed" lines
    and wrote automatic stage moves (and their audit entries) dated 2027-02-01: every chat command
    ticked the scheduler at its --at. Asking at a moment changes nothing; the command answers."""
    engine = engine_for(chat_env)
    add_assigned_email(engine, owner_email="alice@nordlys.example", contact_id=1, subject="Toner",
                       text="Black toner, not cyan.", at=START)  # past its SLA by 2027, never answered
    with Session(engine) as session:  # bought 10 days before START: post purchase by 2027
        jan = session.exec(select(Contact).where(Contact.name == "Jan Šťastný")).one()
        jan.stage = "purchase"
        session.add(jan)
        session.commit()
    at = ["--at", START.isoformat(), "--as", "alice@nordlys.example"]
    assert CliRunner().invoke(app, ["chat", *at, "remind me tomorrow 10:00 call Jan"]).exit_code == 0
    before = _counts(engine)

    later = ["--at", "2027-02-01T10:00+00:00", "--as", "alice@nordlys.example"]
    result = CliRunner().invoke(app, ["chat", *later, "help back"])
    assert result.exit_code == 0, result.output
    assert "back" in result.output
    assert "DM to" not in result.output and "SLA" not in result.output, result.output
    assert _counts(engine) == before  # no move, no audit entry, no outbox row
    with Session(engine) as session:
        assert session.exec(select(Contact.stage).where(Contact.name == "Jan Šťastný")).one() == "purchase"
        assert session.exec(select(Conversation.escalated_at)).one() is None
        assert session.exec(select(FollowUp.reminded_at)).one() is None


def test_regression_chat_does_not_print_the_dm_another_command_queued(chat_env: str) -> None:
    """After `rapport inbox sync`, the next chat command printed the DM the sync had queued."""
    engine = engine_for(chat_env)
    add_assigned_email(engine, owner_email="alice@nordlys.example", contact_id=1, subject="Toner",
                       text="Black toner, not cyan.", at=START)  # what a sync writes, its DM included
    result = CliRunner().invoke(app, ["chat", "--at", START.isoformat(), "--as", "alice@nordlys.example", "my"])
    assert result.exit_code == 0, result.output
    assert "Toner" in result.output and "DM to" not in result.output, result.output
    with Session(engine) as session:
        assert session.exec(select(OutboxItem.status)).one() == "pending"  # left for `rapport serve`


def _counts(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        return {model.__name__: session.exec(select(func.count()).select_from(model)).one()
                for model in (Activity, AuditEntry, FollowUp, OutboxItem)}
