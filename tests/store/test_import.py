"""CSV imports: messy CRM exports land every good row once, and say why bad rows did not."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from store import importing
from store.audit import Actor
from store.db import make_engine, read_session, session_scope, upgrade
from store.importing import ImportReport, import_csv
from store.models import Company, CompanyDomain, Contact, ContactEmail, Order, Rep, SearchTerm
from store.privacy import erase_person
from store.reps import upsert_rep
from store.search import rebuild_index, search_companies, search_contacts
from store.validation import (
    CATEGORIES,
    Invalid,
    check_created_at,
    check_currency,
    check_order_date,
    parse_numeric_date,
)
from tests.imports import import_builtin

FIXTURES = Path(__file__).parent.parent / "fixtures" / "csv"
MESSY = FIXTURES / "hubspot_contacts_messy.csv"
IMPORT_CLOCK = datetime(2026, 11, 20, 13, 0, tzinfo=UTC)


def _add_rep(engine: Engine, email: str = "anna@nordlys.example") -> None:
    with session_scope(engine) as session:
        upsert_rep(session, {"name": "Anna Lind", "email": email})


def test_messy_hubspot_export_lands_good_rows_and_rejects_bad_ones(engine: Engine) -> None:
    _add_rep(engine)
    report = import_builtin(engine, "contacts", MESSY)

    assert report.imported == 5
    assert {(r.line, r.reason) for r in report.rejected} == {
        (6, "no email address"),
        (7, "invalid email address 'broken@@nordiclab.example'"),
    }
    # the same address on lines 2 and 5 merges (later names win, the phone stays); unknown owner: no owner
    assert [w.line for w in report.warnings] == [5, 8]
    assert "line 5 has the same email as line 2" in report.warnings[0].reason and "peter.stastny@tatra-tools.example" in report.warnings[0].reason
    with Session(engine) as session:
        names = set(session.exec(select(Contact.name)).all())
        assert {"Duplicate Peter", "Åsa Öberg", "Jürgen Weiß", "Kovács Júlia", "Mojca Novak, PhD"} == names
        peter = session.exec(
            select(Contact)
            .join(ContactEmail)
            .where(ContactEmail.email == "peter.stastny@tatra-tools.example")
        ).one()
        assert (peter.kind, peter.stage) == ("customer", "post_purchase")
        owner = session.get(Rep, peter.owner_id)
        assert owner is not None and owner.email == "anna@nordlys.example"
        asa = session.exec(select(Contact).where(Contact.name == "Åsa Öberg")).one()
        assert (asa.kind, asa.stage) == ("prospect", "evaluation")
        # a work address gives the company its domain; a free-mail address never does
        domains = set(session.exec(select(CompanyDomain.domain)).all())
        assert "tatra-tools.example" in domains and "gmail.com" not in domains
        jurgen = session.exec(select(Contact).where(Contact.name == "Jürgen Weiß")).one()
        assert jurgen.company_id is None
        # the quoted company name with a ; inside the ;-separated file stays whole
        assert (
            session.exec(select(Company).where(Company.name == "Ljubljana Lab; d.o.o.")).first() is not None
        )


def test_second_import_of_the_same_file_changes_nothing(engine: Engine) -> None:
    _add_rep(engine)
    import_builtin(engine, "contacts", MESSY)
    with Session(engine) as session:
        before = session.exec(select(func.count()).select_from(ContactEmail)).one()
    again = import_builtin(engine, "contacts", MESSY)
    assert (again.imported, again.updated, again.unchanged) == (0, 0, 5)
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(ContactEmail)).one() == before


def test_reimport_with_a_changed_phone_updates_instead_of_duplicating(engine: Engine, tmp_path: Path) -> None:
    first = tmp_path / "a.csv"
    first.write_text("email,name,phone\nx@acme.example,X Person,111\n", encoding="utf-8")
    assert import_builtin(engine, "contacts", first).imported == 1
    first.write_text("email,name,phone\nx@acme.example,X Person,222\n", encoding="utf-8")
    report = import_builtin(engine, "contacts", first)
    assert (report.imported, report.updated) == (0, 1)
    with Session(engine) as session:
        contacts = session.exec(select(Contact)).all()
        assert [c.phone for c in contacts] == ["222"]


def test_orders_reps_and_companies_import_with_their_keys(engine: Engine, tmp_path: Path) -> None:
    reps = tmp_path / "reps.csv"
    reps.write_text(
        "name,email,slack_user_id,role,team,skills,languages,timezone,working_hours,capacity\n"
        "Anna Lind,anna@nordlys.example,U1,manager,sales,sales|partnership,en|sv,Europe/Stockholm,Mon-Fri 08:00-16:00,20\n"
        "Bad Zone,bz@nordlys.example,U2,rep,sales,order,en,Mars/Olympus,Mon-Fri 08:00-16:00,20\n"
        "Bad Skill,bs@nordlys.example,U3,rep,sales,juggling|order,en,UTC,Mon-Fri 08:00-16:00,20\n"
        "Hand Typed,ht@nordlys.example,U4,rep,sales,invoice|payment,en,UTC,08:00-17:00,20\n",
        encoding="utf-8",
    )
    report = import_csv(engine, "reps", reps, categories=CATEGORIES, configured_reps=())
    assert report.imported == 3
    assert [r.line for r in report.rejected] == [3]
    assert "Mars/Olympus" in report.rejected[0].reason
    # regression: an unknown skill dropped the whole rep; now it is left out with a warning
    assert [(w.line, "juggling" in w.reason) for w in report.warnings] == [(4, True)]
    with Session(engine) as session:
        skills = {r.email: r.skills for r in session.exec(select(Rep)).all()}
    assert skills["bs@nordlys.example"] == ["order"]
    assert skills["ht@nordlys.example"] == ["billing"]  # invoice and payment are billing, once

    companies = tmp_path / "companies.csv"
    companies.write_text(
        "name,domain,kind,owner_email\nAcme,https://www.acme.example/,customer,anna@nordlys.example\n",
        encoding="utf-8",
    )
    assert import_builtin(engine, "companies", companies).imported == 1
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("email,name\nbuyer@acme.example,Bea Buyer\n", encoding="utf-8")
    import_builtin(engine, "contacts", contacts)

    orders = tmp_path / "orders.csv"
    orders.write_text(
        "order_id,email,amount,currency,ordered_on\n"
        'NS-1,buyer@acme.example,"1 200,50",EUR,2026-03-01\n'
        "NS-2,buyer@acme.example,99.90,SEK,01.04.2026\n"
        "NS-3,nobody@acme.example,10,EUR,2026-01-01\n"
        "NS-4,buyer@acme.example,ten,EUR,2026-01-01\n"
        "NS-5,buyer@acme.example,10,EUR,03/04/2026\n",
        encoding="utf-8",
    )
    report = import_builtin(engine, "orders", orders)
    assert report.imported == 2
    reasons = {r.line: r.reason for r in report.rejected}
    assert set(reasons) == {4, 5, 6}
    assert "no contact" in reasons[4] and "not a number" in reasons[5] and "YYYY-MM-DD" in reasons[6]
    with Session(engine) as session:
        order = session.exec(select(Order).where(Order.external_id == "NS-1")).one()
        assert str(order.amount) == "1200.50"
        company = session.exec(select(Company).where(Company.name == "Acme")).one()
        assert order.company_id == company.id  # the contact's company, found by its domain
    assert import_builtin(engine, "orders", orders).imported == 0


def test_dry_run_saves_nothing(engine: Engine) -> None:
    report = import_builtin(engine, "contacts", MESSY, dry_run=True)
    assert report.imported == 5
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(Contact)).one() == 0


def _consistent(engine: Engine) -> tuple[int, int]:
    """Every contact has exactly one primary address and every address a contact."""
    with read_session(engine) as session:
        contacts = session.exec(select(func.count()).select_from(Contact)).one()
        primaries = session.exec(
            select(func.count()).select_from(ContactEmail).where(ContactEmail.is_primary)
        ).one()
        orphans = session.exec(
            select(func.count())
            .select_from(ContactEmail)
            .outerjoin(Contact, Contact.id == ContactEmail.contact_id)
            .where(Contact.id.is_(None))  # type: ignore[union-attr]
        ).one()
        assert orphans == 0
        assert primaries == contacts
        return contacts, primaries


def test_killed_import_leaves_each_row_in_or_out_and_a_rerun_completes(tmp_path: Path) -> None:
    rows = 6000
    path = tmp_path / "big.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Email", "First Name", "Last Name", "Company Name"])
        for i in range(rows):
            writer.writerow(
                [f"person{i}@company{i % 300}.example", f"Person{i}", "Test", f"Company {i % 300}"]
            )
    db = tmp_path / "kill.db"
    url = f"sqlite:///{db}"
    engine = make_engine(url)
    upgrade(engine)
    (tmp_path / "rapport.toml").write_text("", encoding="utf-8")
    env = {**os.environ, "RAPPORT_DATABASE_URL": url, "RAPPORT_CONFIG": str(tmp_path / "rapport.toml")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rapport.cli.main", "import", "contacts", str(path), "--json"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 120
    landed = 0
    while time.monotonic() < deadline and proc.poll() is None:
        landed, _ = _consistent(engine)
        if landed > 0:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial, _ = _consistent(engine)
    assert partial < rows, "the import finished before it could be killed; make the file bigger"
    report = import_builtin(engine, "contacts", path)
    assert report.rejected == []
    assert report.imported == rows - partial
    assert _consistent(engine) == (rows, rows)


def test_unclosed_quote_does_not_swallow_the_rows_after_it(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "quote.csv"
    path.write_text(
        "name,email,phone\n"
        "Ann Able,ann@a.example,1\n"
        '"Bad Quote,bad@a.example,2\n'  # line 3: the quote never closes
        "Bob Baker,bob@a.example,3\n"
        '"Cy, Carter",cy@a.example,4\n'
        "Dee Dunn,dee@a.example,5\n",
        encoding="utf-8",
    )
    report = import_builtin(engine, "contacts", path)
    assert report.imported == 4
    assert [r.line for r in report.rejected] == [3]
    assert "not closed" in report.rejected[0].reason and "lines 4-" in report.rejected[0].reason
    with Session(engine) as session:
        assert set(session.exec(select(ContactEmail.email)).all()) == {
            "ann@a.example", "bob@a.example", "cy@a.example", "dee@a.example"
        }


def test_a_quoted_field_over_several_lines_is_still_one_row(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "multiline.csv"
    path.write_text(
        'name,email,company\nAnn Able,ann@a.example,"Able, Inc.\nPrague, CZ"\nBob Baker,bob@b.example,B\n',
        encoding="utf-8",
    )
    report = import_builtin(engine, "contacts", path)
    assert (report.imported, report.rejected) == (2, [])


def _add_buyer(engine: Engine, name: str = "Buyer") -> None:
    """The contact buyer@acme.example, whom the orders files name."""
    with session_scope(engine) as session:
        contact = Contact(name=name)
        session.add(contact)
        session.flush()
        session.add(ContactEmail(contact_id=contact.id, email="buyer@acme.example", is_primary=True))


def _import_orders_of_buyer(engine: Engine, fixture: str) -> ImportReport:
    """The orders file `fixture`, imported after the contact it names."""
    _add_buyer(engine)
    return import_builtin(engine, "orders", FIXTURES / fixture, now=IMPORT_CLOCK)


def _import_orders(engine: Engine, tmp_path: Path, text: str) -> ImportReport:
    orders = tmp_path / "orders.csv"
    orders.write_text(text, encoding="utf-8")
    return import_builtin(engine, "orders", orders, now=IMPORT_CLOCK)


def test_an_amount_too_large_is_rejected_not_a_crash(engine: Engine, tmp_path: Path) -> None:
    _add_buyer(engine)
    report = _import_orders(
        engine, tmp_path,
        f"order_id,email,amount,ordered_on\nO-1,buyer@acme.example,{'9' * 40},2026-01-01\n"
        "O-2,buyer@acme.example,1000000000000,2026-01-01\nO-3,buyer@acme.example,999999999999.99,2026-01-01\n",
    )
    assert report.imported == 1
    assert [(r.line, "too large" in r.reason) for r in report.rejected] == [(2, True), (3, True)]


def test_regression_an_amount_of_point_50_is_imported_as_half_not_fifty(engine: Engine, tmp_path: Path) -> None:
    """`.50` was imported as 50.00: the currency strip took the decimal point too. A dot that ends a
    currency word (`kr.`) is still the currency's."""
    _add_buyer(engine)
    report = _import_orders(
        engine, tmp_path,
        "order_id,email,amount,currency,ordered_on\n"
        "O-1,buyer@acme.example,.50,EUR,2026-01-01\nO-2,buyer@acme.example,\"$,5\",USD,2026-01-01\n"
        "O-3,buyer@acme.example,kr. 50,SEK,2026-01-01\nO-4,buyer@acme.example,.500,EUR,2026-01-01\n",
    )
    assert [(r.line, r.reason) for r in report.rejected] == [
        (5, "amount '.500' is not a number written in digits, such as 1200.50")]
    with Session(engine) as session:
        landed = {o.external_id: str(o.amount) for o in session.exec(select(Order))}
    assert landed == {"O-1": "0.50", "O-2": "0.50", "O-3": "50.00"}


