"""Manager digests: what a manager reads on a phone and acts on, and its delivery.

A digest leads with the answer (a subject with the headline figures, four figures
with the change from the period before), then what needs action now, then the
team. Its content is a list of sections (`SECTIONS`): each is one function from
the figures to a `Section` (a title and linked items), which the email (HTML and
text) and Slack render alike. A new figure is one function added to that list.

Delivery goes through the outbox: the scheduler (`enqueue_due_digests`) and
`rapport digest --send` write one row per way (`DigestSlack`, `DigestEmail`), so
a Slack outage never holds back the email and each is retried on its own; the
handlers (`digest_handlers`) compute the figures when they send.
"""

from __future__ import annotations

import html
import io
import logging
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.blocks import Block, button, context, divider, fields, header, section, static_select
from bot.email import SmtpOptions, build_message, new_cid, outbox_message_id, send_message
from bot.pages import conversation_url
from bot.segments import format_eur, top_period
from bot.text import age, clip, escape, plural
from store.db import read_session
from store.digest import DigestFigures, Funnel, Headline, Period, compute_digest, last_complete_period
from store.hours import WEEKDAYS, zone
from store.models import Rep, Role
from store.outbox import Digest, DigestEmail, DigestSlack, Done, Handler, Job, Outcome, enqueue
from store.reps import rep_by_email
from store.segments import Owner, SegmentParams
from store.stages import stage_label
from store.surveys import SurveyFigures

if TYPE_CHECKING:  # bot.notify hands Slack's sender here: only the type comes back
    from bot.notify import SlackSender

log = logging.getLogger("rapport.digest")

KINDS = (DigestSlack.kind, DigestEmail.kind)
SUBJECT_MAX = 70
TEXT_WIDTH = 72
CHART_WIDTH = 400  # px shown in the email, drawn at twice that; a phone shows >= 340 px of it
NO_MAIL = "No mail this period"
NO_CONTACTS = "No contacts in the buying stages"
MAX_OPTIONS = 100  # Slack's limit for a select's options


class DigestDeliveryError(RuntimeError):
    """A digest could not be delivered (no Slack client, no SMTP, unknown Slack user...)."""


@dataclass(frozen=True)
class DigestLinks:
    """Where a digest's items lead: Slack (the App Home of `slack_app` in `slack_team`,
    rapport.toml [slack]) and read-only conversation pages on `rapport serve`
    (`page_url`, RAPPORT_PUBLIC_URL, signed with `page_key`)."""

    slack_team: str | None = None
    slack_app: str | None = None
    page_url: str | None = None
    page_key: bytes | None = None

    def app_home(self) -> str | None:
        if not self.slack_team:
            return None
        query = {"team": self.slack_team, **({"app": self.slack_app} if self.slack_app else {})}
        return "https://slack.com/app_redirect?" + urlencode(query)

    def conversation(self, conversation_id: int) -> str | None:
        """The conversation's read-only page where `rapport serve` is reachable, else Slack."""
        if self.page_url and self.page_key:
            return conversation_url(self.page_url, self.page_key, conversation_id)
        return self.app_home()

    def customer(self, contact_id: int) -> str | None:
        """A customer: in Slack (`/crm find`, the owner's App Home)."""
        return self.app_home()


@dataclass(frozen=True)
class DigestOptions:
    """What `enqueue_due_digests` needs from rapport.toml ([digest] and [segments])."""

    period: Period = "day"
    weekday: str = "Mon"  # weekly digests go out on this local weekday
    channel: str | None = None  # also post every digest to this Slack channel
    params: SegmentParams = field(default_factory=SegmentParams)
    links: DigestLinks = field(default_factory=DigestLinks)


# --------------------------------------------------------------------------- words and numbers


def format_duration(seconds: float | None) -> str:
    """`45m`, `3h 05m`, `2d 4h`; `–` when there is nothing to measure."""
    if seconds is None:
        return "–"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def short_duration(seconds: float | None) -> str:
    """`45m`, `3h`, `2d`: for the subject."""
    if seconds is None:
        return "–"
    if seconds < 3600:
        return f"{round(seconds / 60)}m"
    if seconds < 2 * 86400:
        return f"{round(seconds / 3600)}h"
    return f"{round(seconds / 86400)}d"


PLAIN_REASONS = {  # what a sales rep calls automatic mail: (words in the stored reason, one, many)
    "bounce": (("3464", "bounce", "failed-recipients", "return-path"), "bounce", "bounces"),
    "away": (("out-of-office", "3834", "autorespond", "auto_reply", "auto-reply"),
             "out-of-office reply", "out-of-office replies"),
    "list": (("list", "newsletter", "precedence", "bulk"), "mailing list mail", "mailing list mails"),
}


def plain_reason(reason: str) -> str:
    """Which kind of automatic mail, in a sales rep's words (the store keeps the technical reason)."""
    low = reason.lower()
    return next((kind for kind, (words, _, _) in PLAIN_REASONS.items() if any(w in low for w in words)), "other")


