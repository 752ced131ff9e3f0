"""Natural-language times, mrkdwn escaping and block splitting."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.blocks import render_text, section, split_blocks
from bot.dates import parse_when, split_when
from bot.text import escape

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # Monday 10:00 in Stockholm


@pytest.mark.parametrize(("text", "languages", "expected"), [
    ("next friday 10am", [], "2026-11-27T09:00:00+00:00"),
    ("in 3 days", [], "2026-11-26T09:00:00+00:00"),
    ("imorgon", ["sv"], "2026-11-24T09:00:00+00:00"),
    ("zítra v 10:00", ["cs"], "2026-11-24T09:00:00+00:00"),
    ("friday", [], "2026-11-27T08:00:00+00:00"),  # no time given: 09:00 local
])
def test_parse_when_in_the_reps_zone(text: str, languages: list[str], expected: str) -> None:
    moment = parse_when(text, tz="Europe/Stockholm", languages=languages, now=NOW)
    assert moment is not None and moment.isoformat() == expected


def test_split_when_takes_the_longest_time_prefix() -> None:
    moment, rest = split_when("next friday 10am send the offer".split(), tz="Europe/Stockholm", now=NOW)
    assert moment is not None and moment.isoformat() == "2026-11-27T09:00:00+00:00"
    assert rest == ["send", "the", "offer"]
    assert split_when(["whenever"], tz="UTC", now=NOW) == (None, ["whenever"])


def test_escape_neutralises_mentions_and_links() -> None:
    assert escape("<!channel> & <https://x|y>") == "&lt;!channel&gt; &amp; &lt;https://x|y&gt;"


def test_split_blocks_never_over_fifty() -> None:
    blocks = [section(str(i)) for i in range(121)]
    parts = split_blocks(blocks)
    assert [len(p) for p in parts] == [50, 50, 21]
    assert [b for part in parts for b in part] == blocks


def test_render_text_is_readable() -> None:
    assert render_text([section("*Jan* &lt;jan@x&gt;")]) == "*Jan* <jan@x>"
