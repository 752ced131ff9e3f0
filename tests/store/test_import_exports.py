"""Real CRM exports as they are: HubSpot and Salesforce files with their exact header rows and
every lifecycle stage, lead status and account type (tests/fixtures/csv, /work/shared/data/crm-exports.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from store import importing
from store.audit import audit_entries
from store.db import session_scope
from store.importing import (
    KIND_VALUES,
    LEAD_STATUS_VALUES,
    STAGE_VALUES,
    ImportReport,
    _value_key,
)
from store.models import Company, CompanyDomain, Consent, Contact, ContactEmail, Order, Rep, SearchTerm
from store.reps import upsert_rep
from tests.imports import import_builtin

FIXTURES = Path(__file__).parent.parent / "fixtures" / "csv"


def _reps(engine: Engine) -> None:
    with session_scope(engine) as session:
        upsert_rep(session, {"name": "Alice Andersson", "email": "alice@rapport.example"})
        upsert_rep(session, {"name": "Bob Berg", "email": "bob@rapport.example"})


def _contacts(engine: Engine) -> dict[str, Contact]:
    with Session(engine) as session:
        rows = session.exec(select(ContactEmail.email, Contact).join(Contact)).all()
        return {email: contact for email, contact in rows}


def _withdrawn(engine: Engine) -> set[str]:
    with Session(engine) as session:
        return set(
            session.exec(
                select(ContactEmail.email)
                .join(Consent, Consent.contact_id == ContactEmail.contact_id)  # type: ignore[arg-type]
                .where(Consent.purpose == "marketing", Consent.withdrawn_at.is_not(None))  # type: ignore[union-attr]
            ).all()
        )


def _created(engine: Engine, model: type[Contact] | type[Company]) -> dict[str, datetime]:
    """Each contact's address part before `@`, or each company's name, and when it was created."""
    with Session(engine) as session:
        if model is Company:
            return dict(session.exec(select(Company.name, Company.created_at)).all())
        rows = session.exec(select(ContactEmail.email, Contact.created_at).join(Contact)).all()
        return {email.split("@")[0]: created for email, created in rows}


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def _snapshot(engine: Engine) -> list[Any]:
    with Session(engine) as session:
        return [
            sorted(map(tuple, session.execute(select(*table.__table__.c)).all()), key=repr)  # type: ignore[attr-defined]
            for table in (Contact, ContactEmail, Company, CompanyDomain, Consent, SearchTerm)
        ]


def _reimport_changes_nothing(engine: Engine, entity: str, path: Path, first: ImportReport) -> None:
    before = _snapshot(engine)
    again = import_builtin(engine, entity, path)
    landed = first.imported + first.updated + first.unchanged
    assert (again.imported, again.updated, again.unchanged) == (0, 0, landed)
    assert _snapshot(engine) == before


def test_every_documented_stage_type_and_status_has_a_mapping() -> None:
    # the values /work/shared/data/crm-exports.md lists; an unmapped one would only warn, but must not exist
    hubspot_stages = ["Subscriber", "Lead", "Marketing Qualified Lead", "Sales Qualified Lead", "Opportunity",
                      "Customer", "Evangelist", "Other", "marketingqualifiedlead", "salesqualifiedlead"]
    hubspot_status = ["New", "Open", "In Progress", "Open Deal", "Unqualified", "Attempted to Contact", "Connected",
                      "Bad Timing"]
    salesforce_status = ["Open - Not Contacted", "Working - Contacted", "Closed - Converted",
                         "Closed - Not Converted"]
    types = ["Prospect", "Customer - Direct", "Customer - Channel", "Channel Partner / Reseller",
             "Installation Partner", "Technology Partner", "Other", "Partner", "Reseller", "Vendor"]
    assert all(_value_key(v) in STAGE_VALUES for v in hubspot_stages)
    assert all(_value_key(v) in LEAD_STATUS_VALUES for v in hubspot_status + salesforce_status)
    assert all(_value_key(v) in KIND_VALUES for v in types)


def test_hubspot_contacts_export_lands_every_good_row_once(engine: Engine) -> None:
    _reps(engine)
    report = import_builtin(engine, "contacts", FIXTURES / "hubspot_contacts.csv")

    assert (report.imported, report.updated, report.unchanged) == (11, 0, 0)
    assert [(r.line, r.reason) for r in report.rejected] == [(14, "invalid email address 'broken@@fjordtech.example'")]
    # regression: "Create Date" was ignored, so every contact looked created by the import
    assert report.ignored == ["Last Activity Date", "City", "Country/Region"]
    warnings = {w.line: w.reason for w in report.warnings}
    assert set(warnings) == {10, 12, 13}
    assert "'Carl Nobody' is not a known rep" in warnings[10]
    assert "lifecycle stage 'Churned' is not one we know" in warnings[12]  # regression: unknown values lost the row
    assert "line 13 has the same email as line 3" in warnings[13]

    contacts = _contacts(engine)
    kind_stage = {email.split("@")[0]: (c.kind, c.stage) for email, c in contacts.items()}
    assert kind_stage == {
        "sofie": ("prospect", "need"),
        "lars": ("prospect", "need"),
        "marta": ("prospect", "information_search"),
        "sven": ("prospect", "evaluation"),
        "olga": ("prospect", "purchase"),
        "karl": ("customer", "post_purchase"),
        "eva": ("customer", "post_purchase"),
        "otto": ("prospect", "need"),  # Other: kept as a new contact's defaults (regression: it was rejected)
        "bea": ("prospect", "need"),
        "otis": ("prospect", "need"),
        "chad": ("prospect", "need"),
    }
    lars = contacts["lars@fjordtech.example"]
    # the duplicate merged: later non-empty values win, every phone is kept
    assert (lars.name, lars.title) == ("Lars Lead-Hansen", "Lead Engineer")
    assert lars.phone == "+47 22 11 00 02, +47 900 11 002, +47 900 11 999"
    assert lars.external_id == "112"
    created = _created(engine, Contact)
    assert created["sofie"] == _utc(2025, 11, 2, 9, 14)
    assert created["olga"] == _utc(2025, 11, 6, 9, 14)  # the ISO form with T and Z
    assert created["lars"] == _utc(2025, 11, 3, 9, 14)  # the twins merged: the earlier creation
    with Session(engine) as session:
        alice = session.exec(select(Rep).where(Rep.name == "Alice Andersson")).one()
        assert contacts["sofie@fjordtech.example"].owner_id == alice.id  # owners by full name
        fjordtech = session.exec(select(Company).where(Company.name == "Fjordtech AS")).one()
        assert session.exec(select(func.count()).select_from(Company).where(Company.name == "Fjordtech AS")).one() == 1
    assert contacts["sofie@fjordtech.example"].company_id == fjordtech.id
    assert contacts["otto@gmail.com"].company_id is None
    assert _withdrawn(engine) == {"marta@brnomachines.example"}  # "Unsubscribed from all email" = true
    with Session(engine) as session:  # the opt-out is in the audit log, by whoever ran the import
        [entry] = audit_entries(session, contact_ids=[_contacts(engine)["marta@brnomachines.example"].id or 0])
    assert (entry.action, entry.via, entry.detail) == (
        "consent.change", "cli", {"purpose": "marketing", "change": "withdraw", "source": "import"})
    assert entry.actor.startswith("cli:")

    _reimport_changes_nothing(engine, "contacts", FIXTURES / "hubspot_contacts.csv", report)
    with Session(engine) as session:
        assert len(audit_entries(session, actor=entry.actor)) == 1  # a re-import records nothing new


def test_salesforce_contacts_export_keeps_opt_outs_and_names_dropped_columns(engine: Engine) -> None:
    _reps(engine)
    report = import_builtin(engine, "contacts", FIXTURES / "salesforce_contacts.csv")
    assert (report.imported, report.rejected, report.warnings) == (5, [], [])
    # regression: Salutation, Mailing City and Lead Source were dropped without a word
    assert report.ignored == ["Salutation", "Mailing City", "Mailing Country", "Lead Source"]
    # a British user's report: day first, with or without a comma before the time
    assert _created(engine, Contact) == {
        "tomas.dvorak": _utc(2023, 5, 17, 10, 23),
        "ingrid": _utc(2021, 3, 4, 9, 5),
        "juergen": _utc(2019, 11, 30, 14, 40),
        "anna.kowalska": _utc(2024, 2, 1, 8, 0),
        "noah": _utc(2022, 8, 22, 17, 59),
    }
    contacts = _contacts(engine)
    tomas = contacts["tomas.dvorak@brnomachines.example"]
    assert (tomas.name, tomas.title, tomas.phone) == ("Tomáš Dvořák", "Head of Purchasing",
                                                      "+420 541 000 301, +420 777 000 301")
    # regression: "Email Opt Out" was ignored
    assert _withdrawn(engine) == {"ingrid@malmotrading.example", "anna.kowalska@gmail.com"}
    _reimport_changes_nothing(engine, "contacts", FIXTURES / "salesforce_contacts.csv", report)


def test_salesforce_leads_by_api_names_map_their_status(engine: Engine) -> None:
    _reps(engine)
    report = import_builtin(engine, "contacts", FIXTURES / "salesforce_leads.csv")
    assert (report.imported, report.rejected, report.warnings, report.ignored) == (4, [], [], ["LeadSource"])
    kind_stage = {email.split("@")[0]: (c.kind, c.stage) for email, c in _contacts(engine).items()}
    assert kind_stage == {
        "petra": ("prospect", "need"),
        "mikael": ("prospect", "information_search"),
        "zoe": ("customer", "purchase"),
        "ivan": ("prospect", "need"),
    }
    assert _withdrawn(engine) == {"zoe@helios.example"}
    # CreatedDate as the API and Data Loader write it (regression: it was an order's date)
    assert _created(engine, Contact)["zoe"] == _utc(2019, 1, 15, 23, 30)
    _reimport_changes_nothing(engine, "contacts", FIXTURES / "salesforce_leads.csv", report)


def test_salesforce_accounts_export_maps_every_account_type(engine: Engine) -> None:
    _reps(engine)
    report = import_builtin(engine, "companies", FIXTURES / "salesforce_accounts.csv")
    # regression: every row was rejected ("unknown kind 'Customer - Direct'")
    assert (report.imported, report.rejected, report.warnings) == (7, [], [])
    assert report.ignored == ["Billing City"]
    # a US user's report: month first where the day is past 12; 11/12/2022 could be either,
    # so it is read day first as every date in digits is (store.validation.parse_numeric_date)
    created = _created(engine, Company)
    assert (created["Brno Machines s.r.o."], created["Malmö Trading AB"], created["Nordic Resellers"]) == (
        _utc(2023, 5, 17, 10, 23), _utc(2021, 1, 30, 16, 45), _utc(2022, 12, 11, 0, 5))
    assert (created["TechPartner Oy"], created["Prospect Ltd"]) == (_utc(2020, 6, 15, 12, 30), _utc(2024, 7, 13, 15, 15))
    with Session(engine) as session:
        kinds = dict(session.exec(select(Company.name, Company.kind)).all())
        domains = set(session.exec(select(CompanyDomain.domain)).all())
    assert kinds == {
        "Brno Machines s.r.o.": "customer",
        "Malmö Trading AB": "customer",
        "Nordic Resellers": "partner",
        "InstallCo": "partner",
        "TechPartner Oy": "partner",
        "Prospect Ltd": "prospect",
        "Other Holding": "customer",  # Other: a new company's default
    }
    assert domains == {"brnomachines.example", "malmotrading.example", "nordicresellers.example",
                       "installco.example", "techpartner.example", "prospect-ltd.example"}
    _reimport_changes_nothing(engine, "companies", FIXTURES / "salesforce_accounts.csv", report)


def test_hubspot_companies_export_maps_types_and_warns_on_unknown_ones(engine: Engine) -> None:
    _reps(engine)
    report = import_builtin(engine, "companies", FIXTURES / "hubspot_companies.csv")
    assert (report.imported, report.rejected) == (7, [])
    assert report.ignored == ["City"]
    assert [(w.line, "type 'Competitor'" in w.reason) for w in report.warnings] == [(8, True)]
    created = _created(engine, Company)
    assert (created["Fjordtech AS"], created["Alpenwerk GmbH"]) == (_utc(2019, 3, 12, 8, 30), _utc(2021, 6, 1, 12))
    with Session(engine) as session:
        kinds = dict(session.exec(select(Company.name, Company.kind)).all())
    assert kinds == {
        "Fjordtech AS": "prospect",
        "Alpenwerk GmbH": "customer",  # no Type: the lifecycle stage says customer
        "Baltic Partners": "partner",
        "Danube Resellers": "partner",
        "Vltava Supply": "partner",
        "Helios Other": "prospect",  # Type Other: the lifecycle stage (Opportunity) decides
        "Mystery Corp": "customer",
    }
    _reimport_changes_nothing(engine, "companies", FIXTURES / "hubspot_companies.csv", report)


def test_contacts_then_accounts_then_contacts_do_not_duplicate_companies(engine: Engine) -> None:
    _reps(engine)
    import_builtin(engine, "companies", FIXTURES / "salesforce_accounts.csv")
    import_builtin(engine, "contacts", FIXTURES / "salesforce_contacts.csv")
    with Session(engine) as session:
        names = session.exec(select(Company.name)).all()
    assert sorted(names) == sorted(set(names))


def test_regression_partial_file_changes_only_its_columns(engine: Engine, tmp_path: Path) -> None:
    full = tmp_path / "full.csv"
    full.write_text("Email,First Name,Last Name,Phone Number,Job Title,Company Name\n"
                    "newbie@acme.example,Totally New,Person,+1 555 0100,Buyer,Acme Inc\n", encoding="utf-8")
    import_builtin(engine, "contacts", full)
    partial = tmp_path / "partial.csv"
    partial.write_text("Email,Lifecycle Stage\nnewbie@acme.example,Customer\n", encoding="utf-8")
    report = import_builtin(engine, "contacts", partial)
    assert (report.updated, report.rejected) == (1, [])
    contact = _contacts(engine)["newbie@acme.example"]
    # the name is never replaced by one made from the address ("newbie")
    assert (contact.name, contact.phone, contact.title) == ("Totally New Person", "+1 555 0100", "Buyer")
    assert (contact.kind, contact.stage) == ("customer", "post_purchase")
    with Session(engine) as session:
        assert session.get(Company, contact.company_id).name == "Acme Inc"  # type: ignore[union-attr]


def test_regression_a_reimport_naming_the_companys_owner_is_reported_as_what_it_changed(
    engine: Engine, tmp_path: Path
) -> None:
    """A HubSpot re-import naming Alice as Åsa's owner, who owns Åsa's company already, was reported
    "unchanged" although it gave the company her mail domain. The owner is no change: Åsa keeps
    Alice through the company (a new owner of the company is still hers); the domain is, so the
    row is "updated". Again, the file changes nothing and says so; naming Bob makes him her own."""
    _reps(engine)
    with session_scope(engine) as session:
        alice = session.exec(select(Rep).where(Rep.name == "Alice Andersson")).one()
        company = Company(name="Nordlys", owner_id=alice.id)
        session.add(company)
        session.flush()
        asa = Contact(name="Åsa Öberg", company_id=company.id)
        session.add(asa)
        session.flush()
        session.add(ContactEmail(contact_id=asa.id, email="asa@nordlys.example", is_primary=True))
    path = tmp_path / "hubspot.csv"

    def reimport(owner: str) -> tuple[int, int]:
        path.write_text(f"Email,Company Name,Contact owner\nasa@nordlys.example,Nordlys,{owner}\n", encoding="utf-8")
        report = import_builtin(engine, "contacts", path)
        assert report.rejected == []
        return report.updated, report.unchanged

    assert reimport("Alice Andersson") == (1, 0)
    with Session(engine) as session:
        assert session.exec(select(CompanyDomain.domain)).all() == ["nordlys.example"]
    assert _contacts(engine)["asa@nordlys.example"].owner_id is None
    before = _snapshot(engine)
    assert reimport("Alice Andersson") == (0, 1)
    assert _snapshot(engine) == before
    assert reimport("Bob Berg") == (1, 0)
    with Session(engine) as session:
        bob = session.exec(select(Rep).where(Rep.name == "Bob Berg")).one()
    assert _contacts(engine)["asa@nordlys.example"].owner_id == bob.id


def test_a_new_contact_without_a_name_gets_one_that_a_named_row_replaces(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("email\njo@acme.example\n", encoding="utf-8")
    import_builtin(engine, "contacts", path)
    assert _contacts(engine)["jo@acme.example"].name == "jo"
    path.write_text("email,name\njo@acme.example,Jo Smith\n", encoding="utf-8")
    import_builtin(engine, "contacts", path)
    path.write_text("email\njo@acme.example\n", encoding="utf-8")
    assert import_builtin(engine, "contacts", path).unchanged == 1
    assert _contacts(engine)["jo@acme.example"].name == "Jo Smith"


def test_duplicates_in_different_batches_merge_and_keep_every_phone(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importing, "CHUNK", 2)  # the twins are rows of different batches
    path = tmp_path / "c.csv"
    path.write_text("Email,Name,Phone,Job Title\n"
                    "dup@acme.example,Dee Dup,111,Buyer\n"
                    "other@acme.example,Oda Other,222,\n"
                    "x@acme.example,X,333,\n"
                    "DUP@acme.example,,444,Head Buyer\n", encoding="utf-8")
    report = import_builtin(engine, "contacts", path)
    assert (report.imported, report.updated, report.rejected) == (3, 0, [])
    assert [w.line for w in report.warnings] == [5]
    dee = _contacts(engine)["dup@acme.example"]
    assert (dee.name, dee.phone, dee.title) == ("Dee Dup", "111, 444", "Head Buyer")
    assert import_builtin(engine, "contacts", path).updated == 0  # and a re-import changes nothing


def test_opt_out_of_a_contact_with_consent_withdraws_it_once(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("email,consent purpose,legal basis\nc@acme.example,marketing,consent\n", encoding="utf-8")
    import_builtin(engine, "contacts", path)
    path.write_text("Email,Email Opt Out\nc@acme.example,1\n", encoding="utf-8")
    assert import_builtin(engine, "contacts", path).updated == 1
    assert import_builtin(engine, "contacts", path).unchanged == 1
    with Session(engine) as session:
        consents = session.exec(select(Consent)).all()
    assert len(consents) == 1 and consents[0].granted_at is not None and consents[0].withdrawn_at is not None


def test_regression_an_opt_out_on_any_duplicate_row_stands(engine: Engine) -> None:
    """Line 2 opted out and line 5 (the same address in capitals) said 0: the later value won the
    merge and the card said "Consent: none recorded". A withdrawal is the safe side."""
    report = import_builtin(engine, "contacts", FIXTURES / "salesforce_contacts_opt_out_twice.csv")

    assert (report.imported, report.rejected) == (3, [])
    assert _withdrawn(engine) == {"lea.berg@malmotrading.example"}
    assert [w.line for w in report.warnings] == [5, 5]  # the merge, and the opt-out that stands
    assert report.warnings[1].reason == "line 5 says email opt-out '0', but line 2 opted out: the opt-out stands"


NOW = datetime(2026, 12, 4, 13, 0, tzinfo=UTC)


def test_a_creation_date_in_the_future_or_unreadable_warns_and_the_record_lands(
    engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "hubspot.csv"
    path.write_text("Email,First Name,Create Date\n"
                    "old@acme.example,Olda,2019-04-01 08:00\n"
                    "future@acme.example,Fut,2027-01-01 08:00\n"
                    "words@acme.example,Wordy,yesterday\n"
                    "noday@acme.example,Feb,31/02/2023\n"
                    "tomorrow@acme.example,East,2026-12-05 02:30\n", encoding="utf-8")
    report = import_builtin(engine, "contacts", path, now=NOW)
    assert (report.imported, report.rejected) == (5, [])
    assert [f"line {w.line}: {w.reason}" for w in report.warnings] == [
        "line 3: creation date '2027-01-01 08:00' is in the future; import time used",
        "line 4: creation date 'yesterday': not a date we read; import time used",
        "line 5: creation date '31/02/2023': 31 February is not a date; import time used",
    ]
    assert all(len(f"line {w.line}: {w.reason}") <= 80 for w in report.warnings)
    # 02:30 without an offset is already today's time in Auckland: no warning, and not after the import
    assert _created(engine, Contact) == {"old": _utc(2019, 4, 1, 8), "future": NOW, "words": NOW, "noday": NOW,
                                         "tomorrow": NOW}


def test_a_reimport_never_dates_a_record_later(engine: Engine, tmp_path: Path) -> None:
    contacts, companies = tmp_path / "contacts.csv", tmp_path / "companies.csv"
    for created, outcome in (("", "imported"), ("2021-06-01 10:00", "updated"), ("2023-01-01 10:00", "unchanged"),
                             ("not a date", "unchanged"), ("2019-02-03 04:05", "updated")):
        contacts.write_text(f"Email,Create Date\nann@acme.example,{created}\n", encoding="utf-8")
        companies.write_text(f"Company name,Company Domain Name,Create Date\nAcme,acme.example,{created}\n",
                             encoding="utf-8")
        for entity, path in (("contacts", contacts), ("companies", companies)):
            report = import_builtin(engine, entity, path, now=NOW)
            assert getattr(report, outcome) == 1, (entity, created)
    assert _created(engine, Contact) == {"ann": _utc(2019, 2, 3, 4, 5)}
    assert _created(engine, Company) == {"Acme": _utc(2019, 2, 3, 4, 5)}


def test_created_date_in_an_orders_file_is_still_the_order_date(engine: Engine, tmp_path: Path) -> None:
    # Salesforce's `Created Date` is a contact's or a company's creation, but in an orders file the order's date
    (tmp_path / "c.csv").write_text("Email\nann@acme.example\n", encoding="utf-8")
    import_builtin(engine, "contacts", tmp_path / "c.csv", now=NOW)
    (tmp_path / "o.csv").write_text("Order Number,Email,Amount,Created Date\nNS-1,ann@acme.example,10,2026-11-02\n",
                                    encoding="utf-8")
    report = import_builtin(engine, "orders", tmp_path / "o.csv", now=NOW)
    assert (report.imported, report.rejected, report.ignored) == (1, [], [])
    with Session(engine) as session:
        assert str(session.exec(select(Order.ordered_on)).one()) == "2026-11-02"