def plain_reasons(by_reason: dict[str, int]) -> str:
    """`3 bounces, 1 out-of-office reply`: counts by kind, the largest first."""
    kinds: dict[str, int] = {}
    for reason, count in by_reason.items():
        kinds[plain_reason(reason)] = kinds.get(plain_reason(reason), 0) + count
    words = {kind: (one, many) for kind, (_, one, many) in PLAIN_REASONS.items()}
    words["other"] = ("other automatic mail", "other automatic mails")
    return ", ".join(plural(count, *words[kind]) for kind, count in sorted(kinds.items(), key=lambda kv: -kv[1]))


def audience(figures: DigestFigures) -> str:
    return figures.team.capitalize() if figures.team else "Everyone"


def period_name(figures: DigestFigures) -> str:
    """`Sun 22 Nov` or `week 47` (ISO week of the local start)."""
    first = figures.local_start
    return f"{first:%a %d %b}" if figures.period == "day" else f"week {first.isocalendar().week}"


def period_span(figures: DigestFigures) -> str:
    """`Sunday 22 Nov 2026` or `16 Nov – 22 Nov 2026`, then the time zone."""
    first = figures.local_start
    if figures.period == "day":
        return f"{first:%A %d %b %Y}, {figures.timezone}"
    last = (figures.end - timedelta(seconds=1)).astimezone(zone(figures.timezone))
    return f"{first:%d %b} – {last:%d %b %Y}, {figures.timezone}"


def subject(figures: DigestFigures) -> str:
    """At most 70 characters (ASCII but for a team's name), one line: who, when and two or
    three headline figures (the first reply only when there was one)."""
    who = f"{audience(figures)}, {period_name(figures)}"
    if figures.is_empty:
        return clip(f"{who}: no mail", SUBJECT_MAX)
    median = figures.first_response.median_seconds
    parts = [f"{figures.new_conversations} new", f"{figures.sla_breaches} missed reply time",
             *([f"first reply {short_duration(median)}"] if median is not None else [])]
    while parts:
        line = f"{who}: {', '.join(parts)}"
        if len(line) <= SUBJECT_MAX:
            return line
        parts.pop()
    return clip(who, SUBJECT_MAX)


# --------------------------------------------------------------------------- headline figures


@dataclass(frozen=True)
class Figure:
    label: str
    value: str
    change: str  # "▲ from 3", "▼ from 2h 05m", "same as before", "" (nothing to compare)


def _change(now: float | None, before: float | None, shown: str) -> str:
    if now is None or before is None:
        return "none before" if before is None else f"before {shown}"
    if now == before:
        return "same as before"
    return f"{'▲' if now > before else '▼'} from {shown}"


def headline_figures(figures: DigestFigures) -> list[Figure]:
    """The four figures a digest leads with, each with the change from the period before."""
    now, before = figures.headline, figures.previous

    def figure(label: str, pick: Callable[[Headline], float | None], show: Callable[[float | None], str]) -> Figure:
        value = pick(now)
        old = pick(before) if before is not None else None
        return Figure(label, show(value), _change(value, old, show(old)) if before is not None else "")

    def count(value: float | None) -> str:
        return "–" if value is None else str(int(value))

    return [
        figure("New conversations", lambda h: h.new_conversations, count),
        figure("Answered", lambda h: h.answered, count),
        figure("First reply (median)", lambda h: h.first_reply_seconds, format_duration),
        figure("Missed reply time", lambda h: h.sla_breaches, count),
    ]


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class Item:
    """One line of a section: what it is, a short detail (owner, age, figures) and where to act on it."""

    text: str
    detail: str = ""
    link: str | None = None
    flag: str = ""  # a word that needs attention: "past due", "assign an owner"
    conversation_id: int | None = None  # in Slack: "Assign to…" (managers)
    contact_id: int | None = None  # in Slack: "Follow-up…" (the follow-up form for the contact)


@dataclass(frozen=True)
class Section:
    title: str
    items: list[Item]
    more: int = 0  # items left out ("and N more")
    note: str = ""  # one line under the title


SectionFn = Callable[[DigestFigures, DigestLinks], Section | None]
# What "waiting" and "open" count, said where they are shown (docs/digest.md defines them once):
# waiting for OUR reply only (store.conversations.waiting_on_us); answered ones wait on the customer.
WAITING_MEANS = ("Now: the customer wrote last and has no reply from us yet. Answered conversations, "
                 "waiting on the customer, are not counted.")
TEAM_MEANS = ("Open: waiting for our reply now (answered ones, waiting on the customer, are not counted); "
              "past due: open past the reply time. The rest: this period.")


def _owner_name(owner: Owner) -> str | None:
    return owner.name or owner.email


def waiting_section(figures: DigestFigures, links: DigestLinks) -> Section | None:
    """Conversations waiting for our reply, the longest waiting first (top 10, "and N more")."""
    if not figures.open:
        return None
    items = [Item(clip(w.subject or "(no subject)", 90),
                  " · ".join(p for p in (w.contact, w.owner or "no owner (queue)",
                                         f"waiting {age(w.waiting_since, figures.now)}") if p),
                  links.conversation(w.id), "past due" if w.overdue else "", conversation_id=w.id)
             for w in figures.waiting]
    late = f", {figures.overdue} past due" if figures.overdue else ""
    return Section(f"Waiting for a reply ({figures.open}{late})", items, figures.open - len(items), note=WAITING_MEANS)