def test_regression_orders_with_impossible_values_are_rejected_row_by_row(engine: Engine) -> None:
    """An unknown currency, a negative amount, a date in the future and `1e9` all landed: the card
    showed "Orders: 18 (last 2030-01-01)" and a lifetime value of a billion, ranked first."""
    _add_buyer(engine, "Bea Buyer")

    report = import_builtin(engine, "orders", FIXTURES / "orders_impossible_values.csv", now=IMPORT_CLOCK)

    assert report.imported == 2
    assert [(r.line, r.reason) for r in report.rejected] == [
        (3, "currency 'XYZ' is not an ISO 4217 code such as EUR, SEK or USD"),
        (4, "amount '-50' is negative: a refund is not an order"),
        (5, "order date '2030-01-01' is in the future (today is 2026-11-20)"),
        (6, "amount '1e9' is not a number written in digits, such as 1200.50"),
    ]
    assert all(len(f"line {r.line}: {r.reason}") <= 80 for r in report.rejected)
    with Session(engine) as session:
        landed = {o.external_id: (str(o.amount), o.currency) for o in session.exec(select(Order))}
    assert landed == {"NS-401": ("1200.50", "EUR"), "NS-406": ("1200.50", "SEK")}


def test_regression_a_bad_duplicate_order_is_rejected_alone_and_the_good_row_lands(engine: Engine) -> None:
    """`Y-1` valid on line 2 and `-5,XYZ` on line 4: the two merged before any check, so line 2
    was rejected for line 4's amount and neither landed; the merge also claimed phones were kept."""
    report = _import_orders_of_buyer(engine, "orders_bad_duplicate.csv")

    assert report.imported == 2
    assert [(r.line, r.reason) for r in report.rejected] == [
        (4, "amount '-5' is negative: a refund is not an order")]
    assert [(w.line, w.reason) for w in report.warnings] == [
        (5, "line 5 has the same order id as line 3 (y-2); merged into one (later values win)")]
    with Session(engine) as session:
        landed = {o.external_id: (str(o.amount), o.status) for o in session.exec(select(Order))}
    assert landed == {"Y-1": ("100.00", "completed"), "Y-2": ("20.00", "completed")}


