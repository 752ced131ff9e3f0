"""`rapport import contacts` speed on a HubSpot-shaped export, on SQLite and PostgreSQL.

    python -m bench.bench_import                      # 100,000 contacts, both databases
    python -m bench.bench_import --rows 20000 --db sqlite

Generates one contacts export with HubSpot's column labels (every lifecycle stage and
lead status, owners by full name, ~10,000 companies, a few opt-outs), then times, on an
empty store, the first import and a re-import of the same file (nothing changes).
The baseline, in the same run, is reading the file with the csv module (DictReader).
Target: at least 5,000 rows/s for the first import on both databases.
PostgreSQL runs in a schema of its own that is dropped afterwards.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import tempfile
import time
from pathlib import Path

from sqlalchemy.engine import Engine

from bench.processes import postgres_schema
from store.db import make_engine, session_scope, upgrade
from store.importing import import_csv
from store.reps import upsert_rep

HEADER = ["Record ID", "First Name", "Last Name", "Email", "Phone Number", "Mobile Phone Number", "Company Name",
          "Job Title", "Lifecycle Stage", "Lead Status", "Contact owner", "Create Date", "Last Activity Date",
          "City", "Country/Region", "Unsubscribed from all email"]
STAGES = ["Subscriber", "Lead", "Marketing Qualified Lead", "Sales Qualified Lead", "Opportunity", "Customer",
          "Evangelist", "Other"]
STATUSES = ["", "New", "Open", "In Progress", "Open Deal", "Unqualified", "Attempted to Contact", "Connected",
            "Bad Timing"]
FIRST = ["Jan", "Petr", "Eva", "Anna", "Björn", "Åsa", "Jürgen", "Zoë", "Łukasz", "Søren", "Marie", "Lucía"]
LAST = ["Novák", "Öberg", "Weiß", "Kowalski", "Dvořák", "Lindqvist", "Hauser", "Martínez", "Nagy", "Horvat"]
OWNERS = ["Alice Andersson", "Bob Berg", "Carla Costa", "Dan Dvořák", "Eva Ek"]


def generate(path: Path, rows: int, rng: random.Random) -> None:
    companies = max(1, rows // 10)
    with path.open("w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for i in range(rows):
            first, last, company = rng.choice(FIRST), rng.choice(LAST), rng.randrange(companies)
            free = rng.random() < 0.2
            domain = "gmail.com" if free else f"company{company}.example"
            writer.writerow([
                str(1000 + i), first, last, f"person{i}@{domain}", f"+46 70 {i:07d}",
                f"+46 73 {i:07d}" if rng.random() < 0.3 else "", "" if free else f"Company {company} AB",
                rng.choice(["CEO", "Buyer", "Engineer", ""]), rng.choice(STAGES), rng.choice(STATUSES),
                rng.choice(OWNERS), "2025-01-02 10:00", "2026-03-04 11:00", "Brno", "Czech Republic",
                "true" if rng.random() < 0.05 else "false",
            ])


def baseline(path: Path) -> float:
    """Seconds to read every row of the file with the csv module."""
    started = time.perf_counter()
    with path.open(newline="", encoding="utf-8-sig") as handle:
        count = sum(1 for _ in csv.DictReader(handle))
    assert count > 0
    return time.perf_counter() - started


def measure(engine: Engine, label: str, path: Path, rows: int, csv_seconds: float) -> None:
    upgrade(engine)
    with session_scope(engine) as session:
        for i, name in enumerate(OWNERS):
            upsert_rep(session, {"name": name, "email": f"owner{i}@bench.example"})
    for run in ("first import", "re-import"):
        started, cpu = time.perf_counter(), time.process_time()
        report = import_csv(engine, "contacts", path, categories=(), configured_reps=())  # as `rapport import contacts`: no skills
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert not report.rejected, report.rejected[:3]
        print(f"{label:<11} {run:<13} {seconds:7.1f} s {rows / seconds:9,.0f} rows/s   "
              f"{seconds / csv_seconds:5.0f}x the csv module   (our process's CPU: {cpu:.1f} s, "
              f"{rows / cpu:,.0f} rows/s; {report.imported:,} imported, {report.unchanged:,} unchanged)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--postgres-url", help="default: 127.0.0.1:5432/test, else a private cluster")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hubspot-contacts.csv"
        generate(path, args.rows, random.Random(16))
        csv_seconds = baseline(path)
        print(f"{args.rows:,} HubSpot-shaped contacts, {path.stat().st_size / 1e6:.1f} MB; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"{'csv module':<25} {csv_seconds:7.1f} s {args.rows / csv_seconds:9,.0f} rows/s   (baseline)")
        if args.db in ("sqlite", "both"):
            engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
            measure(engine, "SQLite", path, args.rows, csv_seconds)
            engine.dispose()
        if args.db in ("postgres", "both"):
            with postgres_schema(args.postgres_url) as url:
                engine = make_engine(url)
                measure(engine, "PostgreSQL", path, args.rows, csv_seconds)
                engine.dispose()


if __name__ == "__main__":
    main()