def due_followups_section(figures: DigestFigures, links: DigestLinks) -> Section | None:
    """Follow-ups past their due time, the longest overdue first."""
    if not figures.followups_overdue:
        return None
    items = [Item(clip(f.note or "Follow-up", 90),
                  " · ".join(p for p in (f.contact, f.rep, f"due {age(f.due_at, figures.now)} ago") if p),
                  links.customer(f.contact_id) if f.contact_id else links.app_home(), contact_id=f.contact_id)
             for f in figures.due_followups]
    return Section(f"Follow-ups overdue ({figures.followups_overdue})", items,
                   figures.followups_overdue - len(items))


def lapsed_section(figures: DigestFigures, links: DigestLinks) -> Section | None:
    """Customers who used to buy regularly and stopped: worth a call."""
    if not figures.lapsed_worth_a_call:
        return None
    items = [Item(c.name,
                  f"{format_eur(c.lifetime_value_eur, cents=False)} lifetime · last order {c.days_since} days ago · "
                  + (_owner_name(c.owner) or "no owner"),
                  links.customer(c.contact_id), "" if c.owner.id else "assign an owner", contact_id=c.contact_id)
             for c in figures.lapsed_worth_a_call]
    return Section("Customers worth a call", items, note="They bought regularly, then stopped.")


def reps_section(figures: DigestFigures, links: DigestLinks) -> Section | None:
    """One compact row per rep: open, past due, answered, median first reply, missed reply time (SLA breaches)."""
    items = [Item(r.name,
                  f"{r.open} open · {r.overdue} past due · {r.answered} answered · "
                  f"first reply {format_duration(r.first_response.median_seconds)} · "
                  f"{r.sla_breaches} missed reply time",
                  links.app_home())
             for r in figures.reps]
    return Section("Team", items, note=TEAM_MEANS) if items else None


def top_customers_section(figures: DigestFigures, links: DigestLinks) -> Section | None:
    """Top customers (by order value) who wrote this period."""
    if not figures.top_customers_who_wrote:
        return None
    items = [Item(f"{c.rank}. {c.name}",
                  f"{format_eur(c.recent_value_eur, cents=False)} in {top_period(figures.top_months)} · "
                  f"{_owner_name(c.owner) or 'no owner'}",
                  links.customer(c.contact_id), "" if c.owner.id else "assign an owner")
             for c in figures.top_customers_who_wrote]
    return Section("Top customers who wrote", items)


def automatic_section(figures: DigestFigures, links: DigestLinks) -> Section | None:
    """Automatic mail kept out of the reps' work, in plain words."""
    if not figures.automatic_filtered:
        return None
    return Section("Filtered out", [], note=f"{plural(figures.automatic_filtered, 'automatic mail', 'automatic mails')}"
                   f" nobody had to read: {plain_reasons(figures.automatic_by_reason)}.")


def lapsed_without_owner_section(figures: DigestFigures, links: DigestLinks) -> Section | None:
    """Lapsed customers nobody owns: nobody will call them until a manager assigns an owner."""
    if not figures.lapsed_without_owner:
        return None
    items = [Item(c.name, f"{format_eur(c.lifetime_value_eur, cents=False)} lifetime · last order {c.days_since} days ago",
                  links.customer(c.contact_id), "assign an owner", contact_id=c.contact_id)
             for c in figures.lapsed_without_owner]
    return Section("Lapsed customers without an owner", items,
                   note="In Slack: /crm segment lapsed, then Assign owners.")


def won_back_section(figures: DigestFigures, links: DigestLinks) -> Section | None:
    """Customers who ordered again after a win-back follow-up (shown at zero too: it is the goal)."""
    items = [Item(w.name, f"ordered again on {w.ordered_on.isoformat()}", links.customer(w.contact_id))
             for w in figures.won_back]
    return Section(f"Customers won back this period: {len(figures.won_back)}", items)


def funnel_section(figures: DigestFigures, links: DigestLinks) -> Section | None:
    """The team's contacts in the buying process: how many in each stage now, and who moved."""
    funnel = figures.funnel
    if not any(funnel.by_stage.values()):
        return None
    stages = ", ".join(f"{stage_label(stage)} {count}" for stage, count in funnel.by_stage.items())
    became = plural(funnel.became_customers, "prospect became a customer", "prospects became customers")
    return Section("Buying stages", [], note=f"{stages}. This period: {plural(funnel.moved, 'contact')} moved, "
                                             f"{became}.")


