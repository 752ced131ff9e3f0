"""CSV imports of contacts, companies, reps and orders (docs/imports.md).

Accepts our own column names and those of real CRM exports (HubSpot, Salesforce
labels and API names, Pipedrive, Zoho) as they are; their stage, status and type
values map to our kind and stage through the tables below (an unknown value
warns, the row lands). UTF-8 with or without BOM, `,` or `;` separated.
Re-importing updates instead of duplicating: contacts are keyed by email
address, companies by domain (else name), reps by email, orders by order id. A
column the file leaves out changes nothing; rows of one record merge. Contacts
and companies are dated by the CRM's creation date column, never later than a
date an earlier import gave them. A bad row
never stops an import: it is reported with its line number and reason and the
good rows land. Rows are committed in batches, one transaction each (contacts in
a few multi-row statements; when the database refuses a batch, row by row in
savepoints), so a killed import leaves every row either fully in or fully out;
running it again finishes the job.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from store.audit import Actor
from store.consent import import_consent, withdraw_consent_many
from store.db import any_of, insert_rows, read_session, session_scope
from store.exporting import restore_cell
from store.models import (
    Company,
    CompanyDomain,
    Contact,
    ContactEmail,
    ContactKind,
    Order,
    Rep,
    Role,
    Stage,
    company_name_key,
)
from store.privacy import erased_addresses
from store.reps import upsert_rep
from store.search import Written, changes_terms, index_new_companies, index_new_contacts, refresh_index
from store.stages import RuleMove, apply_order, import_move, move_contact
from store.types import utcnow
from store.validation import (
    Invalid,
    check_choice,
    check_created_at,
    check_currency,
    check_domain,
    check_email,
    check_order_amount,
    check_order_date,
    check_timezone,
    check_working_hours,
    email_domain,
    is_free_mail,
    nearest,
    read_skills,
    split_list,
    unknown_skills,
)

ENTITIES = ("contacts", "companies", "reps", "orders")
CHUNK = 1000
IMPORT_CACHE_KIB = 64 * 1024  # SQLite's page cache while importing (its default is 2 MB)

# Our name <- the names CRMs and our own exports (store.exporting.FIELDS) use, labels and API
# names (compared lower-cased, letters and digits only): every export of ours imports as it is.
ALIASES: dict[str, tuple[str, ...]] = {
    "first_name": ("first name", "firstname", "given name"),
    "last_name": ("last name", "lastname", "surname", "family name"),
    "name": ("name", "full name", "contact name", "contact", "person"),
    "email": ("email", "email address", "e mail", "primary email", "work email", "emails", "contact email"),
    "other_emails": ("additional email addresses", "secondary email", "other emails", "alternate email"),
    "phone": (
        "phone",
        "phone number",
        "mobile phone number",
        "mobile",
        "mobile phone",
        "mobilephone",
        "business phone",
    ),
    "company_name": (
        "company name",
        "company",
        "account name",
        "account.name",
        "associated company",
        "organization",
        "organisation",
    ),
    "company_domain": ("company domain", "company domain name", "domain", "website", "account website"),
    "kind": ("kind", "type", "contact type", "account type", "relationship"),
    "stage": ("stage", "lifecycle stage", "buying stage"),
    "lead_status": ("lead status",),
    "owner_email": (
        "owner email",
        "owner",
        "contact owner",
        "account owner",
        "company owner",
        "lead owner",
        "owner name",
        "owner.name",
    ),
    "language": ("language", "preferred language"),
    "title": ("title", "job title", "position"),
    "consent_purpose": ("consent purpose", "consent"),
    "consent_basis": ("consent basis", "legal basis", "legal basis for processing"),
    "email_opt_out": ("email opt out", "hasoptedoutofemail", "unsubscribed from all email", "opted out of email"),
    "external_id": ("record id", "contact id", "lead id", "account id", "company id"),
    "industry": ("industry",),
    "country": ("country", "country region", "billing country", "mailing country"),
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
    "created_at": ("create date", "date created"),
}
# A column name that means something else in one kind of file: a Salesforce lead's `Status`, and
# Salesforce's `Created Date` (`CreatedDate`), which in an orders file is the order's date; and
# our companies export's `domains` (a company's every domain, `|` separated).
_CREATED = {"createddate": "created_at"}
ENTITY_ALIASES: dict[str, dict[str, str]] = {"contacts": {"status": "lead_status", **_CREATED},
                                             "companies": {"domains": "company_domain", **_CREATED}}
# The columns each import reads; any other column is reported once as ignored.
USED: dict[str, frozenset[str]] = {
    "contacts": frozenset(
        "email other_emails first_name last_name name phone company_name company_domain kind stage lead_status "
        "owner_email language title consent_purpose consent_basis email_opt_out external_id created_at".split()
    ),
    "companies": frozenset(
        "company_domain company_name name kind stage owner_email industry country phone external_id "
        "created_at".split()
    ),
    "reps": frozenset(
        "email name first_name last_name slack_user_id role team skills languages timezone working_hours "
        "capacity".split()
    ),
    "orders": frozenset(
        "order_id email company_domain company_name amount currency ordered_on product_category status".split()
    ),
}
# How near an ignored column's name must be to one an import reads to be taken for a typo of
# it (difflib's ratio of the compared forms): `phnoe` is `phone` (0.8); `Lead Source` is not `Lead
# Status` (0.6), nor a CRM's other columns.
TYPO_CUTOFF = 0.8
# Columns whose values add up instead of replacing each other (Phone and Mobile; a merged duplicate).
PHONE_SEPARATOR = ", "


@lru_cache(maxsize=4096)
def _value_key(value: str) -> str:
    """`Customer - Direct`, `customer_direct` and `customerdirect` are one value."""
    return re.sub(r"[^a-z0-9]+", "", value.lower())


_LOOKUP = {_value_key(alias): ours for ours, names in ALIASES.items() for alias in (ours, *names)}

# What the stage and type values of CRM exports mean for us: (kind, stage in the buying process).
# None keeps what the contact already has (a new contact: prospect, need). docs/imports.md shows the table.
STAGE_VALUES: dict[str, tuple[str | None, str | None]] = {
    # HubSpot lifecycle stages (labels and internal names)
    "subscriber": ("prospect", "need"),
    "lead": ("prospect", "need"),
    "marketingqualifiedlead": ("prospect", "information_search"),
    "salesqualifiedlead": ("prospect", "evaluation"),
    "opportunity": ("prospect", "purchase"),
    "customer": ("customer", "post_purchase"),
    "evangelist": ("customer", "post_purchase"),
    "other": (None, None),
    "partner": ("partner", "post_purchase"),
    # our own stages
    **{_value_key(stage): (None, stage.value) for stage in Stage},
}
LEAD_STATUS_VALUES: dict[str, tuple[str | None, str | None]] = {
    # HubSpot lead status
    "new": (None, "need"),
    "open": (None, "need"),
    "attemptedtocontact": (None, "need"),
    "connected": (None, "information_search"),
    "inprogress": (None, "information_search"),
    "opendeal": (None, "purchase"),
    "unqualified": (None, None),
    "badtiming": (None, None),
    # Salesforce lead status
    "opennotcontacted": ("prospect", "need"),
    "workingcontacted": ("prospect", "information_search"),
    "closedconverted": ("customer", "purchase"),
    "closednotconverted": ("prospect", None),
}
KIND_VALUES: dict[str, str | None] = {
    **{kind.value: kind.value for kind in ContactKind},
    # Salesforce account types
    "customerdirect": "customer",
    "customerchannel": "customer",
    "channelpartnerreseller": "partner",
    "installationpartner": "partner",
    "technologypartner": "partner",
    # HubSpot company types
    "reseller": "partner",
    "vendor": "partner",
    "other": None,
}
OPT_OUT_VALUES = {"true": True, "1": True, "yes": True, "y": True, "x": True,
                  "false": False, "0": False, "no": False, "n": False}


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
    erased: int = 0  # rows of people erased on request (store.privacy), skipped
    rejected: list[Rejected] = field(default_factory=list)
    warnings: list[Rejected] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # columns of the file that no field takes
    misspelt: dict[str, str] = field(default_factory=dict)  # ignored columns that look like a typo: the name meant

    @property
    def complete(self) -> bool:
        """Every row landed (warnings allowed)."""
        return not self.rejected

    @property
    def clean(self) -> bool:
        """Every row landed and no column looks misspelt (its data went nowhere): exit status 0."""
        return self.complete and not self.misspelt

    def as_dict(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "erased_skipped": self.erased,
            "rejected": [{"line": r.line, "reason": r.reason} for r in self.rejected],
            "warnings": [{"line": w.line, "warning": w.reason} for w in self.warnings],
            "ignored_columns": self.ignored,
            "misspelt_columns": self.misspelt,
        }


# --------------------------------------------------------------------------- reading


def column_name(label: str, entity: str | None = None) -> str:
    """Our name for a column labelled `label` in an export (unknown labels keep a name of their own)."""
    key = _value_key(label)
    return ENTITY_ALIASES.get(entity or "", {}).get(key) or _LOOKUP.get(key) or f"?{label.strip()}"


def column_names(header: list[str], entity: str | None = None) -> list[str]:
    """Our names for a header's columns. A column under our own name wins over another that
    names the same field by an alias, which is ignored (our orders export's database `id` beside
    its `order_id`); only phones add up."""
    names = [column_name(label, entity) for label in header]
    exact = {name for label, name in zip(header, names, strict=True) if _value_key(label) == _value_key(name)}
    return [name if name not in exact or name == "phone" or _value_key(label) == _value_key(name)
            else f"?{label.strip()}" for label, name in zip(header, names, strict=True)]


def misspelt_columns(header: list[str], columns: list[str], entity: str) -> dict[str, str]:
    """The ignored columns whose name is a near miss (TYPO_CUTOFF) of a name for a field that
    `entity`'s import reads and the file gives in no other column: label -> the name meant.
    A CRM's own extra columns (`Mailing City` beside `Mailing Country`) are no typos."""
    given = set(columns)
    meant: dict[str, str] = {}  # compared form -> the name as the docs write it; ours first
    for ours, names in ALIASES.items():
        for name in (ours, *names):
            key = _value_key(name)
            if column_name(name, entity) in USED[entity].difference(given):
                meant.setdefault(key, name)
    found = {label: nearest(_value_key(label), meant, TYPO_CUTOFF)
             for label, name in zip(header, columns, strict=True) if name not in USED[entity]}
    return {label: name for label, name in found.items() if name is not None}


