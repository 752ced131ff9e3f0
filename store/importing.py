"""CSV imports of contacts, companies, reps and orders.

Accepts our own column names and those of common CRM exports (HubSpot,
Salesforce, Pipedrive style). UTF-8 with or without BOM, `,` or `;`
separated. Re-importing a file updates instead of duplicating: contacts are
keyed by email address, companies by domain, reps by email, orders by order id.
A bad row never stops an import: it is reported with its line number and
reason and the good rows land. Each row is written in its own savepoint and
rows are committed in chunks, so a killed import leaves every row either fully
in or fully out; running it again finishes the job.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, func, select

from store.db import session_scope
from store.exporting import restore_cell
from store.models import (
    Company,
    CompanyDomain,
    Consent,
    Contact,
    ContactEmail,
    ContactKind,
    Order,
    Rep,
    Role,
    Stage,
)
from store.reps import upsert_rep
from store.search import refresh_index
from store.stages import apply_order
from store.types import utcnow
from store.validation import (
    Invalid,
    check_categories,
    check_choice,
    check_domain,
    check_email,
    check_timezone,
    check_working_hours,
    email_domain,
    is_free_mail,
    parse_amount,
    parse_date,
    split_list,
)

ENTITIES = ("contacts", "companies", "reps", "orders")
CHUNK = 500

# Our name <- the names CRMs use (compared after lower-casing and dropping punctuation).
ALIASES: dict[str, tuple[str, ...]] = {
    "first_name": ("first name", "firstname", "given name"),
    "last_name": ("last name", "lastname", "surname", "family name"),
    "name": ("name", "full name", "contact name", "contact", "person"),
    "email": ("email", "email address", "e mail", "primary email", "work email", "emails"),
    "other_emails": ("additional email addresses", "secondary email", "other emails", "alternate email"),
    "phone": ("phone", "phone number", "mobile phone number", "mobile", "mobile phone", "business phone"),
    "company_name": (
        "company name",
        "company",
        "account name",
        "associated company",
        "organization",
        "organisation",
    ),
    "company_domain": ("company domain", "company domain name", "domain", "website", "account website"),
    "kind": ("kind", "type", "contact type", "account type", "relationship"),
    "stage": ("stage", "lifecycle stage", "buying stage", "lead status"),
    "owner_email": ("owner email", "owner", "contact owner", "account owner", "company owner", "owner name"),
    "language": ("language", "preferred language"),
    "title": ("title", "job title", "position"),
    "consent_purpose": ("consent purpose", "consent"),
    "consent_basis": ("consent basis", "legal basis", "legal basis for processing"),
    "industry": ("industry",),
    "country": ("country", "country region", "billing country"),
    "slack_user_id": ("slack user id", "slack id", "slack"),
    "role": ("role",),
    "team": ("team",),
    "skills": ("skills",),
    "languages": ("languages",),
    "timezone": ("timezone", "time zone", "tz"),
    "working_hours": ("working hours", "hours"),
    "capacity": ("capacity",),
    "order_id": ("order id", "order number", "order", "id", "deal id", "invoice number"),
    "amount": ("amount", "total", "value", "order value", "deal amount"),
    "currency": ("currency", "currency code"),
    "ordered_on": ("ordered on", "order date", "date", "close date", "created date"),
    "product_category": ("product category", "category", "product"),
    "status": ("status", "order status"),
}
_LOOKUP = {
    re.sub(r"[^a-z0-9]+", " ", alias).strip(): ours
    for ours, names in ALIASES.items()
    for alias in (ours.replace("_", " "), *names)
}

# HubSpot lifecycle stages -> (kind, stage in the buying process)
LIFECYCLE: dict[str, tuple[str, str]] = {
    "subscriber": ("prospect", "need"),
    "lead": ("prospect", "need"),
    "marketingqualifiedlead": ("prospect", "information_search"),
    "marketing qualified lead": ("prospect", "information_search"),
    "salesqualifiedlead": ("prospect", "evaluation"),
    "sales qualified lead": ("prospect", "evaluation"),
    "opportunity": ("prospect", "evaluation"),
    "customer": ("customer", "post_purchase"),
    "evangelist": ("customer", "post_purchase"),
    "partner": ("partner", "post_purchase"),
}


class ImportFileError(Exception):
    """The file as a whole cannot be read (not the fault of a single row)."""


@dataclass
class Rejected:
    line: int
    reason: str


@dataclass
class ImportReport:
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    warnings: list[Rejected] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": [{"line": r.line, "reason": r.reason} for r in self.rejected],
            "warnings": [{"line": w.line, "warning": w.reason} for w in self.warnings],
        }


# --------------------------------------------------------------------------- reading


def _header_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", name.lower()).strip()


def read_rows(path: Path) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """The canonical column names found, and (line number, row) pairs.

    Line numbers are those a person sees in an editor (the header is line 1),
    also when a quoted field spans lines. Every physical line is accounted for:
    a quote left open swallows the lines after it, so such a row is rejected
    (naming the lines it swallowed) and those lines are read again as rows.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    # Undecodable bytes survive as surrogates, so only the rows holding them are rejected.
    text = data.decode("utf-8-sig", errors="surrogateescape")
    if not text.strip():
        raise ImportFileError(f"{path} is empty")
    # Physical lines exactly as the csv module counts them (\n, \r\n or \r).
    lines = io.StringIO(text, newline="").readlines()
    first_line = lines[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    if "\t" in first_line and first_line.count("\t") > first_line.count(delimiter):
        delimiter = "\t"
    header = next(csv.reader(lines, delimiter=delimiter))
    columns = [_LOOKUP.get(_header_key(h), _header_key(h).replace(" ", "_")) for h in header]

    def swallowed(values: list[str], first: int, last: int) -> bool:
        """Whether a row spanning lines first..last is an open quote eating the rows after it."""
        if len(values) != len(columns):
            return True
        return len(columns) > 1 and any(
            len(next(csv.reader([line], delimiter=delimiter), [])) == len(columns)
            for line in lines[first:last]
        )

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        start = 2  # the line the reader starts on; moves back after a swallowing row
        while start <= len(lines):
            reader = csv.reader(itertools.islice(lines, start - 1, None), delimiter=delimiter)
            for first, last, values in _records(reader, start):
                if isinstance(values, str):
                    yield first, {"__error__": values}
                    continue
                if last > first and swallowed(values, first, last):
                    yield first, {
                        "__error__": f"a quote opened on this line is not closed, so lines {first + 1}-{last} "
                        "were read into this row; they are read again as rows of their own"
                    }
                    start = first + 1
                    break
                if any(v.strip() for v in values):
                    yield first, _row(columns, values)
            else:
                return

    return columns, rows()


def _records(reader: Any, start: int) -> Iterator[tuple[int, int, list[str] | str]]:
    """(first line, last line, values or an error) for each record a reader started on line `start` reads."""
    while True:
        first = start + reader.line_num
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield first, start + reader.line_num - 1, f"unreadable CSV: {exc}"
            continue
        yield first, start + reader.line_num - 1, values


def _row(columns: list[str], values: list[str]) -> dict[str, str]:
    row: dict[str, str] = {}
    for column, value in zip(columns, values, strict=False):
        if column not in row or not row[column]:
            row[column] = restore_cell(value).strip()
    if len(values) > len(columns):
        row["__error__"] = f"{len(values)} fields but the header has {len(columns)}"
    if any("\udc80" <= ch <= "\udcff" for v in values for ch in v):
        row["__error__"] = "not valid UTF-8 (save the file as UTF-8)"
    return row


# --------------------------------------------------------------------------- upserts


def _set(obj: Any, values: dict[str, Any]) -> bool:
    changed = False
    for key, value in values.items():
        if value is not None and getattr(obj, key) != value:
            setattr(obj, key, value)
            changed = True
    return changed


def _resolve_rep(session: Session, ref: str | None, report: ImportReport, line: int) -> int | None:
    """A rep by email or by name (HubSpot exports owner names); unknown -> warning, no owner."""
    if not ref:
        return None
    ref = ref.strip()
    query = (
        select(Rep).where(Rep.email == ref.lower())
        if "@" in ref
        else select(Rep).where(func.lower(Rep.name) == ref.lower())
    )
    rep = session.exec(query).first()
    if rep is None:
        report.warnings.append(Rejected(line, f"owner {ref!r} is not a known rep; imported without owner"))
        return None
    return rep.id


def _company_by_domain(session: Session, domain: str) -> Company | None:
    return session.exec(
        select(Company)
        .join(CompanyDomain, col(CompanyDomain.company_id) == Company.id)
        .where(CompanyDomain.domain == domain)
    ).first()


def _ensure_company(session: Session, name: str | None, domain: str | None) -> Company | None:
    company = _company_by_domain(session, domain) if domain else None
    if company is None and name:
        company = session.exec(select(Company).where(func.lower(Company.name) == name.lower())).first()
    if company is None and (name or domain):
        company = Company(name=name or (domain or "").split(".")[0].title())
        session.add(company)
        session.flush()
    if company is not None and domain and _company_by_domain(session, domain) is None:
        session.add(CompanyDomain(company_id=company.id, domain=domain))  # type: ignore[arg-type]
    return company


def _contact_name(row: dict[str, str], email: str) -> str:
    name = row.get("name") or " ".join(p for p in (row.get("first_name"), row.get("last_name")) if p)
    return name.strip() or email.split("@")[0]


def _kind_and_stage(row: dict[str, str]) -> tuple[str | None, str | None]:
    kind = check_choice(row["kind"], ContactKind, "kind") if row.get("kind") else None
    stage_text = (row.get("stage") or "").strip()
    stage = None
    if stage_text:
        mapped = LIFECYCLE.get(stage_text.lower())
        if mapped:
            kind = kind or mapped[0]
            stage = mapped[1]
        else:
            stage = check_choice(stage_text, Stage, "stage")
    return kind, stage


def import_contact(session: Session, row: dict[str, str], line: int, report: ImportReport) -> str:
    if not row.get("email"):
        raise Invalid("no email address")
    email = check_email(row["email"])
    others = [check_email(e) for e in split_list(row.get("other_emails"))]
    kind, stage = _kind_and_stage(row)
    domain = check_domain(row["company_domain"]) if row.get("company_domain") else None
    if domain is None and not is_free_mail(email_domain(email)):
        # A work address tells the company, as CRMs associate by domain; a free-mail one never does.
        derived = email_domain(email)
        if row.get("company_name") or _company_by_domain(session, derived) is not None:
            domain = derived
    owner_id = _resolve_rep(session, row.get("owner_email"), report, line)
    company = _ensure_company(session, row.get("company_name") or None, domain)
    address = session.exec(select(ContactEmail).where(ContactEmail.email == email)).first()
    values: dict[str, Any] = {
        "name": _contact_name(row, email),
        "kind": kind,
        "stage": stage,
        "company_id": company.id if company else None,
        "owner_id": owner_id,
        "phone": row.get("phone") or None,
        "title": row.get("title") or None,
        "language": (row.get("language") or "").lower() or None,
    }
    if address is None:
        contact = Contact(**{k: v for k, v in values.items() if v is not None}, source="import")
        session.add(contact)
        session.flush()
        session.add(ContactEmail(contact_id=contact.id, email=email, is_primary=True))  # type: ignore[arg-type]
        outcome = "imported"
    else:
        contact = session.get(Contact, address.contact_id)  # type: ignore[assignment]
        outcome = "updated" if _set(contact, values) else "unchanged"
        if outcome == "updated":
            contact.updated_at = utcnow()
            session.add(contact)
    for other in others:
        if session.exec(select(ContactEmail).where(ContactEmail.email == other)).first() is None:
            session.add(ContactEmail(contact_id=contact.id, email=other))  # type: ignore[arg-type]
            outcome = "updated" if outcome == "unchanged" else outcome
    if row.get("consent_purpose"):
        outcome = _record_consent(session, contact, row, outcome)
    return outcome


def _record_consent(session: Session, contact: Contact, row: dict[str, str], outcome: str) -> str:
    purpose = row["consent_purpose"].strip().lower()
    basis = (row.get("consent_basis") or "consent").strip().lower().replace(" ", "_")
    existing = session.exec(
        select(Consent).where(Consent.contact_id == contact.id, Consent.purpose == purpose)
    ).first()
    if existing is None:
        consent = Consent(contact_id=contact.id or 0, purpose=purpose, basis=basis, granted_at=utcnow(), source="import")
        session.add(consent)
        return "updated" if outcome == "unchanged" else outcome
    if existing.basis != basis:
        existing.basis = basis
        session.add(existing)
        return "updated" if outcome == "unchanged" else outcome
    return outcome


def import_company(session: Session, row: dict[str, str], line: int, report: ImportReport) -> str:
    if not row.get("company_domain"):
        raise Invalid("no domain (companies are matched by their mail domain)")
    domain = check_domain(row["company_domain"])
    name = row.get("company_name") or row.get("name")
    if not name:
        raise Invalid("no company name")
    kind = check_choice(row["kind"], ContactKind, "kind") if row.get("kind") else None
    values: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "owner_id": _resolve_rep(session, row.get("owner_email"), report, line),
        "industry": row.get("industry") or None,
        "country": row.get("country") or None,
        "phone": row.get("phone") or None,
    }
    company = _company_by_domain(session, domain)
    if company is None:
        company = Company(**{k: v for k, v in values.items() if v is not None})
        session.add(company)
        session.flush()
        session.add(CompanyDomain(company_id=company.id, domain=domain))  # type: ignore[arg-type]
        return "imported"
    if _set(company, values):
        company.updated_at = utcnow()
        session.add(company)
        return "updated"
    return "unchanged"


