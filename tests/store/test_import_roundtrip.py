"""Our own exports import as they are: a re-import of the same file changes nothing, and into a
fresh database it makes the same records (docs/imports.md). Company names match alike on SQLite
and PostgreSQL, whatever their script. A misspelt column is named with the one meant."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from store.db import make_engine, read_session, session_scope, upgrade
from store.exporting import FIELDS, export_rows, write_csv
from store.importing import misspelt_columns, read_rows
from store.models import Company, CompanyDomain, Contact, ContactEmail, Order
from store.reps import upsert_rep
from tests.imports import import_builtin

CREATED = datetime(2025, 3, 4, 10, 30, tzinfo=UTC)
# Every export that has an import, in the order a fresh database takes them.
ROUND_TRIPS = ("companies", "contacts", "orders")
FIXTURES = Path(__file__).parent.parent / "fixtures" / "csv"
FIXTURE_ENTITIES = (("orders", "orders"), ("reps", "reps"), ("compan", "companies"), ("accounts", "companies"))


def _company_names(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return sorted(session.exec(select(Company.name)).all())


def _records(engine: Engine) -> None:
    """A rep, two companies (one of two domains, one of none), a contact of two addresses, and
    an order of hers and one of a company alone (our export names it, as it has no domain)."""
    with session_scope(engine) as session:
        rep, _ = upsert_rep(session, {"name": "Alice Andersson", "email": "alice@rapport.example"})
        dunaj = Company(name="Dunaj Účtovníctvo s.r.o.", industry="Accounting", country="SK",
                        owner_id=rep.id, created_at=CREATED)
        ostgota = Company(name="Östgöta Kök AB", industry="Food", kind="partner", created_at=CREATED)
        session.add_all([dunaj, ostgota])
        session.flush()
        session.add_all([CompanyDomain(company_id=dunaj.id, domain="dunaj.example"),  # type: ignore[arg-type]
                         CompanyDomain(company_id=dunaj.id, domain="dunaj-uct.example")])  # type: ignore[arg-type]
        zuzana = Contact(name="Zuzana Ďurišová", kind="customer", stage="post_purchase", company_id=dunaj.id,
                         phone="+421 2 1234 5678", title="CFO", language="sk", created_at=CREATED)
        session.add(zuzana)
        session.flush()
        session.add_all([ContactEmail(contact_id=zuzana.id, email="zuzana@dunaj.example", is_primary=True),  # type: ignore[arg-type]
                         ContactEmail(contact_id=zuzana.id, email="zuzka@gmail.example", is_primary=False)])  # type: ignore[arg-type]
        session.add_all([
            Order(external_id="SO-1", contact_id=zuzana.id, company_id=dunaj.id, amount=Decimal("1200.50"),
                  currency="EUR", ordered_on=date(2025, 5, 1), product_category="audit", status="completed"),
            Order(external_id="SO-2", company_id=ostgota.id, amount=Decimal("80.00"), currency="SEK",
                  ordered_on=date(2025, 6, 2), status="completed"),
        ])


def _export(engine: Engine, kind: str, path: Path) -> list[dict[str, Any]]:
    """`kind` exported as `rapport export KIND --format csv` writes it; its rows without their ids
    (a database's own), for comparing."""
    with read_session(engine) as session, path.open("w", encoding="utf-8", newline="") as out:
        write_csv(export_rows(session, kind), FIELDS[kind], out)
    with read_session(engine) as session:
        return [{k: v for k, v in row.items() if k != "id"} for row in export_rows(session, kind)]


def test_regression_a_name_with_a_non_ascii_capital_finds_its_company_again(engine: Engine, tmp_path: Path) -> None:
    # SQLite's lower() lowers ASCII only: each import below used to add another Östgöta Kök AB
    companies = tmp_path / "oc.csv"
    companies.write_text("name,industry\nÖstgöta Kök AB,Food\n", encoding="utf-8")
    assert import_builtin(engine, "companies", companies).imported == 1
    again = import_builtin(engine, "companies", companies)
    assert (again.imported, again.unchanged) == (0, 1)
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("email,company\nanna@ostgota.example,ÖSTGÖTA KÖK AB\n", encoding="utf-8")
    assert import_builtin(engine, "contacts", contacts).imported == 1
    assert _company_names(engine) == ["Östgöta Kök AB"]


@pytest.mark.parametrize("kind", ROUND_TRIPS)
def test_a_reimport_of_our_own_export_changes_nothing(engine: Engine, tmp_path: Path, kind: str) -> None:
    _records(engine)
    path = tmp_path / f"{kind}.csv"
    before = _export(engine, kind, path)
    report = import_builtin(engine, kind, path)
    assert (report.imported, report.updated, report.rejected) == (0, 0, [])
    assert report.unchanged == len(before)
    assert _export(engine, kind, tmp_path / "again.csv") == before
    assert _company_names(engine) == ["Dunaj Účtovníctvo s.r.o.", "Östgöta Kök AB"]


def test_our_exports_make_the_same_records_in_a_fresh_database(engine: Engine, tmp_path: Path) -> None:
    _records(engine)
    fresh = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    upgrade(fresh)
    with session_scope(fresh) as session:  # reps have no export: a team imports them from its own file
        upsert_rep(session, {"name": "Alice Andersson", "email": "alice@rapport.example"})
    try:
        for kind in ROUND_TRIPS:
            exported = _export(engine, kind, tmp_path / f"{kind}.csv")
            report = import_builtin(fresh, kind, tmp_path / f"{kind}.csv")
            assert (report.imported, report.rejected) == (len(exported), []), kind
            assert _export(fresh, kind, tmp_path / "fresh.csv") == exported, kind
    finally:
        fresh.dispose()


def test_a_misspelt_header_is_named_with_the_column_meant(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "typos.csv"
    path.write_text("frist_name,last_name,email,company_nmae,phnoe,Lifecycle Stag,Favourite Colour\n"
                    "Anna,Berg,anna@berg.example,Berg AB,+46 8 123,customer,green\n", encoding="utf-8")
    report = import_builtin(engine, "contacts", path)
    assert report.imported == 1 and report.complete and not report.clean  # the row lands; a person must look
    assert report.misspelt == {"frist_name": "first_name", "company_nmae": "company_name", "phnoe": "phone",
                               "Lifecycle Stag": "lifecycle stage"}
    assert report.ignored == [*report.misspelt, "Favourite Colour"]  # no field is near it: merely ignored


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.csv")), ids=lambda path: path.name)
def test_a_crm_export_s_extra_columns_are_no_typos(path: Path) -> None:
    # `Mailing City` beside `Mailing Country`, `Lead Source` beside `Lead Status`: merely ignored
    entity = next((entity for word, entity in FIXTURE_ENTITIES if word in path.name), "contacts")
    header, columns, _ = read_rows(path, entity)
    assert misspelt_columns(header, columns, entity) == {}