def _lines(path: Path) -> tuple[list[str], str]:
    """The file's physical lines, exactly as the csv module counts them (\\n, \\r\\n or \\r), and its separator."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    # Undecodable bytes survive as surrogates, so only the rows holding them are rejected.
    text = data.decode("utf-8-sig", errors="surrogateescape")
    if not text.strip():
        raise ImportFileError(f"{path} is empty")
    lines = io.StringIO(text, newline="").readlines()
    first_line = lines[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    if "\t" in first_line and first_line.count("\t") > first_line.count(delimiter):
        delimiter = "\t"
    return lines, delimiter


def repeated_keys(path: Path, entity: str) -> set[str]:
    """Keys (emails, domains, ...) on more than one row: a quick first pass, so that the rows of
    one record are merged before any of them is written."""
    lines, delimiter = _lines(path)
    reader = csv.reader(lines, delimiter=delimiter)
    columns = column_names(next(reader), entity)
    seen: set[str] = set()
    repeated: set[str] = set()
    try:
        for values in reader:
            key = _row_key(entity, dict(zip(columns, values, strict=False)))
            if key is not None:
                (repeated if key in seen else seen).add(key)
    except csv.Error:
        pass  # the rows after it still merge as they are written (later values win)
    return repeated


def read_rows(
    path: Path, entity: str | None = None
) -> tuple[list[str], list[str], Iterator[tuple[int, dict[str, str]]]]:
    """The header as written, our names for its columns, and (line number, row) pairs.

    Line numbers are those a person sees in an editor (the header is line 1),
    also when a quoted field spans lines. Every physical line is accounted for:
    a quote left open swallows the lines after it, so such a row is rejected
    (naming the lines it swallowed) and those lines are read again as rows.
    """
    lines, delimiter = _lines(path)
    header = next(csv.reader(lines, delimiter=delimiter))
    columns = column_names(header, entity)
    undecodable = any(map(_UNDECODABLE.search, lines))  # rows are searched only when the file has such bytes

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
                    yield first, _row(columns, values, undecodable)
            else:
                return

    return header, columns, rows()


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


def _row(columns: list[str], values: list[str], undecodable: bool = True) -> dict[str, str]:
    row: dict[str, str] = {}
    for column, value in zip(columns, values, strict=False):
        if column == "phone" and row.get(column):
            row[column] = join_phones(row[column], restore_cell(value))
        elif column not in row or not row[column]:
            row[column] = restore_cell(value).strip()
    if len(values) > len(columns):
        row["__error__"] = f"{len(values)} fields but the header has {len(columns)}"
    if undecodable and any(_UNDECODABLE.search(value) for value in values):
        row["__error__"] = "not valid UTF-8 (save the file as UTF-8)"
    return row


_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, kept by surrogateescape


# --------------------------------------------------------------------------- shared rules


def join_phones(*values: str | None) -> str:
    """Every distinct number of `values` (each may already hold several), in order of appearance."""
    numbers: list[str] = []
    for value in values:
        for number in (value or "").split(","):
            if number.strip() and number.strip() not in numbers:
                numbers.append(number.strip())
    return PHONE_SEPARATOR.join(numbers)


def kind_and_stage(row: dict[str, str]) -> tuple[str | None, str | None, list[str]]:
    """(kind, stage, warnings) a row's kind, lifecycle stage and lead status say; None: keep what is there.

    The kind column wins for the kind, then the lifecycle stage, then the lead status; the lifecycle
    stage wins for the stage. A value no table knows is a warning, never a rejected row.
    """
    warnings: list[str] = []

    def look_up(column: str, table: dict[str, Any], what: str) -> Any:
        text = (row.get(column) or "").strip()
        if not text:
            return None
        if _value_key(text) not in table:
            warnings.append(f"{what} {text!r} is not one we know; the row is kept without it (docs/imports.md)")
            return None
        return table[_value_key(text)]

    kind = look_up("kind", KIND_VALUES, "type")
    stage_kind, stage = look_up("stage", STAGE_VALUES, "lifecycle stage") or (None, None)
    status_kind, status_stage = look_up("lead_status", LEAD_STATUS_VALUES, "lead status") or (None, None)
    return kind or stage_kind or status_kind, stage or status_stage, warnings


class Owners:
    """Reps by email and by full name (exports name owners either way), read once per import."""

    def __init__(self, session: Session) -> None:
        self.by_key: dict[str, int] = {}
        self.unknown: dict[str, tuple[Rejected, ImportReport]] = {}  # the warning, and the report it is in
        for rep_id, email, name in session.execute(select(col(Rep.id), col(Rep.email), col(Rep.name))):
            self.by_key.setdefault(name.strip().lower(), rep_id)
            self.by_key[email.lower()] = rep_id

    def find(self, ref: str | None, report: ImportReport, line: int) -> int | None:
        """The rep `ref` names; an unknown one is a warning and no owner."""
        if not ref or not ref.strip():
            return None
        key = ref.strip().lower()
        rep_id = self.by_key.get(key)
        if rep_id is not None:
            return rep_id
        warned = self.unknown.get(key)
        if warned is None:  # once per owner, not once per row
            warning = Rejected(line, f"owner {ref.strip()!r} is not a known rep; their rows are imported without owner")
            report.warnings.append(warning)
            self.unknown[key] = (warning, report)
        elif warned[1] is report and line < warned[0].line:
            warned[0].line = line  # a duplicate row is checked ahead of its turn: the warning names the first row
        return None


@dataclass
class Context:
    report: ImportReport
    owners: Owners
    actor: Actor  # who runs the import: the audit log names them for every consent and stage it changes
    now: datetime  # the import's clock: what it stamps (consents, moves, updates)
    source: str  # the file's name, which the moves it makes give as their reason
    categories: Sequence[str] | None  # what a rep's skill may be: the model's categories; None: unknown here
    configured_reps: Collection[str]  # the emails of the reps rapport.toml defines: it wins for them


UNCHECKED_SKILLS = ("skills kept as written, unchecked: the model `[nlp] model` names cannot be read here, "
                    "so its categories are unknown")


def row_context(row: dict[str, str], ctx: Context) -> Context:
    """The context to check `row` in: a merged duplicate's rows were checked alone and reported
    their warnings under their own lines, so its second check reports nothing."""
    return replace(ctx, report=ImportReport()) if CHECKED in row else ctx


def created_at(row: dict[str, str], line: int, ctx: Context) -> datetime | None:
    """When the source CRM created the row's record; None when the file does not say. A date
    that cannot be read or lies in the future is a warning: the record is still worth having."""
    if not row.get("created_at"):
        return None
    try:
        return check_created_at(row["created_at"], ctx.now)
    except Invalid as exc:
        ctx.report.warnings.append(Rejected(line, f"{exc}; import time used"))
        return None


def _keep_earliest(values: dict[str, Any], created: datetime) -> dict[str, Any]:
    """`values` without their creation date unless it is earlier than the record's (`created`):
    a re-import never dates a record later."""
    if values.get("created_at") is None or values["created_at"] < created:
        return values
    return {k: v for k, v in values.items() if k != "created_at"}


def _set(obj: Any, values: dict[str, Any]) -> set[str]:
    """Set the given (not None) values on `obj`; the fields that changed."""
    changed: set[str] = set()
    for key, value in values.items():
        if value is not None and getattr(obj, key) != value:
            setattr(obj, key, value)
            changed.add(key)
    return changed


def _company_by_name(session: Session, name: str) -> Company | None:
    """The first company called `name` (`store.models.company_name_key`: whatever the case)."""
    return session.exec(
        select(Company).where(Company.name_key == company_name_key(name)).order_by(col(Company.id))
    ).first()


def _company_by_domain(session: Session, domain: str) -> Company | None:
    return session.exec(
        select(Company)
        .join(CompanyDomain, col(CompanyDomain.company_id) == Company.id)
        .where(CompanyDomain.domain == domain)
    ).first()


# --------------------------------------------------------------------------- contacts


@dataclass
class ContactIn:
    """A contact row, checked: what the file says, and nothing for the columns it leaves out."""

    line: int
    email: str
    others: list[str]
    fields: dict[str, Any]  # Contact fields the file gives (name, kind, stage, phone, ...)
    company_name: str | None
    domain: str | None  # the company's domain as the file gives it
    work_domain: str | None  # the address's domain when it is not free mail
    opt_out: bool
    consent: tuple[str, str] | None  # (purpose, basis)
    again: bool = False  # the file had this address in an earlier batch: add phones, do not replace


def check_contact(row: dict[str, str], line: int, ctx: Context) -> ContactIn:
    """A row as a ContactIn; Invalid when a value it gives is bad (REQUIRED: when it lacks one).
    Warnings go to the report."""
    email = check_email(row["email"])
    others = [check_email(e) for e in split_list(row.get("other_emails"))]
    kind, stage, warnings = kind_and_stage(row)
    opt_out = False
    if row.get("email_opt_out"):
        answer = OPT_OUT_VALUES.get(row["email_opt_out"].strip().lower())
        if answer is None:
            warnings.append(f"email opt-out {row['email_opt_out']!r} is neither true nor false; ignored")
        opt_out = bool(answer)
    ctx.report.warnings.extend(Rejected(line, warning) for warning in warnings)
    name = row.get("name") or " ".join(p for p in (row.get("first_name"), row.get("last_name")) if p)
    fields = {
        "name": name.strip() or None,
        "kind": kind,
        "stage": stage,
        "owner_id": ctx.owners.find(row.get("owner_email"), ctx.report, line),
        "phone": row.get("phone") or None,
        "title": row.get("title") or None,
        "language": (row.get("language") or "").lower() or None,
        "external_id": row.get("external_id") or None,
        "created_at": created_at(row, line, ctx),
    }
    work = email_domain(email)
    consent = None
    if row.get("consent_purpose"):
        basis = (row.get("consent_basis") or "consent").strip().lower().replace(" ", "_")
        consent = (row["consent_purpose"].strip().lower(), basis)
    return ContactIn(
        line=line,
        email=email,
        others=others,
        fields={k: v for k, v in fields.items() if v is not None},
        company_name=row.get("company_name") or None,
        domain=check_domain(row["company_domain"]) if row.get("company_domain") else None,
        work_domain=None if is_free_mail(work) else work,
        opt_out=opt_out,
        consent=consent,
        again=AGAIN in row,
    )


@dataclass
class _NewCompany:
    name: str
    id: int | None = None


CompanyRef = int | _NewCompany


class _Companies:
    """Companies of one batch by domain and by name: one look-up each, new ones inserted together."""

    def __init__(self, session: Session, rows: list[ContactIn]) -> None:
        domains = {d for r in rows for d in (r.domain, r.work_domain) if d}
        names = {company_name_key(r.company_name) for r in rows if r.company_name}
        self.by_domain: dict[str, CompanyRef] = {}
        self.by_name: dict[str, CompanyRef] = {}
        if domains:
            for domain, company_id in session.execute(
                select(col(CompanyDomain.domain), col(CompanyDomain.company_id)).where(
                    any_of(session, col(CompanyDomain.domain), domains)
                )
            ).all():
                self.by_domain[domain] = company_id
        if names:
            for company_id, name in session.execute(
                select(col(Company.id), col(Company.name_key))
                .where(any_of(session, col(Company.name_key), names))
                .order_by(col(Company.id))
            ).all():
                self.by_name.setdefault(name, company_id)
        self.new: list[_NewCompany] = []
        self.new_domains: list[tuple[str, CompanyRef]] = []
        self.taught: set[str] = set()  # the rows (by address) that gave a company a domain it lacked

    def resolve(self, row: ContactIn) -> CompanyRef | None:
        """The row's company (found, or new): by the given domain, the name, then the work address."""
        domain = row.domain
        if domain is None and row.work_domain and (row.company_name or row.work_domain in self.by_domain):
            # A work address tells the company, as CRMs associate by domain; a free-mail one never does.
            domain = row.work_domain
        company = self.by_domain.get(domain) if domain else None
        name = row.company_name
        if company is None and name:
            company = self.by_name.get(company_name_key(name))
        if company is None and (name or domain):
            company = _NewCompany(name or (domain or "").split(".")[0].title())
            self.new.append(company)
            if name:
                self.by_name[company_name_key(name)] = company
        if company is not None and domain and domain not in self.by_domain:
            self.by_domain[domain] = company
            self.new_domains.append((domain, company))
            self.taught.add(row.email)
        return company

    def insert(self, session: Session, now: datetime) -> None:
        if self.new:
            ids = insert_rows(
                session,
                Company,
                [{"name": c.name, "name_key": company_name_key(c.name), "kind": ContactKind.customer.value,
                  "created_at": now, "updated_at": now} for c in self.new],
            )
            for company, company_id in zip(self.new, ids, strict=True):
                company.id = company_id
        if self.new_domains:
            insert_rows(
                session, CompanyDomain, [{"domain": d, "company_id": _company_id(ref)} for d, ref in self.new_domains]
            )


    def new_texts(self) -> list[tuple[int, str, list[str], None]]:
        """The companies `insert` added, as the search index takes them (no phone from a contacts file)."""
        domains: dict[int | None, list[str]] = {}
        for domain, ref in self.new_domains:
            if isinstance(ref, _NewCompany):
                domains.setdefault(ref.id, []).append(domain)
        return [(c.id, c.name, domains.get(c.id, []), None) for c in self.new if c.id is not None]