def import_rep(session: Session, row: dict[str, str], line: int, report: ImportReport) -> str:
    if not row.get("email"):
        raise Invalid("no email address")
    fields: dict[str, Any] = {
        "email": check_email(row["email"]),
        "name": row.get("name") or _contact_name(row, row["email"]),
    }
    if row.get("slack_user_id"):
        fields["slack_user_id"] = row["slack_user_id"]
    if row.get("role"):
        fields["role"] = check_choice(row["role"], Role, "role")
    if row.get("team"):
        fields["team"] = row["team"]
    if row.get("skills"):
        fields["skills"] = check_categories(split_list(row["skills"]))
    if row.get("languages"):
        fields["languages"] = [lang.lower() for lang in split_list(row["languages"])]
    if row.get("timezone"):
        fields["timezone"] = check_timezone(row["timezone"])
    if row.get("working_hours"):
        fields["working_hours"] = check_working_hours(row["working_hours"])
    if row.get("capacity"):
        if not row["capacity"].isdigit():
            raise Invalid(f"capacity {row['capacity']!r} is not a whole number")
        fields["capacity"] = int(row["capacity"])
    existed = session.exec(select(Rep.id).where(Rep.email == fields["email"])).first() is not None
    _, changed = upsert_rep(session, fields)
    return "imported" if not existed else ("updated" if changed else "unchanged")