def test_regression_a_bad_duplicate_rep_is_rejected_alone_and_the_good_row_lands(engine: Engine) -> None:
    """Line 2's role `rep` and line 3's `superuser` (the same email) merged first, so the rep was
    refused as line 2 with line 3's role and nobody was imported."""
    report = import_builtin(engine, "reps", FIXTURES / "reps_bad_duplicate.csv")

    assert (report.imported, report.warnings) == (1, [])
    [rejected] = report.rejected
    assert rejected.line == 3 and "superuser" in rejected.reason
    with Session(engine) as session:
        assert [(r.email, r.role) for r in session.exec(select(Rep))] == [("rita@nordlys.example", "rep")]


def test_regression_a_partial_duplicate_order_updates_the_order(engine: Engine) -> None:
    """`Z-1,,,,refunded` after the full row was checked alone and rejected with "no amount", so the
    order stayed completed (revenue) and the import exited 2. Empty fields are the merged row's to
    fill; a value the row gives (line 4's date in the future) must still be valid."""
    report = _import_orders_of_buyer(engine, "orders_partial_update.csv")

    with Session(engine) as session:
        [order] = session.exec(select(Order)).all()
    assert (order.external_id, str(order.amount), order.ordered_on, order.status) == (
        "Z-1", "100.00", date(2026, 11, 1), "refunded")
    assert {r.line: r.reason for r in report.rejected + report.warnings} == {
        3: "line 3 has the same order id as line 2 (z-1); merged into one (later values win)",
        4: "order date '2030-01-01' is in the future (today is 2026-11-20)"}
    assert [r.line for r in report.rejected] == [4]