def _company_owners(session: Session, company_ids: set[int | None]) -> dict[int, int | None]:
    """The owner of each of these companies, by company id."""
    ids = {i for i in company_ids if i is not None}
    if not ids:
        return {}
    query = select(col(Company.id), col(Company.owner_id)).where(any_of(session, col(Company.id), ids))
    return {company_id: owner_id for company_id, owner_id in session.execute(query).all()}


def _company_id(ref: CompanyRef | None) -> int | None:
    return ref.id if isinstance(ref, _NewCompany) else ref


_CONTACT_FIELDS = ("name", "kind", "stage", "company_id", "owner_id", "phone", "title", "language", "external_id",
                   "created_at")


def write_contacts(
    session: Session, rows: list[ContactIn], written: Written, held: list[Rejected], *, actor: Actor,
    now: datetime, source: str,
) -> list[str]:
    """Insert or update these contacts (distinct addresses) with a few statements; their outcomes.

    Fields the rows do not give are left as they are; a new contact without a name is
    called by its address's local part, an existing one keeps its name. An existing contact's
    kind and stage move only forward (`store.stages.import_move`), as a move from `source`
    (the file's name), with its activity and audit entries; each value held back is added to
    `held` under its row's line. The contacts and companies it creates are indexed for search
    (`written.indexed_*`); the contacts whose terms it changes go to `written.updated_contacts`,
    for `refresh_index` to index again.
    """
    addresses = {e for r in rows for e in (r.email, *r.others)}
    owner_of: dict[str, int] = {
        email: contact_id
        for email, contact_id in session.execute(
            select(col(ContactEmail.email), col(ContactEmail.contact_id)).where(
                any_of(session, col(ContactEmail.email), addresses)
            )
        ).all()
    }
    known_ids = {owner_of[r.email] for r in rows if r.email in owner_of}
    current: dict[int, dict[str, Any]] = {}
    if known_ids:
        columns = [getattr(Contact, name) for name in ("id", *_CONTACT_FIELDS)]
        for values in session.execute(select(*columns).where(any_of(session, col(Contact.id), known_ids))):
            current[values[0]] = dict(zip(_CONTACT_FIELDS, values[1:], strict=True))
    companies = _Companies(session, rows)
    refs = [companies.resolve(r) for r in rows]
    companies.insert(session, now)
    company_owners = _company_owners(session, {h["company_id"] for h in current.values()}
                                     | {r for r in refs if isinstance(r, int)})

    outcomes: list[str] = []
    new_rows: list[tuple[ContactIn, dict[str, Any]]] = []
    updates: list[dict[str, Any]] = []
    moves: list[tuple[int, RuleMove]] = []
    for row, ref in zip(rows, refs, strict=True):
        wanted = dict(row.fields)
        contact_id = owner_of.get(row.email)
        if contact_id is None:
            wanted.setdefault("name", row.email.split("@")[0])
            if ref is not None:
                wanted["company_id"] = _company_id(ref)
            new_rows.append((row, wanted))
            outcomes.append("imported")
            continue
        have = current[contact_id]
        wanted = _keep_earliest(wanted, have["created_at"])
        move, notes = import_move(have["kind"], have["stage"], wanted.pop("kind", None),
                                  wanted.pop("stage", None), source=source)
        held.extend(Rejected(row.line, note) for note in notes)
        if move is not None:
            moves.append((contact_id, move))
        if ref is not None and (row.company_name or row.domain or have["company_id"] is None):
            wanted["company_id"] = _company_id(ref)  # a file without a company column keeps the company
        if row.again and "phone" in wanted:
            wanted["phone"] = join_phones(have["phone"], wanted["phone"])
        if have["owner_id"] is None and "owner_id" in wanted and \
                wanted["owner_id"] == company_owners.get(wanted.get("company_id", have["company_id"])):
            del wanted["owner_id"]  # theirs through the company already (as our export names it): stays so
        changed = {k: v for k, v in wanted.items() if have[k] != v}
        if changed:
            updates.append({"id": contact_id, **changed, "updated_at": now})
            have.update(changed)
        # a domain the row gave its company is a change too, though the contact's fields stay as they were
        outcomes.append("updated" if changed or move or row.email in companies.taught else "unchanged")
    if updates:
        session.execute(update(Contact), updates)
    for contact_id, move in moves:  # recorded as moves, so the card and its stage history agree
        move_contact(session, session.get_one(Contact, contact_id), kind=move.kind, stage=move.stage,
                     reason=move.reason, at=now, actor=actor)
    if new_rows:
        defaults = {**dict.fromkeys(_CONTACT_FIELDS), "kind": ContactKind.prospect.value, "stage": Stage.need.value,
                    "post_purchase_followup": True, "source": "import", "created_at": now, "updated_at": now}
        ids = insert_rows(
            session,
            Contact,
            [{**defaults, **wanted} for _, wanted in new_rows],
        )
        for (row, _), contact_id in zip(new_rows, ids, strict=True):
            owner_of[row.email] = contact_id
        insert_rows(
            session,
            ContactEmail,
            [{"contact_id": owner_of[row.email], "email": row.email, "is_primary": True, "bouncing": False}
             for row, _ in new_rows],
        )
    extra: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        for other in row.others:
            if other not in owner_of:
                owner_of[other] = owner_of[row.email]
                extra.append({"contact_id": owner_of[row.email], "email": other, "is_primary": False,
                              "bouncing": False})
                outcomes[i] = "updated" if outcomes[i] == "unchanged" else outcomes[i]
        if row.consent is not None and import_consent(session, owner_of[row.email], *row.consent, "import", now,
                                                      actor=actor):
            outcomes[i] = "updated" if outcomes[i] == "unchanged" else outcomes[i]
    opted_out = [owner_of[row.email] for row in rows if row.opt_out]
    withdrawn = withdraw_consent_many(session, opted_out, "marketing", "import", now, actor=actor)
    for i, row in enumerate(rows):
        if outcomes[i] == "unchanged" and owner_of[row.email] in withdrawn:
            outcomes[i] = "updated"
    if extra:
        insert_rows(session, ContactEmail, extra)
    addresses_of: dict[int, list[str]] = {}
    for address in extra:
        addresses_of.setdefault(address["contact_id"], []).append(address["email"])
    written.indexed_companies |= index_new_companies(session, companies.new_texts())
    written.indexed_contacts |= index_new_contacts(session, [
        (contact_id, wanted["name"], [row.email, *addresses_of.get(contact_id, [])], wanted.get("phone"),
         wanted.get("company_id"))
        for row, wanted in new_rows
        for contact_id in (owner_of[row.email],)
    ])
    written.updated_contacts.update(u["id"] for u in updates if changes_terms(u))
    return outcomes