def import_order(session: Session, row: dict[str, str], line: int, report: ImportReport) -> str:
    if not row.get("order_id"):
        raise Invalid("no order id")
    if not row.get("amount"):
        raise Invalid("no amount")
    if not row.get("ordered_on"):
        raise Invalid("no order date")
    amount = parse_amount(row["amount"])
    ordered_on = parse_date(row["ordered_on"])
    currency = (row.get("currency") or "EUR").strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise Invalid(f"currency {row.get('currency')!r} is not a 3-letter code such as EUR")
    contact_id = company_id = None
    if row.get("email"):
        address = session.exec(
            select(ContactEmail).where(ContactEmail.email == check_email(row["email"]))
        ).first()
        if address is None:
            raise Invalid(f"no contact with email {row['email']!r} (import contacts first)")
        contact_id = address.contact_id
        company_id = session.get(Contact, contact_id).company_id  # type: ignore[union-attr]
    if row.get("company_domain"):
        company = _company_by_domain(session, check_domain(row["company_domain"]))
        if company is None:
            raise Invalid(f"no company with domain {row['company_domain']!r} (import companies first)")
        company_id = company.id
    if contact_id is None and company_id is None:
        raise Invalid("an order needs a contact email or a company domain")
    values: dict[str, Any] = {
        "contact_id": contact_id,
        "company_id": company_id,
        "amount": amount,
        "currency": currency,
        "ordered_on": ordered_on,
        "product_category": row.get("product_category") or None,
        "status": (row.get("status") or "completed").lower(),
    }
    order = session.exec(select(Order).where(Order.external_id == row["order_id"])).first()
    if order is None:
        order = Order(external_id=row["order_id"], **{k: v for k, v in values.items() if v is not None})
        session.add(order)
        session.flush()
        apply_order(session, order, at=utcnow())  # a prospect's first order makes it a customer
        return "imported"
    return "updated" if _set(order, values) else "unchanged"


