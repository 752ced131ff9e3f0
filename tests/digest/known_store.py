"""A small hand-built store whose digest and segment answers are worked out by hand.

The digest is Maja's (team "nordics", Europe/Stockholm) for Sunday 2026-11-22,
computed at NOW (Monday 08:30 UTC). In November Stockholm is UTC+1, so the day
is [2026-11-21 23:00, 2026-11-22 23:00) UTC; S below is its start.
Carol is in another team and must never show up in Maja's digest; Ada the
admin sees everyone. Comments give the reason each row exists.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlmodel import Session

from store.models import (
    Activity,
    Assignment,
    Company,
    Contact,
    Conversation,
    FollowUp,
    Message,
    Order,
    Rep,
)

NOW = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
TODAY = NOW.date()
S = datetime(2026, 11, 21, 23, 0, tzinfo=UTC)  # local midnight, Stockholm
E = S + timedelta(days=1)
H = timedelta(hours=1)
LONG_AGO = datetime(2024, 1, 1, tzinfo=UTC)
_ORDER_NUMBERS = itertools.count(1)


@dataclass
class Known:
    reps: dict[str, Rep] = field(default_factory=dict)
    contacts: dict[str, Contact] = field(default_factory=dict)
    conversations: dict[str, Conversation] = field(default_factory=dict)
    # first-response seconds of the team's conversations first answered in the period, by owner
    team_responses: dict[str, list[float]] = field(default_factory=dict)


def build(session: Session) -> Known:
    known = Known()
    _reps(session, known)
    _contacts(session, known)
    _conversations(session, known)
    _messages(session, known)
    _work(session, known)
    _orders(session, known)
    session.flush()
    return known


def _id(value: int | None) -> int:
    assert value is not None, "flushed rows have ids"
    return value


def _add(session: Session, row: object) -> None:
    session.add(row)
    session.flush()


def _reps(session: Session, known: Known) -> None:
    specs = {
        "maja": dict(name="Maja Manager", role="manager", team="nordics", slack_user_id="UMAJA",
                     timezone="Europe/Stockholm", digest_via=["slack", "email"], digest_hour=8),
        "alice": dict(name="Alice Andersson", team="nordics", slack_user_id="UALICE"),
        "bob": dict(name="Bob Berg", team="nordics"),
        "carol": dict(name="Carol Costa", team="south"),
        "ada": dict(name="Ada Admin", role="admin", timezone="UTC", digest_via=["email"], digest_hour=7),
    }
    for key, spec in specs.items():
        rep = Rep(email=f"{key}@rapport.example", created_at=LONG_AGO, **spec)  # type: ignore[arg-type]
        _add(session, rep)
        known.reps[key] = rep


def _contact(session: Session, known: Known, key: str, name: str, *, kind: str = "customer",
             owner: str | None = None, company: Company | None = None, stage: str = "purchase",
             created_at: datetime = LONG_AGO, post_purchase: bool = True) -> Contact:
    contact = Contact(name=name, kind=kind, stage=stage, created_at=created_at,
                      owner_id=known.reps[owner].id if owner else None,
                      company_id=company.id if company else None, post_purchase_followup=post_purchase)
    _add(session, contact)
    known.contacts[key] = contact
    return contact


def _contacts(session: Session, known: Known) -> None:
    alices_company = Company(name="Cleo AB", owner_id=known.reps["alice"].id, created_at=LONG_AGO)
    partner_company = Company(name="Partner GmbH", kind="partner", created_at=LONG_AGO)
    _add(session, alices_company)
    _add(session, partner_company)
    _contact(session, known, "k1", "Ada Big", owner="alice")
    _contact(session, known, "k2", "Ben Mid", owner="bob")
    _contact(session, known, "k3", "Cleo Small", company=alices_company)  # owner through the company
    _contact(session, known, "k4", "Dan Cancel", owner="alice")
    _contact(session, known, "k5", "Eve Yen", owner="alice")
    for i in range(1, 8):
        _contact(session, known, f"f{i}", f"Filler {i}", owner="bob")
    for key, name, owner in [("L1", "Lars Lapsed", "alice"), ("L2", "Lena Regular", "bob"),
                             ("L3", "Lou Twice", "alice"), ("L4", "Liv Recent", "alice"),
                             ("L5", "Leo South", "carol"), ("L6", "Lia Edge", "bob"),
                             ("L7", "Lotta Bigger", "bob")]:
        _contact(session, known, key, name, owner=owner)
    # stalled prospects (21 days) and quiet partners (45 days)
    for key, name, stage, age in [("p1", "Pia Stalled", "evaluation", 60), ("p2", "Per Busy", "evaluation", 60),
                                  ("p3", "Pam Early", "need", 60), ("p4", "Pol New", "evaluation", 5),
                                  ("p5", "Pat Mail", "evaluation", 90)]:
        _contact(session, known, key, name, kind="prospect", stage=stage, owner="alice",
                 created_at=NOW - timedelta(days=age))
    _contact(session, known, "r1", "Rita Partner", kind="partner", owner="bob", created_at=LONG_AGO)
    _contact(session, known, "r2", "Rolf AtPartner", kind="customer", company=partner_company,
             created_at=NOW - timedelta(days=100))
    _contact(session, known, "r3", "Ruth Partner", kind="partner", owner="bob", created_at=LONG_AGO)


def _conversation(session: Session, known: Known, key: str, owner: str | None, *, opened: datetime,
                  responded: datetime | None = None, category: str | None = None,
                  language: str | None = None, status: str = "answered", sla: datetime | None = None,
                  automatic: bool = False, contact: str | None = None, urgency: str = "normal") -> Conversation:
    conversation = Conversation(
        subject=f"conversation {key}", owner_id=known.reps[owner].id if owner else None,
        queue=None if owner else "triage", category=category, language=language, status=status,
        is_automatic=automatic, opened_at=opened, first_response_at=responded, answered_at=responded,
        sla_due_at=sla, contact_id=known.contacts[contact].id if contact else None, urgency=urgency,
    )
    _add(session, conversation)
    known.conversations[key] = conversation
    if owner and not automatic:
        session.add(Assignment(conversation_id=_id(conversation.id), owner_id=known.reps[owner].id,
                               rule="skill", reason="test", assigned_at=opened))
    if owner in ("alice", "bob") and owner is not None and responded is not None and S <= responded < E and not automatic:
        known.team_responses.setdefault(owner, []).append((responded - opened).total_seconds())
    return conversation


def _conversations(session: Session, known: Known) -> None:
    c = _conversation
    # Alice: answered in 1 h, SLA kept
    c(session, known, "c1", "alice", opened=S + 1 * H, responded=S + 2 * H, category="order", language="sv",
      sla=S + 9 * H, contact="k1")
    # Alice: answered in 3 h, after its SLA (S+4h): a breach
    c(session, known, "c2", "alice", opened=S + 2 * H, responded=S + 5 * H, category="billing", language="en",
      sla=S + 4 * H)
    # Alice: never answered, SLA passed in the period: a breach, open, unanswered, overdue
    c(session, known, "c3", "alice", opened=S + 3 * H, category="order", language="sv", status="open",
      sla=S + 11 * H, contact="k3", urgency="high")
    # Alice: old conversation the customer reopened: open but answered, not overdue
    c(session, known, "c10", "alice", opened=S - 48 * H, responded=S - 47 * H, category="order",
      language="sv", status="open")
    # Bob: opened the day before, answered in the period (11 h): counts for response time, not as new
    c(session, known, "c4", "bob", opened=S - 10 * H, responded=S + 1 * H, category="complaint", language="de",
      sla=S - 2 * H)
    c(session, known, "c5", "bob", opened=S + 4 * H, responded=S + 4.5 * H, category="order", language="en",
      contact="f1")
    # Bob: no category, no language
    c(session, known, "c6", "bob", opened=S + 5 * H, responded=S + 7 * H)
    # automatic conversation: left out of every conversation figure
    c(session, known, "c7", "bob", opened=S + 6 * H, responded=S + 6.1 * H, category="order", language="en",
      automatic=True, status="open", sla=S + 7 * H)
    # Carol, other team
    c(session, known, "c8", "carol", opened=S + 2 * H, responded=S + 3 * H, category="order", language="it",
      sla=S + 2.5 * H, contact="k2")
    # unowned (fallback queue), unanswered, SLA passed: only the admin's digest sees it
    c(session, known, "c9", None, opened=S + 8 * H, category="general", language="en", status="open",
      sla=S + 16 * H)


def _message(session: Session, key: str, conversation: Conversation | None, direction: str, at: datetime,
             *, contact: Contact | None = None, automatic: str | None = None) -> None:
    session.add(Message(
        conversation_id=conversation.id if conversation else None, contact_id=contact.id if contact else None,
        direction=direction, message_id=f"<{key}@test>", received_at=at, is_automatic=automatic is not None,
        automatic_reason=automatic,
    ))


def _messages(session: Session, known: Known) -> None:
    conv, people = known.conversations, known.contacts
    m = _message
    m(session, "m1", conv["c1"], "inbound", S + 1 * H, contact=people["k1"])  # a top customer wrote
    m(session, "m2", conv["c1"], "outbound", S + 2 * H)
    m(session, "m3", conv["c2"], "inbound", S + 2 * H)
    m(session, "m4", conv["c2"], "outbound", S + 5 * H)
    m(session, "m5", conv["c3"], "inbound", S + 3 * H, contact=people["k3"])  # top customer #3 wrote
    m(session, "m6", conv["c4"], "inbound", S - 10 * H)
    m(session, "m7", conv["c4"], "outbound", S + 1 * H)
    m(session, "m8", conv["c5"], "inbound", S + 4 * H, contact=people["f1"])  # wrote, not a top customer
    m(session, "m9", conv["c5"], "outbound", S + 4.5 * H)
    m(session, "m10", conv["c5"], "outbound", S + 6 * H)  # a second reply: still one answered conversation
    m(session, "m11", conv["c6"], "inbound", S + 5 * H)
    m(session, "m12", conv["c6"], "outbound", S + 7 * H)
    m(session, "m13", conv["c7"], "inbound", S + 6 * H, automatic="auto_reply")
    m(session, "m14", None, "inbound", S + 9 * H, automatic="bounce")
    m(session, "m15", conv["c8"], "inbound", S + 2 * H, contact=people["k2"])  # Carol's: not the team's
    m(session, "m16", conv["c8"], "outbound", S + 3 * H)
    m(session, "m17", conv["c9"], "inbound", S + 8 * H)
    m(session, "m18", None, "inbound", E + 1 * H, automatic="bounce")  # after the period
    # touches for the stalled/partner segments
    m(session, "m19", None, "inbound", NOW - timedelta(days=10), contact=people["p2"])
    m(session, "m20", None, "outbound", NOW - timedelta(days=25), contact=people["p5"])
    m(session, "m21", None, "inbound", NOW - timedelta(days=10), contact=people["r3"])


def _activity(session: Session, known: Known, rep: str, kind: str, at: datetime,
              contact: str | None = None) -> None:
    session.add(Activity(rep_id=known.reps[rep].id, kind=kind, occurred_at=at, created_at=at,
                         contact_id=known.contacts[contact].id if contact else None))


def _followup(session: Session, known: Known, rep: str, *, due: datetime, status: str = "open",
              done_at: datetime | None = None) -> None:
    session.add(FollowUp(rep_id=_id(known.reps[rep].id), due_at=due, status=status, done_at=done_at,
                         created_at=LONG_AGO))


def _work(session: Session, known: Known) -> None:
    a = _activity
    a(session, known, "alice", "call", S + 2 * H)
    a(session, known, "alice", "call", S + 3 * H)
    a(session, known, "alice", "meeting", S + 4 * H)
    a(session, known, "alice", "call", S - 1 * H)  # before the period
    a(session, known, "bob", "note", S + 5 * H)
    a(session, known, "carol", "call", S + 5 * H)  # other team
    # stalled / partner touches
    a(session, known, "alice", "call", NOW - timedelta(days=30), contact="p1")
    a(session, known, "alice", "call", NOW - timedelta(days=40), contact="p5")
    a(session, known, "bob", "call", NOW - timedelta(days=50), contact="r1")
    f = _followup
    f(session, known, "alice", due=S, status="done", done_at=S + 3 * H)  # done in the period
    f(session, known, "alice", due=S, status="open")  # overdue
    f(session, known, "alice", due=NOW + timedelta(days=1))  # not yet due
    f(session, known, "bob", due=S - 48 * H, status="done", done_at=S - 24 * H)  # done before the period
    f(session, known, "carol", due=S, status="open")  # other team


def _order(session: Session, known: Known, contact: str, day: date, amount: str, currency: str = "EUR",
           status: str = "completed") -> None:
    session.add(Order(external_id=f"o-{next(_ORDER_NUMBERS)}",
                      contact_id=known.contacts[contact].id, amount=Decimal(amount), currency=currency,
                      ordered_on=day, status=status))
    session.flush()


def _orders(session: Session, known: Known) -> None:
    o = _order
    d = date
    # top customers over the 12 months after 2025-11-23
    o(session, known, "k1", d(2026, 5, 1), "5000")
    o(session, known, "k1", d(2026, 6, 1), "1000", "USD")  # 920 EUR: 5920 in all
    o(session, known, "k2", d(2026, 4, 1), "3000", "GBP")  # 3510 EUR
    o(session, known, "k2", d(2025, 11, 23), "10000")  # the window's first day is excluded
    o(session, known, "k3", d(2026, 9, 1), "100")
    o(session, known, "k4", d(2026, 9, 1), "9999", status="cancelled")
    o(session, known, "k5", d(2026, 9, 1), "500", "XYZ")  # no rate: unconverted
    for i in range(1, 8):
        o(session, known, f"f{i}", d(2026, 8, i), str(10 * i))
    # lapsed customers (3 purchase days, factor 2, at least 60 days)
    for day in (d(2026, 1, 1), d(2026, 2, 1), d(2026, 3, 1)):  # gaps 31, 28: threshold 60; 267 days ago
        o(session, known, "L1", day, "1")
    for day in (d(2025, 11, 1), d(2026, 3, 1), d(2026, 7, 1)):  # gaps 120, 122: threshold 242; 145 days ago
        o(session, known, "L2", day, "1")
    for day in (d(2026, 1, 1), d(2026, 1, 1), d(2026, 2, 1)):  # two purchase days only
        o(session, known, "L3", day, "1")
    for day in (d(2026, 9, 1), d(2026, 10, 1), d(2026, 10, 24)):  # last order 30 days ago
        o(session, known, "L4", day, "1")
    for day in (d(2025, 1, 1), d(2025, 2, 1), d(2025, 3, 1)):  # lapsed, but Carol's
        o(session, known, "L5", day, "1")
    for back in (160, 120, 80):  # gaps 40, 40: threshold 80, exactly 80 days ago: not lapsed yet
        o(session, known, "L6", TODAY - timedelta(days=back), "1")
    for day in (d(2025, 5, 1), d(2025, 6, 1), d(2025, 7, 1)):  # lapsed, most valuable
        o(session, known, "L7", day, "1000")