def check_company(row: dict[str, str], line: int, ctx: Context) -> tuple[list[str], dict[str, Any]]:
    """A company row's domains (our export gives them all, `|` separated) and fields; Invalid when
    a value it gives is bad (REQUIRED: when it lacks one). Warnings go to the report."""
    domains = [check_domain(domain) for domain in split_list(row.get("company_domain"))]
    kind, _, warnings = kind_and_stage(row)
    ctx.report.warnings.extend(Rejected(line, warning) for warning in warnings)
    values: dict[str, Any] = {
        "name": row.get("company_name") or row.get("name") or None,
        "kind": kind,
        "owner_id": ctx.owners.find(row.get("owner_email"), ctx.report, line),
        "industry": row.get("industry") or None,
        "country": row.get("country") or None,
        "phone": row.get("phone") or None,
        "external_id": row.get("external_id") or None,
        "created_at": created_at(row, line, ctx),
    }
    return domains, values


def import_company(session: Session, row: dict[str, str], line: int, ctx: Context, written: Written) -> str:
    """A company keyed by its mail domains (by its name when the file has none); one whose
    terms it changes (a new name, a new phone) goes to `written.updated_companies`."""
    domains, values = check_company(row, line, ctx)
    company = next(filter(None, (_company_by_domain(session, domain) for domain in domains)), None)
    if company is None:
        company = _company_by_name(session, values["name"])
    outcome = "unchanged"
    if company is None:
        company = Company(**{"created_at": ctx.now, "updated_at": ctx.now,
                             **{k: v for k, v in values.items() if v is not None}})
        session.add(company)
        session.flush()
        outcome = "imported"
    elif changed := _set(company, _keep_earliest(values, company.created_at)):
        company.updated_at = ctx.now
        session.add(company)
        outcome = "updated"
        if changes_terms(changed):
            written.updated_companies.add(company.id)  # type: ignore[arg-type]
    for domain in domains:
        if _company_by_domain(session, domain) is None:
            session.add(CompanyDomain(company_id=company.id, domain=domain))  # type: ignore[arg-type]
            session.flush()  # the next domain's look-up sees it
            outcome = "updated" if outcome == "unchanged" else outcome
    return outcome


