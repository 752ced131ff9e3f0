"""`/crm find` server-side latency with many contacts and messages, on SQLite and PostgreSQL.

    python bench/bench_find.py                       # 100,000 contacts, 1,000,000 messages, both databases
    python bench/bench_find.py --contacts 5000 --messages 20000 --db sqlite   # a quick run

Times the whole handler a Slack request runs (`bot.commands.run_command(ctx, "find ...")`:
the search, the ranking and the card or pick list), for queries with accents
removed, typos, company names, emails and phone numbers. Prints p50 and p95
and their ratio to a primary-key look-up measured in the same run (the baseline).
PostgreSQL runs in a schema of its own that is dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, SQLModel

from bot.commands import BotOptions, Ctx, run_command
from store.db import make_engine, session_scope, upgrade
from store.models import Company, Contact, ContactEmail, Message, Rep, company_name_key
from store.search import refresh_index
from store.validation import CATEGORIES

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
FIRST = ["Jan", "Petr", "Eva", "Anna", "Björn", "Åsa", "Jürgen", "Zoë", "Łukasz", "Søren", "Marie", "Lucía", "José",
         "Chloé", "Ines", "Karin", "Olof", "Tomáš", "Jiří", "Zuzana", "Mikael", "Sanna", "Dieter", "Agnès", "Noël"]
SYLLABLES = ["šťa", "stn", "no", "vák", "berg", "ström", "son", "mül", "ler", "dvo", "řák", "kow", "ski", "ová",
             "lind", "qvist", "hau", "ser", "fon", "tai", "ne", "ros", "sí", "mar", "tin", "ez", "ga", "rcí", "a"]
WORDS = ["Acme", "Nordlys", "Fjord", "Baltic", "Alpen", "Danube", "Vltava", "Helios", "Atlas", "Polar", "Gdańsk",
         "Kraków", "Göteborg", "Malmö", "Brno", "Zürich", "Lumen", "Orbit", "Vector", "Nimbus"]
SUFFIX = ["AB", "GmbH", "s.r.o.", "Sp. z o.o.", "AS", "Oy", "SA", "Ltd", "Supplies", "Trading", "Labs"]


def _last_name(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def _ascii(value: str) -> str:
    from store.search import fold

    return fold(value)


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 5:
        return word
    i = rng.randrange(1, len(word) - 1)
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]  # swap two letters


def populate(engine: Engine, contacts: int, messages: int, rng: random.Random) -> list[str]:
    """Fill the database; returns the find queries to time."""
    now = datetime.now(UTC)
    companies = max(1, contacts // 10)
    with session_scope(engine) as session:
        rep = Rep(name="Bench Manager", email="manager@bench.example", role="manager", slack_user_id="UBENCH")
        session.add(rep)
        session.flush()
        company_names = [f"{rng.choice(WORDS)} {rng.choice(WORDS)} {rng.choice(SUFFIX)} {i}" for i in range(companies)]
        session.execute(insert(Company), [{"id": i + 1, "name": name, "name_key": company_name_key(name),
                                           "kind": "customer", "created_at": now, "updated_at": now}
                                          for i, name in enumerate(company_names)])
        people = []
        for i in range(contacts):
            first, last = rng.choice(FIRST), _last_name(rng)
            people.append((f"{first} {last}", f"{_ascii(first)}.{_ascii(last)}{i}@{_ascii(rng.choice(WORDS))}.example",
                           f"+46 70 {i:07d}"))
        _insert_chunks(session, Contact, [
            {"id": i + 1, "name": name, "kind": "customer", "stage": "need", "company_id": (i % companies) + 1,
             "phone": phone, "post_purchase_followup": True, "created_at": now, "updated_at": now}
            for i, (name, _, phone) in enumerate(people)])
        _insert_chunks(session, ContactEmail, [
            {"id": i + 1, "contact_id": i + 1, "email": email, "is_primary": True, "bouncing": False}
            for i, (_, email, _) in enumerate(people)])
        _insert_messages(session, people, messages, now, rng)
    with session_scope(engine) as session:
        refresh_index(session)
    return _queries(people, company_names, rng)


def _insert_chunks(session: Session, model: type[SQLModel], rows: list[dict[str, object]], size: int = 20000) -> None:
    for start in range(0, len(rows), size):
        session.execute(insert(model), rows[start : start + size])


def _insert_messages(session: Session, people: list[tuple[str, str, str]], count: int, now: datetime,
                     rng: random.Random) -> None:
    batch: list[dict[str, object]] = []
    for i in range(count):
        contact = rng.randrange(len(people))
        batch.append({
            "id": i + 1, "contact_id": contact + 1, "direction": "inbound", "message_id": f"<{i}@bench>",
            "references": [], "to": [], "cc": [], "from_email": people[contact][1], "subject": f"Order {i}",
            "received_at": now - timedelta(minutes=i), "text": "", "new_text": "", "headers": {},
            "attachments": [], "size": 0, "is_automatic": False, "entities": [], "parse_problems": [],
        })
        if len(batch) == 20000:
            session.execute(insert(Message), batch)
            batch = []
    if batch:
        session.execute(insert(Message), batch)


def _queries(people: list[tuple[str, str, str]], companies: list[str], rng: random.Random) -> list[str]:
    queries = []
    for _ in range(60):
        name, email, phone = rng.choice(people)
        first, last = name.split(" ", 1)
        queries += [_ascii(last), f"{first} {last}", _typo(_ascii(last), rng), email]
        queries.append(phone.replace(" ", "")[-9:])
    queries += [" ".join(rng.choice(companies).split()[:2]) for _ in range(30)]
    rng.shuffle(queries)
    return queries


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _time(action: Callable[[], object], runs: list[float]) -> None:
    start = time.perf_counter()
    action()
    runs.append((time.perf_counter() - start) * 1000)


def measure(engine: Engine, queries: list[str], contacts: int, rng: random.Random) -> tuple[list[float], list[float]]:
    """(find latencies, primary-key look-up latencies) in milliseconds, each in a fresh transaction."""
    options = BotOptions(categories=CATEGORIES)
    finds: list[float] = []
    baseline: list[float] = []
    for query in queries[:5]:  # warm caches, as a running server would be
        _find(engine, options, query)
    for query in queries:
        _time(lambda q=query: _find(engine, options, q), finds)  # type: ignore[misc]
        contact_id = rng.randrange(1, contacts + 1)
        _time(lambda c=contact_id: _lookup(engine, c), baseline)  # type: ignore[misc]
    return finds, baseline


def _find(engine: Engine, options: BotOptions, query: str) -> None:
    with session_scope(engine) as session:
        rep = session.get(Rep, 1)
        assert rep is not None
        run_command(Ctx(session, rep, datetime.now(UTC), options), f"find {query}")


def _lookup(engine: Engine, contact_id: int) -> None:
    with session_scope(engine) as session:
        session.get(Contact, contact_id)


@contextmanager
def sqlite_engine(keep: Path | None = None) -> Iterator[Engine]:
    if keep is not None:
        engine = make_engine(f"sqlite:///{keep}")
        yield engine
        engine.dispose()
        return
    with tempfile.TemporaryDirectory(prefix="bench-find-") as directory:
        engine = make_engine(f"sqlite:///{Path(directory) / 'bench.db'}")
        yield engine
        engine.dispose()


@contextmanager
def postgres_engine(url: str) -> Iterator[Engine]:
    schema = f"bench_{secrets.token_hex(4)}"
    admin = make_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    scoped = make_url(admin.url.render_as_string(hide_password=False)).update_query_dict(
        {"options": f"-csearch_path={schema}"})
    engine = make_engine(scoped.render_as_string(hide_password=False))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def run(name: str, engine: Engine, contacts: int, messages: int, seed: int, saved: Path | None = None) -> None:
    rng = random.Random(seed)
    upgrade(engine)
    started = time.perf_counter()
    if saved is not None and saved.exists():
        queries = json.loads(saved.read_text())
        rng.random()
    else:
        queries = populate(engine, contacts, messages, rng)
        if saved is not None:
            saved.write_text(json.dumps(queries))
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    print(f"{name}: {contacts:,} contacts, {messages:,} messages loaded and indexed in "
          f"{time.perf_counter() - started:.1f} s; {len(queries)} queries")
    finds, baseline = measure(engine, queries, contacts, rng)
    base = statistics.median(baseline)
    p50, p95 = _percentile(finds, 0.5), _percentile(finds, 0.95)
    print(f"  baseline (primary-key look-up): p50 {base:.2f} ms")
    print(f"  find: p50 {p50:.1f} ms ({p50 / base:.0f}x baseline), p95 {p95:.1f} ms ({p95 / base:.0f}x baseline), "
          f"max {max(finds):.1f} ms; target p95 <= 100 ms: {'met' if p95 <= 100 else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--pg-url", default=PG_URL, help=f"PostgreSQL database to use a temporary schema of ({PG_URL})")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sqlite-file", type=Path, help="keep the SQLite database here and reuse it next time")
    args = parser.parse_args()
    if args.db in ("sqlite", "both"):
        saved = args.sqlite_file.with_suffix(".queries.json") if args.sqlite_file else None
        with sqlite_engine(args.sqlite_file) as engine:
            run("SQLite", engine, args.contacts, args.messages, args.seed, saved)
    if args.db in ("postgres", "both"):
        with postgres_engine(args.pg_url) as engine:
            run("PostgreSQL", engine, args.contacts, args.messages, args.seed)


if __name__ == "__main__":
    main()