def test_regression_a_company_row_without_a_name_updates_the_company(engine: Engine) -> None:
    """A second row of `fjordtech.example` without a name was checked alone and rejected with
    "no company name": its country never landed. The name comes from the merged row."""
    report = import_builtin(engine, "companies", FIXTURES / "companies_partial_update.csv")

    assert (report.imported, report.rejected) == (1, [])
    with Session(engine) as session:
        [company] = session.exec(select(Company)).all()
    assert (company.name, company.industry, company.country) == ("Fjordtech AS", "Computer Software", "Sweden")


def test_regression_rows_of_an_erased_person_are_skipped_not_rejected(engine: Engine) -> None:
    """After `privacy erase`, every routine re-import exited 2: the person's orders were rejected
    with "no contact with email … (import contacts first)", and the contacts import refused them."""
    contacts, orders = FIXTURES / "contacts_erased_again.csv", FIXTURES / "orders_erased_again.csv"
    import_builtin(engine, "contacts", contacts, now=IMPORT_CLOCK)
    import_builtin(engine, "orders", orders, now=IMPORT_CLOCK)
    with session_scope(engine) as session:
        erase_person(session, "erika.erased@acme.example", actor=Actor.cli(), configured_key=None)

    orders_again = import_builtin(engine, "orders", orders, now=IMPORT_CLOCK)
    contacts_again = import_builtin(engine, "contacts", contacts, now=IMPORT_CLOCK)

    assert (orders_again.erased, orders_again.unchanged, orders_again.rejected) == (2, 1, [])
    assert (contacts_again.erased, contacts_again.unchanged, contacts_again.rejected) == (1, 1, [])
    assert orders_again.complete and contacts_again.complete  # exit status 0
    with Session(engine) as session:
        assert session.exec(select(ContactEmail.email)).all() == ["keep.kept@acme.example"]


