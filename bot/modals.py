"""Modals: log a call, add a follow-up, add a note, log a Slack message to the CRM, show a contact card."""

from __future__ import annotations

import json
from typing import Any

from bot.blocks import Block, option, plain
from store.models import Company, Contact

OUTCOMES = (
    ("Connected", "connected"),
    ("Left a voicemail", "voicemail"),
    ("No answer", "no_answer"),
    ("Meeting booked", "meeting_booked"),
    ("Not interested", "not_interested"),
    ("Wrong number", "wrong_number"),
)
CONTACT_PICKER = "contact_picker"  # external_select: options come from the options listener
COMPANY_PICKER = "company_picker"  # likewise, for companies
LOG_AS = (("Slack message", "slack"), ("Note", "note"))  # what the "Log to CRM" shortcut files a message as


def _modal(callback_id: str, title: str, blocks: list[Block], *, submit: str | None = "Save",
           metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": callback_id,
        "title": plain(title, 24),
        "close": plain("Cancel"),
        "blocks": blocks,
    }
    if submit:
        view["submit"] = plain(submit)
    if metadata:
        view["private_metadata"] = json.dumps(metadata)[:3000]
    return view


def _input(block_id: str, label: str, element: Block, *, optional: bool = False, hint: str | None = None) -> Block:
    block: Block = {"type": "input", "block_id": block_id, "label": plain(label), "element": element,
                    "optional": optional}
    if hint:
        block["hint"] = plain(hint)
    return block


def _text_input(action_id: str, *, multiline: bool = False, initial: str | None = None,
                placeholder: str | None = None, max_length: int = 3000) -> Block:
    element: Block = {"type": "plain_text_input", "action_id": action_id, "multiline": multiline,
                      "max_length": max_length}
    if initial:
        element["initial_value"] = initial[:max_length]
    if placeholder:
        element["placeholder"] = plain(placeholder)
    return element


def contact_option(contact: Contact) -> Block:
    return option(contact.name, str(contact.id))


def _contact_input(contact: Contact | None, *, optional: bool = False) -> Block:
    element: Block = {"type": "external_select", "action_id": CONTACT_PICKER, "min_query_length": 2,
                      "placeholder": plain("Type a name, email, company or phone")}
    if contact is not None:
        element["initial_option"] = contact_option(contact)
    return _input("contact", "Contact", element, optional=optional)


def log_call_modal(contact: Contact | None = None) -> dict[str, Any]:
    outcome = {"type": "static_select", "action_id": "outcome", "placeholder": plain("How did it go?"),
               "options": [option(text, value) for text, value in OUTCOMES]}
    duration = {"type": "number_input", "action_id": "duration", "is_decimal_allowed": False,
                "min_value": "0", "max_value": "600"}
    return _modal("log_call", "Log a call", [
        _contact_input(contact),
        _input("outcome", "Outcome", outcome),
        _input("duration", "Duration (minutes)", duration, optional=True),
        _input("notes", "Notes", _text_input("notes", multiline=True)),
        _input("next_step", "Next step", _text_input("next_step", max_length=500), optional=True),
        _input("followup", "Follow up", _text_input("followup", placeholder="e.g. next friday 10am", max_length=100),
               optional=True, hint="Leave empty for no follow-up. Your time zone and language are understood."),
    ])


def followup_modal(contact: Contact | None = None) -> dict[str, Any]:
    return _modal("add_followup", "Add a follow-up", [
        _contact_input(contact, optional=True),
        _input("when", "When", _text_input("when", placeholder="e.g. in 3 days, tomorrow 9:00", max_length=100)),
        _input("note", "Note", _text_input("note", multiline=True, max_length=1000), optional=True),
    ])


def _company_input() -> Block:
    element: Block = {"type": "external_select", "action_id": COMPANY_PICKER, "min_query_length": 2,
                      "placeholder": plain("Type a company name")}
    return _input("company", "Company", element, optional=True,
                  hint="Or a company instead of a contact: the note is the company's, shown on its contacts' cards.")


def note_modal(contact: Contact | None = None, company: Company | None = None, *,
               about_company: bool = False) -> dict[str, Any]:
    """A note about a contact or a company. With `contact` (a card's button) the rep picks between the
    contact and its company; without, a contact or a company picker."""
    blocks: list[Block] = []
    if contact is not None:
        choices = [option(contact.name, f"contact:{contact.id}")]
        if company is not None:
            choices.append(option(f"{company.name} (the company)", f"company:{company.id}"))
        radio: Block = {"type": "radio_buttons", "action_id": "about", "options": choices,
                        "initial_option": choices[-1] if about_company else choices[0]}
        blocks.append(_input("about", "About", radio))
    elif company is not None:
        choice = option(company.name, f"company:{company.id}")
        blocks.append(_input("about", "About", {"type": "radio_buttons", "action_id": "about", "options": [choice],
                                                "initial_option": choice}))
    else:
        blocks += [_contact_input(None, optional=True), _company_input()]
    blocks.append(_input("note", "Note", _text_input("note", multiline=True)))
    return _modal("add_note", "Add a note", blocks)


def log_message_modal(text: str, permalink: str | None) -> dict[str, Any]:
    log_as = {"type": "static_select", "action_id": "log_as", "options": [option(t, v) for t, v in LOG_AS],
              "initial_option": option(*LOG_AS[0])}
    return _modal("log_message", "Log to CRM", [
        _contact_input(None, optional=True),
        _company_input(),
        _input("log_as", "Log as", log_as),
        _input("summary", "Message", _text_input("summary", multiline=True, initial=text)),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"Link: {permalink or 'none'}"}]},
    ], metadata={"link": permalink})


def card_modal(blocks: list[Block]) -> dict[str, Any]:
    return _modal("contact_card", "Contact", blocks[:100], submit=None)


# other modules' modals (bot/thread.py, bot/reply.py) are built the same way
modal, input_block, text_input = _modal, _input, _text_input


# --------------------------------------------------------------------------- reading submissions


def state_value(view: dict[str, Any], block_id: str, action_id: str | None = None) -> str | None:
    """The submitted value of one input, whatever its element type; None when empty."""
    values = ((view.get("state") or {}).get("values") or {}).get(block_id) or {}
    element: dict[str, Any] = values.get(action_id or block_id) or next(iter(values.values()), {})
    selected = element.get("selected_option")
    if isinstance(selected, dict):
        return str(selected.get("value") or "") or None
    value = element.get("value")
    return str(value).strip() or None if value is not None else None


def metadata(view: dict[str, Any]) -> dict[str, Any]:
    try:
        loaded = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}
