"""A person's export as text they can read (GDPR Art. 15): every record of the JSON, grouped and dated.

It renders the export's data (`store.privacy.export_contact`), never the database, so the
readable copy and the JSON cannot disagree; each record ends with its reference in the JSON
(`[message 12]`, `RECORD_NAMES`). What customers and reps wrote is shown as written, after a
label or a `| ` margin, never at the start of a line: a spreadsheet that opens the file runs
no formula from it (`store.exporting.neutralise_cell` leaves every line as it is) and a reader
cannot take it for a heading. Control characters (terminal escapes, tabs that split a
spreadsheet's cells) become spaces.
"""

from __future__ import annotations

import json
import re
import textwrap
import unicodedata
from datetime import UTC, datetime
from typing import Any

from store.models import Activity, ActivityKind
from store.stages import move_text, stage_label

WIDTH = 80
INDENT = "  "
MARGIN = "| "
_NARROWEST_WRAP = 60  # text no wider than this was not wrapped to fit (an address, a list of short lines)
_APART = re.compile(r"\s*([-*•]\s|>)")  # a bulleted item or a quoted line: never joined to the line before
_QUOTE = re.compile(r"\s*>")
_NUMBERED = re.compile(r"\s*\d+[.)]\s")

# The sections rendered here, and the name of one record of each in its reference; a table added
# later is named by itself, under "Other records".
RECORD_NAMES = {
    "contact": "contact", "company": "company", "emails": "address", "consents": "consent",
    "conversations": "conversation", "messages": "message", "assignments": "assignment",
    "activities": "activity", "followups": "follow-up", "orders": "order", "corrections": "correction",
    "survey": "survey", "audit": "audit entry",
}
DIRECTIONS = {"inbound": "mail received", "outbound": "mail sent"}

Record = dict[str, Any]


def record_name(section: str) -> str:
    return RECORD_NAMES.get(section, section)


def readable_export(export: dict[str, Any]) -> str:
    """The export as plain text wrapped at 80 columns: the contact, consents, mail, calls and notes,
    follow-ups, orders, surveys, the audit log, then any table added later."""
    contact = export["contact"]
    lines = _wrap(f"What Rapport holds on {_one_line(contact['name'])} (exported {_when(export['exported_at'])})")
    lines += ["", *_wrap("Every record Rapport holds on this person, oldest first. The JSON file beside this one "
                         "holds the same records with all their fields; the reference after each record, such as "
                         "[message 12], finds it there. What people wrote is shown after a | margin, as written.",
                         hang="")]
    moves = [a for a in export["activities"] if a["kind"] == ActivityKind.move]
    lines += _section("Contact", [_contact(export, moves)])
    lines += _section("Consents", [_consent(c) for c in export["consents"]])
    lines += _section("Conversations and mail", _conversations(export))
    lines += _section("Calls, meetings and notes",
                      [_activity(a) for a in export["activities"] if a["kind"] != ActivityKind.move])
    lines += _section("Follow-ups", [_followup(f) for f in export["followups"]])
    lines += _section("Orders", [_order(o) for o in export["orders"]])
    lines += _section("Satisfaction surveys", [_survey(s) for s in export["survey"]])
    lines += _section("Who viewed or changed the record (audit log)", [_audit(e) for e in export["audit"]])
    for name in sorted(export.keys() - _RENDERED):
        lines += _section(f"Other records ({name})", [_other(name, row) for row in export[name]])
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- sections


def _contact(export: dict[str, Any], moves: list[Record]) -> list[str]:
    contact, company = export["contact"], export["company"]
    lines = _head(f"Name: {contact['name']}", "contact", contact["id"])
    for address in export["emails"]:
        notes = [note for note, on in (("primary", address["is_primary"]), ("bouncing", address["bouncing"])) if on]
        lines += _head(f"Email: {address['email']}" + (f" ({', '.join(notes)})" if notes else ""),
                       "emails", address["id"])
    lines += _field("Phone", contact["phone"]) + _field("Job title", contact["title"])
    lines += _field("Language", contact["language"])
    if company is not None:
        domains = f" ({', '.join(company['domains'])})" if company["domains"] else ""
        lines += _head(f"Company: {company['name']}{domains}", "company", company["id"])
    lines += _field("Kind", contact["kind"]) + _field("Buying stage", stage_label(contact["stage"]))
    lines += _field("Owner", contact["effective_owner"]) + _field("Came from", contact["source"])
    lines += _field("Id in an imported CRM", contact["external_id"])
    lines += _field("Follow-up after a purchase", "yes" if contact["post_purchase_followup"] else "no")
    lines += _field("Added", _when(contact["created_at"])) + _field("Last changed", _when(contact["updated_at"]))
    if moves:
        lines += ["", *_wrap("Moves of kind and buying stage", INDENT)]
        for move in moves:
            change = move_text(Activity(**{k: move[k] for k in _MOVE_FIELDS}))
            lines += _head(f"{_when(move['occurred_at'])}: {change}, by {move['rep'] or 'Rapport (a rule)'}",
                           "activities", move["id"], 2)
            lines += _block(move["summary"], 3)
    return lines