def test_an_order_dated_today_east_of_utc_is_not_in_the_future() -> None:
    # 23:30 UTC on the 20th is the 21st in Stockholm already; the 22nd has begun nowhere yet
    late_evening = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
    assert check_order_date("2026-11-21", late_evening) == date(2026, 11, 21)
    with pytest.raises(Invalid, match="in the future"):
        check_order_date("2026-11-22", late_evening)


# How HubSpot, Salesforce's API and Data Loader, and Salesforce reports (US and British users) write a creation.
EXPORTED_MOMENTS = ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.000+0000", "%m/%d/%Y %I:%M %p",
                    "%d/%m/%Y, %H:%M", "%d.%m.%Y %H:%M"]


@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2026, 11, 20, 13, 0)),
       st.sampled_from(EXPORTED_MOMENTS))
@example(datetime(2023, 5, 17, 0, 5), "%m/%d/%Y %I:%M %p")  # 12:05 AM is just after midnight
@example(datetime(2023, 5, 17, 12, 30), "%m/%d/%Y %I:%M %p")  # 12:30 PM just after noon
def test_a_creation_date_reads_back_as_the_moment_an_export_wrote(moment: datetime, form: str) -> None:
    # a slashed date is month first only where day first is no date (store.validation.parse_numeric_date)
    month_first = form.startswith("%m/")
    if month_first and moment.day <= 12 and moment.day != moment.month:
        moment = moment.replace(day=13)
    written = moment.replace(second=moment.second if "%S" in form else 0, microsecond=0, tzinfo=UTC)
    assert check_created_at(moment.strftime(form), IMPORT_CLOCK) == written


@given(st.integers(0, 35), st.integers(0, 35), st.integers(1990, 2025), st.sampled_from(["{a}/{b}/{y}", "{a}.{b}.{y}"]))
@example(5, 17, 2023, "{a}/{b}/{y}")  # US: 17 cannot be the month
@example(5, 6, 2023, "{a}/{b}/{y}")  # either way a date: day first, 5 June
def test_a_creation_date_in_digits_reads_by_the_one_day_and_month_rule(a: int, b: int, year: int, style: str) -> None:
    text = style.format(a=a, b=b, y=year)
    try:
        rule: date | None = parse_numeric_date(text, today=None)
    except Invalid:
        rule = None
    try:
        created: date | None = check_created_at(text, IMPORT_CLOCK).date()
    except Invalid:
        created = None
    assert created == rule


@given(st.one_of(st.text(max_size=40), st.from_regex(r"\A[0-9]{1,4}[-/.][0-9]{1,2}[-/.][0-9]{0,4}"
                                                         r"(?:[ T,]+[0-9]{1,2}:[0-9]{2}(?::[0-9]{2})?"
                                                         r"(?: ?[AP]M|Z|[+-][0-9]{2}:?[0-9]{2})?)?\Z")))
