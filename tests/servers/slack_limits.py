"""What real Slack refuses, checked on every payload the fake Slack receives.

Two sources: slack_sdk's Block Kit models (`Block.parse(...).to_dict()` and
`View(...).to_dict()` run their validators, nested objects included) and
Block Kit's documented limits that the models do not check (a section field's
2,000 characters, 50 blocks per message, unique block ids). A payload that
breaks one answers like Slack (`invalid_blocks`) and fails the test.

`raw_mentions` finds what would ping or link in Slack (`<!channel>`, `<@U…>`,
`<#C…>`, `<http…>`) so a test can check that only Rapport's own mentions do.
"""

from __future__ import annotations

import json
import re
from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

MESSAGE_BLOCKS = 50
SURFACE_BLOCKS = 100  # modals and App Home
SECTION_TEXT = 3000
FIELD_TEXT = 2000
MAX_FIELDS = 10
HEADER_TEXT = 150
OPTION_TEXT = 75
OPTION_VALUE = 150
MODAL_TITLE = 24
ACTIONS_ELEMENTS = 25
MESSAGE_TEXT = 40_000

MESSAGE_METHODS = ("chat.postMessage", "chat.postEphemeral", "chat.update", "chat.scheduleMessage", "response")
VIEW_METHODS = ("views.open", "views.update", "views.push", "views.publish")

_MENTION = re.compile(r"<(?:!|@|#|https?:)[^>]*>?")


def as_json(value: Any) -> Any:
    """Form-encoded calls carry JSON-valued params (blocks, view, files) as strings."""
    if isinstance(value, str) and value.startswith(("[", "{")):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def payload_problems(method: str, params: dict[str, Any]) -> list[str]:
    """Why real Slack would refuse this call's content (empty when it would accept it)."""
    problems: list[str] = []
    if method in MESSAGE_METHODS:
        if len(str(params.get("text") or "")) > MESSAGE_TEXT:
            problems.append(f"text longer than {MESSAGE_TEXT} characters")
        if params.get("blocks") is not None:
            problems += block_problems(as_json(params["blocks"]), MESSAGE_BLOCKS)
    elif method in VIEW_METHODS:
        problems += view_problems(as_json(params.get("view")))
    elif method == "files.completeUploadExternal" and params.get("blocks") is not None:
        problems += block_problems(as_json(params["blocks"]), MESSAGE_BLOCKS)
    return problems


def view_problems(view: Any) -> list[str]:
    if not isinstance(view, dict):
        return ["view is not an object"]
    # The model also wants at least one block; Slack's docs give only the maximum, checked below.
    modelled = {**view, "blocks": [{"type": "divider"}]}
    problems = _model_problems("view", lambda: View(**modelled).to_dict())
    title = (view.get("title") or {}).get("text", "")
    if view.get("type") == "modal" and len(title) > MODAL_TITLE:
        problems.append(f"modal title longer than {MODAL_TITLE} characters: {title!r}")
    return problems + block_problems(view.get("blocks") or [], SURFACE_BLOCKS)


def block_problems(blocks: Any, limit: int) -> list[str]:
    if not isinstance(blocks, list):
        return ["blocks is not a list"]
    problems = [f"{len(blocks)} blocks, at most {limit}"] if len(blocks) > limit else []
    ids = [block.get("block_id") for block in blocks if isinstance(block, dict) and block.get("block_id")]
    problems += [f"block_id {i!r} used twice" for i in sorted({i for i in ids if ids.count(i) > 1})]
    for index, block in enumerate(blocks):
        problems += [f"block {index}: {p}" for p in _one_block_problems(block)]
    return problems


def _one_block_problems(block: Any) -> list[str]:
    if not isinstance(block, dict) or "type" not in block:
        return ["not a block"]
    problems = _model_problems(block["type"], lambda: _parsed(block))
    kind = block["type"]
    if kind == "section":
        text = (block.get("text") or {}).get("text", "")
        if len(text) > SECTION_TEXT:
            problems.append(f"section text of {len(text)} characters, at most {SECTION_TEXT}")
        items = block.get("fields") or []
        if len(items) > MAX_FIELDS:
            problems.append(f"{len(items)} fields, at most {MAX_FIELDS}")
        problems += [f"field of {len(f.get('text', ''))} characters, at most {FIELD_TEXT}"
                     for f in items if len(f.get("text", "")) > FIELD_TEXT]
    elif kind == "header" and len((block.get("text") or {}).get("text", "")) > HEADER_TEXT:
        problems.append(f"header longer than {HEADER_TEXT} characters")
    elif kind == "actions" and len(block.get("elements") or []) > ACTIONS_ELEMENTS:
        problems.append(f"{len(block['elements'])} elements in an actions block, at most {ACTIONS_ELEMENTS}")
    return problems + [p for option in _options(block) for p in _option_problems(option)]


def _parsed(block: dict[str, Any]) -> Any:
    parsed = Block.parse(block)
    if parsed is None or type(parsed) is Block:
        raise SlackObjectFormationError(f"unknown block type {block['type']!r}")
    return parsed.to_dict()


def _model_problems(what: str, check: Any) -> list[str]:
    try:
        check()
    except (SlackObjectFormationError, TypeError, KeyError, ValueError, AttributeError) as exc:
        return [f"{what}: {exc}"]
    return []


def _options(value: Any) -> list[dict[str, Any]]:
    """Every option object anywhere inside a block (selects, overflow menus, radio buttons...)."""
    found: list[dict[str, Any]] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            if key in ("options", "initial_options") and isinstance(inner, list):
                found += [o for o in inner if isinstance(o, dict)]
            elif key == "initial_option" and isinstance(inner, dict):
                found.append(inner)
            else:
                found += _options(inner)
    elif isinstance(value, list):
        for inner in value:
            found += _options(inner)
    return found


def _option_problems(option: dict[str, Any]) -> list[str]:
    text = (option.get("text") or {}).get("text", "")
    value = str(option.get("value", ""))
    problems = [f"option text longer than {OPTION_TEXT}: {text!r}"] if len(text) > OPTION_TEXT else []
    if len(value) > OPTION_VALUE:
        problems.append(f"option value longer than {OPTION_VALUE}")
    return problems


def texts(value: Any) -> list[str]:
    """Every string inside a payload that Slack formats: top-level text and mrkdwn, not plain_text
    (which never pings or links) nor values of keys such as action_id."""
    if isinstance(value, str):
        return [value]
    found: list[str] = []
    if isinstance(value, dict) and value.get("type") == "plain_text":
        return found
    if isinstance(value, dict):
        for key, inner in value.items():
            inner = as_json(inner)
            if not isinstance(inner, str):
                found += texts(inner)
            elif key in _SHOWN:
                found.append(inner)
    elif isinstance(value, list):
        for inner in value:
            found += texts(as_json(inner))
    return found


_SHOWN = {"text", "alt_text", "title", "fallback", "pretext", "footer", "label", "placeholder", "hint"}


def raw_mentions(payload: dict[str, Any], allowed: set[str]) -> list[str]:
    """`<!…>`, `<@…>`, `<#…>` and `<http…>` in a payload's shown texts, except the `allowed` ones."""
    return [m for text in texts(payload) for m in _MENTION.findall(text) if m not in allowed]
