"""Spreadsheet-safe CSV cells (OWASP CSV injection): neutralised on export, restored on import."""

from __future__ import annotations

import csv
import io

from hypothesis import given
from hypothesis import strategies as st

from store.exporting import FORMULA_STARTS, neutralise_cell, restore_cell, write_csv


@given(st.text())
def test_restore_is_the_exact_inverse_of_neutralise(value: str) -> None:
    assert restore_cell(neutralise_cell(value)) == value


@given(st.text(alphabet="=+-@\t\r'\"0123456789.,ab|!( )", min_size=1))
def test_no_neutralised_cell_starts_a_formula(value: str) -> None:
    cell = neutralise_cell(value)
    assert not cell.startswith(FORMULA_STARTS) or cell.lstrip("+-").replace(".", "", 1).isdigit()


def test_the_attacks_of_the_campaign_are_written_as_text() -> None:
    out = io.StringIO()
    rows = [{"name": '=HYPERLINK("http://evil","x")', "phone": "=1+1", "subject": "+cmd|' /C calc'!A0",
             "title": "@SUM(A1)", "note": "\tx", "amount": "-12.50", "tags": ["=1"]}]
    assert write_csv(rows, list(rows[0]), out, bom=False) == 1
    read = next(csv.DictReader(io.StringIO(out.getvalue())))
    assert read == {"name": '\'=HYPERLINK("http://evil","x")', "phone": "'=1+1", "subject": "'+cmd|' /C calc'!A0",
                    "title": "'@SUM(A1)", "note": "'\tx", "amount": "-12.50", "tags": '["=1"]'}


def test_csv_starts_with_a_bom_unless_asked_not_to() -> None:
    with_bom, without = io.StringIO(), io.StringIO()
    write_csv([{"name": "Šťastný"}], ["name"], with_bom)
    write_csv([{"name": "Šťastný"}], ["name"], without, bom=False)
    assert with_bom.getvalue() == "\ufeffname\r\nŠťastný\r\n"
    assert without.getvalue() == "name\r\nŠťastný\r\n"