def check_rep(row: dict[str, str], line: int, ctx: Context) -> dict[str, Any]:
    """A rep row's fields; Invalid when a value it gives is bad (REQUIRED: when it lacks one).
    Warnings go to the report."""
    name = row.get("name") or " ".join(p for p in (row.get("first_name"), row.get("last_name")) if p)
    fields: dict[str, Any] = {"email": check_email(row["email"]), "name": name.strip() or row["email"].split("@")[0]}
    if row.get("slack_user_id"):
        fields["slack_user_id"] = row["slack_user_id"]
    if row.get("role"):
        fields["role"] = check_choice(row["role"], Role, "role")
    if row.get("team"):
        fields["team"] = row["team"]
    categories = ctx.categories
    if row.get("skills") and categories is None:  # as rapport.toml's reps: taken as written
        fields["skills"] = split_list(row["skills"])
        ctx.report.warnings.append(Rejected(line, UNCHECKED_SKILLS))
    elif row.get("skills") and categories is not None:
        fields["skills"], unknown = read_skills(split_list(row["skills"]), categories)
        if unknown:
            ctx.report.warnings.append(Rejected(line, unknown_skills(unknown, categories, left_out=True)))
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
    return fields


def import_rep(session: Session, row: dict[str, str], line: int, ctx: Context, written: Written) -> str:
    fields = check_rep(row, line, ctx)
    if fields["email"] in ctx.configured_reps:
        return _keep_configured_rep(session, fields, line, ctx)
    existed = session.exec(select(Rep.id).where(Rep.email == fields["email"])).first() is not None
    _, changed = upsert_rep(session, fields)
    return "imported" if not existed else ("updated" if changed else "unchanged")