def _consent(consent: Record) -> list[str]:
    states = [f"{state} {_when(consent[key])}" for state, key in (("given", "granted_at"),
                                                                  ("withdrawn", "withdrawn_at")) if consent[key]]
    lines = _head(f"{consent['purpose']}: {', '.join(states)}", "consents", consent["id"])
    return lines + _field("Legal basis", consent["basis"].replace("_", " "), 2) + _field("Source", consent["source"], 2)


def _conversations(export: dict[str, Any]) -> list[list[str]]:
    held = {c["id"] for c in export["conversations"]}
    corrections = _by(export["corrections"], "message_id")
    mail = _by(export["messages"], "conversation_id")
    assignments = _by(export["assignments"], "conversation_id")
    entries = []
    for conversation in export["conversations"]:
        lines = _head(f"Conversation opened {_when(conversation['opened_at'])}, {conversation['status']}",
                      "conversations", conversation["id"])
        lines += _field("Subject", conversation["subject"], 2) + _field("Category", conversation["category"], 2)
        lines += _field("Owner", conversation["owner"], 2)
        for assignment in assignments.get(conversation["id"], []):
            who = assignment["owner"] or f"the {assignment['queue']} queue"
            lines += _head(f"Assigned {_when(assignment['assigned_at'])} to {who}: {assignment['reason']}",
                           "assignments", assignment["id"], 2)
        for message in mail.get(conversation["id"], []):
            lines += ["", *_message(message, corrections.get(message["id"], []))]
        entries.append(lines)
    elsewhere = [m for m in export["messages"] if m["conversation_id"] not in held]
    if elsewhere:
        entries.append(_wrap("Mail outside these conversations", INDENT) + [
            line for m in elsewhere for line in ["", *_message(m, corrections.get(m["id"], []))]])
    return entries


def _message(message: Record, corrections: list[Record]) -> list[str]:
    lines = _head(f"{_when(message['sent_at'] or message['received_at'])}, "
                  f"{DIRECTIONS[message['direction']]}", "messages", message["id"], 2)
    sender = message["from_email"] and (f"{message['from_name']} <{message['from_email']}>" if message["from_name"]
                                        else message["from_email"])
    lines += _field("From", sender, 3) + _field("To", ", ".join(message["to"]), 3)
    lines += _field("Cc", ", ".join(message["cc"]), 3) + _field("Subject", message["subject"], 3)
    lines += _field("Attachments", ", ".join(message["attachment_names"]), 3)
    text, whole = message["new_text"].strip(), message["text"].strip()
    if text and text != whole:
        lines += _wrap("(Earlier mail it quotes and the signature are left out here; the JSON file holds "
                       "the whole text.)", INDENT * 3, hang="")
    lines += _block(text or whole, 3) or _wrap("(No text kept.)", INDENT * 3)
    for correction in corrections:
        lines += _head(f"Category corrected {_when(correction['created_at'])} from "
                       f"{correction['old_category'] or 'none'} to {correction['new_category']}",
                       "corrections", correction["id"], 3)
    return lines


def _activity(activity: Record) -> list[str]:
    minutes = f", {activity['duration_minutes']} minutes" if activity["duration_minutes"] else ""
    lines = _head(f"{_when(activity['occurred_at'])}, {activity['kind']} by {activity['rep'] or 'Rapport'}{minutes}",
                  "activities", activity["id"])
    lines += _field("Outcome", activity["outcome"], 2) + _block(activity["summary"], 2)
    return lines + _field("Next step", activity["next_step"], 2) + _field("Link", activity["link"], 2)


def _followup(followup: Record) -> list[str]:
    done = f", done {_when(followup['done_at'])}" if followup["done_at"] else ""
    lines = _head(f"Due {_when(followup['due_at'])} for {followup['rep']}, {followup['status']}{done}",
                  "followups", followup["id"])
    return lines + _field("Source", followup["source"].replace("_", " "), 2) + _block(followup["note"], 2)


def _order(order: Record) -> list[str]:
    lines = _head(f"{order['ordered_on']}: {order['amount']} {order['currency']}, order "
                  f"{order['external_id']}, {order['status']}", "orders", order["id"])
    return lines + _field("Product category", order["product_category"], 2)


def _survey(survey: Record) -> list[str]:
    lines = _head(f"Sent {_when(survey['sent_at'])} about conversation {survey['conversation_id']} to "
                  f"{survey['email']}", "survey", survey["id"])
    if survey["answered_at"]:
        lines += _field("Answered", f"{_when(survey['answered_at'])} by {survey['answered_via']}: "
                                    f"{survey['score']} out of 5", 2)
    return lines + _block(survey["comment"], 2)


