"""`rapport import`: the summary names ignored columns and warnings; the exit status says whether
every row landed (0) or some were rejected (2, the good rows still land)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rapport.cli.main import app

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
    assert report["ignored_columns"] == ["Create Date", "Last Activity Date", "City", "Country/Region"]


def test_help_says_what_the_exit_status_means() -> None:
    for args in (["import", "--help"], ["import", "contacts", "--help"]):
        result = CliRunner().invoke(app, args, env={"COLUMNS": "80"})
        assert result.exit_code == 0
        text = " ".join(result.stdout.replace("│", " ").split())
        assert "0 when every row landed, 2 when some" in text