@example("0001-01-01T00:00+01:00")  # before year 1 in UTC
@example("17/05")  # no year: which one?
def test_a_creation_date_is_never_after_the_import_and_any_other_text_is_invalid(text: str) -> None:
    try:
        created = check_created_at(text, IMPORT_CLOCK)
    except Invalid as exc:
        assert str(exc).startswith("creation date ")
        return
    assert created.tzinfo is UTC and created <= IMPORT_CLOCK


def test_a_creation_without_offset_may_be_local_time_east_of_utc() -> None:
    # 13:00 UTC is 02:00 the next day in Auckland: a contact created there a minute ago is no future one
    assert check_created_at("2026-11-21 01:59", IMPORT_CLOCK) == IMPORT_CLOCK
    with pytest.raises(Invalid, match="in the future"):
        check_created_at("2026-11-21 03:01", IMPORT_CLOCK)
    with pytest.raises(Invalid, match="in the future"):  # with its offset, a moment is exact
        check_created_at("2026-11-20T13:01Z", IMPORT_CLOCK)
    assert check_created_at("2026-11-20T13:00Z", IMPORT_CLOCK) == IMPORT_CLOCK


def test_currency_codes_are_iso_4217_in_any_case() -> None:
    assert [check_currency(code) for code in ("EUR", "sek", " huf ", "CZK")] == ["EUR", "SEK", "HUF", "CZK"]
    for code in ("XYZ", "EURO", "€", "E"):
        with pytest.raises(Invalid, match="ISO 4217"):
            check_currency(code)


def test_a_row_the_database_refuses_does_not_abort_the_file(engine: Engine, tmp_path: Path) -> None:
    """Guards the per-row savepoint: on PostgreSQL one refused row would abort the whole transaction."""
    path = tmp_path / "nul.csv"
    path.write_text("email,name\na@x.example,Ann\nb@x.example,B\x00ob\nc@x.example,Cy\n", encoding="utf-8")
    report = import_builtin(engine, "contacts", path)
    with Session(engine) as session:
        landed = set(session.exec(select(ContactEmail.email)).all())
    assert {"a@x.example", "c@x.example"} <= landed
    assert report.imported == len(landed)
    assert [r.line for r in report.rejected] == ([] if "b@x.example" in landed else [3])


def _index(engine: Engine) -> set[tuple[str, int | None, int | None]]:
    with read_session(engine) as session:
        return {(t.term, t.contact_id, t.company_id) for t in session.exec(select(SearchTerm))}


