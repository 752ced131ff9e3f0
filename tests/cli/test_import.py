"""`rapport import`: the summary names ignored columns and warnings; the exit status says whether
every row landed (0) or some were rejected (2, the good rows still land)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from rapport.cli.common import runtime
from rapport.cli.main import app
from store.db import make_engine, read_session
from store.models import Activity, ActivityKind, Consent, Rep

FIXTURES = Path(__file__).parent.parent / "fixtures" / "csv"


def test_every_row_landing_exits_0_and_names_the_ignored_columns(database: str) -> None:
    result = CliRunner().invoke(app, ["import", "contacts", str(FIXTURES / "salesforce_contacts.csv")])
    assert result.exit_code == 0, result.output
    assert "5 imported" in result.stdout
    text = " ".join(result.stdout.split())
    assert "Ignored columns (no field takes them): Salutation, Mailing City, Mailing Country, Lead Source" in text


def test_rejected_rows_exit_2_and_the_good_rows_still_land(database: str) -> None:
    result = CliRunner().invoke(app, ["import", "contacts", str(FIXTURES / "hubspot_contacts.csv"), "--json"])
    assert result.exit_code == 2, result.output
    report = json.loads(result.stdout)
    assert report["imported"] == 11
    assert [r["line"] for r in report["rejected"]] == [14]
    # no reps in this store: each owner named is a warning too, once, on their first row
    owners = [w["line"] for w in report["warnings"] if "known rep" in w["warning"]]
    assert owners == [2, 4, 10]  # Alice Andersson, Bob Berg, Carl Nobody
    assert {w["line"] for w in report["warnings"] if "known rep" not in w["warning"]} == {12, 13}
    assert report["ignored_columns"] == ["Last Activity Date", "City", "Country/Region"]


def test_help_says_what_the_exit_status_means() -> None:
    for args in (["import", "--help"], ["import", "contacts", "--help"]):
        result = CliRunner().invoke(app, args, env={"COLUMNS": "80"})
        assert result.exit_code == 0
        text = " ".join(result.stdout.replace("│", " ").split())
        assert "0 when every row landed, 2 when some" in text


def test_an_import_stamps_what_it_records_with_the_commands_clock(
    database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: the demo (clock Friday 14:00) showed "Consent: … given" two days later and
    stage moves after the scheduler's, because the importer stamped them with the real time."""
    monkeypatch.setenv("RAPPORT_NOW", "2026-12-04T13:00Z")
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("name,email,kind,stage,consent_purpose,consent_basis\n"
                        "Jan Novák,jan@kunde.example,prospect,need,service,contract\n", encoding="utf-8")
    orders = tmp_path / "orders.csv"
    orders.write_text("order_id,email,amount,ordered_on\nNS-1,jan@kunde.example,100,2026-11-20\n", encoding="utf-8")
    for kind, path in (("contacts", contacts), ("orders", orders)):
        result = CliRunner().invoke(app, ["import", kind, str(path)])
        assert result.exit_code == 0, result.output
    with read_session(make_engine(database)) as session:
        consent = session.exec(select(Consent)).one()
        move = session.exec(select(Activity).where(Activity.kind == ActivityKind.move)).one()
    clock = datetime(2026, 12, 4, 13, 0, tzinfo=UTC)
    assert (consent.granted_at, move.occurred_at, move.stage_to) == (clock, clock, "purchase")