def _keep_configured_rep(session: Session, fields: dict[str, Any], line: int, ctx: Context) -> str:
    """A row for a rep rapport.toml defines changes nothing: every start-up sets the rep back to
    the file, so an import's change would hold only until the next command. One that differs is
    a warning saying where to make the change."""
    rep = session.exec(select(Rep).where(Rep.email == fields["email"])).first()
    differs = [key for key, value in fields.items() if rep is None or getattr(rep, key) != value]
    if differs:
        ctx.report.warnings.append(Rejected(
            line, f"{fields['email']} is defined in rapport.toml: change it there (left as it is: {', '.join(differs)})"))
    return "unchanged"


def check_order(row: dict[str, str], line: int, ctx: Context) -> tuple[str | None, str | None, dict[str, Any]]:
    """An order row's contact email, company domain and own fields; Invalid when a value it gives
    is bad (REQUIRED: when it lacks one). The company may be named instead (our export does)."""
    values: dict[str, Any] = {
        "amount": check_order_amount(row["amount"]) if row.get("amount") else None,
        "ordered_on": check_order_date(row["ordered_on"], ctx.now) if row.get("ordered_on") else None,
        "currency": check_currency(row.get("currency") or "EUR"),
        "product_category": row.get("product_category") or None,
        "status": (row.get("status") or "completed").lower(),
    }
    email = check_email(row["email"]) if row.get("email") else None
    domain = check_domain(row["company_domain"]) if row.get("company_domain") else None
    return email, domain, values


def import_order(session: Session, row: dict[str, str], line: int, ctx: Context, written: Written) -> str:
    email, domain, values = check_order(row, line, ctx)
    contact_id = company_id = None
    if email:
        address = session.exec(select(ContactEmail).where(ContactEmail.email == email)).first()
        if address is None:
            raise Invalid(f"no contact with email {row['email']!r} (import contacts first)")
        contact_id = address.contact_id
        company_id = session.get(Contact, contact_id).company_id  # type: ignore[union-attr]
    if domain:
        company = _company_by_domain(session, domain)
        if company is None:
            raise Invalid(f"no company with domain {row['company_domain']!r} (import companies first)")
        company_id = company.id
    elif row.get("company_name"):
        company = _company_by_name(session, row["company_name"])
        if company is None:
            raise Invalid(f"no company named {row['company_name']!r} (import companies first)")
        company_id = company.id
    values = {"contact_id": contact_id, "company_id": company_id, **values}
    order = session.exec(select(Order).where(Order.external_id == row["order_id"])).first()
    if order is None:
        order = Order(external_id=row["order_id"], **{k: v for k, v in values.items() if v is not None})
        session.add(order)
        session.flush()
        apply_order(session, order, at=ctx.now, actor=ctx.actor)  # a prospect's first order makes it a customer
        return "imported"
    return "updated" if _set(order, values) else "unchanged"


