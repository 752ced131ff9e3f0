"""The digest as a manager gets it: received on a real SMTP server (aiosmtpd) and rendered in
headless Chromium at a phone's width (375 px) and an email pane's (600 px)."""

from __future__ import annotations

import base64
import re
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.digest import (
    NO_CONTACTS,
    NO_MAIL,
    DigestLinks,
    Panel,
    bar_labels,
    chart_alt,
    chart_panels,
    digest_handlers,
    enqueue_due_digests,
    render_chart,
    send_digest_email,
    subject,
)
from bot.email import SmtpOptions
from store.db import session_scope
from store.digest import ResponseTimes, compute_digest
from store.models import Conversation, Rep
from store.outbox import dispatch
from tests.digest.known_store import NOW, E, Known, S
from tests.digest.test_delivery import LINKS, OPTIONS, check_digest_mail, parse_mail
from tests.servers.browser import measure
from tests.servers.smtp import SmtpServer

PNG = b"\x89PNG\r\n\x1a\n"


def _receive(engine: Engine, smtp_server: SmtpServer, links: DigestLinks = LINKS) -> bytes:
    with session_scope(engine) as session:
        maja = session.exec(select(Rep).where(Rep.email == "maja@rapport.example")).one()
        maja.digest_via = ["email"]
        assert enqueue_due_digests(session, now=NOW, options=OPTIONS, managers=[maja]) == 1
    smtp = SmtpOptions(host=smtp_server.host, port=smtp_server.port, security="none")
    assert dispatch(engine, digest_handlers(engine, slack=None, smtp=smtp, links=links, now=NOW), now=NOW) == 1
    return smtp_server.wait_for(1)[0].data


def _shown_html(raw: bytes) -> str:
    """The HTML part with its inline chart as a data: URI, as a mail client shows it."""
    message = parse_mail(raw)
    html_part = message.get_body(preferencelist=("html",))
    assert html_part is not None
    page = html_part.get_content()
    for part in message.walk():
        if part.get_content_type() == "image/png":
            cid = str(part["Content-ID"]).strip("<>")
            data = base64.b64encode(part.get_payload(decode=True)).decode()
            page = page.replace(f"cid:{cid}", f"data:image/png;base64,{data}")
    return page


def test_the_weekly_digest_fits_a_phone_and_every_item_links(engine: Engine, known: Known,
                                                              smtp_server: SmtpServer) -> None:
    with session_scope(engine) as session:  # a long subject without spaces and a long name must not widen it
        c3 = session.get(Conversation, known.conversations["c3"].id)
        alice = session.get(Rep, known.reps["alice"].id)
        assert c3 is not None and alice is not None
        c3.subject = "Re: " + "Bestellbestätigungsnummernverwaltung" * 4
        alice.name = "Alice Maria Annika Andersson-Lindqvist"
    raw = _receive(engine, smtp_server)
    _, text, html = check_digest_mail(raw)

    page = _shown_html(raw)
    assert '<meta name="viewport"' in page and 'lang="en"' in page and "color-scheme" in page
    for width in (375, 600):
        layout = measure(page, width)
        assert layout.width == width
        assert layout.scroll_width <= width, f"{layout.scroll_width} px wide in a {width} px window"
    items = re.findall(r'<div class="item".*?</div></div>', html)
    assert len(items) >= 8  # waiting, follow-up, lapsed, team, top customers
    assert all('<a href="https://' in item for item in items)
    assert "https://rapport.example.com/conversation?id=" in html
    assert "Alice Maria Annika Andersson-Lindqvist" in text


def test_an_empty_period_is_one_short_line(engine: Engine, smtp_server: SmtpServer) -> None:
    with session_scope(engine) as session:
        session.add(Rep(name="Nina Newteam", email="maja@rapport.example", role="manager", team="new",
                        timezone="Europe/Stockholm", digest_via=["email"]))
    raw = _receive(engine, smtp_server)
    message, text, _ = check_digest_mail(raw)

    assert message["Subject"] == "New, Sun 22 Nov: no mail"
    body = text.replace("\r\n", "\n").split("\n--\n")[0].strip().splitlines()
    assert body == ["New, Sun 22 Nov (Sunday 22 Nov 2026, Europe/Stockholm)", "",
                    "No new mail, nothing waiting and no follow-ups due this day."]
    assert "image/png" not in raw.decode()
    assert measure(_shown_html(raw), 375).scroll_width <= 375