def satisfaction_text(survey: SurveyFigures) -> str:
    """E.g. "4.2 of 5 from 6 answers (1 low); 8 sent, 63% answered", or "no surveys"."""
    if not survey.sent and not survey.scores:
        return "no surveys"
    average = f"{survey.average:.1f} of 5 from {plural(survey.scores, 'answer')}" if survey.average is not None \
        else "no answers"
    low = f" ({survey.low} low)" if survey.low else ""
    rate = f", {survey.response_rate:.0%} answered" if survey.response_rate is not None else ""
    return f"{average}{low}; {survey.sent} sent{rate}"


def satisfaction_section(figures: DigestFigures, links: DigestLinks) -> Section | None:
    """Satisfaction surveys: the team's answers, then each rep's."""
    if not figures.satisfaction.sent and not figures.satisfaction.scores:
        return None
    items = [Item(rep.name, satisfaction_text(rep.satisfaction), links.app_home()) for rep in figures.reps
             if rep.satisfaction.sent or rep.satisfaction.scores]
    return Section("Satisfaction", items, note=satisfaction_text(figures.satisfaction))


SECTIONS: list[SectionFn] = [
    waiting_section,  # what needs action now first
    due_followups_section,
    lapsed_section,
    lapsed_without_owner_section,
    won_back_section,
    reps_section,
    top_customers_section,
    satisfaction_section,
    funnel_section,
    automatic_section,
]


def sections(figures: DigestFigures, links: DigestLinks) -> list[Section]:
    return [s for fn in SECTIONS if (s := fn(figures, links)) is not None]


def empty_line(figures: DigestFigures) -> str:
    return f"No new mail, nothing waiting and no follow-ups due this {figures.period}."


def footer_lines(figures: DigestFigures) -> list[str]:
    """Why the manager gets this digest, quoting their own `digest_via` whichever way it came, and how
    to change it."""
    how_often = "daily" if figures.period == "day" else "weekly"
    setting = "digest_via = [" + ", ".join(f'"{way}"' for way in figures.digest_via) + "]"
    if not figures.digest_via:  # printed or sent by hand
        return [
            f"This {how_often} digest was made on request: you have {setting} in rapport.toml, "
            "so none comes on its own.",
            "To get it on its own, ask your Rapport admin to set digest_via under your [[reps]] entry "
            "(\"slack\", \"email\", or both).",
        ]
    return [
        f"You get this {how_often} digest because you are a manager in Rapport with {setting} in rapport.toml.",
        "To change how you get it, or to stop it, ask your Rapport admin to change digest_via "
        "under your [[reps]] entry (\"slack\", \"email\", or none).",
    ]


# --------------------------------------------------------------------------- plain text (email)


def _wrap(line: str, indent: str = "", hang: str = "") -> list[str]:
    return textwrap.wrap(line, TEXT_WIDTH, initial_indent=indent, subsequent_indent=indent + hang,
                         break_on_hyphens=False) or [""]


def render_digest_text(figures: DigestFigures, links: DigestLinks | None = None) -> str:
    """The digest as plain text, at most 72 columns (a link on a line of its own, unless it is
    Slack's App Home, given once at the end): the email's text part and the terminal's."""
    links = links or DigestLinks()
    home = links.app_home()
    lines = [*_wrap(f"{audience(figures)}, {period_name(figures)} ({period_span(figures)})"), ""]
    if figures.is_empty:
        lines += _wrap(empty_line(figures))
    else:
        for fig in headline_figures(figures):
            lines += _wrap(f"{fig.label}: {fig.value}" + (f" ({fig.change})" if fig.change else ""))
        for part in sections(figures, links):
            lines += ["", part.title, "-" * min(len(part.title), TEXT_WIDTH)]
            if part.note:
                lines += _wrap(part.note)
            for item in part.items:
                flag = f" [{item.flag}]" if item.flag else ""
                lines += _wrap(f"- {item.text}{flag}", hang="  ")
                if item.detail:
                    lines += _wrap(item.detail, "  ", "  ")
                if item.link and item.link != home:
                    lines.append(item.link)
            if part.more:
                lines.append(f"- and {part.more} more")
        if home:
            lines += ["", "Open Rapport in Slack:", home]
    lines += ["", "--"]
    for line in footer_lines(figures):
        lines += _wrap(line)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- HTML (email)

_FONT = "-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif"
_MUTED = "color:#7a7a7a"
_RULE = "border-top:1px solid rgba(128,128,128,0.35)"


def _headline_html(figures: DigestFigures) -> str:
    e = html.escape
    cells = [
        f'<td style="width:50%;padding:8px 8px 8px 0;vertical-align:top">'
        f'<div style="font-size:13px;{_MUTED}">{e(f.label)}</div>'
        f'<div style="font-size:24px;font-weight:bold;white-space:nowrap">{e(f.value)}</div>'
        f'<div style="font-size:13px;{_MUTED};white-space:nowrap">{e(f.change)}</div></td>'
        for f in headline_figures(figures)
    ]
    rows = "".join(f"<tr>{cells[i]}{cells[i + 1]}</tr>" for i in range(0, len(cells), 2))
    return f'<table role="presentation" style="width:100%;border-collapse:collapse;table-layout:fixed">{rows}</table>'


