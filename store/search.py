"""Fuzzy search over contacts: names, email addresses, companies and phone numbers.

Accents and small typos are tolerated (`stastny` finds `Šťastný`, `jhon` finds
`John`) and a search stays a few index look-ups however many contacts there are:

1. every contact and company is broken into normalised terms (ASCII-folded,
   lower case: words, whole addresses, phone digits) stored in `search_term`;
2. fuzzy keys make typos findable: a word's head (its first four letters) and
   the four ways of deleting one of them, so one typo in a word's beginning
   still shares a key with the right word. Keys depend on the head alone, so
   they are stored once per head (`search_key`: key -> head), not per contact:
   an index of 100,000 contacts holds a few thousand heads;
3. a query looks its words up by prefix range and, when the words as typed
   match nothing whole, by fuzzy key (key -> heads -> terms starting with a
   head), all in one indexed statement, and keeps the few hundred contacts
   matching the most words;
4. rapidfuzz ranks that small candidate set against the real fields.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, cast

from rapidfuzz import fuzz
from rapidfuzz.distance import OSA
from sqlalchemy import ColumnElement, bindparam, delete, func, or_, select, text
from sqlalchemy.orm import Mapped
from sqlmodel import Session, col

from store.db import any_of, execute_columns
from store.models import Company, CompanyDomain, Contact, ContactEmail, SearchKey, SearchState, SearchTerm
from store.owners import effective_owner_id, effective_owner_sql, is_visible
from store.types import utcnow

log = logging.getLogger(__name__)
CANDIDATES = 200  # contacts ranked by rapidfuzz per query
CONTACTS_PER_COMPANY = 25  # contacts pulled in by a company-name match
MATCHED_COMPANIES = 5  # best company-name matches whose contacts are pulled in
# The similarity floor: a hit scoring less is not offered, even in a pick list. Typos in a
# name score 75 and more; `anna` against the company "Analytik" scored 67 (regression:
# `log call anna` offered Anja, Nina, Claudia, David and Lucie).
MIN_SCORE = 72.0
RELATIVE_GAP = 25.0  # hits this far below the best one are dropped
_PREFIX_END = "\x7f"  # above every character a term can hold (terms are ASCII)
_FOLD_EXTRA = str.maketrans(
    {
        "ß": "ss",
        "æ": "ae",
        "Æ": "ae",
        "ø": "o",
        "Ø": "o",
        "đ": "d",
        "Đ": "d",
        "ł": "l",
        "Ł": "l",
        "œ": "oe",
        "Œ": "oe",
        "þ": "th",
        "Þ": "th",
        "ı": "i",
        "ð": "d",
        "Ð": "d",
        "ħ": "h",
    }
)
_NON_WORD = re.compile(r"[^a-z0-9]+")
_NON_DIGIT = re.compile(r"\D+")


@dataclass(frozen=True)
class SearchHit:
    contact_id: int
    name: str
    company: str | None
    email: str | None
    owner_id: int | None  # the effective owner (store/owners.py)
    score: float


# --------------------------------------------------------------------------- normalising


def fold(value: str) -> str:
    """Lower-case ASCII without accents: `Šťastný` -> `stastny`, `Straße` -> `strasse`."""
    if value.isascii():
        return value.lower()
    decomposed = unicodedata.normalize("NFKD", value.translate(_FOLD_EXTRA))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return stripped.encode("ascii", "ignore").decode("ascii").lower()


def words(value: str) -> list[str]:
    return [w for w in _NON_WORD.split(fold(value)) if w]


# Legal forms as folded words ("s.r.o." is s, r, o): part of a company's name, yet they name no one.
LEGAL_FORMS = frozenset({"ab", "ag", "aps", "as", "bv", "co", "corp", "gmbh", "inc", "kft", "kg", "llc", "ltd", "nv",
                         "nyrt", "oy", "oyj", "plc", "sa", "sp", "spa", "srl", "zrt"})


def only_names(query: str, name: str, email: str | None = None) -> bool:
    """Whether the words of `query` name the record called `name` and say nothing more: each is
    the `email` whole or made of the name's words, one typo each allowed (`petr` for Peter;
    words under four letters exactly). `peter stastny` names Peter Šťastný; `peter stastny
    discussed` does not. A last word of single letters or a legal form (`a`, `a.s.`, `AB`, `&`)
    must complete the name, as it names no one on its own: `vltava diagnostics a.s.` names
    Vltava Diagnostics a.s., `vltava diagnostics a.s. a` does not."""
    known = set(words(name))
    tokens = query.split()
    if not all(fold(token) == fold(email or "") or all(_is_known(word, known) for word in words(token))
               for token in tokens):
        return False
    return not _is_weak(tokens[-1]) or (_covers(tokens, known) and not _covers(tokens[:-1], known))


def _same_word(word: str, known: str) -> bool:
    return word == known or (len(word) >= 4 and OSA.distance(word, known, score_cutoff=1) <= 1)


def _is_known(word: str, known: set[str]) -> bool:
    return any(_same_word(word, name) for name in known)


def _is_weak(token: str) -> bool:
    """Single letters, legal forms and signs (`a`, `a.s.`, `AB`, `&`): parts of a name naming no one."""
    return all(len(word) == 1 or word in LEGAL_FORMS for word in words(token))


def _covers(tokens: list[str], known: set[str]) -> bool:
    """Whether `tokens` name every word in `known`."""
    said = [word for token in tokens for word in words(token)]
    return all(any(_same_word(word, name) for word in said) for name in known)


@lru_cache(maxsize=65536)
def _plain(value: str) -> str:
    """Folded words joined by spaces; cached, as the same names come back query after query."""
    return " ".join(words(value))


def word_head(term: str) -> str | None:
    """What a word's fuzzy keys are made of: its first four letters, a three-letter word whole;
    None for shorter words, addresses (`@...`) and phone numbers (`#...`)."""
    if len(term) < 3 or not term[0].isalnum():
        return None
    return term[:4]


@lru_cache(maxsize=65536)
def fuzzy_keys(word: str) -> frozenset[str]:
    """The head and its one-letter deletions (shared by words one typo apart); none below three letters."""
    head = word_head(word)
    if head is None:
        return frozenset()
    keys = {"~" + head}
    if len(head) == 4:
        keys.update("~" + head[:i] + head[i + 1 :] for i in range(4))
    return frozenset(keys)


@lru_cache(maxsize=65536)
def _word_terms(value: str) -> frozenset[str]:
    """Cached: an import meets the same first names, companies and domains again and again."""
    return frozenset(word[:64] for word in words(value))


def _email_terms(email: str) -> set[str]:
    address = fold(email).strip()
    local, _, domain = address.partition("@")
    terms = {("@" + address)[:64]} | _word_terms(local)
    if domain:
        terms |= _word_terms(domain.rsplit(".", 1)[0])
    return terms


def _phone_terms(phone: str | None) -> set[str]:
    terms: set[str] = set()
    for number in (phone or "").split(","):  # an import keeps every number: "+46 70 1, +46 73 2"
        digits = _NON_DIGIT.sub("", number)
        if len(digits) >= 4:
            # the last seven digits match whatever prefix (+46, 0046, 0) the number was typed with
            terms |= {"#" + digits, "#" + digits[-7:]}
    return terms


def contact_terms(name: str, emails: Iterable[str], phone: str | None) -> set[str]:
    terms = _phone_terms(phone) | _word_terms(name)
    for email in emails:
        terms |= _email_terms(email)
    return terms


def company_terms(name: str, domains: Iterable[str], phone: str | None) -> set[str]:
    terms = _phone_terms(phone) | _word_terms(name)
    for domain in domains:
        terms |= _word_terms(domain.rsplit(".", 1)[0])
    return terms


# --------------------------------------------------------------------------- maintaining the index


def index_contacts(session: Session, contact_ids: Sequence[int]) -> int:
    """(Re)build the terms of these contacts; call after creating or changing contacts."""
    ids = sorted(set(contact_ids))
    for start in range(0, len(ids), INDEX_CHUNK):
        chunk = ids[start : start + INDEX_CHUNK]
        session.execute(delete(SearchTerm).where(_in_runs(col(SearchTerm.contact_id), chunk)))
        contacts = session.execute(
            select(col(Contact.id), col(Contact.name), col(Contact.phone), col(Contact.company_id)).where(
                _in_runs(col(Contact.id), chunk)
            )
        ).all()
        emails: dict[int, list[str]] = {}
        for contact_id, email in session.execute(
            select(col(ContactEmail.contact_id), col(ContactEmail.email)).where(
                _in_runs(col(ContactEmail.contact_id), chunk)
            )
        ):
            emails.setdefault(contact_id, []).append(email)
        index_new_contacts(
            session, [(cid, name, emails.get(cid, []), phone, company_id) for cid, name, phone, company_id in contacts]
        )
    return len(ids)


ContactText = tuple[int, str, Sequence[str], str | None, int | None]  # id, name, addresses, phone, company id


def index_new_contacts(session: Session, contacts: Sequence[ContactText]) -> set[int]:
    """Index contacts that have no terms yet from the values their writer holds (no reading back);
    returns their ids, for `Written.indexed_contacts` (`refresh_index` in the same transaction)."""
    insert_terms(
        session,
        [
            (term, cid, company_id)
            for cid, name, emails, phone, company_id in contacts
            for term in contact_terms(name, emails, phone)
        ],
    )
    return {contact[0] for contact in contacts}


CompanyText = tuple[int, str, Sequence[str], str | None]  # id, name, domains, phone


def index_new_companies(session: Session, companies: Sequence[CompanyText]) -> set[int]:
    """`index_new_contacts` for companies: their ids, for `Written.indexed_companies`."""
    insert_terms(
        session,
        [(term, None, cid) for cid, name, domains, phone in companies for term in company_terms(name, domains, phone)],
    )
    return {company[0] for company in companies}


# The columns of a contact or a company its terms are made of, besides its addresses or domains
# (`contact_terms`, `company_terms`; a contact's terms carry its company's id).
_INDEXED_FIELDS = frozenset({"name", "phone", "company_id"})


def changes_terms(fields: Iterable[str]) -> bool:
    """Whether a change of these columns of a contact or a company changes its search terms."""
    return not _INDEXED_FIELDS.isdisjoint(fields)


@dataclass
class Written:
    """What a writer tells `refresh_index` of its transaction, by id: the contacts and companies
    it indexed itself from the values it wrote (`indexed_*`: left out, not read back), and those
    it had before whose terms it changed (`updated_*`, see `changes_terms`: indexed again at
    once, a few primary-key look-ups, where only the scheduler's scan of every row would see them)."""

    indexed_contacts: set[int] = field(default_factory=set)
    indexed_companies: set[int] = field(default_factory=set)
    updated_contacts: set[int] = field(default_factory=set)
    updated_companies: set[int] = field(default_factory=set)


INDEX_CHUNK = 1000  # contacts or companies (re)indexed per round of statements


def _in_runs(column: Mapped[int] | Mapped[int | None], ids: list[int]) -> ColumnElement[bool]:
    """`column` is one of `ids` (sorted, distinct): a range per run of consecutive ids (a batch of
    new contacts is one run), the rest as a list, so that the statement stays short."""
    runs: list[list[int]] = []
    for i in ids:
        if runs and runs[-1][1] == i - 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    ranges = [column.between(first, last) for first, last in runs if last - first >= 2]
    single = [i for first, last in runs if last - first < 2 for i in range(first, last + 1)]
    return or_(*ranges, *([column.in_(single)] if single else []))


def insert_terms(session: Session, rows: list[tuple[str, int | None, int | None]]) -> None:
    """(term, contact id, company id) rows, handed to the driver as they are: tens of terms per
    contact made SQLAlchemy's per-row parameter handling the slowest part of an import.
    The fuzzy keys of heads the index does not know yet go to `search_key`."""
    if not rows:
        return
    _insert_keys(session, {head for term, _, _ in rows if (head := word_head(term)) is not None})
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        with connection.connection.cursor() as cursor, cursor.copy(  # type: ignore[attr-defined]
            "COPY search_term (term, contact_id, company_id) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row)
    else:
        connection.exec_driver_sql("INSERT INTO search_term (term, contact_id, company_id) VALUES (?, ?, ?)", rows)


def _insert_keys(session: Session, heads: set[str]) -> None:
    """The fuzzy keys of those of `heads` the index does not know yet (a head is known when its
    own key `~head` leads to it). A writer running alongside may add the same keys: not an error."""
    if not heads:
        return
    known: set[str] = set()
    ordered = sorted(heads)
    for start in range(0, len(ordered), INDEX_CHUNK):
        chunk = ordered[start : start + INDEX_CHUNK]
        known.update(
            head
            for key, head in session.execute(
                select(col(SearchKey.key), col(SearchKey.head)).where(
                    any_of(session, col(SearchKey.key), ["~" + h for h in chunk])
                )
            )
            if key == "~" + head
        )
    rows = [{"key": key, "head": head} for head in ordered if head not in known for key in sorted(fuzzy_keys(head))]
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":  # one statement, not one per row
        session.execute(
            text("INSERT INTO search_key (key, head) SELECT * FROM unnest(CAST(:keys AS text[]), "
                 "CAST(:heads AS text[])) ON CONFLICT DO NOTHING"),
            {"keys": [row["key"] for row in rows], "heads": [row["head"] for row in rows]},
        )
    else:
        session.execute(text("INSERT INTO search_key (key, head) VALUES (:key, :head) ON CONFLICT DO NOTHING"), rows)


def index_companies(session: Session, company_ids: Sequence[int]) -> int:
    """(Re)build the terms of these companies."""
    ids = sorted(set(company_ids))
    for start in range(0, len(ids), INDEX_CHUNK):
        chunk = ids[start : start + INDEX_CHUNK]
        session.execute(
            delete(SearchTerm).where(
                col(SearchTerm.contact_id).is_(None), _in_runs(col(SearchTerm.company_id), chunk)
            )
        )
        domains: dict[int, list[str]] = {}
        for company_id, domain in session.execute(
            select(col(CompanyDomain.company_id), col(CompanyDomain.domain)).where(
                _in_runs(col(CompanyDomain.company_id), chunk)
            )
        ):
            domains.setdefault(company_id, []).append(domain)
        companies = session.execute(
            select(col(Company.id), col(Company.name), col(Company.phone)).where(_in_runs(col(Company.id), chunk))
        ).all()
        index_new_companies(session, [(cid, name, domains.get(cid, []), phone) for cid, name, phone in companies])
    return len(ids)


def _state(session: Session, source: str) -> SearchState:
    state = session.get(SearchState, source)
    if state is None:
        state = SearchState(source=source, last_id=0)
        session.add(state)
    return state


def refresh_index(session: Session, *, changed: bool = False, written: Written | None = None) -> int:
    """Index what was added since the last refresh; with `changed`, also rows updated since.

    The id check is a few primary-key look-ups (writers run it: the inbox per batch, the
    importer per chunk; a search never writes); the
    `changed` scan reads `updated_at` of every row, so the scheduler runs it.
    `written`: what the caller wrote in this transaction: the rows it indexed itself are left
    out, those whose terms it updated are indexed again (by primary key, as new rows are).
    Returns how many contacts and companies were (re)indexed.
    """
    now = utcnow()
    done = 0
    session.flush()  # the reads below go past the ORM (thousands of ids after an import's batch)
    contact_state, company_state, email_state, domain_state = (
        _state(session, s) for s in ("contact", "company", "contactemail", "companydomain")
    )
    since = contact_state.refreshed_at
    new_contacts = _ids_after(session, Contact, contact_state.last_id)
    new_emails = _owners_after(session, col(ContactEmail.id), col(ContactEmail.contact_id), email_state.last_id)
    contact_ids = set(new_contacts) | {cid for _, cid in new_emails}
    added_companies = _ids_after(session, Company, company_state.last_id)
    # a domain given to a company it knew already (by an import) changes its terms too
    new_domains = _owners_after(session, col(CompanyDomain.id), col(CompanyDomain.company_id), domain_state.last_id)
    company_ids = set(added_companies) | {cid for _, cid in new_domains}
    if changed:
        contact_ids |= _ids_updated_since(session, Contact, since)
        company_ids |= _ids_updated_since(session, Company, since)
    if written is not None:
        contact_ids = (contact_ids - written.indexed_contacts) | written.updated_contacts
        company_ids = (company_ids - written.indexed_companies) | written.updated_companies
    if contact_ids:
        done += index_contacts(session, sorted(contact_ids))
    if company_ids:
        done += index_companies(session, sorted(company_ids))
    contact_state.last_id = max(new_contacts, default=contact_state.last_id)
    company_state.last_id = max(added_companies, default=company_state.last_id)
    email_state.last_id = max((eid for eid, _ in new_emails), default=email_state.last_id)
    domain_state.last_id = max((did for did, _ in new_domains), default=domain_state.last_id)
    if changed:
        contact_state.refreshed_at = company_state.refreshed_at = now
    session.add_all([contact_state, company_state, email_state, domain_state])
    session.flush()
    return done


def rebuild_index(session: Session) -> int:
    """Throw the terms away and index every contact and company again."""
    session.execute(delete(SearchTerm))
    session.execute(delete(SearchKey))
    session.execute(delete(SearchState))
    session.flush()
    return refresh_index(session)


def _ids_after(session: Session, model: type[Contact] | type[Company], last_id: int) -> list[int]:
    # Bounded by the newest id on both sides, PostgreSQL reads the ids from the primary key. `id > n`
    # alone, on a table without statistics yet (a first import), was guessed at a third of the rows
    # and scanned the whole table, batch after batch.
    newest = select(func.max(model.id)).scalar_subquery()
    statement = select(col(model.id)).where(col(model.id) > last_id, col(model.id) <= newest)
    return cast(list[int], list(session.connection().execute(statement).scalars()))


def _owners_after(
    session: Session, row_id: Mapped[int | None], owner_id: Mapped[int], last_id: int
) -> list[tuple[int, int]]:
    """(id, owner id) of the addresses or domains added since `last_id`: their contact or company
    gained a term. Bounded by the newest id, as `_ids_after` is, so PostgreSQL reads the primary key."""
    newest = select(func.max(row_id)).scalar_subquery()
    statement = select(row_id, owner_id).where(row_id > last_id, row_id <= newest)
    return cast(list[tuple[int, int]], session.connection().execute(statement).all())


def _ids_updated_since(session: Session, model: type[Contact] | type[Company], since: datetime) -> set[int]:
    return set(session.execute(select(col(model.id)).where(col(model.updated_at) > since)).scalars())


# --------------------------------------------------------------------------- searching


@dataclass(frozen=True)
class _QueryWord:
    exact: str
    prefix: str | None  # range-scanned when long enough to be selective
    keys: frozenset[str]  # fuzzy keys (search_key), looked up when the words as typed match nothing whole
    other: str | None = None  # another spelling looked up then (a phone number's last seven digits)


def _query_words(query: str) -> list[_QueryWord]:
    digits = _NON_DIGIT.sub("", query)
    looks_like_phone = len(digits) >= 4 and len(digits) >= len(re.sub(r"[\s+()./-]", "", query)) - 1
    if looks_like_phone:
        return [_QueryWord("#" + digits, "#" + digits, frozenset(), "#" + digits[-7:] if len(digits) > 7 else None)]
    found: list[str] = []
    for token in query.split():
        if "@" in token:  # an address: its local part and its domain without the TLD
            local, _, domain = token.partition("@")
            token = f"{local} {domain.rsplit('.', 1)[0] if '.' in domain else domain}"
        found += words(token)
    return [_QueryWord(w, w if len(w) >= 3 else None, frozenset(fuzzy_keys(w))) for w in found[:8]]


def _address_word(query: str) -> _QueryWord | None:
    """A whole (or partly typed) email address in the query, looked up as one term."""
    address = next((token for token in query.split() if "@" in token), None)
    if address is None:
        return None
    term = "@" + fold(address)
    return _QueryWord(term, term, frozenset())


def _candidates(
    session: Session, query_words: list[_QueryWord], *, fuzzy: bool, visible_owner_ids: set[int] | None
) -> list[tuple[int | None, int | None, int]]:
    """(contact_id, company_id, words matched) sharing the most query words, best first.

    One statement: per query word an indexed look-up (exact term, prefix range,
    and with `fuzzy` the terms starting with a head that shares a typo key with
    the word), then a count of distinct words matched per contact or company.
    Contacts the searcher may not see are left out before the cut to
    `CANDIDATES`, so they cannot crowd out visible ones.
    """
    selects: list[str] = []
    params: dict[str, object] = {"end": _PREFIX_END}
    for i, qw in enumerate(query_words):
        conditions = [f"term = :e{i}"]
        params[f"e{i}"] = qw.exact
        if qw.prefix:
            conditions.append(f"(term >= :lo{i} AND term < :hi{i})")
            params[f"lo{i}"], params[f"hi{i}"] = qw.prefix, qw.prefix + _PREFIX_END
        if fuzzy and qw.other:
            conditions.append(f"term = :o{i}")
            params[f"o{i}"] = qw.other
        selects.append(
            f"SELECT {i} AS word, contact_id, company_id, CASE WHEN term = :e{i} THEN 2 ELSE 1 END AS closeness "
            f"FROM search_term WHERE {' OR '.join(conditions)}"
        )
        if fuzzy and qw.keys:
            names = [f"k{i}_{j}" for j in range(len(qw.keys))]
            params.update(zip(names, sorted(qw.keys), strict=True))
            selects.append(
                f"SELECT {i} AS word, t.contact_id, t.company_id, 0 AS closeness "
                f"FROM (SELECT DISTINCT head FROM search_key WHERE key IN ({', '.join(':' + n for n in names)})) "
                "AS h JOIN search_term AS t ON t.term >= h.head AND t.term < h.head || :end"
            )
    visibility = ""
    if visible_owner_ids is not None:
        names = [f"v{j}" for j in range(len(visible_owner_ids))]
        params.update(zip(names, sorted(visible_owner_ids), strict=True))
        owner = effective_owner_sql("c", "co")
        owners = f" OR {owner} IN ({', '.join(':' + n for n in names)})" if names else ""
        visibility = (
            "LEFT JOIN contact AS c ON c.id = m.contact_id LEFT JOIN company AS co ON co.id = c.company_id "
            f"WHERE m.contact_id IS NULL OR {owner} IS NULL{owners} "
        )
    statement = text(
        f"SELECT m.contact_id, m.company_id, COUNT(DISTINCT m.word) FROM ({' UNION ALL '.join(selects)}) AS m "
        f"{visibility}"
        "GROUP BY m.contact_id, m.company_id "
        "ORDER BY COUNT(DISTINCT m.word) DESC, SUM(m.closeness) DESC "
        f"LIMIT {CANDIDATES}"
    )
    return [(row[0], row[1], int(row[2])) for row in execute_columns(session, statement, params)]


def search_contacts(
    session: Session,
    query: str,
    *,
    limit: int = 10,
    visible_owner_ids: set[int] | None = None,
) -> list[SearchHit]:
    """Contacts best matching `query`, best first; `visible_owner_ids` limits to those owners
    (and unowned contacts); None means everyone is visible."""
    query_words = _query_words(query)
    address = _address_word(query)
    if not query_words and address is None:
        return []
    visible = visible_owner_ids
    pairs = _candidates(session, [address], fuzzy=False, visible_owner_ids=visible) if address is not None else []
    if not pairs and query_words:
        # typo keys are shared by many words: only look at them when the words as typed match nothing whole
        pairs = _candidates(session, query_words, fuzzy=False, visible_owner_ids=visible)
        if not any(matched == len(query_words) for _, _, matched in pairs):
            pairs = _candidates(session, query_words, fuzzy=True, visible_owner_ids=visible)
    contact_ids = [cid for cid, _, _ in pairs if cid is not None]
    company_ids = [coid for cid, coid, _ in pairs if cid is None and coid is not None][:MATCHED_COMPANIES]
    if company_ids:
        contact_ids += _contacts_of_companies(session, company_ids, set(contact_ids), visible)
    rows = _candidate_rows(session, contact_ids)
    prepared = _prepare(query)
    hits = [hit for hit in (_score(prepared, row) for row in rows) if hit.score >= MIN_SCORE]
    if visible_owner_ids is not None:
        hits = [h for h in hits if is_visible(h.owner_id, visible_owner_ids)]
    hits.sort(key=lambda h: (-h.score, h.name.lower(), h.contact_id))
    if hits:  # next to a strong match, weak ones are noise in a pick list
        hits = [h for h in hits if h.score >= hits[0].score - RELATIVE_GAP]
    return hits[:limit]


def _contacts_of_companies(
    session: Session, company_ids: list[int], known: set[int], visible_owner_ids: set[int] | None
) -> list[int]:
    found: list[int] = []
    for company_id in company_ids:
        query = select(col(Contact.id)).where(col(Contact.company_id) == company_id)
        if visible_owner_ids is not None:
            owner = effective_owner_id(col(Contact.owner_id), col(Company.owner_id))
            query = query.join(Company, col(Company.id) == col(Contact.company_id)).where(
                or_(owner.is_(None), owner.in_(sorted(visible_owner_ids)))
            )
        ids = session.execute(query.order_by(col(Contact.id)).limit(CONTACTS_PER_COMPANY)).scalars()
        found += [cid for cid in ids if cid not in known]
    return found


@dataclass(frozen=True)
class _Row:
    contact_id: int
    name: str
    phone: str | None
    owner_id: int | None
    company: str | None
    company_phone: str | None
    emails: tuple[str, ...]


def _candidate_rows(session: Session, contact_ids: list[int]) -> list[_Row]:
    if not contact_ids:
        return []
    contacts: dict[int, tuple[Any, ...]] = {}
    emails: dict[int, list[str]] = {}
    for *contact, email in execute_columns(session, _CANDIDATE_ROWS, {"ids": contact_ids}):
        contacts.setdefault(contact[0], tuple(contact))
        emails.setdefault(contact[0], []).extend([email] if email is not None else [])
    return [
        _Row(cid, name, phone, owner, company, company_phone, tuple(emails[cid]))
        for cid, name, phone, owner, company, company_phone in contacts.values()
    ]


# Built once, the ids bound at execution (issue 15: every `find` runs it). A row per address
# (the primary first), the contact's columns on each: one statement, not one for the contacts
# and one for their addresses.
_CANDIDATE_ROWS = (
    select(
        col(Contact.id), col(Contact.name), col(Contact.phone),
        effective_owner_id(col(Contact.owner_id), col(Company.owner_id)), col(Company.name), col(Company.phone),
        col(ContactEmail.email),
    )
    .select_from(Contact)
    .outerjoin(Company, col(Company.id) == col(Contact.company_id))
    .outerjoin(ContactEmail, col(ContactEmail.contact_id) == col(Contact.id))
    .where(col(Contact.id).in_(bindparam("ids", expanding=True)))
    .order_by(col(Contact.id), col(ContactEmail.is_primary).desc(), col(ContactEmail.id))
)


def _score(query: _Query, row: _Row) -> SearchHit:
    name, company = _plain(row.name), _plain(row.company or "")
    scores = [fuzz.WRatio(query.text, name), 0.92 * fuzz.WRatio(query.text, company) if company else 0.0]
    for email in row.emails:
        scores.append(100.0 if query.folded == email.lower() else 0.9 * fuzz.WRatio(query.text, _plain(email)))
    if any(_same_number(query.digits, phone) for phone in (row.phone, row.company_phone)):
        scores.append(100.0)  # a caller's number finds the contact, or a company's switchboard its people
    combined = " ".join([name, company, *(_plain(e) for e in row.emails)])
    scores.append(0.95 * fuzz.token_set_ratio(query.text, combined))
    first_email = row.emails[0] if row.emails else None
    return SearchHit(row.contact_id, row.name, row.company, first_email, row.owner_id, round(max(scores), 1))


def _same_number(digits: str, phone: str | None) -> bool:
    """Whether a query's digits (four or more) name `phone`: its end (a number written with or
    without the country code) or its start."""
    if len(digits) < 4 or not phone:
        return False
    phone_digits = _NON_DIGIT.sub("", phone)
    return phone_digits.endswith(digits[-7:]) or phone_digits.startswith(digits)


@dataclass(frozen=True)
class _Query:
    text: str  # folded words
    folded: str  # the whole query folded (an email address stays whole)
    digits: str


def _prepare(query: str) -> _Query:
    return _Query(" ".join(words(query)), fold(query.strip()), _NON_DIGIT.sub("", query))


__all__ = [
    "CompanyHit",
    "SearchHit",
    "Written",
    "changes_terms",
    "fold",
    "index_companies",
    "index_contacts",
    "index_new_companies",
    "index_new_contacts",
    "only_names",
    "rebuild_index",
    "refresh_index",
    "search_companies",
    "search_contacts",
    "words",
]


@dataclass(frozen=True)
class CompanyHit:
    company_id: int
    name: str
    owner_id: int | None
    score: float


def search_companies(session: Session, query: str, *, limit: int = 5) -> list[CompanyHit]:
    """Companies whose name (or domain) best matches `query`, best first, scored on the name."""
    query_words = _query_words(query)
    if not query_words:
        return []
    pairs = _candidates(session, query_words, fuzzy=False, visible_owner_ids=None)
    if not any(contact_id is None for contact_id, _, _ in pairs):
        pairs = _candidates(session, query_words, fuzzy=True, visible_owner_ids=None)
    company_ids = [company_id for contact_id, company_id, _ in pairs if contact_id is None and company_id is not None]
    if not company_ids:
        return []
    rows = session.execute(
        select(col(Company.id), col(Company.name), col(Company.owner_id)).where(col(Company.id).in_(company_ids))
    ).all()
    text_query = _prepare(query).text
    hits = [CompanyHit(cid, name, owner, round(fuzz.WRatio(text_query, _plain(name)), 1)) for cid, name, owner in rows]
    hits = [hit for hit in hits if hit.score >= MIN_SCORE]
    hits.sort(key=lambda h: (-h.score, h.name.lower(), h.company_id))
    return hits[:limit]