def test_the_chart_says_no_mail_instead_of_drawing_empty_axes(engine: Engine) -> None:
    with session_scope(engine) as session:
        nina = Rep(name="Nina", email="nina@rapport.example", role="manager", team="new", timezone="UTC")
        session.add(nina)
        session.flush()
        figures = compute_digest(session, manager=nina, period="week", start=S - timedelta(days=6), end=E,
                                 params=OPTIONS.params, now=NOW)
    panels = chart_panels(figures)
    assert [p.values for p in panels] == [None, None, None]  # the "no data" state, not axes from -0.045 to 0.045
    assert [p.empty for p in panels] == [NO_MAIL, "No first replies this period", NO_CONTACTS]
    assert "Contacts per buying stage: none" in chart_alt(figures)
    assert render_chart(figures).startswith(PNG)
    assert "no mail" in subject(figures)


@pytest.mark.parametrize("period", ["day", "week"])
def test_the_chart_has_one_measure_per_panel(engine: Engine, known: Known, period: str) -> None:
    with Session(engine) as session:
        maja = session.get(Rep, known.reps["maja"].id)
        assert maja is not None
        figures = compute_digest(session, manager=maja, period=period,  # type: ignore[arg-type]
                                 start=S - timedelta(days=6 if period == "week" else 0), end=E,
                                 params=OPTIONS.params, now=NOW)
    volume, replies, funnel = chart_panels(figures)
    assert volume.values is not None and sum(volume.values) == figures.new_conversations
    assert replies.values is not None and len(replies.values) == len(volume.values)
    assert render_chart(figures).startswith(PNG)
    # the third chart: contacts per buying stage, the funnel section's figures, need at the top
    assert funnel.labels == ["need", "information search", "evaluation", "purchase", "post purchase"]
    assert funnel.values == [float(n) for n in figures.funnel.by_stage.values()] and any(funnel.values)
    assert bar_labels(funnel) == [f"{n}" if n else "" for n in figures.funnel.by_stage.values()]
    words = ", ".join(f"{stage.replace('_', ' ')} {n}" for stage, n in figures.funnel.by_stage.items())
    assert f"Contacts per buying stage: {words}" in chart_alt(figures)


def test_a_period_without_mail_still_shows_the_funnel_chart(engine: Engine, known: Known,
                                                           smtp_server: SmtpServer) -> None:
    """The funnel is about contacts, not mail: with no mail in the period its chart still shows
    (beside the volume chart's "no mail" state), in the email with its alt text."""
    with Session(engine) as session:
        maja = session.get(Rep, known.reps["maja"].id)
        assert maja is not None
        figures = compute_digest(session, manager=maja, period="week", start=S - timedelta(days=6), end=E,
                                 params=OPTIONS.params, now=NOW)
    quiet = replace(figures, series=[replace(p, new_conversations=0, median_response_seconds=None)
                                     for p in figures.series])
    volume, replies, funnel = chart_panels(quiet)
    assert (volume.values, replies.values) == (None, None) and funnel.values is not None
    assert render_chart(quiet).startswith(PNG)
    send_digest_email(SmtpOptions(host=smtp_server.host, port=smtp_server.port, security="none"), quiet,
                      to="maja@rapport.example", links=LINKS)
    raw = smtp_server.wait_for(1)[0].data
    assert b"image/png" in raw  # the chart goes with the mail although no mail came in
    html_part = parse_mail(raw).get_body(preferencelist=("html",))
    assert html_part is not None
    page = html_part.get_content()
    alt = re.search(r'<img src="cid:[^"]+" width="400" alt="([^"]+)"', page)
    assert alt is not None and "Contacts per buying stage: need" in alt.group(1)
    assert "New conversations per day: none" in alt.group(1)


def test_the_subject_stays_one_short_line(engine: Engine, known: Known) -> None:
    with Session(engine) as session:
        maja = session.get(Rep, known.reps["maja"].id)
        assert maja is not None
        figures = compute_digest(session, manager=maja, period="day", start=S, end=E, params=OPTIONS.params,
                                 now=NOW)
    assert subject(figures) == "Nordics, Sun 22 Nov: 5 new, 2 missed reply time, first reply 2h"
    long_team = replace(figures, team="customer success and key accounts north")
    assert subject(long_team) == "Customer success and key accounts north, Sun 22 Nov: 5 new"
    no_replies = replace(figures, first_response=ResponseTimes(0, None, None))
    assert subject(no_replies) == "Nordics, Sun 22 Nov: 5 new, 2 missed reply time"  # no "first reply –"


def test_values_on_a_days_narrow_bars_never_sit_on_two_neighbours() -> None:
    hours = Panel("New conversations per hour", [""] * 24, [0, 1, 2, 3, 0, 5] + [0] * 18, lambda v: f"{v:.0f}")
    assert bar_labels(hours)[:6] == ["", "1", "", "3", "", "5"]
    week = Panel("New conversations per day", [""] * 7, [1, 2, 3, 0, 0, 0, 4], lambda v: f"{v:.0f}")
    assert bar_labels(week) == ["1", "2", "3", "", "", "", "4"]  # wide bars: every value