def _item_html(item: Item) -> str:
    e = html.escape
    title = e(item.text)
    if item.link:
        title = f'<a href="{e(item.link)}" style="color:inherit">{title}</a>'
    # the flag leads the detail line: a long title is cut with an ellipsis, the flag never is
    parts = [f'<span style="white-space:nowrap">{e(part)}</span>' for part in item.detail.split(" · ") if part]
    if item.flag:
        parts.insert(0, f'<span style="font-weight:bold;color:#d0453a;white-space:nowrap">{e(item.flag)}</span>')
    detail = " · ".join(parts)
    return (f'<div class="item" style="{_RULE};padding:8px 0">'
            f'<div style="font-weight:bold;overflow:hidden;text-overflow:ellipsis;white-space:nowrap">{title}</div>'
            + (f'<div style="font-size:13px;{_MUTED}">{detail}</div>' if detail else "") + "</div>")


def _section_html(part: Section) -> str:
    e = html.escape
    body = "".join(_item_html(item) for item in part.items)
    more = f'<div style="{_RULE};padding:8px 0;{_MUTED}">and {part.more} more</div>' if part.more else ""
    note = f'<p style="margin:0 0 6px;font-size:13px;{_MUTED}">{e(part.note)}</p>' if part.note else ""
    return f'<h2 style="font-size:17px;margin:24px 0 6px">{e(part.title)}</h2>{note}{body}{more}'


def render_digest_html(figures: DigestFigures, links: DigestLinks | None = None, *,
                       chart_cid: str | None = None) -> str:
    """One column at most 600 px wide, inline styles, a viewport and colour scheme that phones
    and dark mode read; the chart is `<img src="cid:{chart_cid}">` when a cid is given."""
    e = html.escape
    links = links or DigestLinks()
    title = f"{audience(figures)}, {period_name(figures)}"
    if figures.is_empty:
        body = f'<p style="margin:16px 0">{e(empty_line(figures))}</p>'
    else:
        chart = (f'<img src="cid:{e(chart_cid)}" width="{CHART_WIDTH}" alt="{e(chart_alt(figures))}" '
                 f'style="display:block;width:100%;max-width:{CHART_WIDTH}px;height:auto;margin:12px 0">'
                 if chart_cid else f'<p style="{_MUTED}">{NO_MAIL}.</p>' if not _has_chart(figures) else "")
        body = _headline_html(figures) + chart + "".join(_section_html(s) for s in sections(figures, links))
    footer = "".join(f'<p style="margin:0 0 6px">{e(line)}</p>' for line in footer_lines(figures))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark"><meta name="supported-color-schemes" content="light dark">'
        f"<title>{e(subject(figures))}</title></head>"
        '<body style="margin:0;padding:0">'
        f'<div style="max-width:600px;margin:0 auto;padding:16px;box-sizing:border-box;font-family:{_FONT};'
        'font-size:15px;line-height:1.4;overflow-wrap:anywhere">'
        f'<h1 style="font-size:21px;margin:0">{e(title)}</h1>'
        f'<p style="margin:2px 0 12px;font-size:13px;{_MUTED}">{e(period_span(figures))}</p>'
        f"{body}"
        f'<div style="{_RULE};margin-top:28px;padding-top:10px;font-size:12px;{_MUTED}">{footer}</div>'
        "</div></body></html>"
    )


# --------------------------------------------------------------------------- chart


@dataclass(frozen=True)
class Panel:
    """One chart, one measure: bars with their values; `values` None draws the "no data" state
    (`empty` says what is missing). `across`: bars run left to right, a label before each (the
    funnel, top stage first); `alt` describes the chart in words (None: its highest bar)."""

    title: str
    labels: list[str]
    values: list[float] | None
    value_text: Callable[[float], str]
    empty: str = NO_MAIL
    color: str = "#4c78a8"
    across: bool = False
    alt: str | None = None


def _has_series(figures: DigestFigures) -> bool:
    return any(p.new_conversations for p in figures.series) or any(
        p.median_response_seconds is not None for p in figures.series)


def _has_chart(figures: DigestFigures) -> bool:
    """Whether the digest shows its charts: mail in the period, or contacts in the buying stages."""
    return not figures.is_empty and (_has_series(figures) or any(figures.funnel.by_stage.values()))


def funnel_panel(funnel: Funnel) -> Panel:
    """Contacts per buying stage now, need at the top (a funnel); the same figures as `funnel_section`."""
    stages = list(funnel.by_stage)
    counts = [float(funnel.by_stage[stage]) for stage in stages]
    labels = [stage_label(stage) for stage in stages]
    words = ", ".join(f"{label} {count:.0f}" for label, count in zip(labels, counts, strict=True))
    return Panel("Contacts per buying stage", labels, counts if any(counts) else None, lambda v: f"{v:.0f}",
                 empty=NO_CONTACTS, color="#54a24b", across=True,
                 alt=f"Contacts per buying stage: {words}" if any(counts) else None)