def _audit(entry: Record) -> list[str]:
    target = f" of {entry['target_kind']} {entry['target_id']}" if entry["target_kind"] else ""
    outcome = "" if entry["outcome"] == "ok" else f" ({entry['outcome']})"
    lines = _head(f"{_when(entry['at'])}: {entry['action']}{target} by {entry['actor']} via {entry['via']}{outcome}",
                  "audit", entry["id"])
    return lines + _field("Detail", ", ".join(f"{k}: {v}" for k, v in entry["detail"].items()), 2)


def _other(name: str, row: Record) -> list[str]:
    lines = _head("Record", name, row.get("id"))
    for key, value in row.items():
        if key not in ("id", "contact_id"):
            lines += _field(key, json.dumps(value, ensure_ascii=False) if isinstance(value, list | dict) else value, 2)
    return lines


_RENDERED = {"exported_at", *RECORD_NAMES}
_MOVE_FIELDS = ("contact_kind_from", "contact_kind_to", "stage_from", "stage_to")


# --------------------------------------------------------------------------- layout


def _section(title: str, entries: list[list[str]]) -> list[str]:
    lines = ["", "", title.upper()]  # no underline: "----" starts a spreadsheet formula
    for entry in entries:
        lines += ["", *entry]
    return lines if entries else [*lines, "", INDENT + "None."]


def _head(text: str, section: str, record_id: Any, depth: int = 1) -> list[str]:
    """A record's first line(s), ending in its reference (never split across lines)."""
    ref = f"[{record_name(section)} {record_id}]"
    indent = INDENT * depth
    lines = _wrap(_one_line(text), indent)
    if len(lines[-1]) + 1 + len(ref) <= WIDTH:
        return [*lines[:-1], f"{lines[-1]} {ref}"]
    return [*lines, indent + INDENT + ref]


def _field(label: str, value: Any, depth: int = 1) -> list[str]:
    """`Label: value`, wrapped under itself; nothing when there is no value."""
    if value is None or value == "":
        return []
    indent = INDENT * depth
    return textwrap.wrap(_one_line(value), WIDTH, initial_indent=f"{indent}{label}: ",
                         subsequent_indent=indent + " " * (len(label) + 2), break_on_hyphens=False)


def _block(text: str | None, depth: int) -> list[str]:
    """Text as written after a margin, its paragraphs rewrapped to fit."""
    indent = INDENT * depth
    lines: list[str] = []
    for line in _paragraphs([_inert(line).rstrip() for line in (text or "").strip("\n").splitlines()]):
        lines += _wrap(line, indent + MARGIN, hang="") or [(indent + MARGIN).rstrip()]
    return lines


def _paragraphs(lines: list[str]) -> list[str]:
    """Lines a mail program broke to fit its width joined again: wrapped once more after the margin,
    they would leave a stray word on every other line. A line joins the one before only where the
    sender's wrapping ended that one (its next word did not fit the text's width)."""
    width = max([_NARROWEST_WRAP, *map(len, lines)])
    joined: list[str] = []
    for previous, line in zip(["", *lines], lines, strict=False):
        if previous and line and len(previous) + 1 + len(line.split()[0]) > width and _continues(previous, line):
            joined[-1] += " " + line
        else:
            joined.append(line)
    return joined


def _continues(previous: str, line: str) -> bool:
    """Whether `line` goes on from `previous` rather than starting a list item, a quote or an indented
    line; `12. novembra` after a sentence is a date, after a list item or a colon the next item."""
    if line[0].isspace() or _APART.match(line) or _QUOTE.match(previous):
        return False
    return not (_NUMBERED.match(line) and (previous.endswith(":") or _NUMBERED.match(previous)
                                           or _APART.match(previous)))


def _wrap(text: str, indent: str = "", *, hang: str = INDENT) -> list[str]:
    """`text` wrapped, its lines after the first indented by `hang` more."""
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent + hang,
                         break_on_hyphens=False)


def _one_line(value: Any) -> str:
    return " ".join(_inert(str(value)).split())


def _inert(text: str) -> str:
    """Control characters as spaces: no terminal escape reaches a reader's screen, no tab splits a cell."""
    return "".join(" " if unicodedata.category(char) == "Cc" else char for char in text)


def _when(value: str | None) -> str:
    """`2026-11-23 09:00 UTC` from the export's ISO time."""
    return f"{datetime.fromisoformat(value).astimezone(UTC):%Y-%m-%d %H:%M} UTC" if value else "never"


def _by(rows: list[Record], key: str) -> dict[Any, list[Record]]:
    grouped: dict[Any, list[Record]] = {}
    for row in rows:
        grouped.setdefault(row[key], []).append(row)
    return grouped

