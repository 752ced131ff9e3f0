"""Bulk inserts: many rows in one go, their new ids handed back in row order."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import select

from store.db import COPY_FROM, insert_rows, read_session, session_scope
from store.models import Company, company_name_key
from store.types import utcnow


def test_insert_rows_returns_the_ids_in_row_order_whatever_columns_each_row_has(engine: Engine) -> None:
    now = utcnow()
    stamps = {"created_at": now, "updated_at": now}
    rows = [
        {"name": name, "name_key": company_name_key(name), **more, **stamps}
        for name, more in [("Alfa AB", {"kind": "customer"}), ("Beta s.r.o.", {"kind": "customer", "country": "SK"}),
                           ("Gamma GmbH", {"kind": "partner"}), ("Delta Kft.", {"kind": "prospect", "country": "HU"})]
    ]
    with session_scope(engine) as session:
        # A pending object and rows from an earlier call share the table: no id is taken twice.
        session.add(Company(name="Pending Oy"))
        first = insert_rows(session, Company, rows[:1])
        ids = insert_rows(session, Company, rows[1:])
    with read_session(engine) as session:
        companies = {company.id: company for company in session.exec(select(Company))}
    assert len(companies) == 5
    assert [companies[i].name for i in first + ids] == [row["name"] for row in rows]
    assert [companies[i].country for i in first + ids] == [None, "SK", None, "HU"]


def test_insert_rows_of_nothing_does_nothing(engine: Engine) -> None:
    with session_scope(engine) as session:
        assert insert_rows(session, Company, []) == []


def test_many_rows_keep_their_order_and_columns_also_when_postgresql_copies_them(engine: Engine) -> None:
    # from COPY_FROM rows PostgreSQL takes them by COPY with ids drawn from the sequence
    now = utcnow()
    rows = [{"name": f"Firm {i}", "name_key": f"firm {i}", "kind": "customer", "created_at": now, "updated_at": now,
             **({"country": "CZ"} if i % 3 == 0 else {})} for i in range(COPY_FROM + 50)]
    with session_scope(engine) as session:
        ids = insert_rows(session, Company, rows)
        session.add(Company(name="Later Oy"))
    with read_session(engine) as session:
        companies = {company.id: company for company in session.exec(select(Company))}
    assert len(companies) == len(rows) + 1
    assert [(companies[i].name, companies[i].country) for i in ids] == [
        (row["name"], row.get("country")) for row in rows
    ]
