"""Bulk inserts: many rows in one go, their new ids handed back in row order."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import select

from store.db import insert_rows, read_session, session_scope
from store.models import Company
from store.types import utcnow


def test_insert_rows_returns_the_ids_in_row_order_whatever_columns_each_row_has(engine: Engine) -> None:
    now = utcnow()
    stamps = {"created_at": now, "updated_at": now}
    rows = [
        {"name": "Alfa AB", "kind": "customer", **stamps},
        {"name": "Beta s.r.o.", "kind": "customer", "country": "SK", **stamps},
        {"name": "Gamma GmbH", "kind": "partner", **stamps},
        {"name": "Delta Kft.", "kind": "prospect", "country": "HU", **stamps},
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