def chart_panels(figures: DigestFigures) -> list[Panel]:
    """Volume, first-reply time, then the buying-stage funnel: small charts, never sharing an axis."""
    points = figures.series
    if figures.period == "day":
        labels = [f"{p.start:%H}" if p.start.hour % 6 == 0 else "" for p in points]
    else:
        labels = [f"{p.start:%a}" for p in points]
    volume = [float(p.new_conversations) for p in points]
    hours = [(p.median_response_seconds or 0) / 3600 for p in points]
    has_replies = any(p.median_response_seconds is not None for p in points)
    per = "hour" if figures.period == "day" else "day"
    return [
        Panel(f"New conversations per {per}", labels, volume if any(volume) else None, lambda v: f"{v:.0f}"),
        Panel(f"Median first reply per {per}, hours", labels, hours if has_replies else None,
              lambda v: f"{v:.1f}" if v < 10 else f"{v:.0f}", empty="No first replies this period",
              color="#e07b39"),
        funnel_panel(figures.funnel),
    ]


def chart_alt(figures: DigestFigures) -> str:
    """The chart in words, for screen readers and mail clients that block images."""
    panels = chart_panels(figures)
    parts = []
    for panel in panels:
        if panel.alt is not None or panel.values is None:
            parts.append(panel.alt or f"{panel.title}: none")
            continue
        peak = max(range(len(panel.values)), key=lambda i: panel.values[i])  # type: ignore[index]
        when = f"{figures.series[peak].start:%a %H:00}" if figures.period == "day" else \
            f"{figures.series[peak].start:%A}"
        parts.append(f"{panel.title}: highest {panel.value_text(panel.values[peak])} on {when}")
    return "; ".join(parts)


def bar_labels(panel: Panel) -> list[str]:
    """The value on each bar; with many narrow bars (a day's hours), never on two neighbours."""
    values = panel.values or []
    crowded = len(values) > 12
    labels: list[str] = []
    for i, value in enumerate(values):
        beside = crowded and i > 0 and labels[i - 1] != ""
        labels.append(panel.value_text(value) if value and not beside else "")
    return labels


def render_chart(figures: DigestFigures) -> bytes:
    """A PNG drawn at twice the size it is shown (CHART_WIDTH px): text at least 12 px as shown,
    values on the bars, a caption below each chart, a transparent background with grey text
    that reads in light and dark mode; a chart without data says so instead of drawing axes."""
    # matplotlib takes a while to import: only processes that draw a chart pay for it
    from matplotlib.figure import Figure as MplFigure

    panels = chart_panels(figures)
    dpi = 144  # drawn at 2x: 1 pt is 2 px drawn, 1 px shown, so a font of 15 pt reads as 15 px
    heights = [0.7 + 0.7 * len(panel.labels) if panel.across and panel.values is not None else 2.2
               for panel in panels]
    figure = MplFigure(figsize=(2 * CHART_WIDTH / dpi, sum(heights)), dpi=dpi)
    grid = figure.add_gridspec(len(panels), 1, height_ratios=heights)
    grey = "#8a8a8a"
    font = 15.0  # >= 12 px still where a phone narrows the chart to 340 px
    for i, panel in enumerate(panels):
        ax = figure.add_subplot(grid[i])
        ax.set_facecolor("none")
        for spine in ("top", "right", "left"):
            ax.spines[spine].set_visible(False)
        ax.spines["bottom"].set_color(grey)
        ax.set_xlabel(panel.title, fontsize=font, color=grey, labelpad=8)  # the caption, below
        if panel.values is None:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.spines["bottom"].set_visible(False)
            ax.text(0.5, 0.5, panel.empty, ha="center", va="center",
                    fontsize=font * 1.1, color=grey, transform=ax.transAxes)
            continue
        positions = list(range(len(panel.values)))
        if panel.across:  # the first stage on top, each name above its bar: no margin that narrows the others
            bars = ax.barh(positions, panel.values, color=panel.color, height=0.4)
            for position, label in zip(positions, panel.labels, strict=True):
                ax.text(0, position - 0.28, label, fontsize=font, color=grey, va="bottom")
            ax.set_ylim(len(positions) - 0.6, -1.0)  # inverted: the first stage on top, room for its name
            ax.set_yticks([])
            ax.set_xticks([])
            ax.set_xlim(0, max(panel.values) * 1.2 or 1)
        else:
            bars = ax.bar(positions, panel.values, color=panel.color, width=0.7)
            ax.set_xticks(positions, panel.labels, fontsize=font, color=grey)
            ax.tick_params(axis="x", colors=grey, length=0)
            ax.set_yticks([])
            ax.set_ylim(0, max(panel.values) * 1.3 or 1)
        ax.bar_label(bars, labels=bar_labels(panel), fontsize=font, color=grey, padding=2)
    figure.tight_layout(h_pad=1.5)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", transparent=True)
    return buffer.getvalue()


# --------------------------------------------------------------------------- Slack blocks


def _mrkdwn_item(item: Item) -> str:
    text = escape(item.text)
    if item.link:
        text = f"<{item.link}|{text.replace('|', '¦')}>"
    flag = f" *{escape(item.flag)}*" if item.flag else ""
    detail = f"\n{escape(item.detail)}" if item.detail else ""
    return f"• {text}{flag}{detail}"


