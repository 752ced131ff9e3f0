"""`rapport demo` end to end: the sample goes in through the real importer and pipeline, and
everything the demo promises shows up in the terminal and in the store."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from rich.console import Console
from sqlmodel import Session, col, func, select

from rapport.demo import plan_demo, run_demo, shift_mail
from rapport.errors import RapportError
from store.consent import PURPOSES
from store.db import make_engine
from store.models import (
    Activity,
    Assignment,
    Consent,
    Contact,
    Conversation,
    Message,
    OutboxItem,
    OutboxStatus,
)
from store.segments import SegmentParams, quiet_partners, stalled_prospects


def test_the_demo_files_assigns_notifies_and_digests(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAPPORT_MODEL_DIR", str(model_dir))
    console = Console(record=True, width=160)
    folder = tmp_path / "demo"
    run_demo(console, folder, full_notifications=2, today=date(2026, 11, 25))
    output = console.export_text()

    engine = make_engine(f"sqlite:///{folder / 'rapport.db'}")
    with Session(engine) as session:
        messages = session.exec(select(func.count()).select_from(Message)).one()
        assert messages == 54  # 48 in INBOX, 6 in Sent: each exactly once
        automatic = session.exec(select(Message).where(col(Message.is_automatic))).all()
        assert len(automatic) == 3  # the out-of-office, the bounce and the newsletter
        human = session.exec(select(Conversation).where(~col(Conversation.is_automatic))).all()
        assert human and all(c.owner_id is not None or c.queue for c in human)
        # every human conversation has an assignment with a reason a person can read
        for conversation in human:
            reasons = session.exec(select(Assignment.reason).where(Assignment.conversation_id == conversation.id)).all()
            assert reasons and all(len(r) > 10 for r in reasons)
        assert session.exec(select(func.count()).select_from(Contact)).one() > 40  # new senders became contacts
        undelivered = session.exec(
            select(func.count()).select_from(OutboxItem).where(
                OutboxItem.status == OutboxStatus.pending, col(OutboxItem.kind).in_(["assign-dm"])
            )
        ).one()
        assert undelivered == 0
        # Regression: the import stamped consents and order moves with the real time, after the
        # demo's clock (the card said "given" on a later day; the stage history ran backwards).
        clock = plan_demo(folder, date(2026, 11, 25)).clock
        stamps = [*session.exec(select(Consent.granted_at)).all(), *session.exec(select(Activity.occurred_at)).all()]
        assert stamps and max(s for s in stamps if s is not None) <= clock
        # The sample speaks Rapport's consent purposes (service, marketing, survey), not its own.
        assert set(session.exec(select(Consent.purpose)).all()) <= set(PURPOSES)
        # Regression: every contact was created 180 days before the clock and orders were no touch,
        # so both quiet segments said "180 days" for every row, a top-ten partner among them. Alpe
        # Distribucija has not ordered since the summer; Balaton Food Lab evaluates in silence.
        partners = quiet_partners(session, now=clock, params=SegmentParams())
        assert [(c.name, c.last_touch_at.date()) for c in partners] == [
            ("Jure Kos", date(2026, 1, 11)), ("Oliver Grant", date(2026, 3, 17)), ("Tina Vidmar", date(2026, 8, 22))
        ]
        stalled = stalled_prospects(session, now=clock, params=SegmentParams())
        assert [(c.name, c.days_quiet) for c in stalled] == [("Bence Farkas", 56)]
        assert len(set(session.exec(select(Contact.created_at)).all())) > 10
    assert "Slack DM to" in output
    assert "Weekly digest for" in output
    assert "notifications delivered from the outbox" in output
    # Regression: both "from anywhere" commands shared a line, which an 80-column terminal cut mid-command.
    assert "  rapport chat --demo" in output.splitlines()


def test_the_sample_dates_move_by_whole_weeks_to_the_latest_friday() -> None:
    plan = plan_demo(Path("x"), today=date(2026, 12, 2))  # a Wednesday
    assert plan.shift.days == 7 and plan.clock.date() == date(2026, 11, 27)
    raw = b"From: a@b.example\r\nDate: Fri, 20 Nov 2026 10:30:19 +0100\r\nSubject: x\r\n\r\nbody\r\n"
    assert b"Date: Fri, 27 Nov 2026 10:30:19 +0100\r\n" in shift_mail(raw, plan.shift)
    assert shift_mail(b"no date header\r\n\r\n", plan.shift) == b"no date header\r\n\r\n"


def _run(args: list[str], cwd: Path, model_dir: Path, *, home: Path | None = None) -> str:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[2]), "HOME": str(home or cwd),
           "COLUMNS": "80", "RAPPORT_MODEL_DIR": str(model_dir)}
    done = subprocess.run([sys.executable, "-m", "rapport.cli.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (args, done.stderr)
    assert "Traceback" not in done.stderr
    return done.stdout


def _between(lines: list[str], start: str, end: str) -> list[str]:
    first = next(i for i, line in enumerate(lines) if start in line) + 1
    last = next(i for i, line in enumerate(lines) if end in line and i >= first)
    return [line.rstrip() for line in lines[first:last] if line.strip()]


def test_regression_the_demo_s_follow_up_commands_print_the_same_figures_as_the_demo(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's own "try next" digest said "New conversations: 0" and `assign explain` named the
    fallback queue for an assigned mail (they read the real clock, the demo its own); the first
    `chat` after the demo printed about fifty "SLA missed" DMs; the assignment table wrapped to
    5-9 lines per row at 80 columns."""
    import json

    from rapport.demo import next_steps, note_last_demo, open_demo

    monkeypatch.setenv("RAPPORT_MODEL_DIR", str(model_dir))
    console = Console(record=True, width=80)
    folder = tmp_path / "demo"
    run_demo(console, folder, full_notifications=2, today=date(2026, 11, 25))
    output = console.export_text()
    lines = output.splitlines()
    assert max(len(line) for line in lines) <= 80
    # the catch-up ran inside the demo, one line per kind
    catch_up = _between(lines, "Catch-up (what `rapport serve` sends", "Assignments")
    assert any(line.startswith("  SLA missed") for line in catch_up) and len(catch_up) <= 4
    # two lines per conversation
    rows = _between(lines, "from / subject", "Weekly digest for")
    engine = make_engine(f"sqlite:///{folder / 'rapport.db'}")
    with Session(engine) as session:
        human = session.exec(select(Conversation).where(~col(Conversation.is_automatic))).all()
    assert len(rows) == 2 * len(human) + 1  # and the rule under the header

    steps = next_steps(open_demo(folder), plan_demo(folder, today=date(2026, 11, 25)))
    assert steps[0] == f"cd {folder}" and all(len(step) + 2 <= 80 for step in steps)
    digest_step = next(step for step in steps if step.startswith("rapport digest"))
    demo_digest = _between(lines, "Weekly digest for", "Try next")
    # in the demo's folder, the same digest, without a clock flag
    assert [line.rstrip() for line in _run(digest_step.split()[1:], folder, model_dir).splitlines()
            if line.strip()] == demo_digest
    # and from anywhere with --demo: the demo made last (`rapport demo` notes it in the user's cache)
    monkeypatch.setenv("HOME", str(tmp_path))  # _run's HOME
    note_last_demo(folder)
    anywhere = tmp_path / "elsewhere"
    anywhere.mkdir()
    assert [line.rstrip() for line in _run(["digest", "--demo", "--period", "week"], anywhere, model_dir,
                                           home=tmp_path).splitlines() if line.strip()] == demo_digest
    # assign explain agrees with the assignment the demo made
    explain_step = next(step for step in steps if step.startswith("rapport assign explain"))
    conversation = int(explain_step.split()[-1])
    explained = json.loads(_run(["assign", "explain", str(conversation), "--json"], folder, model_dir))
    winner = next(rule for rule in explained["rules"] if rule["applied"])
    assert winner["rule"] != "fallback" and winner["owner"] == explained["history"][-1]["owner"]
    # segments: the terminal, the export and the store agree at the demo's clock
    shown = json.loads(_run(["segment", "top", "--json"], folder, model_dir))
    exported = [json.loads(line) for line in _run(["export", "segment", "top"], folder, model_dir).splitlines()]
    assert shown and [r["name"] for r in shown] == [r["name"] for r in exported]
    top_in_digest = [line for line in _between(lines, "Top customers who wrote", "Try next")
                     if re.match(r"- \d+\. ", line)]
    names = [r["name"] for r in shown]
    assert top_in_digest and all(line.split(". ", 1)[1] in names for line in top_in_digest)
    # the first chat after the demo answers, with nothing left to catch up
    chat = _run(["chat", "my"], folder, model_dir)
    assert "My open conversations" in chat
    assert "Slack DM to" not in chat and "DM to" not in chat
    assert "*" not in chat and "<@" not in chat