def test_imported_contacts_are_indexed_as_a_rebuild_would_index_them(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guards the importer's own indexing (new contacts and companies from the values it wrote, no read-back):
    the index it leaves is the one rebuilt from the database, also for a contact another
    writer added without indexing it."""
    monkeypatch.setattr(importing, "CHUNK", 2)  # several batches on one connection
    with session_scope(engine) as session:
        other = Contact(name="Zdeněk Outsider")  # added by someone else, not indexed yet
        session.add(other)
        session.flush()
        session.add(ContactEmail(contact_id=other.id, email="zdenek@outside.example", is_primary=True))
    first = tmp_path / "first.csv"
    first.write_text(
        "Email,First Name,Last Name,Phone Number,Company Name,Additional email addresses\n"
        "jan.stastny@tatra.example,Jan,Šťastný,+420 601 123 456,Tatra Tools,jan@home.example\n"
        "asa@oberg.example,Åsa,Öberg,,,\n"
        "anon@gmail.com,,,070-123 45 67,,\n"
        "petr@tatra.example,Petr,Novák,,Tatra Tools,\n"
        "jan.stastny@tatra.example,,,+420 777 000 111,,\n",  # merges into line 2: phones kept
        encoding="utf-8",
    )
    second = tmp_path / "second.csv"
    second.write_text(
        "Email,First Name,Last Name,Additional email addresses\n"
        "asa@oberg.example,Åsa,Öberg-Lind,asa.lind@oberg.example\n"  # a changed name, a new address
        "new@fresh.example,Fresh,Person,\n",
        encoding="utf-8",
    )
    assert import_builtin(engine, "contacts", first).imported == 4
    report = import_builtin(engine, "contacts", second)
    assert (report.imported, report.updated) == (1, 1)
    built = _index(engine)
    with Session(engine) as session:
        for query, name in [("stastny", "Jan Šťastný"), ("tsastny", "Jan Šťastný"), ("jan@home.example", "Jan Šťastný"),
                            ("777 000 111", "Jan Šťastný"), ("tatra tools", "Jan Šťastný"), ("oberg lind", "Åsa Öberg-Lind"),
                            ("asa.lind@oberg.example", "Åsa Öberg-Lind"), ("+46 70 123 45 67", "anon"),
                            ("outsider", "Zdeněk Outsider"), ("fresh persn", "Fresh Person")]:
            assert name in [hit.name for hit in search_contacts(session, query)], query
    with session_scope(engine) as session:
        rebuild_index(session)
    assert built == _index(engine)


@pytest.mark.parametrize(("entity", "teaching"), [
    ("contacts", "Email,First Name,Last Name,Company Name\njana@kovozlin.example,Jana,Dvořák,Kovo Zlín\n"),
    ("companies", "Company Name,Domain\nKovo Zlín,kovozlin.example\n"),
])
def test_regression_a_domain_an_import_gives_an_existing_company_is_searchable(
    engine: Engine, tmp_path: Path, entity: str, teaching: str
) -> None:
    """An import that gave a company it already had a new domain wrote the domain but not its
    search terms (only new companies were indexed): `find kovozlin` found Jana by her own address
    but not Petr, whose company it is too, and the index differed from a rebuilt one."""
    first = tmp_path / "first.csv"
    first.write_text("Email,First Name,Last Name,Company Name\npetr@gmail.com,Petr,Novák,Kovo Zlín\n",
                     encoding="utf-8")
    assert import_builtin(engine, "contacts", first).imported == 1
    second = tmp_path / "second.csv"
    second.write_text(teaching, encoding="utf-8")
    report = import_builtin(engine, entity, second)
    assert report.rejected == []
    _assert_petr_is_found_by_his_companys_new_domain(engine)


def test_regression_a_domain_given_after_a_refused_row_is_searchable(engine: Engine, tmp_path: Path) -> None:
    """Guards the row-by-row retry of a batch the database refused (a NUL on PostgreSQL): Petr's row
    made Kovo Zlín, Jana's gave it her domain, and the index, told the company was indexed with
    Petr's row, left that domain out."""
    path = tmp_path / "c.csv"
    path.write_text("Email,First Name,Last Name,Company Name\npetr@gmail.com,Petr,Novák,Kovo Zlín\n"
                    "bob@x.example,B\x00ob,,\njana@kovozlin.example,Jana,Dvořák,Kovo Zlín\n", encoding="utf-8")
    import_builtin(engine, "contacts", path)
    _assert_petr_is_found_by_his_companys_new_domain(engine)


def _assert_petr_is_found_by_his_companys_new_domain(engine: Engine) -> None:
    """Petr's free-mail address says nothing of Kovo Zlín; its domain, given later, finds him, and
    the index is the one rebuilt from the database."""
    with Session(engine) as session:
        assert session.exec(select(CompanyDomain.domain)).all() == ["kovozlin.example"]
        assert session.exec(select(func.count()).select_from(Company)).one() == 1
        assert "Petr Novák" in [hit.name for hit in search_contacts(session, "kovozlin")]
    built = _index(engine)
    with session_scope(engine) as session:
        rebuild_index(session)
    assert built == _index(engine)


def _found(engine: Engine, query: str) -> tuple[list[str], list[str]]:
    """What Slack's company picker and `find` offer for `query`: companies, then contacts."""
    with read_session(engine) as session:
        return ([hit.name for hit in search_companies(session, query)],
                [hit.name for hit in search_contacts(session, query)])


def _assert_index_as_rebuilt(engine: Engine) -> None:
    built = _index(engine)
    with session_scope(engine) as session:
        rebuild_index(session)
    assert built == _index(engine)


def test_regression_a_company_an_import_renames_is_found_by_its_new_name_at_once(
    engine: Engine, tmp_path: Path
) -> None:
    """A companies import that renamed a company or changed its phone left the old terms in the
    search index until the scheduler's scan (`refresh_index(changed=True)`): a rep who imported
    the rename found nothing by the new name, and the old name still found the company's people."""
    companies = tmp_path / "companies.csv"
    companies.write_text("Company Name,Domain,Phone\nKovo Zlín,kzgroup.example,+420 577 100 200\n",
                         encoding="utf-8")
    assert import_builtin(engine, "companies", companies).imported == 1
    people = tmp_path / "people.csv"
    people.write_text("Email,First Name,Last Name\npetr@kzgroup.example,Petr,Novák\n", encoding="utf-8")
    assert import_builtin(engine, "contacts", people).imported == 1
    assert _found(engine, "kovo zlin") == (["Kovo Zlín"], ["Petr Novák"])

    companies.write_text("Company Name,Domain,Phone\nMoravia Steel,kzgroup.example,+420 577 999 888\n",
                         encoding="utf-8")
    report = import_builtin(engine, "companies", companies)  # no scheduler runs in between

    assert (report.imported, report.updated, report.unchanged) == (0, 1, 0)
    assert _found(engine, "moravia steel") == (["Moravia Steel"], ["Petr Novák"])
    assert _found(engine, "kovo zlin") == ([], [])
    company_terms = {term for term, contact_id, _ in _index(engine) if contact_id is None}
    assert "#420577999888" in company_terms and "#420577100200" not in company_terms
    _assert_index_as_rebuilt(engine)
    again = import_builtin(engine, "companies", companies)
    assert (again.imported, again.updated, again.unchanged) == (0, 0, 1)


def test_regression_a_contact_an_import_renames_is_found_by_its_new_name_at_once(
    engine: Engine, tmp_path: Path
) -> None:
    """Guards the contacts import's re-indexing of what it updates (name, phone, company), also
    in the row-by-row retry of a batch the database refuses (the NUL, on PostgreSQL)."""
    people = tmp_path / "people.csv"
    people.write_text("Email,First Name,Last Name,Phone Number,Company Name\n"
                      "jan@gmail.com,Jan,Šťastný,+420 601 123 456,Tatra Tools\n", encoding="utf-8")
    assert import_builtin(engine, "contacts", people).imported == 1
    assert _found(engine, "stastny")[1] == ["Jan Šťastný"]

    people.write_text("Email,First Name,Last Name,Phone Number,Company Name\n"
                      "jan@gmail.com,Jan,Novotný,+420 777 000 111,Moravia Steel\n"
                      "bob@x.example,B\x00ob,,,\n", encoding="utf-8")
    report = import_builtin(engine, "contacts", people)  # no scheduler runs in between

    assert report.updated == 1
    assert _found(engine, "novotny")[1] == ["Jan Novotný"]
    assert _found(engine, "777 000 111")[1] == ["Jan Novotný"]
    assert _found(engine, "moravia steel")[1] == ["Jan Novotný"]
    for old in ("stastny", "601 123 456", "tatra tools"):
        assert _found(engine, old)[1] == [], old
    _assert_index_as_rebuilt(engine)


def test_a_row_with_bytes_that_are_not_utf8_is_rejected_alone(engine: Engine, tmp_path: Path) -> None:
    """Guards the per-file check for undecodable bytes: only the rows holding them are searched."""
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"email,name\na@x.example,Ann\nb@x.example,J\xfcrgen\nc@x.example,Cy\n")
    report = import_builtin(engine, "contacts", path)
    assert report.imported == 2
    assert [(r.line, r.reason) for r in report.rejected] == [(3, "not valid UTF-8 (save the file as UTF-8)")]


def test_regression_a_model_s_own_label_that_is_a_skill_synonym_is_that_label(engine: Engine, tmp_path: Path) -> None:
    """A model labelled support, invoice, returns, sales: the synonyms (support -> general, ...) came
    first, and these reps were refused "unknown skills support, invoice; known skills: support, invoice, ..."."""
    reps = tmp_path / "reps.csv"
    reps.write_text("name,email,skills\nSam,sam@x.example,Support|invoice|returns\n"
                    "Bea,bea@x.example,payment|sales\n", encoding="utf-8")
    report = import_csv(engine, "reps", reps, categories=["support", "invoice", "returns", "sales"],
                        configured_reps=())
    # payment -> billing, which this model does not give: left out, not turned into `invoice`
    assert [w.reason for w in report.warnings] == [
        "unknown skills payment left out; known skills: support, invoice, returns, sales"]
    with Session(engine) as session:
        skills = {r.email: r.skills for r in session.exec(select(Rep)).all()}
    assert skills == {"sam@x.example": ["support", "invoice", "returns"], "bea@x.example": ["sales"]}