def _item_block(item: Item, assignees: list[tuple[str, str]]) -> Block | None:
    """An item a manager can act on from Slack: assign a conversation, open a follow-up form."""
    if item.conversation_id is not None and assignees:
        options = [(name, f"{item.conversation_id}:{rep_id}") for name, rep_id in assignees]
        return section(_mrkdwn_item(item), accessory=static_select("Assign to…", "conv_reassign", options))
    if item.contact_id is not None:
        return section(_mrkdwn_item(item), accessory=button("Follow-up…", "followup_open", str(item.contact_id)))
    return None


def render_digest_blocks(figures: DigestFigures, links: DigestLinks | None = None) -> list[Block]:
    """The digest in Slack: the same answer first, then a section per part (split by the sender when long);
    conversations carry "Assign to…" (the team's reps) and customers a "Follow-up…" button."""
    links = links or DigestLinks()
    assignees = [(r.name, str(r.rep_id)) for r in figures.reps][:MAX_OPTIONS]
    blocks: list[Block] = [header(f"{audience(figures)}, {period_name(figures)}"),
                           context(escape(period_span(figures)))]
    footer = context(*(escape(line) for line in footer_lines(figures)))
    if figures.is_empty:
        return [*blocks, section(escape(empty_line(figures))), footer]
    blocks.append(fields(*(f"*{escape(f.label)}*\n{escape(f.value)}" + (f"  _{escape(f.change)}_" if f.change else "")
                           for f in headline_figures(figures))))
    for part in sections(figures, links):
        blocks.append(divider())
        title = f"*{escape(part.title)}*" + (f"\n{escape(part.note)}" if part.note else "")
        if not part.items:
            blocks.append(section(title))
            continue
        blocks.append(section(title))
        plain: list[str] = []
        for item in part.items:
            block = _item_block(item, assignees)
            if block is None:
                plain.append(_mrkdwn_item(item))
                continue
            if plain:
                blocks.append(section("\n".join(plain)))
                plain = []
            blocks.append(block)
        for start in range(0, len(plain), 5):  # a few items per section: each stays far from the limits
            blocks.append(section("\n".join(plain[start:start + 5])))
        if part.more:
            blocks.append(context(f"and {part.more} more"))
    return [*blocks, footer]


# --------------------------------------------------------------------------- scheduling


def digest_managers(session: Session) -> list[Rep]:
    """Active managers and admins who chose at least one way to get a digest."""
    reps = session.exec(select(Rep).where(Rep.active == True, Rep.role.in_([Role.manager, Role.admin])))  # type: ignore[attr-defined]  # noqa: E712
    return [rep for rep in reps if rep.digest_via]


def digest_payloads(
    manager: Rep, *, period: str, start: datetime, end: datetime, local_date: str, via: Sequence[str],
    channel: str | None, params: SegmentParams,
) -> list[Digest]:
    """One outbox payload per way the digest goes: Slack (DM and/or `channel`), email."""
    common = dict(manager_email=manager.email, period=period, start=start.isoformat(), end=end.isoformat(),
                  local_date=local_date, params=params.as_dict())
    payloads: list[Digest] = []
    if "slack" in via or channel:
        payloads.append(DigestSlack(**common, channel=channel))  # type: ignore[arg-type]
    if "email" in via:
        payloads.append(DigestEmail(**common))  # type: ignore[arg-type]
    return payloads


def enqueue_due_digests(
    session: Session,
    *,
    now: datetime,
    options: DigestOptions,
    managers: Sequence[Rep] | None = None,
) -> int:
    """Enqueue the digests that are due at `now` (aware); returns how many outbox rows were new.

    A manager's digest is due from their `digest_hour` (in `Rep.timezone`) until
    local midnight, on every day for `options.period == "day"` and on
    `options.weekday` for "week"; it covers the last complete local day (or
    Monday-to-Sunday week). One row per way (Slack, email): the outbox key
    `digest:{email}:{period}:{local date}:{slack|email}` is unique, so calling
    this again, after a restart or from another process on the same database,
    enqueues nothing twice. The caller commits.
    """
    count = 0
    for manager in digest_managers(session) if managers is None else managers:
        count += _enqueue_one(session, manager, now=now, options=options)
    return count


def _enqueue_one(session: Session, manager: Rep, *, now: datetime, options: DigestOptions) -> int:
    try:
        local = now.astimezone(zone(manager.timezone or "UTC"))
    except ValueError as exc:
        log.warning("no digest for %s: %s", manager.email, exc)
        return 0
    if local.hour < manager.digest_hour or not manager.digest_via:
        return 0
    if options.period == "week" and WEEKDAYS[local.weekday()] != options.weekday:
        return 0
    start, end = last_complete_period(options.period, now, manager.timezone or "UTC")
    payloads = digest_payloads(manager, period=options.period, start=start, end=end,
                               local_date=local.date().isoformat(), via=manager.digest_via,
                               channel=options.channel, params=options.params)
    return sum(enqueue(session, payload, now=now) is not None for payload in payloads)