def test_a_contact_created_in_2019_without_mail_is_stalled_right_after_import(
    database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: every imported contact was created "now", so right after a move from another
    CRM nobody was stalled, though that CRM knew the prospect had been silent for years."""
    monkeypatch.setenv("RAPPORT_NOW", "2026-12-04T13:00Z")
    path = tmp_path / "hubspot.csv"
    path.write_text("First Name,Last Name,Email,Lifecycle Stage,Create Date\n"
                    "Vera,Valová,vera@vltava.example,Sales Qualified Lead,2019-05-17 10:23\n"
                    "Nils,New,nils@fjord.example,Sales Qualified Lead,2026-12-01 09:00\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["import", "contacts", str(path)])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["segment", "stalled", "--json"])
    assert result.exit_code == 0, result.output
    assert [(row["name"], row["last_touch_at"][:10]) for row in json.loads(result.stdout)] == [
        ("Vera Valová", "2019-05-17")
    ]


def test_regression_a_reimport_after_an_erasure_skips_the_person_and_exits_0(database: str) -> None:
    """After `privacy erase`, `import orders` rejected the person's orders (import contacts first, it
    said), the contacts import refused them too, and both exited 2."""
    contacts, orders = str(FIXTURES / "contacts_erased_again.csv"), str(FIXTURES / "orders_erased_again.csv")
    for args in (["import", "contacts", contacts], ["import", "orders", orders],
                 ["privacy", "erase", "erika.erased@acme.example", "--yes"]):
        assert CliRunner().invoke(app, args).exit_code == 0

    for args, skipped in ((["import", "orders", orders], "2 rows"), (["import", "contacts", contacts], "1 row")):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert f"{skipped} of erased people skipped" in result.stdout


def test_reps_of_a_team_with_its_own_model_take_that_model_s_categories_as_skills(
    database: str, our_model: Path, tmp_path: Path
) -> None:
    (tmp_path / "rapport.toml").write_text(f'[nlp]\nmodel = "{our_model}"\n', encoding="utf-8")
    runtime.cache_clear()
    reps = tmp_path / "reps.csv"
    reps.write_text("name,email,skills\nWalt,walt@shop.example,warranty|billing\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["import", "reps", str(reps), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["warnings"] == [
        {"line": 2, "warning": "unknown skills billing left out; known skills: returns_de, warranty"}]
    with read_session(make_engine(database)) as session:
        assert session.exec(select(Rep.skills)).one() == ["warranty"]


def test_regression_a_model_not_readable_here_leaves_chat_and_the_reps_import_working(
    database: str, tmp_path: Path
) -> None:
    """`config check` said OK, then `rapport chat help` and `rapport import reps` failed with
    "[nlp] model: no installed spaCy pipeline or model directory named ..." (e.g. a pipeline
    installed on the server only)."""
    (tmp_path / "rapport.toml").write_text('[nlp]\nmodel = "no_such_pipeline"\n', encoding="utf-8")
    runtime.cache_clear()
    reps = tmp_path / "reps.csv"
    reps.write_text("name,email,role,skills\nMia,mia@shop.example,manager,warranty|returns_de\n", encoding="utf-8")
    for args in (["--dry-run"], []):
        result = CliRunner().invoke(app, ["import", "reps", str(reps), "--json", *args])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["warnings"] == [{"line": 2, "warning": (
            "skills kept as written, unchecked: the model `[nlp] model` names cannot be read here, "
            "so its categories are unknown")}]
    with read_session(make_engine(database)) as session:
        assert session.exec(select(Rep.skills)).one() == ["warranty", "returns_de"]

    result = CliRunner().invoke(app, ["chat", "help"])
    assert result.exit_code == 0, result.output
    assert "find" in result.stdout


def test_regression_a_rep_rapport_toml_defines_is_changed_there_not_by_an_import(
    database: str, tmp_path: Path
) -> None:
    """`import reps` made Karin (a [[reps]] entry) role rep, team support and said `1 updated` on
    every run; the next command's start-up set her back to manager, sales. rapport.toml wins."""
    (tmp_path / "rapport.toml").write_text(
        '[[reps]]\nname = "Karin"\nemail = "karin@shop.example"\nrole = "manager"\nteam = "sales"\n', encoding="utf-8")
    runtime.cache_clear()
    reps = tmp_path / "reps.csv"
    reps.write_text("name,email,role,team\nKarin,karin@shop.example,rep,support\n"
                    "Walt,walt@shop.example,rep,support\n", encoding="utf-8")

    for imported, unchanged in ((1, 1), (0, 2)):  # the same answer again: nothing changed
        result = CliRunner().invoke(app, ["import", "reps", str(reps), "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert (report["imported"], report["updated"], report["unchanged"]) == (imported, 0, unchanged)
        assert report["warnings"] == [
            {"line": 2, "warning": "karin@shop.example is defined in rapport.toml: change it there "
                                   "(left as it is: role, team)"}]
    with read_session(make_engine(database)) as session:
        roles = {r.email: (r.role, r.team) for r in session.exec(select(Rep))}
    assert roles == {"karin@shop.example": ("manager", "sales"), "walt@shop.example": ("rep", "support")}


def test_a_misspelt_column_exits_2_and_says_what_was_meant(database: str, tmp_path: Path) -> None:
    path = tmp_path / "typos.csv"
    path.write_text("first_name,email,phnoe\nAnna,anna@berg.example,+46 8 123\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["import", "contacts", str(path)], env={"COLUMNS": "80"})
    assert result.exit_code == 2, result.output
    assert "1 imported" in result.stdout
    text = " ".join(result.stdout.split())
    assert "Misspelt? 'phnoe': did you mean 'phone'? Rename the column and import again" in text
    assert max(map(len, result.stdout.splitlines())) <= 80


def test_regression_our_orders_export_imports_as_it_is(database: str, tmp_path: Path) -> None:
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("email,company\nzuzana@dunaj.example,Dunaj Účtovníctvo s.r.o.\n", encoding="utf-8")
    orders = tmp_path / "orders.csv"
    orders.write_text("order_id,email,amount,ordered_on\nSO-1,zuzana@dunaj.example,12.50,2025-05-01\n",
                      encoding="utf-8")
    for kind, path in (("contacts", contacts), ("orders", orders)):
        assert CliRunner().invoke(app, ["import", kind, str(path)]).exit_code == 0
    exported = tmp_path / "o.csv"
    result = CliRunner().invoke(app, ["export", "orders", "--format", "csv"])
    exported.write_text(result.stdout, encoding="utf-8")
    # was: every row rejected (the export's contact_email and company were no import's names)
    again = CliRunner().invoke(app, ["import", "orders", str(exported), "--dry-run", "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["unchanged"] == 1