# Each writes one row in the caller's transaction; what it writes for search goes to the `Written`.
IMPORTERS: dict[str, Callable[[Session, dict[str, str], int, Context, Written], str]] = {
    "companies": import_company,
    "reps": import_rep,
    "orders": import_order,
}
# Each row's own checks, without the store: a duplicate is checked alone before it merges.
# They check the values a row gives; what it leaves empty is REQUIRED's, on the merged row.
CHECKS: dict[str, Callable[[dict[str, str], int, Context], object]] = {
    "contacts": check_contact,
    "companies": check_company,
    "reps": check_rep,
    "orders": check_order,
}
# What a record cannot land without (a value in one of the columns) and the reason. Checked on
# the row that lands: a duplicate alone may leave them empty, a partial update of the record.
REQUIRED: dict[str, list[tuple[tuple[str, ...], str]]] = {
    "contacts": [(("email",), "no email address")],
    "companies": [(("company_name", "name"), "no company name")],
    "reps": [(("email",), "no email address")],
    "orders": [(("order_id",), "no order id"), (("amount",), "no amount"), (("ordered_on",), "no order date"),
               (("email", "company_domain", "company_name"),
                "an order needs a contact email, a company domain or a company name")],
}
KEYS = {"contacts": "email", "companies": "company_domain", "reps": "email", "orders": "order_id"}


def check_required(entity: str, row: dict[str, str]) -> None:
    """Invalid naming the first of `entity`'s REQUIRED values that `row` leaves empty."""
    for columns, reason in REQUIRED[entity]:
        if not any(row.get(column) for column in columns):
            raise Invalid(reason)


def _row_key(entity: str, row: dict[str, str]) -> str | None:
    value = (row.get(KEYS[entity]) or "").strip().lower()
    if entity == "companies":
        value = next(iter(split_list(value)), "")  # a company of several domains is known by its first
        if not value:  # a company without a domain is known by its name
            name = company_name_key(row.get("company_name") or row.get("name") or "")
            return f"name {name}" if name else None
        try:
            return check_domain(value)
        except Invalid:
            return value
    return value or None


AGAIN = "__again__"  # a row whose record an earlier batch of the same file wrote
CHECKED = "__checked__"  # a duplicate checked alone: its warnings are reported under its own line
# What a merge keeps of both rows, besides the later values, for the entities that have the field.
MERGE_KEEPS = {"phone": "every phone", "created_at": "the earlier creation date"}


def opts_out(value: str | None) -> bool:
    """Whether an opt-out cell says yes."""
    return OPT_OUT_VALUES.get((value or "").strip().lower(), False)


def merge_rows(earlier: dict[str, str], later: dict[str, str], now: datetime) -> dict[str, str]:
    """One row from two of the same record: later non-empty values win, every phone is kept,
    of two creation dates the earlier (at the import's clock `now`), and an opt-out stands."""
    merged = dict(earlier)
    for column, value in later.items():
        if column == "phone":
            merged[column] = join_phones(merged.get(column), value)
        elif column == "created_at" and value and merged.get(column):
            merged[column] = min(merged[column], value, key=lambda text: _creation_order(text, now))
        elif column == "email_opt_out" and opts_out(merged.get(column)):
            continue  # a withdrawal on any row wins: it is the safe side
        elif value:
            merged[column] = value
    return merged


def duplicate_notes(
    entity: str, key: str, line: int, first: int, row: dict[str, str], opted_out: int | None
) -> list[Rejected]:
    """The warnings for row `line`, whose record was first on line `first`: the merge, and an
    opt-out of line `opted_out` that stands against this row's no."""
    what = "name" if key.startswith("name ") else KEYS[entity].replace("_", " ")
    kept = " and ".join(text for column, text in MERGE_KEEPS.items() if column in USED[entity])
    notes = [Rejected(line, f"line {line} has the same {what} as line {first} ({key.removeprefix('name ')}); "
                            f"merged into one (later values win{f'; {kept} kept' if kept else ''})")]
    answer = row.get("email_opt_out")
    if opted_out is not None and answer and OPT_OUT_VALUES.get(answer.strip().lower()) is False:
        notes.append(Rejected(line, f"line {line} says email opt-out {answer!r}, but line {opted_out} "
                                    "opted out: the opt-out stands"))
    return notes


def _creation_order(text: str, now: datetime) -> datetime:
    """A creation date as written, to find the earliest: one that cannot be read comes last."""
    try:
        return check_created_at(text, now)
    except Invalid:
        return datetime.max.replace(tzinfo=UTC)


def count_rows(path: Path) -> int:
    """Rows in a CSV file (for a progress bar): one pass of the csv module, a fraction of an import."""
    lines, delimiter = _lines(path)
    try:
        return sum(1 for values in csv.reader(lines[1:], delimiter=delimiter) if any(v.strip() for v in values))
    except csv.Error:
        return len(lines) - 1