IMPORTERS: dict[str, Callable[[Session, dict[str, str], int, ImportReport], str]] = {
    "contacts": import_contact,
    "companies": import_company,
    "reps": import_rep,
    "orders": import_order,
}
KEYS = {"contacts": "email", "companies": "company_domain", "reps": "email", "orders": "order_id"}


def _row_key(entity: str, row: dict[str, str]) -> str | None:
    value = (row.get(KEYS[entity]) or "").strip().lower()
    if entity == "companies" and value:
        try:
            return check_domain(value)
        except Invalid:
            return value
    return value or None


def count_rows(path: Path) -> int:
    """Rows in a CSV file (for a progress bar); cheap enough to run before an import."""
    _, rows = read_rows(path)
    return sum(1 for _ in rows)


def import_csv(
    engine: Engine,
    entity: str,
    path: Path,
    *,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import `path` as `entity` (contacts, companies, reps, orders); see the module doc."""
    if entity not in IMPORTERS:
        raise ImportFileError(f"cannot import {entity!r}; choose one of {', '.join(ENTITIES)}")
    importer = IMPORTERS[entity]
    columns, rows = read_rows(path)
    needed = {"contacts": "email", "companies": "company_domain", "reps": "email", "orders": "order_id"}[
        entity
    ]
    if needed not in columns:
        raise ImportFileError(
            f"{path}: no {needed.replace('_', ' ')} column among {', '.join(columns)} "
            f"(accepted names: {', '.join(ALIASES[needed])})"
        )
    report = ImportReport()
    seen: dict[str, int] = {}
    pending: list[tuple[int, dict[str, str]]] = []

    def flush() -> None:
        with session_scope(engine) as session:
            for line, row in pending:
                try:
                    with session.begin_nested():
                        outcome = importer(session, row, line, report)
                except Invalid as exc:
                    report.rejected.append(Rejected(line, str(exc)))
                    continue
                except SQLAlchemyError as exc:
                    report.rejected.append(
                        Rejected(line, f"database refused the row: {exc.__class__.__name__}")
                    )
                    continue
                setattr(report, outcome, getattr(report, outcome) + 1)
            if dry_run:
                session.rollback()
            else:  # the writer indexes what it added: a search never writes
                refresh_index(session)
        if progress:
            progress(len(pending))
        pending.clear()

    for line, row in rows:
        if "__error__" in row:
            report.rejected.append(Rejected(line, row["__error__"]))
            continue
        key = _row_key(entity, row)
        if key and key in seen:
            report.rejected.append(
                Rejected(line, f"duplicate of line {seen[key]} ({KEYS[entity].replace('_', ' ')} {key})")
            )
            continue
        if key:
            seen[key] = line
        pending.append((line, row))
        if len(pending) >= CHUNK:
            flush()
    flush()
    report.rejected.sort(key=lambda r: r.line)
    return report