def test_regression_demo_flag_finds_the_demo_made_last_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cd /tmp && rapport chat --demo "find stastny"` said "no demo database in rapport-demo/":
    --demo only looked in the current folder, though the demo promised it worked from anywhere."""
    from typer.testing import CliRunner

    import rapport.demo
    from rapport.cli.main import app
    from rapport.demo import find_demo

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RapportError, match=r"(?s)no demo found.*run `rapport demo` first"):
        find_demo()
    made: list[Path] = []
    monkeypatch.setattr(rapport.demo, "run_demo", lambda console, folder, **_: made.append(folder))
    result = CliRunner().invoke(app, ["demo", "--dir", "somewhere/demo"])
    assert result.exit_code == 0, result.output
    assert made == [tmp_path / "somewhere" / "demo"]

    monkeypatch.chdir(tmp_path / "home")  # any other folder
    assert find_demo() == tmp_path / "somewhere" / "demo"
    _fake_demo(tmp_path / "home" / "rapport-demo")
    assert find_demo() == tmp_path / "home" / "rapport-demo"  # the folder's own demo comes first
    assert find_demo(Path("x")) == tmp_path / "home" / "x"  # --demo-dir names it


def _fake_demo(folder: Path) -> None:
    """What makes a folder a demo's: its database and its clock (`.env`)."""
    folder.mkdir(parents=True)
    (folder / "rapport.db").touch()
    (folder / ".env").write_text("RAPPORT_NOW=2026-11-20T13:00+00:00\n", encoding="utf-8")


def test_regression_demo_flag_inside_a_demo_folder_uses_that_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cd rapport-demo && rapport chat --demo` used the demo noted in ~/.cache, another folder,
    though the current folder held a demo (its rapport.db and .env)."""
    from rapport.demo import find_demo, note_last_demo

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    _fake_demo(tmp_path / "elsewhere")
    note_last_demo(tmp_path / "elsewhere")
    _fake_demo(tmp_path / "rapport-demo")
    monkeypatch.chdir(tmp_path / "rapport-demo")
    assert find_demo() == tmp_path / "rapport-demo"

    (tmp_path / "rapport-demo" / ".env").unlink()  # a folder with a database of its own is no demo
    assert find_demo() == tmp_path / "elsewhere"


def test_regression_spacy_log_lines_are_printed_once() -> None:
    """Training printed each spaCy line twice: through spaCy's own handler and through ours."""
    code = ("import logging, nlp; from rapport.cli.common import setup_logging; setup_logging('INFO'); "
            "logging.getLogger('spacy').info('Created vocabulary')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stderr.count("Created vocabulary") == 1


def test_regression_cli_and_http_workers_load_no_spacy() -> None:
    """Every `rapport` command and every HTTP worker of `serve` imported spaCy (half a second, 55 MB
    each) for a help text; only the commands that classify need it."""
    code = ("import sys, rapport.cli.main, rapport.workers, rapport.serve; "
            "from rapport.cli.common import setup_logging; setup_logging('INFO'); "
            "print(sorted(m for m in ('nlp', 'spacy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"


DEMO_TOML = """
[[reps]]
name = "Maja Novak"
email = "maja@rapport.example"
role = "manager"
digest_via = ["email"]
"""


def _small_demo(folder: Path) -> None:
    """A folder as `rapport demo` leaves it (rapport.db, rapport.toml, the clock in .env), with
    one conversation in the week of its clock, Friday 4 December."""
    from rapport.config import load_configuration
    from rapport.demo import demo_overrides
    from rapport.wiring import Runtime
    from store.db import session_scope
    from store.models import Rep

    folder.mkdir(parents=True)
    (folder / "rapport.toml").write_text(DEMO_TOML, encoding="utf-8")
    (folder / ".env").write_text("RAPPORT_NOW=2026-12-04T13:00+00:00\n", encoding="utf-8")
    settings, config = load_configuration(**demo_overrides(folder))
    engine = Runtime(settings=settings, config=config).create_database()
    with session_scope(engine) as session:
        maja = session.exec(select(Rep)).one()
        session.add(Conversation(subject="Quote", owner_id=maja.id, opened_at=datetime(2026, 12, 2, 9, tzinfo=UTC)))


def test_regression_in_the_demo_folder_the_plain_digest_shows_the_demo_s_week(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In rapport-demo/, `rapport digest --period week` showed the week before the demo's
    ("New conversations: 0") while `--demo` showed the demo's; and `--demo-dir D` without
    `--demo` was ignored ("no Rapport database at /tmp/rapport.db")."""
    import json

    from typer.testing import CliRunner

    from rapport.cli.common import runtime
    from rapport.cli.main import app

    def digest(*args: str) -> dict[str, object]:
        runtime.cache_clear()
        result = CliRunner().invoke(app, ["digest", "--period", "week", "--json", *args])
        assert result.exit_code == 0, result.output
        figures: dict[str, object] = json.loads(result.stdout)
        return figures

    for name in ("RAPPORT_DATABASE_URL", "RAPPORT_CONFIG", "RAPPORT_NOW"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    folder = tmp_path / "rapport-demo"
    _small_demo(folder)
    monkeypatch.chdir(folder)
    plain = digest()
    assert (plain["start"], plain["new_conversations"]) == ("2026-11-30T00:00:00+00:00", 1)
    assert digest("--demo") == plain
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # no demo here: --demo-dir alone must find it
    assert digest("--demo-dir", str(folder)) == plain
    runtime.cache_clear()