def import_csv(
    engine: Engine,
    entity: str,
    path: Path,
    *,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
    privacy_key: str | None = None,
    actor: Actor | None = None,
    now: datetime | None = None,
    categories: Sequence[str] | None,
    configured_reps: Collection[str],
) -> ImportReport:
    """Import `path` as `entity` (contacts, companies, reps, orders); see the module doc.

    The rows of a person erased on request (contacts and orders by the address's keyed hash,
    store.privacy) are skipped and counted (`ImportReport.erased`), never imported again.
    `actor` (default: the person at this command line) is who the audit log names; `now` is
    the import's clock (default: the real time): consents, moves and updates carry it. A rep's
    skills are `categories` (the model's, never assumed Rapport's own: a team may run its own; None:
    not readable here, so taken as written). A row for one of `configured_reps` (the emails of
    rapport.toml's reps, which win) changes nothing; one that would is a warning."""
    if entity not in ENTITIES:
        raise ImportFileError(f"cannot import {entity!r}; choose one of {', '.join(ENTITIES)}")
    header, columns, rows = read_rows(path, entity)
    needed = {"companies": ("company_domain", "company_name", "name")}.get(entity, (KEYS[entity],))
    if not set(needed) & set(columns):
        raise ImportFileError(
            f"{path}: no {needed[0].replace('_', ' ')} column among {', '.join(header)} "
            f"(accepted names: {', '.join(ALIASES[needed[0]])})"
        )
    report = ImportReport()
    report.ignored = [label for label, name in zip(header, columns, strict=True) if name not in USED[entity]]
    report.misspelt = misspelt_columns(header, columns, entity)
    with read_session(engine) as session:
        ctx = Context(report, Owners(session), actor or Actor.cli(), now or utcnow(), path.name, categories,
                      frozenset(configured_reps))
    pending: dict[str, tuple[int, dict[str, str]]] = {}  # by the row's key: duplicates merge here
    read = 0

    def flush() -> None:
        nonlocal read
        rows = list(pending.values())
        if entity in ("contacts", "orders"):  # a person erased on request stays erased: skipped, not an error
            with read_session(engine) as session:
                erased = erased_addresses(session, (row.get("email") or "" for _, row in rows), privacy_key)
            if erased:
                report.erased += sum(row.get("email") in erased for _, row in rows)
                rows = [(line, row) for line, row in rows if row.get("email") not in erased]
        if entity == "contacts":
            checked, refused = check_contacts(rows, ctx)
            report.rejected += refused
            written = _write_contacts(connection, checked, ctx, dry_run)
        else:
            written = _write_rows(connection, entity, rows, ctx, dry_run)
        for line, outcome in written:
            if outcome.startswith("!"):
                report.rejected.append(Rejected(line, outcome[1:]))
            else:
                setattr(report, outcome, getattr(report, outcome) + 1)
        if progress:
            progress(read)
        pending.clear()
        read = 0

    repeated = repeated_keys(path, entity)
    held: dict[str, tuple[int, dict[str, str]]] = {}
    seen: dict[str, int] = {}
    opted_out: dict[str, int] = {}  # a contact's first line that opts out of email
    # One connection writes every batch: SQLite's page cache stays warm (from the pool, each
    # batch got another connection, whose first read re-read the pages the last batch changed).
    connection = engine.connect()
    try:
        for line, row in rows:
            read += 1
            if "__error__" in row:
                report.rejected.append(Rejected(line, row["__error__"]))
                continue
            key = _row_key(entity, row)
            if key in repeated:  # checked alone first: a bad duplicate must not spoil a good one
                # (its empty fields are a partial update: REQUIRED is checked on the merged row)
                try:
                    CHECKS[entity](row, line, ctx)
                except Invalid as exc:
                    report.rejected.append(Rejected(line, str(exc)))
                    continue
                row[CHECKED] = "yes"
            if key is not None and entity == "contacts" and opts_out(row.get("email_opt_out")):
                opted_out.setdefault(key, line)
            if key is not None and key in seen:
                report.warnings += duplicate_notes(entity, key, line, seen[key], row, opted_out.get(key))
                for queue in (held, pending):
                    if key in queue:
                        first, earlier = queue[key]
                        queue[key] = (first, merge_rows(earlier, row, ctx.now))
                        break
                else:
                    row[AGAIN] = "yes"  # the earlier row has landed already: this one adds to it
                    pending[key] = (line, row)
                continue
            if key is not None:
                seen[key] = line
                if key in repeated:  # held back until the file's end, when all its rows are merged
                    held[key] = (line, row)
                    continue
            pending[key or f"line {line}"] = (line, row)
            if len(pending) >= CHUNK:
                flush()
        for key, merged in held.items():
            pending[key] = merged
            if len(pending) >= CHUNK:
                flush()
        flush()
    finally:
        connection.close()
    report.rejected.sort(key=lambda r: r.line)
    report.warnings.sort(key=lambda r: r.line)
    return report


def _refused(exc: SQLAlchemyError) -> str:
    return f"!database refused the row: {exc.__class__.__name__}"


def _finish(session: Session, dry_run: bool, written: Written) -> None:
    if dry_run:
        session.rollback()
    else:  # the writer indexes what it added and changed: a search never writes
        refresh_index(session, written=written)


def _write_rows(
    bind: Connection, entity: str, rows: list[tuple[int, dict[str, str]]], ctx: Context, dry_run: bool
) -> list[tuple[int, str]]:
    """Rows one by one, each in a savepoint of one transaction; (line, outcome or "!reason")."""
    importer = IMPORTERS[entity]
    outcomes: list[tuple[int, str]] = []
    written = Written()  # a row that a savepoint undoes is indexed again as it is: no harm
    with session_scope(bind) as session:
        for line, row in rows:
            try:
                check_required(entity, row)
                with session.begin_nested():
                    outcomes.append((line, importer(session, row, line, row_context(row, ctx), written)))
            except Invalid as exc:
                outcomes.append((line, f"!{exc}"))
            except SQLAlchemyError as exc:
                outcomes.append((line, _refused(exc)))
        _finish(session, dry_run, written)
    return outcomes


def check_contacts(rows: list[tuple[int, dict[str, str]]], ctx: Context) -> tuple[list[ContactIn], list[Rejected]]:
    """The rows that can land, checked, and those that cannot, with the reason."""
    checked: list[ContactIn] = []
    refused: list[Rejected] = []
    for line, row in rows:
        try:
            check_required("contacts", row)
            checked.append(check_contact(row, line, row_context(row, ctx)))
        except Invalid as exc:
            refused.append(Rejected(line, str(exc)))
    return checked, refused


def _write_contacts(
    bind: Connection, checked: list[ContactIn], ctx: Context, dry_run: bool
) -> list[tuple[int, str]]:
    """A batch of checked contacts in a few statements and one transaction. When the database
    refuses the batch, it is written again row by row, each in a savepoint, to find the row it refuses."""
    try:
        with session_scope(bind) as session:
            if bind.dialect.name == "sqlite":  # the indexes of a large import's batch stay in memory
                session.connection().exec_driver_sql(f"PRAGMA cache_size=-{IMPORT_CACHE_KIB}")
            written = Written()
            held: list[Rejected] = []
            results = write_contacts(session, checked, written, held, actor=ctx.actor, now=ctx.now,
                                     source=ctx.source) if checked else []
            _finish(session, dry_run, written)
        ctx.report.warnings += held
        return [(r.line, outcome) for r, outcome in zip(checked, results, strict=True)]
    except SQLAlchemyError:
        pass
    outcomes: list[tuple[int, str]] = []
    written = Written()  # contacts only: a later row may give a company an earlier row created a domain
    with session_scope(bind) as session:
        for contact in checked:
            written_here = Written()
            held_here: list[Rejected] = []  # a refused row lands nothing, so holds nothing back
            try:
                with session.begin_nested():
                    results = write_contacts(session, [contact], written_here, held_here, actor=ctx.actor,
                                             now=ctx.now, source=ctx.source)
                    outcomes.extend((contact.line, o) for o in results)
                written.indexed_contacts |= written_here.indexed_contacts
                written.updated_contacts |= written_here.updated_contacts
                ctx.report.warnings += held_here
            except SQLAlchemyError as exc:
                outcomes.append((contact.line, _refused(exc)))
        _finish(session, dry_run, written)
    return outcomes
