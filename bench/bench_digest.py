"""Benchmark: a manager's digest over a large store, on SQLite and PostgreSQL.

    python bench/bench_digest.py              # 1,000,000 messages, 100,000 contacts, 200,000 orders
    python bench/bench_digest.py --scale 0.1  # a tenth of that, for a quick run

Generates the store with bulk inserts (executemany on SQLite, COPY on
PostgreSQL; PostgreSQL in a dedicated schema of database `test` on
127.0.0.1:5432, dropped afterwards), then times `compute_digest` (best of 5)
for a manager whose team has 20 reps (daily and weekly) and for an admin
(everyone), and prints each time with its ratio to a full scan,
`SELECT count(*) FROM message`, measured in the same run, with the indexes of
store/models.py only. Target: <= 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Integer, Numeric, Table, Text, text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, SQLModel, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from store.db import make_engine, upgrade
from store.digest import compute_digest, period_bounds
from store.models import Rep
from store.segments import SegmentParams
from store.types import UTCDateTime

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
DAY = date(2026, 11, 22)
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CATEGORIES = ["order", "cancellation", "delivery", "billing", "refund", "complaint", "feedback", "account",
              "general", "sales", "partnership", None]
LANGUAGES = ["en", "de", "fr", "sv", "es", "pl", None]
CURRENCIES = ["EUR"] * 8 + ["USD", "GBP", "SEK"]
TEAM_SIZE = 20
Row = dict[str, Any]


# --------------------------------------------------------------------------- data


def _moment(rng: random.Random, days: float) -> datetime:
    return NOW - timedelta(seconds=rng.random() * days * 86400)


def reps() -> Iterator[Row]:
    yield {"id": 1, "name": "Manager", "email": "manager@bench.example", "role": "manager", "team": "t1",
           "timezone": "Europe/Stockholm", "digest_via": ["email"]}
    yield {"id": 2, "name": "Admin", "email": "admin@bench.example", "role": "admin", "team": None}
    for i in range(2 * TEAM_SIZE):
        yield {"id": i + 3, "name": f"Rep {i:02d}", "email": f"rep{i}@bench.example", "team": f"t{i % 2 + 1}"}


def companies(n: int, rng: random.Random) -> Iterator[Row]:
    for i in range(1, n + 1):
        yield {"id": i, "name": f"Company {i}", "kind": "partner" if i % 50 == 0 else "customer",
               "owner_id": rng.randint(3, 2 + 2 * TEAM_SIZE), "created_at": _moment(rng, 1000)}


def contacts(n: int, n_companies: int, rng: random.Random) -> Iterator[Row]:
    stages = ["need", "information_search", "evaluation", "purchase", "post_purchase"]
    for i in range(1, n + 1):
        roll = rng.random()
        kind = "customer" if roll < 0.7 else "prospect" if roll < 0.95 else "partner"
        yield {"id": i, "name": f"Contact {i}", "kind": kind, "stage": rng.choice(stages),
               "company_id": rng.randint(1, n_companies) if rng.random() < 0.6 else None,
               "owner_id": rng.randint(3, 2 + 2 * TEAM_SIZE) if rng.random() < 0.8 else None,
               "post_purchase_followup": True, "created_at": _moment(rng, 1000)}


def conversations_and_messages(
    n_conversations: int, n_messages: int, n_contacts: int, rng: random.Random
) -> tuple[list[Row], list[Row], list[Row]]:
    conversations: list[Row] = []
    messages: list[Row] = []
    assignments: list[Row] = []
    per = n_messages / n_conversations
    message_id = 0
    for i in range(1, n_conversations + 1):
        opened = _moment(rng, 365)
        automatic = rng.random() < 0.05
        owner = None if automatic or rng.random() < 0.05 else rng.randint(3, 2 + 2 * TEAM_SIZE)
        answered = None if automatic or rng.random() < 0.1 else opened + timedelta(hours=rng.expovariate(1 / 3))
        if answered is not None and answered > NOW:
            answered = None
        recent = (NOW - opened).days < 14
        status = "open" if answered is None and recent else "closed" if not recent else "answered"
        contact = rng.randint(1, n_contacts)
        conversations.append({
            "id": i, "subject": f"Subject {i}", "contact_id": contact, "owner_id": owner,
            "category": rng.choice(CATEGORIES), "language": rng.choice(LANGUAGES), "status": status,
            "is_automatic": automatic, "opened_at": opened, "first_response_at": answered,
            "answered_at": answered, "sla_due_at": opened + timedelta(hours=8), "last_message_at": opened,
        })
        if owner is not None:
            assignments.append({"id": len(assignments) + 1, "conversation_id": i, "owner_id": owner,
                                "rule": "least_busy", "reason": "bench", "assigned_at": opened})
        count = max(1, round(per + rng.uniform(-1, 1)))
        at = opened
        for k in range(count):
            message_id += 1
            outbound = k % 2 == 1 and not automatic
            if k == 1 and answered is not None:
                at = answered
            elif k > 0:
                at = at + timedelta(hours=rng.expovariate(1 / 10))
            messages.append({
                "id": message_id, "conversation_id": i, "contact_id": None if outbound else contact,
                "direction": "outbound" if outbound else "inbound", "message_id": f"<{message_id}@bench>",
                "subject": f"Subject {i}", "received_at": min(at, NOW), "is_automatic": automatic,
                "automatic_reason": "auto_reply" if automatic else None, "text": "Hello, about my order.",
                "new_text": "Hello, about my order.", "size": 2048,
            })
            if message_id >= n_messages:
                break
        if message_id >= n_messages:
            break
    return conversations, messages, assignments


def activities(n: int, n_contacts: int, rng: random.Random) -> Iterator[Row]:
    kinds = ["call", "call", "email", "meeting", "note", "slack"]
    for i in range(1, n + 1):
        at = _moment(rng, 365)
        yield {"id": i, "kind": rng.choice(kinds), "contact_id": rng.randint(1, n_contacts),
               "rep_id": rng.randint(3, 2 + 2 * TEAM_SIZE), "occurred_at": at, "created_at": at}


def followups(n: int, n_contacts: int, rng: random.Random) -> Iterator[Row]:
    for i in range(1, n + 1):
        due = _moment(rng, 365) + timedelta(days=30)
        done = rng.random() < 0.7 and due < NOW
        yield {"id": i, "contact_id": rng.randint(1, n_contacts), "rep_id": rng.randint(3, 2 + 2 * TEAM_SIZE),
               "due_at": due, "status": "done" if done else "open", "done_at": due if done else None,
               "created_at": due - timedelta(days=7)}


def orders(n: int, n_contacts: int, rng: random.Random) -> Iterator[Row]:
    # a third of the contacts buy; most buyers come back, so there are lapsed customers to find
    buyers = max(1, n_contacts // 3)
    for i in range(1, n + 1):
        yield {"id": i, "external_id": f"o{i}", "contact_id": rng.randint(1, buyers),
               "amount": Decimal(rng.randint(1000, 500000)) / 100, "currency": rng.choice(CURRENCIES),
               "ordered_on": (NOW - timedelta(days=rng.randint(0, 1095))).date(),
               "status": "cancelled" if rng.random() < 0.03 else "completed"}


# --------------------------------------------------------------------------- loading


def _default(column: Any) -> Any:
    if isinstance(column.type, JSON):
        return {} if column.name == "headers" else []
    if isinstance(column.type, Boolean):
        return column.name in ("active", "post_purchase_followup")
    if isinstance(column.type, UTCDateTime):
        return NOW
    if isinstance(column.type, Integer):
        return {"capacity": 30, "digest_hour": 8}.get(column.name, 0)
    if isinstance(column.type, Numeric):
        return Decimal(0)
    if isinstance(column.type, Date):
        return NOW.date()
    if isinstance(column.type, Text):
        return ""
    return {"timezone": "UTC", "working_hours": "Mon-Fri 09:00-17:00", "role": "rep", "kind": "customer",
            "stage": "need", "status": "open", "direction": "inbound", "urgency": "normal", "source": "manual",
            "assigned_by": "rapport", "currency": "EUR"}.get(column.name, "")


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        # SQLAlchemy's SQLite DateTime text format, so range comparisons match
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bool):
        return int(value)
    return value


def _pg_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


def load(engine: Engine, table_name: str, rows: list[Row]) -> int:
    """Bulk-insert rows (dicts of the same shape; missing NOT NULL columns get plain defaults)."""
    table: Table = SQLModel.metadata.tables[table_name]
    given = set().union(*(row.keys() for row in rows[:100]))
    columns = [c for c in table.columns if not c.nullable or c.name in given]
    names = [c.name for c in columns]
    defaults = {c.name: _default(c) for c in columns}
    quoted = ", ".join(f'"{n}"' for n in names)
    count = 0
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "sqlite":
            # a bulk load: a big page cache keeps index maintenance in memory
            for pragma in ("foreign_keys=OFF", "synchronous=OFF", "cache_size=-400000"):
                cursor.execute(f"PRAGMA {pragma}")
            cursor.execute("BEGIN")  # the engine's connections autocommit (isolation_level=None)
            sql = f'INSERT INTO "{table_name}" ({quoted}) VALUES ({", ".join("?" * len(names))})'
            batch: list[tuple[Any, ...]] = []
            for row in rows:
                batch.append(tuple(_sqlite_value(row.get(n, defaults[n])) for n in names))
                if len(batch) >= 50_000:
                    cursor.executemany(sql, batch)
                    count += len(batch)
                    batch.clear()
            cursor.executemany(sql, batch)
            count += len(batch)
        else:
            with cursor.copy(f'COPY "{table_name}" ({quoted}) FROM STDIN') as copy:
                for row in rows:
                    copy.write_row([_pg_value(row.get(n, defaults[n])) for n in names])
                    count += 1
        raw.commit()
    finally:
        raw.close()
    return count


def build(engine: Engine, scale: float, seed: int = 7) -> dict[str, int]:
    rng = random.Random(seed)
    n_messages, n_contacts, n_orders = int(1_000_000 * scale), int(100_000 * scale), int(200_000 * scale)
    n_conversations, n_companies = int(250_000 * scale), int(10_000 * scale)
    conversations, messages, assignments = conversations_and_messages(n_conversations, n_messages, n_contacts, rng)
    plan: list[tuple[str, Callable[[], Iterator[Row] | list[Row]]]] = [
        ("rep", reps),
        ("company", lambda: companies(n_companies, rng)),
        ("contact", lambda: contacts(n_contacts, n_companies, rng)),
        ("conversation", lambda: conversations),
        ("message", lambda: messages),
        ("assignment", lambda: assignments),
        ("activity", lambda: activities(int(200_000 * scale), n_contacts, rng)),
        ("followup", lambda: followups(int(100_000 * scale), n_contacts, rng)),
        ("order", lambda: orders(n_orders, n_contacts, rng)),
    ]
    counts = {}
    for name, rows in plan:
        started = time.perf_counter()
        counts[name] = load(engine, name, list(rows()))
        print(f"  {name}: {counts[name]} rows in {time.perf_counter() - started:.1f} s", flush=True)
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            for name in counts:
                connection.execute(text(f'ANALYZE "{name}"'))
            for name in counts:  # COPY with explicit ids leaves the sequences at 1
                connection.execute(text(f"SELECT setval(pg_get_serial_sequence('\"{name}\"', 'id'), "
                                        f"(SELECT max(id) FROM \"{name}\"))"))
        else:
            connection.execute(text("ANALYZE"))
    return counts


# --------------------------------------------------------------------------- timing


def best_of(runs: int, action: Callable[[], Any]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def measure(engine: Engine, label: str) -> list[tuple[str, float]]:
    params = SegmentParams()

    def digest(email: str, period: str) -> Callable[[], Any]:
        def run() -> Any:
            with Session(engine) as session:
                manager = session.exec(select(Rep).where(Rep.email == email)).one()
                start, end = period_bounds(period, DAY, manager.timezone)
                return compute_digest(session, manager=manager, period=period,  # type: ignore[arg-type]
                                      start=start, end=end, params=params, now=NOW)
        return run

    def full_scan() -> Any:
        with engine.connect() as connection:
            return connection.execute(text("SELECT count(*) FROM message")).scalar_one()

    scan = best_of(5, full_scan)
    results = [("full scan: SELECT count(*) FROM message", scan)]
    for name, email, period in [("team of 20, day", "manager@bench.example", "day"),
                                ("team of 20, week", "manager@bench.example", "week"),
                                ("everyone (admin), day", "admin@bench.example", "day")]:
        results.append((f"digest {name}", best_of(5, digest(email, period))))
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"\n{label} (load average {load} on {os.cpu_count()} CPUs: other work slows every figure alike)")
    for name, seconds in results:
        verdict = "" if name.startswith("full") else f"  {'OK' if seconds <= 2 else 'OVER'} (target 2 s)"
        print(f"  {name:<44} {seconds:8.3f} s   {seconds / scan:7.2f} × full scan{verdict}")
    return results


def run_sqlite(scale: float, keep: Path | None) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-digest-") as directory:
        path = keep or Path(directory) / "bench.db"
        engine = make_engine(f"sqlite:///{path}")
        if not path.exists() or keep is None:
            upgrade(engine)
            started = time.perf_counter()
            build(engine, scale)
            print(f"SQLite: generated in {time.perf_counter() - started:.0f} s")
        measure(engine, "SQLite")
        engine.dispose()


def run_postgres(scale: float, url: str) -> None:
    import psycopg

    schema = f"bench_digest_{secrets.token_hex(4)}"
    parsed = make_url(url)
    admin = dict(host=parsed.host, port=parsed.port, user=parsed.username, password=parsed.password,
                 dbname=parsed.database, autocommit=True)
    with psycopg.connect(**admin) as connection:  # type: ignore[arg-type]
        connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        scoped = parsed.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)
        engine = make_engine(scoped)
        upgrade(engine)
        started = time.perf_counter()
        build(engine, scale)
        print(f"PostgreSQL: generated in {time.perf_counter() - started:.0f} s")
        measure(engine, "PostgreSQL")
        engine.dispose()
    finally:
        with psycopg.connect(**admin) as connection:  # type: ignore[arg-type]
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 1M messages, 100k contacts, 200k orders")
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument("--only", choices=["sqlite", "postgres"], help="run one database only")
    parser.add_argument("--keep-sqlite", type=Path, help="keep the SQLite store in this file (reused if it exists)")
    args = parser.parse_args()
    if args.only != "postgres":
        run_sqlite(args.scale, args.keep_sqlite)
    if args.only != "sqlite":
        run_postgres(args.scale, args.postgres_url)


if __name__ == "__main__":
    main()
