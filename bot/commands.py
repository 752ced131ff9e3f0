"""The `/crm` router: plain functions over the store that answer with Block Kit blocks.

Slack (bot.app), the console (`rapport chat`) and the tests call `run_command`
the same way; nothing here talks to Slack.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session

from bot.blocks import Block, Reply, context, header, section
from bot.cards import contact_card_blocks, followup_blocks, my_blocks, pick_list_blocks
from bot.dates import parse_when, split_when
from bot.identity import can_see, can_see_contact, visible_owner_ids
from bot.interactions import CorrectionApplier
from bot.modals import followup_modal, log_call_modal
from bot.reply import REPLY_FORM, ReplyOptions, reply_command
from bot.text import clip, escape, local_time
from bot.thread import THREAD_FORM, thread_command
from bot.worklist import (
    ANSWERED_FORM,
    CLAIM_FORM,
    DONE_FORM,
    SNOOZE_FORM,
    answered_command,
    claim_command,
    done_command,
    snooze_command,
)
from store.activities import log_activity
from store.audit import Actor, record_audit
from store.contacts_view import contact_card
from store.followups import create_followup, open_followups
from store.models import ActivityKind, Contact, Rep
from store.search import SearchHit, only_names, search_contacts
from store.segments import SegmentParams
from store.validation import Invalid

log = logging.getLogger(__name__)
SEGMENTS = ("top", "lapsed", "stalled", "partners")
MAX_NAME_WORDS = 5  # "Wisła Biuro Sp. z o.o." is five words; a longer name can be quoted
_TOKENS = re.compile(r'"([^"]+)"|“([^”]+)”|(\S+)')


@dataclass(frozen=True)
class BotOptions:
    """What the bot takes from the configuration (rapport wires it from rapport.toml)."""

    command: str = "/crm"
    segment_params: SegmentParams | None = None  # rapport.toml [segments]; None: the defaults
    keyword_prefix: str = "rapport"  # rapport.toml [inbox]: IMAP keywords follow a reassignment
    privacy_key: str | None = field(default=None, repr=False)  # RAPPORT_PRIVACY_KEY for erasures from Slack
    # Recategorise: record the correction and re-route (rapport binds the routing rules); None: not offered.
    apply_correction: CorrectionApplier | None = None
    # what a conversation may be recategorised to: the model's; None: this process cannot read the
    # model (installed on the server only), so Recategorise is not offered. No default: a team's own
    # model has its own categories, so a caller that forgot them must not get Rapport's.
    categories: Sequence[str] | None = field(kw_only=True)
    reply: ReplyOptions = field(default_factory=ReplyOptions)  # rapport.toml [reply] and the reps' signatures


@dataclass
class Ctx:
    session: Session
    rep: Rep
    now: datetime
    options: BotOptions
    origin: str | None = None  # where the request came from (Slack user and channel), for the audit log
    via: str = "slack"

    @property
    def actor(self) -> Actor:
        return Actor(self.rep.email, self.via, self.origin)

    @property
    def languages(self) -> list[str]:
        return list(self.rep.languages or [])


Handler = Callable[[Ctx, list[str]], Reply]


def run_command(ctx: Ctx, text: str) -> Reply:
    """Answer one `/crm ...` text; user mistakes give a helpful reply, never an exception."""
    name, rest = command_name(text)
    command = COMMANDS.get(name)
    if command is None:
        close = difflib.get_close_matches(name, COMMANDS, n=1, cutoff=0.6)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        return Reply(f"I don't know `{escape(clip(name, 40))}`.{hint}",
                     [section(f"I don't know `{escape(clip(name, 40))}`.{hint} Try `{ctx.options.command} help`.")],
                     ok=False)
    return command.handler(ctx, rest)


def command_name(text: str) -> tuple[str, list[str]]:
    """The command word of `/crm text` ("help" for nothing, "log call" as one) and its arguments."""
    words = tokens(text)
    if not words:
        return "help", []
    name, rest = words[0].lower(), words[1:]
    if name == "log" and rest and rest[0].lower() == "call":
        name, rest = "log call", rest[1:]
    return name, rest


def tokens(text: str) -> list[str]:
    """Words, keeping "quoted phrases" together."""
    return [next(g for g in match.groups() if g is not None) for match in _TOKENS.finditer(text or "")]


# --------------------------------------------------------------------------- help


HELP = (
    ("find QUERY", "find a contact by name, email, company or phone (typos and accents are fine)"),
    ("log call CONTACT NOTES", "log a call; without arguments opens the call form"),
    ("remind CONTACT WHEN NOTE", 'set a follow-up: `remind "Jan Novák" next friday 10am send the offer`'),
    ("followups", "my open follow-ups"),
    ("my", "my open conversations by SLA urgency and my due follow-ups"),
    ("away UNTIL", "mark me away (no new assignments) until a time, e.g. `away monday 9am`"),
    ("back", "I'm back: assignments resume"),
    ("segment top|lapsed|stalled|partners", "customer segments; `lapsed` has the win-back buttons"),
    ("stage CONTACT STAGE [REASON]", "move a contact to a buying stage: need, information search, evaluation, "
                                     "purchase, post purchase"),
    ("kind CONTACT KIND [REASON]", "make a contact a prospect, customer or partner"),
    ("note CONTACT|COMPANY TEXT", "add a note to a contact or a company; without text opens the note form"),
    (CLAIM_FORM, "take a conversation from your team's queue (`my` shows the numbers)"),
    (ANSWERED_FORM, "mark a conversation answered: no reply is owed any more"),
    (DONE_FORM, "a follow-up is done: `done F17` (`followups` lists the references), or my next open one with a contact"),
    (SNOOZE_FORM, "a follow-up comes back later: `snooze F17 tomorrow`, or my next open one with a contact"),
    (THREAD_FORM, "read a conversation's emails in order"),
    (REPLY_FORM, "answer the customer by email (you confirm before it is sent)"),
    ("privacy export|erase CONTACT", "managers: a person's data as a file in your DM, or erase them for good"),
    ("help [COMMAND]", "this list, or one command"),
)


def help_reply(ctx: Ctx, args: list[str]) -> Reply:
    """`help`: every command; `help NAME`: the commands NAME starts (`help log` and `help log call`)."""
    command = ctx.options.command
    asked = " ".join(args).lower()
    chosen = [(usage, what) for usage, what in HELP if asked and f"{usage.lower()} ".startswith(f"{asked} ")]
    if asked and not chosen:
        return Reply(f"No command {escape(clip(asked, 40))}",
                     [section(f"There is no `{escape(clip(asked, 40))}` command. Try `{command} help`.")], ok=False)
    lines = [f"`{command} {usage}` — {what}" for usage, what in chosen or HELP]
    if chosen:
        return Reply(lines[0], [section("\n".join(lines))])
    return Reply("Rapport commands", [header("Rapport commands"), section("\n".join(lines)),
                                      context("Times are understood in your time zone and language. "
                                              "In a DM to me, type the same without the slash command.")])


# --------------------------------------------------------------------------- contacts


def find(ctx: Ctx, args: list[str]) -> Reply:
    query = " ".join(args).strip()
    if sum(char.isalnum() for char in query) < 2:  # "a" matched a company's "a.s." and opened its card
        return usage(ctx, "find QUERY", "at least two letters or digits, e.g. `find acme` or `find stastny`")
    hits = search_contacts(ctx.session, query, visible_owner_ids=visible_owner_ids(ctx.session, ctx.rep))
    if not hits:
        return no_match(ctx, query)
    if len(hits) == 1:
        return card_reply(ctx, hits[0].contact_id)
    return Reply(f"{len(hits)} contacts match {escape(query)}", pick_list_blocks(query, hits))


def no_match(ctx: Ctx, query: str) -> Reply:
    """Nothing the rep may see matches `query`: say so, or that it is another team's contact
    (visibility hides it; "no match" would send the rep looking for a typo)."""
    hidden = search_contacts(ctx.session, query, limit=1)
    if not hidden:
        text = f"No contact matches *{escape(query)}*."
        return Reply(f"No contact matches {escape(query)}.", [section(text)], ok=False)
    owner = ctx.session.get(Rep, hidden[0].owner_id) if hidden[0].owner_id else None
    team = f" (team {escape(owner.team)})" if owner is not None and owner.team else ""
    text = (f"*{escape(query)}* matches a contact owned by another team{team}, so I can't show it. "
            "Ask its owner or a manager.")
    return Reply(f"{escape(query)} is owned by another team", [section(text)], ok=False)


def card_reply(ctx: Ctx, contact_id: int) -> Reply:
    card = contact_card(ctx.session, contact_id, now=ctx.now)
    if card is None:
        return Reply("That contact is not there.", [section("That contact is not there.")], ok=False)
    if not can_see(ctx.session, ctx.rep, card.owner_id):
        text = "That contact is owned by another team, so I can't show it."
        return Reply(text, [section(text)], ok=False)
    record_audit(ctx.session, ctx.actor, "card.view", target_kind="contact", target_id=contact_id,
                 contact_id=contact_id, at=ctx.now)
    return Reply(f"Contact: {escape(card.name)}", contact_card_blocks(card, now=ctx.now, tz=ctx.rep.timezone))


def leading_runs(words: list[str]) -> list[tuple[str, int]]:
    """The runs of leading words that may name a contact or a company, longest first, as (text,
    number of words): up to MAX_NAME_WORDS words, and a "quoted name" only alone."""
    unquoted = next((i for i, word in enumerate(words) if " " in word), len(words))
    longest = min(MAX_NAME_WORDS, max(unquoted, 1), len(words))
    return [(" ".join(words[:count]), count) for count in range(longest, 0, -1)]


def resolve_contact(ctx: Ctx, words: list[str]) -> tuple[SearchHit | None, list[str], Reply | None]:
    """The contact named at the start of `words`: by the longest run of words that names one (a
    quoted name, an email, a name, a full name; one word may also be their company's; see
    `leading_runs`).

    A run of several words must be made of the contact's name words or email only (`only_names`;
    a company is `bot.notes`' to find), so the words after the name stay the note: `kind sabine
    partner` is not read as Sabine of Weiß & Partner. Returns (hit, remaining words, None) or
    (None, words, a reply explaining the problem: nothing matches, or the longest run naming
    anyone names several).
    """
    if not words:
        return None, words, Reply("Which contact?", [section("Which contact? Give a name, email or phone.")],
                                  ok=False)
    visible = visible_owner_ids(ctx.session, ctx.rep)
    for run, count in leading_runs(words):
        hits = search_contacts(ctx.session, run, visible_owner_ids=visible, limit=6)
        if count > 1:
            hits = [h for h in hits if only_names(run, h.name, h.email)]
        if not hits:
            continue
        # one word is matched loosely (typos, prefixes, any field): to win over others it must match near exactly
        if len(hits) == 1 or (hits[0].score >= (99 if count == 1 else 95) and hits[1].score < 90):
            return hits[0], words[count:], None
        names = "\n".join(f"• {escape(h.name)}" + (f" ({escape(h.email)})" if h.email else "") for h in hits[:5])
        text = (f"Several contacts match *{escape(run)}*:\n{names}\n"
                'Use their email, or quote the full name: `"Jan Novák"`.')
        return None, words, Reply(f"Several contacts match {escape(run)}", [section(text)], ok=False)
    return None, words, no_match(ctx, words[0])


def log_call(ctx: Ctx, args: list[str]) -> Reply:
    if not args:
        return Reply("Log a call", [section("Opening the call form…")], modal=log_call_modal())
    hit, rest, problem = resolve_contact(ctx, args)
    if problem is not None:
        return problem
    assert hit is not None
    notes = " ".join(rest).strip()
    if not notes:
        contact = ctx.session.get(Contact, hit.contact_id)
        return Reply("Log a call", [section("Opening the call form…")], modal=log_call_modal(contact))
    log_activity(ctx.session, contact_id=hit.contact_id, rep_id=ctx.rep.id, summary=notes, kind=ActivityKind.call,
                 occurred_at=ctx.now)
    text = f"Logged a call with *{escape(hit.name)}*: {escape(clip(notes, 200))}"
    return Reply(f"Logged a call with {escape(hit.name)}", [section(text)], changed_home=True)


# --------------------------------------------------------------------------- follow-ups


def remind(ctx: Ctx, args: list[str]) -> Reply:
    if not args:
        return usage(ctx, "remind CONTACT WHEN NOTE", 'e.g. `remind "Jan Novák" next friday 10am send the offer` '
                      "or `remind me in 3 days check the invoice`")
    hit: SearchHit | None = None
    rest = args[1:]
    if args[0].lower() not in ("me", "myself"):
        hit, rest, problem = resolve_contact(ctx, args)
        if problem is not None:
            return problem
    try:
        due, note_words = split_when(rest, tz=ctx.rep.timezone, languages=ctx.languages, now=ctx.now)
    except Invalid as error:  # a date or time that does not exist: "31 February is not a date"
        return usage(ctx, "remind CONTACT WHEN NOTE", f"{escape(str(error))}.")
    if due is None:
        return usage(ctx, "remind CONTACT WHEN NOTE",
                      f"I could not read a time in *{escape(' '.join(rest) or '(nothing)')}*; "
                      "try `tomorrow 9am`, `next friday 10am`, `in 3 days`.")
    if due <= ctx.now:
        return Reply("That time has passed.", [section(f"{local_time(due, ctx.rep.timezone)} has already passed.")],
                     ok=False)
    assert ctx.rep.id is not None
    note = " ".join(note_words)
    create_followup(ctx.session, rep_id=ctx.rep.id, due_at=due, note=note,
                    contact_id=hit.contact_id if hit else None, source="slack", now=ctx.now)
    about = f" about *{escape(hit.name)}*" if hit else ""
    when = local_time(due, ctx.rep.timezone)
    text = f"I'll remind you {when}{about}" + (f": {escape(clip(note, 200))}" if note else ".")
    return Reply(f"I'll remind you {when}", [section(text)], changed_home=True)


def followups(ctx: Ctx, _args: list[str]) -> Reply:
    assert ctx.rep.id is not None
    items = open_followups(ctx.session, ctx.rep.id, limit=100)
    if not items:
        return Reply("No open follow-ups.", [section("You have no open follow-ups.")])
    blocks: list[Block] = [header("My follow-ups"), *followup_blocks(items, now=ctx.now, tz=ctx.rep.timezone)]
    return Reply(f"{len(items)} open follow-ups", blocks)


def my(ctx: Ctx, _args: list[str]) -> Reply:
    return Reply("My work", my_blocks(ctx.session, ctx.rep, now=ctx.now))


# --------------------------------------------------------------------------- availability


def away(ctx: Ctx, args: list[str]) -> Reply:
    when = " ".join(args)
    try:
        until_time = parse_when(when, tz=ctx.rep.timezone, languages=ctx.languages, now=ctx.now) if when else None
    except Invalid as error:
        return usage(ctx, "away UNTIL", f"{escape(str(error))}.")
    if until_time is None or until_time <= ctx.now:
        return usage(ctx, "away UNTIL", "e.g. `away monday 9am` or `away in 2 days`")
    ctx.rep.away_until = until_time
    ctx.session.add(ctx.rep)
    text = f"You're away until {local_time(until_time, ctx.rep.timezone)}: no new assignments until then."
    return Reply(text, [section(text)])


def back(ctx: Ctx, _args: list[str]) -> Reply:
    ctx.rep.away_until = None
    ctx.session.add(ctx.rep)
    return Reply("Welcome back", [section("Welcome back: new assignments can come your way again.")])


# --------------------------------------------------------------------------- segments


def segment(ctx: Ctx, args: list[str]) -> Reply:
    name = args[0].lower() if args else ""
    if name not in SEGMENTS:
        return usage(ctx, "segment top|lapsed|stalled|partners", "pick one of the four segments")
    from bot.segments import segment_blocks  # bot.segments renders with helpers from this module

    params = ctx.options.segment_params or SegmentParams()
    if name == "lapsed":  # grouped by owner, with the win-back buttons
        from bot.winback import lapsed_blocks

        return Reply("Lapsed customers to win back", lapsed_blocks(ctx.session, ctx.rep, params, now=ctx.now))
    blocks: list[Block] = segment_blocks(ctx.session, name, params, now=ctx.now)
    return Reply(f"Segment {name}", blocks)


def usage(ctx: Ctx, form: str, hint: str) -> Reply:
    """The one way to answer a command typed wrong: its form and a hint."""
    text = f"Usage: `{ctx.options.command} {form}`\n{hint}"
    return Reply(f"Usage: {ctx.options.command} {form}", [section(text)], ok=False)


def stage(ctx: Ctx, args: list[str]) -> Reply:
    from bot.relationship import stage_command  # bot.relationship builds on this module

    return stage_command(ctx, args)


def kind(ctx: Ctx, args: list[str]) -> Reply:
    from bot.relationship import kind_command

    return kind_command(ctx, args)


def note(ctx: Ctx, args: list[str]) -> Reply:
    from bot.notes import note_command  # bot.notes builds on this module

    return note_command(ctx, args)


def privacy(ctx: Ctx, args: list[str]) -> Reply:
    from bot.privacy import privacy_command  # bot.privacy builds on this module's Ctx and resolve_contact

    return privacy_command(ctx, args)


@dataclass(frozen=True)
class Command:
    """A `/crm` word's handler, and whether it changes data. One that does not runs in a read
    session (`store.db.read_and_append`: its audit entries are appended after the read), so under
    load it never queues for the write lock behind the inbox or another rep's change."""

    handler: Handler
    writes: bool


COMMANDS: dict[str, Command] = {
    "help": Command(help_reply, writes=False),
    "find": Command(find, writes=False),  # a card shown is audited: an entry appended after the read
    "log call": Command(log_call, writes=True),
    "remind": Command(remind, writes=True),
    "followups": Command(followups, writes=False),
    "my": Command(my, writes=False),
    "away": Command(away, writes=True),
    "back": Command(back, writes=True),
    "segment": Command(segment, writes=False),
    "stage": Command(stage, writes=True),
    "kind": Command(kind, writes=True),
    "note": Command(note, writes=True),
    "claim": Command(claim_command, writes=True),
    "answered": Command(answered_command, writes=True),
    "done": Command(done_command, writes=True),
    "snooze": Command(snooze_command, writes=True),
    "thread": Command(thread_command, writes=False),
    "reply": Command(reply_command, writes=False),  # opens the confirmation; the send is the modal's submit
    "privacy": Command(privacy, writes=True),
}


def command_writes(text: str) -> bool:
    """Whether `/crm text` may change data (an unknown word: it answers with a hint, and reads only)."""
    name, _ = command_name(text)
    command = COMMANDS.get(name)
    return command is not None and command.writes


def contact_modal(ctx: Ctx, contact_id: int | None, kind: str) -> dict[str, Any]:
    """The log-call or follow-up modal prefilled with a contact the rep may see."""
    contact = ctx.session.get(Contact, contact_id) if contact_id else None
    if contact is not None and (contact.id is None or not can_see_contact(ctx.session, ctx.rep, contact.id)):
        contact = None
    return log_call_modal(contact) if kind == "call" else followup_modal(contact)
