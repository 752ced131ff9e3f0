"""`/crm note CONTACT|COMPANY TEXT`: notes on contacts and on companies.

The first words name a contact or a company. A company clearly named (one company
matching well) wins over a contact of that company and over a contact matching less
well, so `note acme renewal talks started` notes on Acme Corporation, not on its
contact Jan, and `note jan sent the offer` notes on Jan.
"""

from __future__ import annotations

from sqlmodel import Session

from bot.blocks import Reply, section
from bot.commands import Ctx, leading_runs, resolve_contact
from bot.identity import can_see_contact
from bot.interactions import NoteTarget, add_note, company_target
from bot.modals import note_modal
from bot.text import escape
from store.models import Company, Contact
from store.search import CompanyHit, only_names, search_companies

COMPANY_FLOOR = 90.0  # a company must match at least this well to be taken for the target
COMPANY_LEAD = 5.0  # ... and this much better than the next company


def note_command(ctx: Ctx, args: list[str]) -> Reply:
    if not args:
        return Reply("Add a note", [section("Opening the note form…")], modal=note_modal())
    target, rest, problem = resolve_target(ctx, args)
    if problem is not None:
        return problem
    assert target is not None
    text = " ".join(rest).strip()
    if not text:
        return Reply("Add a note", [section("Opening the note form…")], modal=_prefilled_modal(ctx.session, target))
    confirmation = add_note(ctx.session, ctx.rep, target, text, ctx.now)
    return Reply(confirmation, [section(confirmation)], changed_home=True)


def resolve_target(ctx: Ctx, words: list[str]) -> tuple[NoteTarget | None, list[str], Reply | None]:
    """The contact or company named at the start of `words`, the remaining words, or a reply saying
    what is wrong (no match, several matches)."""
    company, company_words = _leading_company(ctx, words)
    hit, rest, problem = resolve_contact(ctx, words)
    if company is not None and (hit is None or hit.company == company.name or hit.score < company.score):
        target = company_target(ctx.session, ctx.rep, company.company_id)
        if target is None:
            text = f"*{escape(company.name)}* is not yours to see."
            return None, words, Reply(text, [section(text)], ok=False)
        return target, words[company_words:], None
    if problem is not None or hit is None:
        return None, words, problem
    return NoteTarget(hit.contact_id, None, hit.name), rest, None


def _leading_company(ctx: Ctx, words: list[str]) -> tuple[CompanyHit | None, int]:
    """A company clearly named by the longest run of leading words that names one (`leading_runs`;
    a run of several words made of the company's words only)."""
    for run, count in leading_runs(words):
        hits = search_companies(ctx.session, run)
        if count > 1:
            hits = [h for h in hits if only_names(run, h.name)]
        if hits and hits[0].score >= COMPANY_FLOOR and (len(hits) == 1 or hits[1].score < hits[0].score - COMPANY_LEAD):
            return hits[0], count
    return None, 0


def _prefilled_modal(session: Session, target: NoteTarget) -> dict[str, object]:
    if target.contact_id is not None:
        contact = session.get(Contact, target.contact_id)
        company = session.get(Company, contact.company_id) if contact and contact.company_id else None
        return note_modal(contact, company)
    return note_modal(None, session.get(Company, target.company_id))


def card_note_modal(ctx: Ctx, contact_id: int | None) -> dict[str, object]:
    """The card's "Add a note": about the contact or its company (a contact the rep may not see: no preset)."""
    contact = ctx.session.get(Contact, contact_id) if contact_id else None
    if contact is None or contact.id is None or not can_see_contact(ctx.session, ctx.rep, contact.id):
        return note_modal()
    company = ctx.session.get(Company, contact.company_id) if contact.company_id else None
    return note_modal(contact, company)
