"""Block Kit building blocks, the 50-block limit, and a plain-text rendering for the console."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.text import unescape

Block = dict[str, Any]
MAX_BLOCKS = 50  # Slack refuses messages with more
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000  # each of a section's fields
MAX_FIELDS = 10


@dataclass
class Reply:
    """What a command handler answers: a fallback text, blocks, and maybe a modal to open."""

    text: str
    blocks: list[Block] = field(default_factory=list)
    modal: dict[str, Any] | None = None
    changed_home: bool = False  # the rep's App Home should be refreshed
    ok: bool = True  # False: nothing was done (a mistake, nothing found, not allowed); `rapport chat` exits 1


def mrkdwn(text: str, limit: int = MAX_SECTION_TEXT) -> dict[str, str]:
    return {"type": "mrkdwn", "text": fit(text, limit)}


def fit(text: str, limit: int, *, hidden: int = 0) -> str:
    """At most `limit` characters, cut after a whole line (one item of a list), saying how many more.

    `hidden` items were left out before (a query's limit) and are counted in the tail too.
    A single line too long for the limit is cut on a word, never inside an escaped entity such as `&lt;`.
    """
    if len(text) <= limit and not hidden:
        return text
    lines = text.split("\n")
    kept: list[str] = []
    size = 0
    for line in lines:
        note = f"\n…and {len(lines) - len(kept) - 1 + hidden} more"  # the tail if this line is left out
        if size + len(line) + 1 + len(note) > limit:
            break
        kept.append(line)
        size += len(line) + 1
    if not kept:
        kept = [_cut_line(lines[0], limit - 40)]
    more = len(lines) - len(kept) + hidden
    return "\n".join(kept) + (f"\n…and {more} more" if more else "")


def _cut_line(line: str, limit: int) -> str:
    cut = line[: limit - 1]
    entity = cut.rfind("&")
    if entity != -1 and ";" not in cut[entity:]:
        cut = cut[:entity]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut) + "…"


def plain(text: str, limit: int = 150) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:limit] or " ", "emoji": True}


def section(text: str, *, accessory: Block | None = None, block_id: str | None = None) -> Block:
    block: Block = {"type": "section", "text": mrkdwn(text)}
    if accessory is not None:
        block["accessory"] = accessory
    if block_id:
        block["block_id"] = block_id
    return block


def fields(*texts: str) -> Block:
    return {"type": "section", "fields": [mrkdwn(t, MAX_FIELD_TEXT) for t in texts[:MAX_FIELDS]]}


def header(text: str) -> Block:
    return {"type": "header", "text": plain(text)}


def context(*texts: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(t) for t in texts[:10]]}


def divider() -> Block:
    return {"type": "divider"}


def button(text: str, action_id: str, value: str = "", *, style: str | None = None) -> Block:
    element: Block = {"type": "button", "text": plain(text, 75), "action_id": action_id, "value": value}
    if style:
        element["style"] = style
    return element


def option(text: str, value: str) -> Block:
    return {"text": plain(text, 75), "value": value}


def static_select(placeholder: str, action_id: str, options: list[tuple[str, str]]) -> Block:
    return {
        "type": "static_select",
        "placeholder": plain(placeholder),
        "action_id": action_id,
        "options": [option(text, value) for text, value in options[:100]],
    }


def actions(*elements: Block, block_id: str | None = None) -> Block:
    block: Block = {"type": "actions", "elements": list(elements)[:25]}
    if block_id:
        block["block_id"] = block_id
    return block


def split_blocks(blocks: list[Block], limit: int = MAX_BLOCKS) -> list[list[Block]]:
    """Messages of at most `limit` blocks each, in order (never an empty list of messages)."""
    if not blocks:
        return [[]]
    return [blocks[i : i + limit] for i in range(0, len(blocks), limit)]


# --------------------------------------------------------------------------- console rendering


def render_text(blocks: list[Block], *, escaped: bool = False, width: int | None = None,
                measure: Callable[[str], int] = len) -> str:
    """Blocks as readable plain text (the console adapter and message fallbacks); `escaped` keeps
    mrkdwn's escaping, for a renderer that still reads its links and mentions (bot.terminal).
    With `width`, a context's items and an actions block's buttons wrap between items, never
    inside one ("Language: sv", "[Reassign to…]"); `measure` gives a line's shown width."""
    text_of = _raw_text_of if escaped else _text_of
    lines: list[str] = []
    for block in blocks:
        lines.extend(_render_block(block, text_of, width, measure))
    return "\n".join(lines).rstrip()


def _item_lines(items: list[str], separator: str, width: int | None, measure: Callable[[str], int]) -> list[str]:
    """`items` joined by `separator` on indented lines, a new line where the next would pass `width`."""
    lines: list[str] = []
    for item in items:
        joined = f"{lines[-1]}{separator}{item}" if lines else ""
        if lines and (width is None or measure(joined) <= width):
            lines[-1] = joined
        else:
            lines.append("  " + item)
    return lines or ["  "]


def _raw_text_of(obj: Any) -> str:
    return str(obj.get("text", "")) if isinstance(obj, dict) else ""


def _text_of(obj: Any) -> str:
    return unescape(_raw_text_of(obj))


def _render_block(block: Block, text_of: Callable[[Any], str], width: int | None,
                  measure: Callable[[str], int]) -> list[str]:
    kind = block.get("type")
    if kind == "header":
        title = text_of(block.get("text"))
        return ["", title, "=" * min(len(title), 60)]
    if kind == "divider":
        return ["-" * 40]
    if kind == "context":
        return _item_lines([text_of(e) for e in block.get("elements", [])], "  ·  ", width, measure)
    if kind == "actions":
        labels = [_element_label(e, text_of) for e in block.get("elements", [])]
        return _item_lines([label for label in labels if label], " ", width, measure)
    if kind == "section":
        lines = [text_of(block.get("text"))] if block.get("text") else []
        lines += [text_of(f) for f in block.get("fields", [])]
        accessory = block.get("accessory")
        if accessory:
            lines[-1:] = [f"{lines[-1] if lines else ''}  {_element_label(accessory, text_of)}"]
        return lines
    if kind == "input":
        return [f"{text_of(block.get('label'))}: ____"]
    return []


def _element_label(element: Block, text_of: Callable[[Any], str]) -> str:
    label = text_of(element.get("text")) or text_of(element.get("placeholder"))
    return f"[{label}]" if label else ""