# --------------------------------------------------------------------------- delivery


def digest_figures(session: Session, payload: Digest, *, now: datetime | None = None) -> tuple[Rep, DigestFigures] | None:
    """The manager and the figures of a digest row's period as of `now`; None when the manager is gone."""
    manager = rep_by_email(session, payload.manager_email)
    if manager is None:
        return None
    figures = compute_digest(
        session, manager=manager, period=payload.period,  # type: ignore[arg-type]
        start=datetime.fromisoformat(payload.start), end=datetime.fromisoformat(payload.end),
        params=SegmentParams.from_mapping(payload.params), now=now,
    )
    return manager, figures


def send_digest_slack(
    session: Session, slack: SlackSender, manager: Rep, figures: DigestFigures, *, key: str,
    channel: str | None, dm: bool, links: DigestLinks, since: datetime | None,
) -> dict[str, Any]:
    """Post the digest to the manager's DM (and `channel`), the chart after it; a retry (`since`)
    skips what was posted and the chart when it was shared."""
    from bot.notify import FileUpload  # bot.notify imports this module

    targets = [slack.dm_channel(session, manager)] if dm else []
    targets += [channel] if channel else []
    blocks = render_digest_blocks(figures, links)
    chart = render_chart(figures) if _has_chart(figures) else None
    for target in targets:
        slack.post(target, clip(subject(figures), 3000), blocks, key=key, since=since)
        if chart is not None:
            slack.upload(target, [FileUpload(chart, "digest.png", f"{audience(figures)}, {period_name(figures)}")],
                         escape(chart_alt(figures)), key=f"{key}#chart", since=since)
    return {"channels": targets}


def send_digest_email(smtp: SmtpOptions, figures: DigestFigures, *, to: str, links: DigestLinks,
                      unsubscribe: str | None = None, message_id: str | None = None) -> None:
    chart = render_chart(figures) if _has_chart(figures) else None
    cid = new_cid() if chart is not None else None
    message = build_message(
        from_addr=smtp.from_addr, to=to, subject=subject(figures), text=render_digest_text(figures, links),
        html=render_digest_html(figures, links, chart_cid=cid), image=chart, image_cid=cid,
        automatic=True, unsubscribe=unsubscribe or f"mailto:{smtp.from_addr}?subject=Change%20my%20digest",
        message_id=message_id,
    )
    send_message(smtp, message)


def _admin_address(session: Session) -> str | None:
    admin = session.exec(select(Rep).where(Rep.active == True, Rep.role == Role.admin)).first()  # noqa: E712
    return f"mailto:{admin.email}?subject=Change%20my%20Rapport%20digest" if admin else None


Send = Callable[[Session, Job, Rep, DigestFigures], dict[str, Any]]


def digest_handlers(
    engine: Engine, *, slack: SlackSender | None, smtp: SmtpOptions | None,
    links: DigestLinks | None = None, now: datetime | None = None,
) -> list[Handler]:
    """The outbox handlers of `DigestSlack` and `DigestEmail` rows: each computes the figures in a
    read session and sends them its own way; a failure leaves the other way untouched."""
    digest_links = links or DigestLinks()

    def handler(kind: type[Digest], send: Send, missing: str | None) -> Handler:
        def act(jobs: list[Job]) -> dict[int, Outcome]:
            [job] = jobs
            assert isinstance(job.payload, kind)
            if missing is not None:
                raise DigestDeliveryError(missing)
            with read_session(engine) as session:
                found = digest_figures(session, job.payload, now=now)
                if found is None:
                    return {job.id: Done({"skipped": "no such manager"})}
                return {job.id: Done(send(session, job, *found))}

        return Handler((kind.kind,), act)

    def to_slack(session: Session, job: Job, manager: Rep, figures: DigestFigures) -> dict[str, Any]:
        assert slack is not None and isinstance(job.payload, DigestSlack)
        return send_digest_slack(session, slack, manager, figures, key=job.key, channel=job.payload.channel,
                                 dm="slack" in manager.digest_via, links=digest_links,
                                 since=job.created_at if job.attempts > 1 else None)

    def by_email(session: Session, job: Job, manager: Rep, figures: DigestFigures) -> dict[str, Any]:
        # SMTP gives no receipt: a repeat after a crash is the same mail (its Message-ID is the row's)
        assert smtp is not None
        message_id = outbox_message_id(job.key, smtp.from_addr)
        send_digest_email(smtp, figures, to=manager.email, links=digest_links,
                          unsubscribe=_admin_address(session), message_id=message_id)
        return {"to": manager.email, "message_id": message_id}

    return [
        handler(DigestSlack, to_slack,
                None if slack else "a digest goes to Slack but no Slack client is configured (SLACK_BOT_TOKEN)"),
        handler(DigestEmail, by_email,
                None if smtp else "a digest goes by email but SMTP is not configured (RAPPORT_SMTP_HOST)"),
    ]
