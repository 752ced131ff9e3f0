"""Tables behind fuzzy contact search (to be folded into the migrations).

`search_term` holds normalised words (ASCII-folded, lower case) of contacts and
companies plus short fuzzy keys, so that a search is a handful of index range
scans instead of a scan of every contact. It is derived data: `store.search`
rebuilds it from the contacts at any time.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlmodel import Field, SQLModel

from store.types import UTCDateTime, utcnow

# Byte order on PostgreSQL too, so that prefix ranges (term >= 'sta' AND term < 'sta\x7f')
# use the index whatever the database's locale is; SQLite compares bytes already.
TermType = String(64).with_variant(String(64, collation="C"), "postgresql")


class SearchTerm(SQLModel, table=True):
    """One normalised word or fuzzy key of a contact (contact_id set) or a company (contact_id NULL)."""

    __tablename__ = "search_term"  # type: ignore[assignment]
    __table_args__ = (Index("ix_search_term_lookup", "term", "contact_id", "company_id"),)

    id: int | None = Field(default=None, primary_key=True)
    term: str = Field(sa_type=TermType, nullable=False)
    contact_id: int | None = Field(default=None, index=True)
    company_id: int | None = Field(default=None, index=True)


class SearchState(SQLModel, table=True):
    """How far the search terms are built: the highest id indexed per source table, and when."""

    __tablename__ = "search_state"  # type: ignore[assignment]

    source: str = Field(primary_key=True)  # "contact", "company", "contactemail"
    last_id: int = 0
    refreshed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


__all__ = ["SearchState", "SearchTerm"]
