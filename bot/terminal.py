"""Slack's mrkdwn for a terminal: bold and italics as styles, `<@U…>` as the rep's name, links as
their label and address. The console adapter (`rapport chat`) and the demo print through it."""

from __future__ import annotations

import re
from collections.abc import Mapping

from rich.text import Text
from sqlmodel import Session, col, select

from bot.blocks import Block, render_text
from bot.text import unescape
from store.models import Rep

# Left to right, first alternative wins: code spans keep their `*` and `_`; `<…>` is Slack's own
# syntax only here, since text from mail and people arrives escaped (&lt;).
_TOKEN = re.compile(
    r"`(?P<code>[^`\n]+)`"
    r"|<(?P<angle>[^<>\n]+)>"
    r"|(?<![\w*])\*(?P<bold>\S(?:[^*\n]*?\S)?)\*(?![\w*])"
    r"|(?<![\w_])_(?P<italic>\S(?:[^_\n]*?\S)?)_(?![\w_])"
    r"|(?<![\w~])~(?P<strike>\S(?:[^~\n]*?\S)?)~(?![\w~])"
)
SPECIAL_MENTIONS = {"here": "@here", "channel": "@channel", "everyone": "@everyone"}
# Slack's emoji short names that Rapport writes itself; others stay as written.
EMOJI = {":alarm_clock:": "⏰", ":rotating_light:": "🚨", ":tada:": "🎉", ":warning:": "⚠️",
         ":white_check_mark:": "✅"}
_EMOJI = re.compile("|".join(re.escape(name) for name in EMOJI))


def slack_names(session: Session) -> dict[str, str]:
    """Slack user id → rep name, for the reps Rapport knows in Slack."""
    reps = session.exec(select(Rep).where(col(Rep.slack_user_id).is_not(None)))
    return {rep.slack_user_id: rep.name for rep in reps if rep.slack_user_id}


def terminal_text(mrkdwn: str, names: Mapping[str, str] | None = None) -> Text:
    """Escaped mrkdwn (as sent to Slack) as styled terminal text."""
    names = names or {}
    mrkdwn = _EMOJI.sub(lambda m: EMOJI[m[0]], mrkdwn)
    out = Text()
    for line_number, line in enumerate(mrkdwn.split("\n")):
        if line_number:
            out.append("\n")
        if line.startswith("&gt; ") or line == "&gt;":
            out.append("│ ", style="dim")
            _append_inline(out, line.removeprefix("&gt;").removeprefix(" "), names, base="italic")
        else:
            _append_inline(out, line, names)
    return out


def _append_inline(out: Text, line: str, names: Mapping[str, str], base: str = "") -> None:
    position = 0
    for match in _TOKEN.finditer(line):
        out.append(unescape(line[position:match.start()]), style=base)
        position = match.end()
        if match["code"] is not None:
            out.append(unescape(match["code"]), style="bold cyan")
        elif match["angle"] is not None:
            _append_angle(out, match["angle"], names)
        elif match["bold"] is not None:
            _append_inline(out, match["bold"], names, base=f"{base} bold".strip())
        elif match["italic"] is not None:
            _append_inline(out, match["italic"], names, base=f"{base} italic".strip())
        else:
            out.append(unescape(match["strike"]), style=f"{base} strike".strip())
    out.append(unescape(line[position:]), style=base)


def _append_angle(out: Text, inside: str, names: Mapping[str, str]) -> None:
    target, _, label = inside.partition("|")
    if target.startswith("@"):
        out.append("@" + (names.get(target[1:]) or label or target[1:]), style="bold")
    elif target.startswith("#"):
        out.append("#" + (label or target[1:]), style="bold")
    elif target.startswith("!"):
        word = target[1:].split("^")[0]
        out.append(SPECIAL_MENTIONS.get(word, label or word), style="bold")
    else:
        url = unescape(target)
        shown = unescape(label) if label else url.removeprefix("mailto:")
        out.append(shown, style=f"underline link {url}")
        if label and unescape(label) != url.removeprefix("mailto:"):
            out.append(f" ({url})", style="dim")


_FIELD = re.compile(r"\*(?P<label>[^*\n]+)\*\n(?P<value>[^\n]*)")


def terminal_blocks(blocks: list[Block], fallback: str, names: Mapping[str, str] | None = None,
                    width: int | None = None) -> Text:
    """A message's blocks (else its fallback text) for a terminal `width` columns wide; a field that
    Slack shows as a bold label over its value becomes one line, `label: value`."""
    text = render_text([_one_line_fields(b) for b in blocks], escaped=True, width=width,
                       measure=lambda line: terminal_text(line, names).cell_len)
    return terminal_text(text or fallback, names)


def _one_line_fields(block: Block) -> Block:
    if block.get("type") != "section" or not block.get("fields"):
        return block
    fields = []
    for field in block["fields"]:
        match = _FIELD.fullmatch(str(field.get("text", "")))
        fields.append({**field, "text": f"*{match['label']}:* {match['value']}"} if match else field)
    return {**block, "fields": fields}
