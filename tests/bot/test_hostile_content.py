"""Hostile and oversized content through every Slack surface.

Each test ends with the checks every bot test gets: the fake Slack refuses (and
fails the test on) any payload real Slack would refuse, and no raw `<!…>`,
`<@…>`, `<#…>` or `<http…>` that Rapport did not write reaches Slack (see
tests/bot/conftest.py `no_raw_mentions`).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from slack_sdk import WebClient

from bot.blocks import fit
from bot.notify import SlackSender, dispatch_outbox
from store.db import session_scope
from store.models import Company, Consent, Contact, ContactEmail
from store.search import refresh_index
from store.validation import CATEGORIES
from tests.bot.conftest import ALICE, SECRET, START, Seeded, add_assigned_email, rep_id
from tests.servers import slack_requests
from tests.servers.fake_slack import FakeSlack

HOSTILE = "<!channel> <!here>"


def _hostile_contact(engine: Any, *, company: str = "<http://evil.example|Acme>", consents: int = 1) -> int:
    alice = rep_id(engine, "alice@nordlys.example")
    with session_scope(engine) as session:
        firm = Company(name=company, owner_id=alice)
        session.add(firm)
        session.flush()
        contact = Contact(name=HOSTILE, title="<#C0GENERAL>", phone="<@U0STRANGER>", owner_id=alice,
                          company_id=firm.id)
        session.add(contact)
        session.flush()
        assert contact.id is not None
        session.add(ContactEmail(contact_id=contact.id, email="channel@evil.example", is_primary=True))
        session.add_all(Consent(contact_id=contact.id, purpose=f"newsletter-{n}-" + "p" * 40, basis="consent",
                                granted_at=START) for n in range(consents))
        session.flush()
        refresh_index(session)  # as the writers (inbox, importer) do
        return contact.id


def test_find_answers_with_escaped_fallback_text(slash: Any, engine: Any, seeded: Seeded) -> None:
    """Regression: `/crm find` on a contact named `<!channel> <!here>` answered `Contact: <!channel> <!here>`."""
    _hostile_contact(engine)
    _, answer = slash("find channel@evil.example")
    assert answer["text"] == "Contact: &lt;!channel&gt; &lt;!here&gt;"


def test_a_long_company_and_many_consents_fit_the_card_fields(slash: Any, engine: Any, seeded: Seeded) -> None:
    """Regression: a field over 2,000 characters (cut at 3,000) made Slack refuse the contact card."""
    _hostile_contact(engine, company="Very Long Company " * 150, consents=60)
    _, answer = slash("find channel@evil.example")
    fields = next(b["fields"] for b in answer["blocks"] if "fields" in b)
    consent = next(f["text"] for f in fields if f["text"].startswith("*Consent*"))
    assert len(consent) <= 2000 and consent.endswith(" more")
    assert all(len(f["text"]) <= 2000 for f in fields)


def test_a_long_queue_is_cut_at_whole_conversations(slash: Any, engine: Any, seeded: Seeded,
                                                    fake_slack: FakeSlack, events_url: str) -> None:
    """Regression: `/crm my` and App Home cut the queue at 3,000 characters mid-line, without a count."""
    contact = _hostile_contact(engine)
    for n in range(40):
        add_assigned_email(engine, owner_email="alice@nordlys.example", contact_id=contact,
                           subject=f"<!everyone> {n} " + "long subject words " * 4, text="<http://x|y>")
    _, answer = slash("my")
    # a row per conversation (with its "Show conversation" button), then how many more
    rows = [b for b in answer["blocks"] if (b.get("accessory") or {}).get("action_id") == "conv_thread"]
    assert len(rows) == 15 and all(row["text"]["text"].startswith("• ") for row in rows)
    assert answer["blocks"][16]["elements"][0]["text"] == "…and 25 more"
    home_opened = {"type": "app_home_opened", "user": ALICE, "channel": "D0ALICE", "tab": "home"}
    slack_requests.event(SECRET, slack_requests.event_payload(home_opened, event_id="EvLong")).post(events_url)
    home = fake_slack.wait_for("views.publish")[0].params["view"]
    assert "…and 30 more" in json.dumps(home, ensure_ascii=False)  # App Home shows the 10 most urgent


def test_assignment_dm_of_a_huge_mail_stays_within_the_limits(engine: Any, seeded: Seeded,
                                                               fake_slack: FakeSlack) -> None:
    contact = _hostile_contact(engine)
    add_assigned_email(engine, owner_email="alice@nordlys.example", contact_id=contact, subject=HOSTILE * 100,
                       text="\n".join(f"line {n} <!here> <@U0CAROL> <#C1> <https://evil|x>" for n in range(500)))
    sender = SlackSender(WebClient(token="xoxb-test-token", base_url=fake_slack.base_url))
    assert dispatch_outbox(engine, sender, now=START + timedelta(minutes=1), categories=CATEGORIES) == 1
    assert fake_slack.calls("chat.postMessage")[-1].status == 200


def test_fit_cuts_at_whole_lines_and_counts_the_rest() -> None:
    text = "\n".join(f"• item {n}" for n in range(1000))
    cut = fit(text, 3000)
    kept = cut.split("\n")[:-1]
    assert len(cut) <= 3000 and kept == text.split("\n")[: len(kept)]
    assert cut.endswith(f"…and {1000 - len(kept)} more")
    assert fit("&amp;" * 1000, 200).endswith("&amp;…")  # never a broken entity such as `&am`
    assert fit("short", 10) == "short"

